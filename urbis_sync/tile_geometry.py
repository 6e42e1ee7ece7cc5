"""What each live row keeps ready for the tiles: its Web Mercator geometry, size and measure.

Drawing a Web Mercator tile would otherwise, for every feature it meets, reproject it from
Belgian Lambert 72 (PROJ, per vertex: about 40 % of what PostgreSQL spent on the tile
benchmark's list), and for a crowded tile also compute every candidate's bounding box (to leave
out what is too small to see) and area or length (to keep the largest under the size cap).
A run's writers leave these columns NULL (a load is not slowed by them, and an updated row
never keeps stale ones); right after the run, `fill` computes the missing ones in batches, each
committed on its own, so readers and the next run never wait long, and after a first load
rebuilds the indexes and vacuums. Tiles use them where they are filled and compute the same
values on the fly where they are not yet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from psycopg import sql
from sqlalchemy import Engine

from urbis_core.catalog import MERCATOR_GEOM, TILE_COLUMNS, tile_ready_values
from urbis_core.db import LAYER_SCHEMA
from urbis_sync.reconcile.tables import raw

BATCH_ROWS = 50_000


@dataclass(frozen=True)
class Filled:
    rows: int
    seconds: float


def fill(engine: Engine, table_name: str, batch_rows: int = BATCH_ROWS) -> Filled:
    """Fill the rows of a layer table that lack them; how many, and how long it took."""
    started = time.monotonic()
    table = sa.table(
        table_name,
        sa.column("geom"),
        *map(sa.column, TILE_COLUMNS),
        sa.column("ctid"),
        schema=LAYER_SCHEMA,
    )
    batch = sa.select(table.c.ctid).where(table.c[MERCATOR_GEOM].is_(None)).limit(batch_rows)
    statement = (
        table.update()
        .values(tile_ready_values(table.c.geom))
        .where(table.c.ctid == sa.func.any(sa.func.array(batch.scalar_subquery())))
    )
    rows = 0
    while True:
        with engine.begin() as conn:
            done = conn.execute(statement).rowcount
        rows += done
        if done < batch_rows:
            break
    if rows >= batch_rows and rows * 2 >= _row_count(engine, table):
        _tidy(engine, table_name)
    return Filled(rows, time.monotonic() - started)


def _row_count(engine: Engine, table: sa.TableClause) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _tidy(engine: Engine, table_name: str) -> None:
    """Rebuild the indexes and vacuum, after a fill that rewrote most of a table (a first load).

    Neither blocks readers. Each row the fill updated got a new version and new index entries
    beside the old ones, so the indexes would stay twice their size; and until the table is
    vacuumed, index-only scans (the key and property indexes filtered pages read) would visit
    every row anyway.
    """
    name = sql.Identifier(LAYER_SCHEMA, table_name)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        driver = raw(conn)
        # what an earlier REINDEX left if it was stopped half-way: invalid copies, kept up to
        # date by every write and used by no query
        for (leftover,) in driver.execute(
            "SELECT i.indexrelid::regclass::text FROM pg_index i "
            "WHERE i.indrelid = %s::regclass AND NOT i.indisvalid",
            (f'{LAYER_SCHEMA}."{table_name}"',),
        ).fetchall():
            driver.execute(sql.SQL("DROP INDEX CONCURRENTLY {}").format(sql.SQL(leftover)))
        driver.execute(sql.SQL("REINDEX TABLE CONCURRENTLY {}").format(name))
        driver.execute(sql.SQL("VACUUM (ANALYZE) {}").format(name))
