"""The history tables: every version of every feature a layer ever had.

A layer's history table (`urbis_history.<id>`) takes the rows the apply replaces or deletes,
each with the interval it was current; its columns grow with the layer's.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from urbis_core.catalog import STORAGE_SRID, LayerEntry
from urbis_core.db import HISTORY_SCHEMA, LAYER_SCHEMA
from urbis_sync.reconcile.shape import LayerShape
from urbis_sync.reconcile.tables import ident


def has_history_columns(cur: psycopg.Cursor[Any], layer_id: str) -> bool:
    found = cur.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = %s AND column_name IN ('row_hash', 'valid_from')",
        (LAYER_SCHEMA, layer_id),
    ).fetchone()
    return bool(found and found[0] == 2)


def ensure_history(
    cur: psycopg.Cursor[Any], layer_id: str, shape: LayerShape, current: LayerEntry | None
) -> None:
    """The history table holds every column a layer ever had; new ones are added as they come.

    A column whose type changed becomes text there, so old and new values both fit.
    """
    hist = ident(HISTORY_SCHEMA, layer_id)
    existing = dict(
        cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            (HISTORY_SCHEMA, layer_id),
        ).fetchall()
    )
    if not existing:
        columns = list(shape.columns)
        if current is not None:
            columns += [c for c in current.columns if c.name not in {x.name for x in columns}]
        defs: list[sql.Composable] = [
            sql.SQL("{} {}").format(ident(c.name), sql.SQL(c.sql_type)) for c in columns
        ]
        defs += [
            sql.SQL("geom geometry(Geometry, {})").format(sql.Literal(STORAGE_SRID)),
            sql.SQL("row_hash uuid"),
            sql.SQL("valid_from timestamptz NOT NULL"),
            sql.SQL("valid_to timestamptz NOT NULL"),
            sql.SQL("op text NOT NULL"),
            sql.SQL("run_id bigint NOT NULL"),
        ]
        cur.execute(sql.SQL("CREATE TABLE {} ({})").format(hist, sql.SQL(", ").join(defs)))
        key_index = f"{layer_id}_hist_validity"[:63]
        cur.execute(
            sql.SQL("CREATE INDEX {} ON {} (valid_from, valid_to)").format(ident(key_index), hist)
        )
        return
    declared = {c.name: c.sql_type for c in (current.columns if current else [])}
    for column in shape.columns:
        if column.name not in existing:
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                    hist, ident(column.name), sql.SQL(column.sql_type)
                )
            )
        elif (
            declared.get(column.name, column.sql_type) != column.sql_type
            and existing[column.name] != "text"
        ):
            cur.execute(
                sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE text USING {}::text").format(
                    hist, ident(column.name), ident(column.name)
                )
            )
