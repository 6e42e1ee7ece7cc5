"""A first load: the source streamed straight into the layer's next table, typed and indexed.

The next table is built in the staging schema and swapped in by the apply
(`urbis_sync.reconcile.rebuild`), so its rows are written once.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Connection, Engine

from urbis_core.catalog import STORAGE_SRID, TILE_COLUMNS, ColumnInfo
from urbis_core.db import STAGING_SCHEMA
from urbis_sync import filter_indexes
from urbis_sync.copystream import CopyStream
from urbis_sync.reconcile.duplicates import DuplicateKeys
from urbis_sync.reconcile.shape import LayerShape
from urbis_sync.reconcile.tables import (
    INDEX_MEMORY,
    gist_index_name,
    ident,
    next_table_name,
    primary_key_name,
    raw,
)
from urbis_sync.sources import Field


class NextTable:
    """A first load streamed straight into the layer's new table: its rows are written once.

    The table is created with the geometry type the first features suggest; when a later
    feature does not fit (a multi polygon after single ones), the column is widened with the
    rows loaded so far, rather than reading the source again.
    """

    def __init__(self, conn: Connection, layer_id: str, fields: list[Field], key: str) -> None:
        self._conn = raw(conn)
        self._layer_id = layer_id
        self._key = key
        self._fields = fields
        self._table = ident(STAGING_SCHEMA, next_table_name(layer_id))
        self._stream: CopyStream | None = None
        self.geometry_type: str | None = None

    def __enter__(self) -> NextTable:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.__exit__(kind, exc, tb)

    def open(self, geometry_type: str) -> None:
        create_next_table(
            self._conn.cursor(), self._layer_id, self._fields, self._key, geometry_type
        )
        self.geometry_type = geometry_type
        self._start()

    def write(self, rows: bytes) -> None:
        assert self._stream is not None
        self._stream.write(rows)

    def widen(self, geometry_type: str) -> None:
        self.close()
        geom = "ST_Multi(geom)" if geometry_type.startswith("Multi") else "geom"
        self._conn.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN geom TYPE geometry({}, {}) USING {}").format(
                self._table, sql.SQL(geometry_type), sql.Literal(STORAGE_SRID), sql.SQL(geom)
            )
        )
        self.geometry_type = geometry_type
        self._start()

    def close(self) -> None:
        self.__exit__(None, None, None)

    def _start(self) -> None:
        self._stream = CopyStream(
            self._conn, self._table, [*(f.name for f in self._fields), "geom", "row_hash"]
        )
        self._stream.__enter__()


def create_next_table(
    cur: psycopg.Cursor[Any], layer_id: str, columns: list[Field], key: str, geometry_type: str
) -> None:
    nxt = ident(STAGING_SCHEMA, next_table_name(layer_id))
    defs: list[sql.Composable] = [
        sql.SQL("{} {}{}").format(
            ident(c.name), sql.SQL(c.sql_type), sql.SQL(" NOT NULL" if c.name == key else "")
        )
        for c in columns
    ]
    defs += [
        sql.SQL("geom geometry({}, {}) NOT NULL").format(
            sql.SQL(geometry_type), sql.Literal(STORAGE_SRID)
        ),
        sql.SQL("row_hash uuid NOT NULL"),
        sql.SQL("valid_from timestamptz NOT NULL DEFAULT now()"),
    ]
    # left NULL by the rows' writers; filled after the run (urbis_sync.tile_geometry)
    defs += [
        sql.SQL("{} {}").format(ident(name), sql.SQL(sql_type))
        for name, sql_type in TILE_COLUMNS.items()
    ]
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(nxt))
    cur.execute(sql.SQL("CREATE TABLE {} ({})").format(nxt, sql.SQL(", ").join(defs)))


def retype_next_table(conn: Connection, layer_id: str, shape: LayerShape) -> None:
    """Give the new table its final column types (reals that are all whole become bigint)."""
    name = next_table_name(layer_id)
    cur = raw(conn).cursor()
    loaded = dict(
        cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            (STAGING_SCHEMA, name),
        ).fetchall()
    )
    retyped = [
        c.name
        for c in shape.columns
        if c.sql_type == "bigint" and loaded.get(c.name) == "double precision"
    ]
    if retyped:  # shapefile reals that hold identifiers: one rewrite for all of them
        cur.execute(
            sql.SQL("ALTER TABLE {} {}").format(
                ident(STAGING_SCHEMA, name),
                sql.SQL(", ").join(
                    sql.SQL("ALTER COLUMN {c} TYPE bigint USING {c}::bigint").format(c=ident(n))
                    for n in retyped
                ),
            )
        )


def index_next_table(
    engine: Engine,
    layer_id: str,
    key: str,
    spatial: bool = True,
    filters: tuple[list[ColumnInfo], list[str]] = ([], []),
) -> None:
    """Build the new table's key index, GiST index and property indexes at once.

    The table is committed scratch (not yet live), so several backends can each sort one
    index on its own core. The key index becomes the primary key at the swap. `filters`: the
    columns and the names of those the configuration indexes. Raises DuplicateKeys when a key
    occurs twice.
    """
    nxt = ident(STAGING_SCHEMA, next_table_name(layer_id))
    statements = [
        sql.SQL("CREATE UNIQUE INDEX {} ON {} ({})").format(
            ident(primary_key_name(layer_id)), nxt, ident(key)
        )
    ]
    if spatial:
        statements.append(
            sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(
                ident(gist_index_name(layer_id)), nxt
            )
        )
    statements += filter_indexes.create_statements(nxt, layer_id, key, *filters)

    def build(statement: sql.Composed) -> None:
        with engine.begin() as conn:
            raw(conn).execute(INDEX_MEMORY)
            # each build has a core to itself: parallel workers would only compete for them
            raw(conn).execute("SET LOCAL max_parallel_maintenance_workers = 0")
            raw(conn).execute(statement)

    with ThreadPoolExecutor(max_workers=min(len(statements), os.cpu_count() or 2)) as pool:
        builds = [pool.submit(build, statement) for statement in statements]
        errors = [error for b in builds if (error := b.exception()) is not None]
    if any(isinstance(e, psycopg.errors.UniqueViolation) for e in errors):
        raise DuplicateKeys(key)
    if errors:
        raise errors[0]
