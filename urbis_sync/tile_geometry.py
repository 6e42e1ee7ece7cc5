"""What each live row keeps ready for the tiles: its Web Mercator geometry, size and measure.

Drawing a Web Mercator tile would otherwise, for every feature it meets, reproject it from
Belgian Lambert 72 (PROJ, per vertex: about 40 % of what PostgreSQL spent on the tile
benchmark's list), and for a crowded tile also compute every candidate's bounding box (to leave
out what is too small to see) and area or length (to keep the largest under the size cap).
A run's writers leave these columns NULL (a load is not slowed by them, and an updated row
never keeps stale ones); right after the run, `fill` computes the missing ones in batches, each
committed on its own, so readers and the next run never wait long. Tiles use them where they
are filled and compute the same values on the fly where they are not yet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Engine

from urbis_core.catalog import MERCATOR_GEOM, TILE_COLUMNS, tile_ready_values
from urbis_core.db import LAYER_SCHEMA

BATCH_ROWS = 50_000


@dataclass(frozen=True)
class Filled:
    rows: int
    seconds: float


def fill(engine: Engine, table_name: str, batch_rows: int = BATCH_ROWS) -> Filled:
    """Fill the rows of a layer table that lack them; how many, and how long it took."""
    started = time.monotonic()
    table = sa.table(table_name, sa.column("geom"), *map(sa.column, TILE_COLUMNS),
                     sa.column("ctid"), schema=LAYER_SCHEMA)
    batch = sa.select(table.c.ctid).where(table.c[MERCATOR_GEOM].is_(None)).limit(batch_rows)
    statement = (table.update().values(tile_ready_values(table.c.geom))
                 .where(table.c.ctid == sa.func.any(sa.func.array(batch.scalar_subquery()))))
    rows = 0
    while True:
        with engine.begin() as conn:
            done = conn.execute(statement).rowcount
        rows += done
        if done < batch_rows:
            return Filled(rows, time.monotonic() - started)
