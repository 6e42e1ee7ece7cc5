"""The `sync_run` row a run starts with, shared by vector and raster runs."""

from __future__ import annotations

from sqlalchemy import Connection, func

from urbis_core.catalog import sync_run


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
