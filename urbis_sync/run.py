"""One sync run of one layer: stream the source into staging, reconcile in one transaction.

A run is recorded from its start (`sync_run` row, status running) to its end (success with the
counts, or failed with the reason). Whatever fails, the live layer stays as it was.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from psycopg import errors as pg_errors
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import DBAPIError, OperationalError

from urbis_core.catalog import (
    STORAGE_SRID,
    LayerEntry,
    quarantine,
    read_layer,
    sync_lock_key,
    sync_run,
)
from urbis_core.changes import LayerChanged, announce
from urbis_core.config import ServiceConfig
from urbis_core.errors import SourceError, SyncError, UrbisError
from urbis_core.settings import SyncSettings
from urbis_sync import tile_geometry
from urbis_sync.normalize import Quarantined
from urbis_sync.raster.run import run_raster
from urbis_sync.reconcile.apply import ApplyResult, apply
from urbis_sync.reconcile.catalog_write import mark_synced
from urbis_sync.reconcile.staging import NeedsFullRun, drop_staging, has_fingerprints
from urbis_sync.run_rows import (
    begin_run,
    describe_failure,
    finish_run,
    record_failure,
    run_after,
)
from urbis_sync.sources import SourceUnchanged
from urbis_sync.stage import (
    Progress,
    SourcePass,
    Staged,
    stage_changes,
    stage_first_load,
    stage_whole,
)
from urbis_sync.tile_geometry import Filled

log = logging.getLogger(__name__)
RUN_MODE = "reconcile"
SWAP_ATTEMPTS = 5


@dataclass(frozen=True)
class RunReport:
    layer_id: str
    run_id: int | None
    status: str  # success, failed, busy (another process is syncing this layer), superseded
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    repaired: int = 0
    quarantined: int = 0
    version: int | None = None
    drift: str | None = None
    error: str | None = None
    seconds: float = 0.0
    tile_ready: Filled | None = None  # rows made ready for tiles after the run
    raster: str | None = None  # a raster layer's run: what it did, in words

    def summary(self) -> str:
        if self.status == "busy":
            return f"{self.layer_id}: skipped, another process is syncing it"
        if self.status == "superseded":
            return f"{self.layer_id}: skipped, run {self.run_id} started since it was asked for"
        if self.status != "success":
            return f"{self.layer_id}: FAILED (run {self.run_id}): {self.error}"
        if self.raster is not None:
            return (
                f"{self.layer_id}: {self.raster} (version {self.version}), "
                f"{self.seconds:.1f} s (run {self.run_id})"
            )
        drift = f", schema drift: {self.drift}" if self.drift else ""
        return (
            f"{self.layer_id}: {self.fetched} features read, {self.inserted} inserted, "
            f"{self.updated} updated, {self.deleted} deleted (version {self.version}), "
            f"{self.repaired} repaired, {self.quarantined} quarantined{drift}, "
            f"{self.seconds:.1f} s (run {self.run_id}){self._tile_ready()}"
        )

    def _tile_ready(self) -> str:
        filled = self.tile_ready
        if filled is None or not filled.rows:
            return ""
        return f"; {filled.rows} rows made ready for tiles in {filled.seconds:.1f} s"


def sync_layer(
    engine: Engine,
    config: ServiceConfig,
    layer_id: str,
    settings: SyncSettings | None = None,
    progress: Progress | None = None,
    unless_run_after: int | None = None,
) -> RunReport:
    """One run of the layer, unless another process is syncing it ("busy").

    `unless_run_after`: skip ("superseded") when a run of the layer newer than that run id
    exists. Whoever asks for a run looks at the newest first; asked twice at once (two API
    processes), the second process to take the lock finds the first one's run and does not
    run the layer again. Checked under the lock, so no run can start between look and skip.
    """
    config.select([layer_id])  # an unknown id is a configuration error, before any lock
    with engine.connect() as lock_conn:
        got = lock_conn.execute(select(func.pg_try_advisory_lock(sync_lock_key(layer_id)))).scalar()
        lock_conn.commit()
        if not got:
            return RunReport(layer_id, None, "busy")
        try:
            if unless_run_after is not None:
                newer = run_after(lock_conn, layer_id, unless_run_after)
                lock_conn.commit()
                if newer is not None:
                    return RunReport(layer_id, newer, "superseded")
            if layer_id in config.rasters:
                return _raster_run(engine, config, layer_id, settings or SyncSettings())
            report = _run(engine, config, layer_id, settings or SyncSettings(), progress)
            if report.status == "success" and (report.inserted or report.updated or report.drift):
                report = _made_ready_for_tiles(engine, report)  # the rows it wrote
            return report
        finally:
            try:
                lock_conn.execute(select(func.pg_advisory_unlock(sync_lock_key(layer_id))))
                lock_conn.commit()
            except DBAPIError:
                pass  # the connection died (database restart): its lock went with it


def _raster_run(
    engine: Engine, config: ServiceConfig, layer_id: str, settings: SyncSettings
) -> RunReport:
    """A raster layer's run (urbis_sync.raster.run), told as the vector runs are."""
    started = time.monotonic()
    outcome = run_raster(engine, config, layer_id, settings)
    did = "new COG written" if outcome.changed else "source unchanged, nothing written"
    return RunReport(
        layer_id,
        outcome.run_id,
        outcome.status,
        version=outcome.version,
        error=outcome.error,
        seconds=time.monotonic() - started,
        raster=did if outcome.status == "success" else None,
    )


