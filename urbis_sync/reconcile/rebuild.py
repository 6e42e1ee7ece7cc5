"""Rebuild and swap: on schema drift or a first load, a new table takes the live one's place.

The old rows go to history, the new table is built beside the live one (or was streamed
there by a first load) and swapped in. Runs inside the apply's transaction
(`urbis_sync.reconcile.apply`).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from urbis_core.catalog import LayerEntry
from urbis_core.db import LAYER_SCHEMA, STAGING_SCHEMA
from urbis_sync.reconcile.diff import change_counts
from urbis_sync.reconcile.first_load import create_next_table
from urbis_sync.reconcile.history import ensure_history, has_history_columns
from urbis_sync.reconcile.tables import (
    INDEX_MEMORY,
    IncomingLayer,
    column_list,
    gist_index_name,
    ident,
    next_table_name,
    primary_key_name,
)
from urbis_sync.sources import Field


def rebuild(
    cur: psycopg.Cursor[Any], rows: IncomingLayer, current: LayerEntry | None
) -> tuple[int, int, int]:
    """Build the new table beside the live one, keep the old rows in history, swap."""
    layer_id, key, shape, incoming, run_id = (
        rows.layer_id,
        rows.key,
        rows.shape,
        rows.table,
        rows.run_id,
    )
    live, inc, hist = rows.tables()
    nxt_name = next_table_name(layer_id)
    nxt = ident(STAGING_SCHEMA, nxt_name)
    k = ident(key)
    names = [c.name for c in shape.columns]
    ensure_history(cur, layer_id, shape, current)
    if current is not None:
        # Keys are matched as text: the natural key survives a change of product even when its
        # field is renamed or retyped (legacy NAT_CODE text -> current NISCODE).
        old_k = ident(current.key_field)
        old_names = [c.name for c in current.columns]
        cur.execute(
            sql.SQL("""
            CREATE TEMP TABLE _changes ON COMMIT DROP AS
            SELECT i.{k} AS ik, l.{old_k} AS lk,
                   CASE WHEN l.{old_k} IS NULL THEN 'insert' WHEN i.{k} IS NULL THEN 'delete'
                        ELSE 'update' END AS op
            FROM {inc} i FULL JOIN {live} l ON i.{k}::text = l.{old_k}::text
        """).format(k=k, old_k=old_k, inc=inc, live=live)
        )
        if has_history_columns(cur, layer_id):
            kept: sql.Composable = sql.SQL("l.row_hash, l.valid_from")
        else:  # a table from before history existed: valid since its last load
            kept = sql.SQL("NULL::uuid, {}::timestamptz").format(sql.Literal(current.last_success))
        cur.execute(
            sql.SQL("""
            INSERT INTO {hist} ({cols}, geom, row_hash, valid_from, valid_to, op, run_id)
            SELECT {lcols}, l.geom, {kept}, now(), c.op, %(run)s
            FROM {live} l JOIN _changes c ON c.lk = l.{old_k}
        """).format(
                hist=hist,
                cols=column_list(old_names),
                lcols=column_list(old_names, "l"),
                live=live,
                old_k=old_k,
                kept=kept,
            ),
            {"run": run_id},
        )
        counts = change_counts(cur)
    else:
        counts = (0, 0, 0)  # a first load: counted by the caller

    cur.execute(INDEX_MEMORY)
    if incoming != nxt_name:
        create_next_table(
            cur,
            layer_id,
            [Field(c.name, c.sql_type) for c in shape.columns],
            key,
            shape.geometry_type,
        )
        cur.execute(
            sql.SQL("""
            INSERT INTO {nxt} ({cols}, geom, row_hash, valid_from)
            SELECT {cols}, geom, row_hash, now() FROM {inc}
        """).format(nxt=nxt, cols=column_list(names), inc=inc)
        )
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
                nxt, ident(primary_key_name(layer_id)), k
            )
        )
        cur.execute(
            sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(
                ident(gist_index_name(layer_id)), nxt
            )
        )
    else:  # streamed and indexed during staging (index_next_table)
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY USING INDEX {}").format(
                nxt, ident(primary_key_name(layer_id)), ident(primary_key_name(layer_id))
            )
        )
    # The swap: the only moment readers wait, kept short by lock_timeout (the caller retries).
    cur.execute("SET LOCAL lock_timeout = '5s'")
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(live))
    cur.execute(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(nxt, ident(LAYER_SCHEMA)))
    cur.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            ident(LAYER_SCHEMA, nxt_name), ident(layer_id)
        )
    )
    return counts
