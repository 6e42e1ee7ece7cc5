"""Continuous mode: each layer on its own schedule, with backoff after failures.

The schedule lives in the database (the run rows), not in the process: a restarted worker, or
a second one, knows when each layer is due; the advisory lock in `urbis_sync.run` keeps two
processes from syncing one layer at the same time.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import OperationalError

from urbis_core.catalog import LayerEntry, quarantine, read_layer, sync_run
from urbis_core.config import ServiceConfig, parse_duration
from urbis_core.coverages import read_coverage
from urbis_core.db import first_line
from urbis_core.settings import SyncSettings
from urbis_sync.run import RunReport, sync_layer

log = logging.getLogger(__name__)
DEFAULT_SCHEDULE = "1d"
FIRST_RETRY = timedelta(seconds=30)


@dataclass(frozen=True)
class LayerStatus:
    layer_id: str
    version: int | None
    feature_count: int | None
    last_success: datetime | None
    last_failure: datetime | None
    failure_reason: str | None
    failing_since: datetime | None  # the first failure since the last success; None: not failing
    failures_in_a_row: int
    quarantined: int
    running: bool
    next_run: datetime

    def record(self) -> dict[str, Any]:
        """As JSON values, times ISO 8601 in UTC: `urbis status --json` and /admin/status."""
        return {
            name: value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value
            for name, value in dataclasses.asdict(self).items()
        }


def _next_run(
    schedule: timedelta, last_finished: datetime | None, failures: int, now: datetime
) -> datetime:
    if last_finished is None:
        return now
    if failures:
        # Retry soon after a failure, then less and less often, never later than the schedule.
        # The doubling stops at 2**20 (a year of FIRST_RETRY): beyond ~40 failures in a row it
        # would overflow timedelta, and the status and the loop itself would fail with it.
        return last_finished + min(schedule, FIRST_RETRY * 2 ** min(failures - 1, 20))
    return last_finished + schedule


def layer_status(
    engine: Engine, config: ServiceConfig, now: datetime | None = None
) -> list[LayerStatus]:
    """Per configured layer: what is stored, how the last runs went, when it runs next."""
    with engine.connect() as conn:
        return statuses_on(conn, config, now or datetime.now(UTC))


def statuses_on(conn: Connection, config: ServiceConfig, now: datetime) -> list[LayerStatus]:
    """`layer_status` over a connection the caller holds (the admin API's, run_sync'ed)."""
    out = []
    for layer_id in config.all_ids():
        runs = conn.execute(
            select(
                sync_run.c.status,
                sync_run.c.finished_at,
                sync_run.c.error,
                sync_run.c.started_at,
            )
            .where(sync_run.c.layer_id == layer_id)
            .order_by(sync_run.c.id.desc())
            .limit(50)
        ).all()
        failures, failing_since = _failing(conn, layer_id)
        last_failure = next((r for r in runs if r.status == "failed"), None)
        finished = [r for r in runs if r.finished_at is not None]
        layer = config.rasters.get(layer_id) or config.layers[layer_id]
        # A raster layer (urbis_sync.raster) has a coverage entry, no features, no quarantine.
        catalog = (
            read_coverage(conn, layer_id)
            if layer_id in config.rasters
            else read_layer(conn, layer_id)
        )
        held = conn.execute(
            select(func.count()).select_from(quarantine).where(quarantine.c.layer_id == layer_id)
        ).scalar()
        schedule = parse_duration(layer.schedule or DEFAULT_SCHEDULE)
        out.append(
            LayerStatus(
                layer_id=layer_id,
                version=catalog.version if catalog else None,
                feature_count=catalog.feature_count if isinstance(catalog, LayerEntry) else None,
                last_success=catalog.last_success if catalog else None,
                last_failure=last_failure.finished_at if last_failure else None,
                failure_reason=last_failure.error if last_failure else None,
                failing_since=failing_since,
                failures_in_a_row=failures,
                quarantined=int(held or 0),
                running=bool(runs) and runs[0].status == "running",
                next_run=_next_run(
                    schedule, finished[0].finished_at if finished else None, failures, now
                ),
            )
        )
    return out


def _failing(conn: Connection, layer_id: str) -> tuple[int, datetime | None]:
    """How many runs failed since the last success, and when the first of them failed.

    Counted over every run, not the last few: a layer failing for weeks says since when.
    A run still going is not counted either way.
    """
    last_success = (
        select(func.max(sync_run.c.id))
        .where(sync_run.c.layer_id == layer_id, sync_run.c.status == "success")
        .scalar_subquery()
    )
    count, since = conn.execute(
        select(
            func.count(), func.min(func.coalesce(sync_run.c.finished_at, sync_run.c.started_at))
        ).where(
            sync_run.c.layer_id == layer_id,
            sync_run.c.status == "failed",
            sync_run.c.id > func.coalesce(last_success, 0),
        )
    ).one()
    return int(count), since


def run_continuously(
    engine: Engine,
    config: ServiceConfig,
    settings: SyncSettings,
    stop: threading.Event,
    on_report: Callable[[RunReport], None] = lambda r: None,
) -> None:
    """Run each layer when it is due until `stop` is set; a failing layer never stops others.

    Nor does the database going away: the loop waits for it (1 s, then twice as long each
    time, at most a minute) and goes on, saying so once when it goes and once when it is back.
    """
    away_since: float | None = None
    pause = 1.0
    while not stop.is_set():
        try:
            wait = _due_runs(engine, config, settings, stop, on_report)
        except OperationalError as exc:
            if away_since is None:
                away_since = time.monotonic()
                log.warning(
                    "the database is not reachable (%s); the sync waits for it", first_line(exc)
                )
            stop.wait(pause)
            pause = min(pause * 2, 60.0)
            continue
        if away_since is not None:
            log.warning(
                "the database is reachable again after %.0f s; the sync goes on",
                time.monotonic() - away_since,
            )
            away_since, pause = None, 1.0
        stop.wait(wait)


def _due_runs(
    engine: Engine,
    config: ServiceConfig,
    settings: SyncSettings,
    stop: threading.Event,
    on_report: Callable[[RunReport], None],
) -> float:
    """Run the layers due now; the seconds until the next is due (1 to 60)."""
    now = datetime.now(UTC)
    statuses = layer_status(engine, config, now)
    for status in sorted(statuses, key=lambda s: s.next_run):
        if stop.is_set():
            return 0.0
        if status.next_run <= now:
            on_report(sync_layer(engine, config, status.layer_id, settings))
    upcoming = min(s.next_run for s in layer_status(engine, config))
    wait = (upcoming - datetime.now(UTC)).total_seconds()
    return min(max(wait, 1.0), 60.0)
