"""Diff and apply: the live table made equal to the incoming rows by key, in place.

Rows that changed or went are copied to history first; then deletes, updates and inserts.
Runs inside the apply's transaction (`urbis_sync.reconcile.apply`).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from urbis_core.catalog import TILE_COLUMNS
from urbis_core.db import STAGING_SCHEMA
from urbis_sync.reconcile.staging import NeedsFullRun
from urbis_sync.reconcile.tables import IncomingLayer, column_list, ident

# Geometries with the same vertex count that lie within this distance (metres) of each other
# are the same geometry: rounding in a source or an output format is not a change.
GEOMETRY_TOLERANCE = 0.001


def change_counts(cur: psycopg.Cursor[Any]) -> tuple[int, int, int]:
    """Inserted, updated and deleted keys in the `_changes` table of this transaction."""
    by_op = dict(cur.execute("SELECT op, count(*) FROM _changes GROUP BY op").fetchall())
    return by_op.get("insert", 0), by_op.get("update", 0), by_op.get("delete", 0)


def _counts_and_bbox(
    cur: psycopg.Cursor[Any], live: sql.Identifier, inc: sql.Identifier, key: str
) -> tuple[tuple[int, int, int], Any]:
    counts = change_counts(cur)
    if not any(counts):
        return counts, None
    row = cur.execute(
        sql.SQL("""
        SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(g) e FROM (
            SELECT l.geom g FROM {live} l JOIN _changes c ON c.k = l.{k} WHERE c.op <> 'insert'
            UNION ALL
            SELECT i.geom FROM {inc} i JOIN _changes c ON c.k = i.{k} WHERE c.op <> 'delete'
        ) s) t""").format(live=live, inc=inc, k=ident(key))
    ).fetchone()
    bbox = tuple(row) if row and row[0] is not None else None
    return counts, bbox


def apply_diff(
    cur: psycopg.Cursor[Any], rows: IncomingLayer, unmatched: str | None
) -> tuple[tuple[int, int, int], Any]:
    """The live table made equal to `rows` in place; the counts and the bbox of what changed.

    `unmatched`: None when `rows` is the whole layer, else the staged fingerprints of the
    live features no source feature matched.
    """
    live, inc, hist = rows.tables()
    key, run_id = rows.key, rows.run_id
    k = ident(key)
    names = [c.name for c in rows.shape.columns]
    if unmatched is None:  # the whole layer was staged: what it lacks is deleted
        gone = sql.SQL(
            "SELECT l.{k} FROM {live} l WHERE NOT EXISTS "
            "(SELECT 1 FROM {inc} i WHERE i.{k} = l.{k})"
        ).format(k=k, live=live, inc=inc)
    else:  # only candidates were staged: a live feature no one matched and no candidate has
        missed = ident(STAGING_SCHEMA, unmatched)
        _refuse_matched_keys(cur, live, inc, missed, key)
        gone = sql.SQL(
            "SELECT l.{k} FROM {live} l JOIN {missed} m ON m.h = l.row_hash "
            "WHERE NOT EXISTS (SELECT 1 FROM {inc} i WHERE i.{k} = l.{k})"
        ).format(k=k, live=live, missed=missed, inc=inc)
    # A different fingerprint is only a candidate: equal typed values and a geometry within
    # the tolerance are no change (a source's float noise, another output format). The join
    # is planned on its own (MATERIALIZED) and with cached-storage page costs: otherwise the
    # planner, pricing the geometry functions into it, hashes the whole live table instead of
    # looking a few thousand candidates up by key.
    cur.execute("SET LOCAL random_page_cost = 1.1")
    cur.execute(
        sql.SQL("""
        CREATE TEMP TABLE _changes ON COMMIT DROP AS
        WITH pairs AS MATERIALIZED (
            SELECT i.{k} AS k, l.{k} IS NULL AS new, i.row_hash IS DISTINCT FROM l.row_hash
                       AS differs,
                   ROW({icols}) IS NOT DISTINCT FROM ROW({lcols}) AS same_values,
                   i.geom AS ig, l.geom AS lg
            FROM {inc} i LEFT JOIN {live} l ON i.{k} = l.{k})
        SELECT k, CASE WHEN new THEN 'insert' ELSE 'update' END AS op FROM pairs
        WHERE new OR (differs AND NOT (same_values AND ST_NPoints(ig) = ST_NPoints(lg)
                                      AND ST_HausdorffDistance(ig, lg) <= {tolerance}))
        UNION ALL
        SELECT g.{k}, 'delete' FROM ({gone}) g
    """).format(
            k=k,
            inc=inc,
            live=live,
            icols=column_list(names, "i"),
            lcols=column_list(names, "l"),
            tolerance=sql.Literal(GEOMETRY_TOLERANCE),
            gone=gone,
        )
    )
    counts, bbox = _counts_and_bbox(cur, live, inc, key)
    # Rows found equal keep their validity; only their stored fingerprint is refreshed, so the
    # next run skips them early.
    cur.execute(
        sql.SQL("""
        UPDATE {live} l SET row_hash = i.row_hash FROM {inc} i
        WHERE l.{k} = i.{k} AND l.row_hash IS DISTINCT FROM i.row_hash
          AND NOT EXISTS (SELECT 1 FROM _changes c WHERE c.k = i.{k})
    """).format(live=live, inc=inc, k=k)
    )
    if not any(counts):
        return counts, None
    cur.execute("CREATE INDEX ON _changes (k)")
    cur.execute(
        sql.SQL("""
        INSERT INTO {hist} ({cols}, geom, row_hash, valid_from, valid_to, op, run_id)
        SELECT {lcols}, l.geom, l.row_hash, l.valid_from, now(), c.op, %(run)s
        FROM {live} l JOIN _changes c ON c.k = l.{k} WHERE c.op <> 'insert'
    """).format(hist=hist, cols=column_list(names), lcols=column_list(names, "l"), live=live, k=k),
        {"run": run_id},
    )
    cur.execute(
        sql.SQL(
            "DELETE FROM {live} l USING _changes c WHERE l.{k} = c.k AND c.op = 'delete'"
        ).format(live=live, k=k)
    )
    others = [n for n in names if n != key]
    targets = [*others, "geom", "row_hash"]
    cur.execute(
        sql.SQL("""
        UPDATE {live} l SET ({targets}, valid_from, {derived}) = ({sources}, now(), {nulls})
        FROM {inc} i JOIN _changes c ON c.k = i.{k} AND c.op = 'update'
        WHERE l.{k} = i.{k}
    """).format(
            live=live,
            targets=column_list(targets),
            sources=column_list(targets, "i"),
            inc=inc,
            k=k,
            derived=column_list(list(TILE_COLUMNS)),  # made again after the run
            nulls=sql.SQL(", ").join(sql.NULL for _ in TILE_COLUMNS),
        )
    )
    cur.execute(
        sql.SQL("""
        INSERT INTO {live} ({cols}, geom, row_hash, valid_from)
        SELECT {icols}, i.geom, i.row_hash, now()
        FROM {inc} i JOIN _changes c ON c.k = i.{k} AND c.op = 'insert'
    """).format(live=live, cols=column_list(names), icols=column_list(names, "i"), inc=inc, k=k)
    )
    return counts, bbox


def _refuse_matched_keys(
    cur: psycopg.Cursor[Any],
    live: sql.Identifier,
    inc: sql.Identifier,
    missed: sql.Identifier,
    key: str,
) -> None:
    """Stop when the source has a candidate's key twice.

    A candidate whose key belongs to a live feature that another source feature matched
    unchanged means the key occurs twice; only a run over the whole layer quarantines both.
    """
    row = cur.execute(
        sql.SQL(
            "SELECT i.{k}::text FROM {inc} i JOIN {live} l ON l.{k} = i.{k} "
            "WHERE l.row_hash NOT IN (SELECT h FROM {missed}) LIMIT 1"
        ).format(k=ident(key), inc=inc, live=live, missed=missed)
    ).fetchone()
    if row:
        raise NeedsFullRun(f"key {row[0]} occurs more than once")
