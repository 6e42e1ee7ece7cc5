"""Sync runs as the admin API reads them from urbis_meta.sync_run (reads only, bound values)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from geoapi.links import link
from urbis_core.catalog import first_run_after, sync_lock_key, sync_run
from urbis_core.errors import NotFound

_COUNTS = ("fetched", "inserted", "updated", "deleted", "repaired", "quarantined")


def run_doc(row: Row[Any], base: str) -> dict[str, Any]:
    """A run row as the admin API answers it (geoapi.responses.admin.Run)."""
    finished = row.finished_at
    return {
        "id": row.id,
        "layer": row.layer_id,
        "mode": row.mode,
        "status": row.status,
        "started": row.started_at.isoformat(),
        "finished": finished.isoformat() if finished else None,
        "seconds": round((finished - row.started_at).total_seconds(), 3) if finished else None,
        **{name: getattr(row, name) for name in _COUNTS},
        "version": row.version,
        "error": row.error,
        "drift": row.drift,
        "links": [
            link("self", f"{base}/admin/runs/{row.id}"),
            link("status", f"{base}/admin/status"),
        ],
    }


async def read_run(conn: AsyncConnection, run_id: int) -> Row[Any]:
    row = (await conn.execute(select(sync_run).where(sync_run.c.id == run_id))).first()
    if row is None:
        raise NotFound(f"no sync run {run_id}; /admin/runs lists the runs")
    return row


async def read_runs(
    conn: AsyncConnection, limit: int, before: int | None, layer: str | None
) -> list[Row[Any]]:
    """The newest runs first, older than `before` (a run id) when given, of `layer` if given."""
    query = select(sync_run).order_by(sync_run.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(sync_run.c.id < before)
    if layer is not None:
        query = query.where(sync_run.c.layer_id == layer)
    return list((await conn.execute(query)).all())


async def newest_run_id(conn: AsyncConnection, layer_id: str) -> int:
    """The id of the layer's newest run (0 before any): a new run's id is larger."""
    newest = await conn.scalar(
        select(func.coalesce(func.max(sync_run.c.id), 0)).where(sync_run.c.layer_id == layer_id)
    )
    return int(newest or 0)


async def run_after(conn: AsyncConnection, layer_id: str, after: int) -> int | None:
    """The id of the layer's first run after run `after`, once there is one."""
    found = await conn.scalar(first_run_after(layer_id, after))
    return int(found) if found is not None else None


async def syncing(conn: AsyncConnection, layer_id: str) -> bool:
    """Whether some process (here or anywhere) is syncing the layer: it holds its lock.

    Read from pg_locks, so that asking takes no lock: a bigint advisory lock is there as
    classid (its high 32 bits), objid (its low 32 bits) and objsubid 1.
    """
    key = sync_lock_key(layer_id)
    held = await conn.scalar(_LOCK_HELD, {"high": key >> 32, "low": key & 0xFFFFFFFF})
    return bool(held)


_LOCK_HELD = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
    "WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.granted "
    "AND l.classid = CAST(:high AS oid) AND l.objid = CAST(:low AS oid) AND l.objsubid = 1)"
)
