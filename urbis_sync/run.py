"""One sync run of one layer: stream the source into staging, reconcile in one transaction.

A run is recorded from its start (`sync_run` row, status running) to its end (success with the
counts, or failed with the reason). Whatever fails, the live layer stays as it was.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import zlib
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from psycopg import errors as pg_errors
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import DBAPIError, OperationalError

from urbis_core.catalog import (
    STORAGE_SRID,
    LayerEntry,
    change_log,
    layer_catalog,
    quarantine,
    sync_run,
)
from urbis_core.changes import LayerChanged
from urbis_core.config import ServiceConfig
from urbis_core.errors import SyncError, UrbisError
from urbis_core.settings import SyncSettings
from urbis_sync import reconcile, tile_geometry
from urbis_sync.copystream import CopyStream
from urbis_sync.fingerprint import DuplicateFeature, row_fingerprints
from urbis_sync.normalize import (
    TYPE_NAMES,
    DoesNotFit,
    LayerFacts,
    Normalizer,
    Quarantined,
    first_kinds,
    resolve_crs,
)
from urbis_sync.sources import FeatureBatch, Field, SourceUnchanged, open_source
from urbis_sync.tile_geometry import Filled

log = logging.getLogger(__name__)
RUN_MODE = "reconcile"
SWAP_ATTEMPTS = 5
FAILURE_RECORD_ATTEMPTS = 30  # seconds, one a second: long enough for a database restart


@dataclass(frozen=True)
class RunReport:
    layer_id: str
    run_id: int | None
    status: str  # success, failed, busy (another process is syncing this layer)
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

    def summary(self) -> str:
        if self.status == "busy":
            return f"{self.layer_id}: skipped, another process is syncing it"
        if self.status != "success":
            return f"{self.layer_id}: FAILED (run {self.run_id}): {self.error}"
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


def lock_key(layer_id: str) -> int:
    """The advisory lock that lets one process at a time sync a layer."""
    return zlib.crc32(f"urbis_sync:{layer_id}".encode())


Progress = Callable[[str, int], None]


def sync_layer(
    engine: Engine,
    config: ServiceConfig,
    layer_id: str,
    settings: SyncSettings | None = None,
    progress: Progress | None = None,
) -> RunReport:
    config.layer(layer_id)  # an unknown id is a configuration error, before any lock
    with engine.connect() as lock_conn:
        got = lock_conn.execute(select(func.pg_try_advisory_lock(lock_key(layer_id)))).scalar()
        lock_conn.commit()
        if not got:
            return RunReport(layer_id, None, "busy")
        try:
            report = _run(engine, config, layer_id, settings or SyncSettings(), progress)
            if report.status == "success" and (report.inserted or report.updated or report.drift):
                report = _made_ready_for_tiles(engine, report)  # the rows it wrote
            return report
        finally:
            try:
                lock_conn.execute(select(func.pg_advisory_unlock(lock_key(layer_id))))
                lock_conn.commit()
            except DBAPIError:
                pass  # the connection died (database restart): its lock went with it


def _made_ready_for_tiles(engine: Engine, report: RunReport) -> RunReport:
    """The run's report, once the rows it wrote are ready for tiles (urbis_sync.tile_geometry).

    Still under the layer's lock, so no other run swaps the table meanwhile. The run stands
    if this fails: tiles compute what a row lacks as they draw it, and the next run that
    writes rows fills what is missing.
    """
    with engine.connect() as conn:
        table = conn.execute(
            select(layer_catalog.c.table_name).where(layer_catalog.c.id == report.layer_id)
        ).scalar()
    if table is None:
        return report
    try:
        return dataclasses.replace(report, tile_ready=tile_geometry.fill(engine, table))
    except DBAPIError as exc:
        log.warning(
            "layer %s: rows not made ready for tiles: %s", report.layer_id, _describe_failure(exc)
        )
        return report


@dataclass
class Staged:
    """What one pass over the source left in staging, and what it counted on the way."""

    shape: reconcile.LayerShape
    incoming: str
    unmatched: str | None  # the live fingerprints nothing matched (when only changes were staged)
    fetched: int
    repaired: int
    quarantined: list[Quarantined]
    duplicates: int
    source_info: str | None


def _run(
    engine: Engine,
    config: ServiceConfig,
    layer_id: str,
    settings: SyncSettings,
    progress: Progress | None,
) -> RunReport:
    started = time.monotonic()
    with engine.begin() as conn:
        # This process holds the layer's lock, so a run still marked running is one whose
        # process died (killed, machine restarted): say so rather than leave it running forever.
        conn.execute(
            sync_run.update()
            .where(sync_run.c.layer_id == layer_id, sync_run.c.status == "running")
            .values(
                status="failed",
                finished_at=func.clock_timestamp(),
                error="interrupted: the process running it stopped before it finished",
            )
        )
        run_id = conn.execute(
            sync_run.insert()
            .values(layer_id=layer_id, mode=RUN_MODE, status="running")
            .returning(sync_run.c.id)
        ).scalar_one()
    fetched = 0
    try:
        with engine.begin() as conn:
            reconcile.drop_staging(conn, layer_id)
            previous_info = conn.execute(
                select(sync_run.c.source_info)
                .where(sync_run.c.layer_id == layer_id, sync_run.c.status == "success")
                .order_by(sync_run.c.id.desc())
                .limit(1)
            ).scalar()
            current = reconcile.current_entry(conn, layer_id)
            if current is not None and not reconcile.has_fingerprints(conn, layer_id):
                current = None  # a table from an earlier version: stage it whole
        # First only what changed since the last run; the whole layer again when the change
        # needs it (schema drift, duplicate keys) or when there is no usable last run.
        for mode in ("changes", "whole") if current is not None else ("direct", "whole"):
            try:
                staged = _stage(
                    engine,
                    config,
                    layer_id,
                    run_id,
                    settings,
                    progress,
                    previous_info,
                    current if mode == "changes" else None,
                    direct=mode == "direct",
                )
                fetched = staged.fetched
                result = _apply_with_retries(engine, config, layer_id, run_id, staged)
                break
            except reconcile.NeedsFullRun as why:
                log.info("layer %s: staging the whole layer (%s)", layer_id, why)
                with engine.begin() as conn:
                    conn.execute(quarantine.delete().where(quarantine.c.run_id == run_id))
                    reconcile.drop_staging(conn, layer_id)
    except SourceUnchanged as unchanged:
        with engine.begin() as conn:
            version = conn.execute(
                select(layer_catalog.c.version).where(layer_catalog.c.id == layer_id)
            ).scalar()
            conn.execute(
                sync_run.update()
                .where(sync_run.c.id == run_id)
                .values(
                    status="success",
                    finished_at=func.clock_timestamp(),
                    version=version,
                    source_info=unchanged.info,
                )
            )
            conn.execute(
                layer_catalog.update()
                .where(layer_catalog.c.id == layer_id)
                .values(last_success=func.now(), tiles=config.layer(layer_id).tiles.model_dump())
            )
        return RunReport(
            layer_id, run_id, "success", version=version, seconds=time.monotonic() - started
        )
    except Exception as exc:
        message = _describe_failure(exc)
        if not isinstance(exc, UrbisError | DBAPIError):
            log.exception("sync of layer %s failed unexpectedly", layer_id)
        _record_failure(engine, layer_id, run_id, message, fetched)
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
                reconcile.drop_staging(conn, layer_id)
        except DBAPIError:
            log.warning("layer %s: staging tables left for the next run to drop", layer_id)
    return RunReport(
        layer_id,
        run_id,
        "success",
        fetched=staged.fetched,
        inserted=result.inserted,
        updated=result.updated,
        deleted=result.deleted,
        repaired=staged.repaired,
        quarantined=len(staged.quarantined) + staged.duplicates,
        version=result.version,
        drift=result.drift,
        seconds=time.monotonic() - started,
    )


def _stage(
    engine: Engine,
    config: ServiceConfig,
    layer_id: str,
    run_id: int,
    settings: SyncSettings,
    progress: Progress | None,
    previous_info: str | None,
    current: LayerEntry | None,
    direct: bool = False,
) -> Staged:
    """One pass over the source into staging.

    With `current` (the live layer), features whose fingerprint is unchanged are skipped and
    only candidates are staged; without it, every feature is. `direct` (a first load) streams
    the rows straight into the layer's new table, written once.
    """
    layer = config.layer(layer_id)
    staging = reconcile.staging_name(layer_id, run_id)
    fetched = repaired = unchanged = duplicates = 0
    quarantined: list[Quarantined] = []
    with (
        open_source(layer_id, layer, settings, previous_info) as source,
        engine.begin() as conn,
        ExitStack() as streams,
    ):
        fields = source.schema.fields
        if current is not None and [f.name for f in fields] != [c.name for c in current.columns]:
            raise reconcile.NeedsFullRun("the source's fields changed")
        crs = resolve_crs(source.schema.crs, layer.source.srid, layer_id)
        normalizer = Normalizer(source.schema, layer.key, crs, layer_id)
        live = reconcile.live_fingerprints(conn, current) if current is not None else None
        stream: CopyStream | reconcile.NextTable
        if direct:
            stream = streams.enter_context(reconcile.NextTable(conn, layer_id, fields, layer.key))
        else:
            stream = streams.enter_context(reconcile.create_staging(conn, staging, fields))
        for batch in source.batches():
            attributes = normalizer.align(batch.attributes)
            batch = FeatureBatch(attributes, batch.wkb)
            fingerprints = row_fingerprints(attributes, batch.wkb)
            fetched += len(fingerprints)
            if live is not None:
                try:
                    same = live.match(fingerprints)
                except DuplicateFeature as twice:
                    raise reconcile.NeedsFullRun("a feature occurs more than once") from twice
                unchanged += int(same.sum())
                if same.any():
                    batch = batch.filter(~same)
                    fingerprints = fingerprints[~same]
            if isinstance(stream, reconcile.NextTable) and stream.geometry_type is None:
                normalizer.target = _geometry_type(
                    fields, layer_id, first_kinds(batch), source.schema.geometry_type
                )
                stream.open(normalizer.target)
            try:
                prepared = normalizer.prepare(batch, fingerprints)
            except DoesNotFit as misfit:
                assert isinstance(stream, reconcile.NextTable) and normalizer.target
                normalizer.target = _geometry_type(
                    fields, layer_id, misfit.kinds, normalizer.target
                )
                stream.widen(normalizer.target)
                prepared = normalizer.prepare(batch, fingerprints)
            stream.write(prepared.csv)
            repaired += prepared.repaired
            quarantined += prepared.quarantined
            if progress is not None:
                progress(layer_id, fetched)
        if isinstance(stream, reconcile.NextTable) and stream.geometry_type is None:
            normalizer.target = "Geometry"  # an empty source
            stream.open(normalizer.target)
        streams.close()  # the COPY ends here: a value that does not fit fails the run now
        normalizer.check_plausible()
        unmatched = (
            reconcile.stage_unmatched(conn, staging, live.unmatched()) if live is not None else None
        )
        notes = list(source.stats.notes)
        if current is not None:
            notes.append(f"{unchanged} unchanged features skipped by fingerprint")
        if direct:
            assert normalizer.target is not None
            columns = reconcile.decide_shape(fields, normalizer.facts, layer_id).columns
            shape = reconcile.LayerShape(columns, normalizer.target)
            reconcile.retype_next_table(conn, layer_id, shape)
    if direct:
        try:
            reconcile.index_next_table(
                engine, layer_id, layer.key, filters=(shape.columns, layer.indexes)
            )
        except reconcile.DuplicateKeys:
            with engine.begin() as conn:
                duplicates = reconcile.quarantine_duplicates(
                    conn, reconcile.next_table_name(layer_id), layer.key, layer_id, run_id
                )
            reconcile.index_next_table(
                engine, layer_id, layer.key, spatial=False, filters=(shape.columns, layer.indexes)
            )
        return Staged(
            shape,
            reconcile.next_table_name(layer_id),
            None,
            fetched,
            repaired,
            quarantined,
            duplicates,
            "; ".join(notes) or None,
        )
    with engine.begin() as conn:
        shape = reconcile.decide_shape(
            fields, normalizer.facts, layer_id, current, complete=current is None
        )
        try:
            incoming = reconcile.build_incoming(conn, staging, shape, layer.key)
        except reconcile.DuplicateKeys:
            duplicates = reconcile.quarantine_duplicates(conn, staging, layer.key, layer_id, run_id)
            incoming = reconcile.build_incoming(conn, staging, shape, layer.key)
    return Staged(
        shape,
        incoming,
        unmatched,
        fetched,
        repaired,
        quarantined,
        duplicates,
        "; ".join(notes) or None,
    )


def _geometry_type(fields: list[Field], layer_id: str, kinds: set[str], hint: str) -> str:
    """The geometry type of a first load's table, from the features seen and a hint.

    The hint is the source's declared type, or the table's type so far when a feature did not
    fit it: a layer declared MultiPolygon whose first features are single polygons is made
    multi from the start, and single polygons followed by a multi one widen to MultiPolygon.
    """
    hint = hint.split(" ")[0]  # "MultiPolygon Z": stored in 2D
    if hint in TYPE_NAMES.values():
        kinds = kinds | {hint}
    return reconcile.decide_shape(fields, LayerFacts({}, kinds), layer_id).geometry_type


def _record_failure(engine: Engine, layer_id: str, run_id: int, message: str, fetched: int) -> None:
    """Write the failed run row, waiting for the database when the failure was its restart."""
    for attempt in range(1, FAILURE_RECORD_ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                conn.execute(quarantine.delete().where(quarantine.c.run_id == run_id))
                conn.execute(
                    sync_run.update()
                    .where(sync_run.c.id == run_id)
                    .values(
                        status="failed",
                        finished_at=func.clock_timestamp(),
                        error=message,
                        fetched=fetched,
                    )
                )
            return
        except OperationalError:
            if attempt == FAILURE_RECORD_ATTEMPTS:
                log.error(
                    "layer %s: run %s failed (%s) and the database is unreachable to record it",
                    layer_id,
                    run_id,
                    message,
                )
                return
            time.sleep(1.0)


def _describe_failure(exc: Exception) -> str:
    """One line for the run row: what went wrong, in words a person can act on."""
    if isinstance(exc, UrbisError):
        return str(exc)
    if isinstance(exc, DBAPIError):
        detail = str(exc.orig or exc).strip().splitlines()
        return f"database error, nothing applied: {detail[0] if detail else type(exc).__name__}"
    return f"{type(exc).__name__}: {exc}"


def _apply_with_retries(
    engine: Engine, config: ServiceConfig, layer_id: str, run_id: int, staged: Staged
) -> reconcile.ApplyResult:
    layer = config.layer(layer_id)
    for attempt in range(1, SWAP_ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                _replace_quarantine(conn, layer_id, run_id, staged.quarantined)
                result = reconcile.apply(
                    conn, layer_id, layer, staged.shape, staged.incoming, run_id, staged.unmatched
                )
                if result.changed:
                    _record_change(conn, layer_id, run_id, result)
                    change = LayerChanged(layer_id, result.version, result.changed_bbox)
                    conn.execute(select(change.notification()))
                conn.execute(
                    sync_run.update()
                    .where(sync_run.c.id == run_id)
                    .values(
                        status="success",
                        finished_at=func.clock_timestamp(),
                        fetched=staged.fetched,
                        inserted=result.inserted,
                        updated=result.updated,
                        deleted=result.deleted,
                        repaired=staged.repaired,
                        quarantined=len(staged.quarantined) + staged.duplicates,
                        version=result.version,
                        drift=result.drift,
                        source_info=staged.source_info,
                    )
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


def _record_change(
    conn: Connection, layer_id: str, run_id: int, result: reconcile.ApplyResult
) -> None:
    bbox = func.ST_MakeEnvelope(*result.changed_bbox, STORAGE_SRID) if result.changed_bbox else None
    conn.execute(
        change_log.insert().values(
            layer_id=layer_id,
            run_id=run_id,
            version=result.version,
            inserted=result.inserted,
            updated=result.updated,
            deleted=result.deleted,
            bbox=bbox,
        )
    )


def sync_once(
    engine: Engine,
    config: ServiceConfig,
    layer_ids: list[str],
    settings: SyncSettings | None = None,
    progress: Progress | None = None,
) -> list[RunReport]:
    return [sync_layer(engine, config, layer_id, settings, progress) for layer_id in layer_ids]