def _made_ready_for_tiles(engine: Engine, report: RunReport) -> RunReport:
    """The run's report, once the rows it wrote are ready for tiles (urbis_sync.tile_geometry).

    Still under the layer's lock, so no other run swaps the table meanwhile. The run stands
    if this fails: tiles compute what a row lacks as they draw it, and the next run that
    writes rows fills what is missing.
    """
    with engine.connect() as conn:
        entry = read_layer(conn, report.layer_id)
    if entry is None:
        return report
    try:
        return dataclasses.replace(report, tile_ready=tile_geometry.fill(engine, entry.table_name))
    except DBAPIError as exc:
        log.warning(
            "layer %s: rows not made ready for tiles: %s", report.layer_id, describe_failure(exc)
        )
        return report


def _run(
    engine: Engine,
    config: ServiceConfig,
    layer_id: str,
    settings: SyncSettings,
    progress: Progress | None,
) -> RunReport:
    started = time.monotonic()
    with engine.begin() as conn:
        run_id = begin_run(conn, layer_id, RUN_MODE)
    fetched = 0
    try:
        with engine.begin() as conn:
            drop_staging(conn, layer_id)
            previous_info = conn.execute(
                select(sync_run.c.source_info)
                .where(sync_run.c.layer_id == layer_id, sync_run.c.status == "success")
                .order_by(sync_run.c.id.desc())
                .limit(1)
            ).scalar()
            current = read_layer(conn, layer_id)
            if current is not None and not has_fingerprints(conn, layer_id):
                current = None  # a table from an earlier version: stage it whole
        # First only what changed since the last run; the whole layer again when the change
        # needs it (schema drift, duplicate keys) or when there is no usable last run.
        source_pass = SourcePass(
            engine, layer_id, config.layer(layer_id), run_id, settings, progress, previous_info
        )
        for mode in ("changes", "whole") if current is not None else ("first load", "whole"):
            try:
                staged = _stage(mode, source_pass, current)
                fetched = staged.fetched
                result = _apply_with_retries(engine, config, layer_id, run_id, staged)
                break
            except NeedsFullRun as why:
                log.info("layer %s: staging the whole layer (%s)", layer_id, why)
                with engine.begin() as conn:
                    conn.execute(quarantine.delete().where(quarantine.c.run_id == run_id))
                    drop_staging(conn, layer_id)
    except SourceUnchanged as unchanged:
        try:
            with engine.begin() as conn:
                entry = read_layer(conn, layer_id)
                version = entry.version if entry else None
                finish_run(conn, run_id, "success", version=version, source_info=unchanged.info)
                if entry is not None:
                    fields = [c.name for c in entry.columns]
                    mark_synced(conn, layer_id, config.layer(layer_id), fields)
        except SourceError as exc:  # the configuration changed, not the source: a bad `label`
            record_failure(engine, layer_id, run_id, str(exc), fetched=fetched)
            return RunReport(
                layer_id, run_id, "failed", error=str(exc), seconds=time.monotonic() - started
            )
        return RunReport(
            layer_id, run_id, "success", version=version, seconds=time.monotonic() - started
        )
    except Exception as exc:
        message = describe_failure(exc)
        if not isinstance(exc, UrbisError | DBAPIError):
            log.exception("sync of layer %s failed unexpectedly", layer_id)
        record_failure(engine, layer_id, run_id, message, fetched=fetched)
        return RunReport(
            layer_id,
            run_id,
            "failed",
            fetched=fetched,
            error=message,
            seconds=time.monotonic() - started,
        )
    finally:
        try:
            with engine.begin() as conn:
                drop_staging(conn, layer_id)
        except DBAPIError:
            log.warning("layer %s: staging tables left for the next run to drop", layer_id)
    return RunReport(
        layer_id, run_id, "success", **_outcome(staged, result), seconds=time.monotonic() - started
    )


