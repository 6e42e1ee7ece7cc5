"""A run's `sync_run` row from start to end, shared by vector and raster runs."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import Connection, Engine, func
from sqlalchemy.exc import DBAPIError, OperationalError

from urbis_core.catalog import first_run_after, quarantine, sync_run
from urbis_core.errors import UrbisError

log = logging.getLogger(__name__)

FAILURE_RECORD_ATTEMPTS = 30  # seconds, one a second: long enough for a database restart


def run_after(conn: Connection, layer_id: str, after: int) -> int | None:
    """The layer's first run after run `after`, if any (run ids only grow)."""
    found = conn.execute(first_run_after(layer_id, after)).scalar()
    return None if found is None else int(found)


def begin_run(conn: Connection, layer_id: str, mode: str) -> int:
    """A new run's row, `running`; an earlier one still marked running is said interrupted.

    The caller holds the layer's lock, so a run still marked running is one whose process
    died (killed, machine restarted): say so rather than leave it running forever.
    """
    conn.execute(
        sync_run.update()
        .where(sync_run.c.layer_id == layer_id, sync_run.c.status == "running")
        .values(
            status="failed",
            finished_at=func.clock_timestamp(),
            error="interrupted: the process running it stopped before it finished",
        )
    )
    return int(
        conn.execute(
            sync_run.insert()
            .values(layer_id=layer_id, mode=mode, status="running")
            .returning(sync_run.c.id)
        ).scalar_one()
    )


def finish_run(conn: Connection, run_id: int, status: str, **values: Any) -> None:
    """The run's row at its end: its status, when, and what it did or why it failed."""
    conn.execute(
        sync_run.update()
        .where(sync_run.c.id == run_id)
        .values(status=status, finished_at=func.clock_timestamp(), **values)
    )


def record_failure(engine: Engine, layer_id: str, run_id: int, message: str, **values: Any) -> None:
    """Write the failed run row; nothing the run set aside stays.

    Retried for a while: the failure may be the database's restart.
    """
    for attempt in range(1, FAILURE_RECORD_ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                conn.execute(quarantine.delete().where(quarantine.c.run_id == run_id))
                finish_run(conn, run_id, "failed", error=message, **values)
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


def describe_failure(exc: Exception) -> str:
    """One line for the run row: what went wrong, in words a person can act on."""
    if isinstance(exc, UrbisError):
        return str(exc)
    if isinstance(exc, DBAPIError):
        detail = str(exc.orig or exc).strip().splitlines()
        return f"database error, nothing applied: {detail[0] if detail else type(exc).__name__}"
    return f"{type(exc).__name__}: {exc}"
