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

from psycopg import sql
from sqlalchemy import Engine

from urbis_core.catalog import GEOM_MEASURE, GEOM_SIZE, MERCATOR_GEOM, MERCATOR_SRID
from urbis_core.db import LAYER_SCHEMA
from urbis_sync.reconcile import raw

BATCH_ROWS = 50_000


@dataclass(frozen=True)
class Filled:
    rows: int
    seconds: float


def fill(engine: Engine, table_name: str, batch_rows: int = BATCH_ROWS) -> Filled:
    """Fill the rows of a layer table that lack them; how many, and how long it took.

    The expressions are those tiles.mvt falls back on, so a tile is the same either way.
    """
    started = time.monotonic()
    statement = sql.SQL("""
        UPDATE {t} SET
            {merc} = ST_Transform(geom, {srid}),
            {size} = greatest(ST_XMax(geom) - ST_XMin(geom), ST_YMax(geom) - ST_YMin(geom)),
            {measure} = CASE ST_Dimension(geom) WHEN 2 THEN ST_Area(geom)
                                                WHEN 1 THEN ST_Length(geom) END
        WHERE ctid = ANY (ARRAY(SELECT ctid FROM {t} WHERE {merc} IS NULL LIMIT {n}))
    """).format(t=sql.Identifier(LAYER_SCHEMA, table_name), merc=sql.Identifier(MERCATOR_GEOM),
                size=sql.Identifier(GEOM_SIZE), measure=sql.Identifier(GEOM_MEASURE),
                srid=sql.Literal(MERCATOR_SRID), n=sql.Literal(batch_rows))
    rows = 0
    while True:
        with engine.begin() as conn:
            done = raw(conn).execute(statement).rowcount
        rows += done
        if done < batch_rows:
            return Filled(rows, time.monotonic() - started)