def _outcome(staged: Staged, result: ApplyResult) -> dict[str, Any]:
    """What a successful run did, as its report and its sync_run row both tell it."""
    return {
        "fetched": staged.fetched,
        "inserted": result.inserted,
        "updated": result.updated,
        "deleted": result.deleted,
        "repaired": staged.repaired,
        "quarantined": len(staged.quarantined) + staged.duplicates,
        "version": result.version,
        "drift": result.drift,
    }


def _stage(mode: str, source_pass: SourcePass, current: LayerEntry | None) -> Staged:
    """One pass over the source into staging, in the given mode (urbis_sync.stage)."""
    if mode == "changes":
        assert current is not None
        return stage_changes(source_pass, current)
    if mode == "first load":
        return stage_first_load(source_pass)
    return stage_whole(source_pass)


def _apply_with_retries(
    engine: Engine, config: ServiceConfig, layer_id: str, run_id: int, staged: Staged
) -> ApplyResult:
    layer = config.layer(layer_id)
    for attempt in range(1, SWAP_ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                _replace_quarantine(conn, layer_id, run_id, staged.quarantined)
                result = apply(
                    conn, layer_id, layer, staged.shape, staged.incoming, run_id, staged.unmatched
                )
                if result.changed:
                    announce(
                        conn,
                        run_id,
                        LayerChanged(layer_id, result.version, result.changed_bbox),
                        (result.inserted, result.updated, result.deleted),
                    )
                finish_run(
                    conn,
                    run_id,
                    "success",
                    **_outcome(staged, result),
                    source_info=staged.source_info,
                )
            return result
        except (OperationalError, pg_errors.LockNotAvailable) as exc:
            # The apply's SQL runs on the driver's cursor: its errors come unwrapped.
            cause = exc.orig if isinstance(exc, OperationalError) else exc
            if not isinstance(cause, pg_errors.LockNotAvailable) or attempt == SWAP_ATTEMPTS:
                raise
            log.warning(
                "layer %s: readers hold the table; retrying the swap (%d/%d)",
                layer_id,
                attempt,
                SWAP_ATTEMPTS,
            )
            time.sleep(min(2**attempt, 30))
    raise SyncError(f"layer '{layer_id}': could not apply after {SWAP_ATTEMPTS} attempts")


def _replace_quarantine(
    conn: Connection, layer_id: str, run_id: int, items: list[Quarantined]
) -> None:
    """The quarantine shows what the latest run set aside; earlier runs' lists are replaced."""
    conn.execute(
        quarantine.delete().where(quarantine.c.layer_id == layer_id, quarantine.c.run_id != run_id)
    )
    if not items:
        return
    conn.execute(
        quarantine.insert(),
        [
            {
                "layer_id": layer_id,
                "run_id": run_id,
                "feature_key": item.key,
                "reason": item.reason,
                "properties": json.loads(json.dumps(item.properties, default=str)),
                "geom": f"SRID={STORAGE_SRID};{item.wkt}" if item.wkt else None,
            }
            for item in items
        ],
    )


def sync_once(
    engine: Engine,
    config: ServiceConfig,
    layer_ids: list[str],
    settings: SyncSettings | None = None,
    progress: Progress | None = None,
) -> list[RunReport]:
    return [sync_layer(engine, config, layer_id, settings, progress) for layer_id in layer_ids]
