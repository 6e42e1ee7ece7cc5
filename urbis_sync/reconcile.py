"""Staging and reconciliation: the layer table becomes the new source state, feature by feature.

Functions take a connection and never commit; `urbis_sync.run` owns the transactions. The
apply step runs in ONE transaction: history rows for what is replaced or deleted, then deletes,
updates and inserts by key (or, on schema drift, a rebuilt table swapped in), the catalog, the
run row and the change log. Readers see the old layer or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from sqlalchemy import Connection, Engine, func, select

from urbis_core.catalog import (
    STORAGE_SRID,
    TILE_COLUMNS,
    ColumnInfo,
    LayerEntry,
    layer_catalog,
)
from urbis_core.config import LayerConfig
from urbis_core.db import HISTORY_SCHEMA, LAYER_SCHEMA, STAGING_SCHEMA
from urbis_core.errors import SourceError
from urbis_sync import filter_indexes
from urbis_sync.copystream import CopyStream
from urbis_sync.fingerprint import LiveFingerprints, hex_digests
from urbis_sync.normalize import FAMILIES, LayerFacts
from urbis_sync.sources import Field

# Geometries with the same vertex count that lie within this distance (metres) of each other
# are the same geometry: rounding in a source or an output format is not a change.
GEOMETRY_TOLERANCE = 0.001
_INDEX_MEMORY = "SET LOCAL maintenance_work_mem = '256MB'"  # index builds sort in memory


@dataclass(frozen=True)
class LayerShape:
    """The typed columns and geometry type of the incoming layer."""

    columns: list[ColumnInfo]
    geometry_type: str


@dataclass(frozen=True)
class ApplyResult:
    version: int
    inserted: int
    updated: int
    deleted: int
    feature_count: int
    changed_bbox: tuple[float, float, float, float] | None
    drift: str | None

    @property
    def changed(self) -> bool:
        return bool(self.inserted or self.updated or self.deleted or self.drift)


def raw(conn: Connection) -> psycopg.Connection[Any]:
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver


def _ident(*names: str) -> sql.Identifier:
    return sql.Identifier(*names)


def _cols(names: list[str], prefix: str | None = None) -> sql.Composable:
    if prefix is None:
        return sql.SQL(", ").join(_ident(n) for n in names)
    return sql.SQL(", ").join(_ident(prefix, n) for n in names)


# -- staging ----------------------------------------------------------------------------------
def staging_name(layer_id: str, run_id: int) -> str:
    return f"r{run_id}_{layer_id}"[:63]


def create_staging(conn: Connection, name: str, fields: list[Field]) -> CopyStream:
    """A scratch table for the source's rows as they come, and the COPY that fills it."""
    defs: list[sql.Composable] = [
        sql.SQL("{} {}").format(_ident(f.name), sql.SQL(f.sql_type)) for f in fields
    ]
    defs.append(sql.SQL("geom geometry"))
    defs.append(sql.SQL("source_hash uuid"))
    raw(conn).execute(
        sql.SQL("CREATE UNLOGGED TABLE {} ({})").format(
            _ident(STAGING_SCHEMA, name), sql.SQL(", ").join(defs)
        )
    )
    return CopyStream(
        raw(conn), _ident(STAGING_SCHEMA, name), [*(f.name for f in fields), "geom", "source_hash"]
    )


def next_table_name(layer_id: str) -> str:
    """The new table of a layer, built in the staging schema before it is swapped in."""
    return f"{layer_id}__next"


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
        self._table = _ident(STAGING_SCHEMA, next_table_name(layer_id))
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
        _create_next(self._conn.cursor(), self._layer_id, self._fields, self._key, geometry_type)
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


def _create_next(
    cur: psycopg.Cursor[Any], layer_id: str, columns: list[Field], key: str, geometry_type: str
) -> None:
    nxt = _ident(STAGING_SCHEMA, next_table_name(layer_id))
    defs: list[sql.Composable] = [
        sql.SQL("{} {}{}").format(
            _ident(c.name), sql.SQL(c.sql_type), sql.SQL(" NOT NULL" if c.name == key else "")
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
        sql.SQL("{} {}").format(_ident(name), sql.SQL(sql_type))
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
                _ident(STAGING_SCHEMA, name),
                sql.SQL(", ").join(
                    sql.SQL("ALTER COLUMN {c} TYPE bigint USING {c}::bigint").format(c=_ident(n))
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
    nxt = _ident(STAGING_SCHEMA, next_table_name(layer_id))
    statements = [
        sql.SQL("CREATE UNIQUE INDEX {} ON {} ({})").format(
            _ident(_primary_key_name(layer_id)), nxt, _ident(key)
        )
    ]
    if spatial:
        statements.append(
            sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(
                _ident(f"{layer_id}_geom_gist"[:63]), nxt
            )
        )
    statements += filter_indexes.create_statements(nxt, layer_id, key, *filters)

    def build(statement: sql.Composed) -> None:
        with engine.begin() as conn:
            raw(conn).execute(_INDEX_MEMORY)
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


def _primary_key_name(layer_id: str) -> str:
    return f"{layer_id}_pkey"[:63]


def stage_unmatched(conn: Connection, name: str, digests: np.ndarray) -> str:
    """The fingerprints of live features no source feature matched: changed or deleted."""
    table = f"{name}_gone"[:63]
    cur = raw(conn).cursor()
    cur.execute(sql.SQL("CREATE UNLOGGED TABLE {} (h uuid)").format(_ident(STAGING_SCHEMA, table)))
    with cur.copy(sql.SQL("COPY {} (h) FROM STDIN").format(_ident(STAGING_SCHEMA, table))) as cp:
        cp.write("".join(f"{h}\n" for h in hex_digests(digests)))
    cur.execute(sql.SQL("ANALYZE {}").format(_ident(STAGING_SCHEMA, table)))
    return table


def live_fingerprints(conn: Connection, layer: LayerEntry) -> LiveFingerprints:
    return LiveFingerprints.load(raw(conn), _ident(LAYER_SCHEMA, layer.table_name))


def has_fingerprints(conn: Connection, layer_id: str) -> bool:
    with raw(conn).cursor() as cur:
        return _has_history_columns(cur, layer_id)


def current_entry(conn: Connection, layer_id: str) -> LayerEntry | None:
    row = conn.execute(select(layer_catalog).where(layer_catalog.c.id == layer_id)).first()
    return LayerEntry.from_row(row) if row else None


class NeedsFullRun(Exception):  # noqa: N818 - a signal between the run and the apply
    """Only changed features were staged, but the change needs the whole layer (drift)."""


def drop_staging(conn: Connection, layer_id: str) -> None:
    """Drop this layer's scratch tables, including those of interrupted runs."""
    rows = (
        raw(conn)
        .execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND "
            "(tablename LIKE %s OR tablename = %s)",
            (STAGING_SCHEMA, f"r%\\_{layer_id}%", next_table_name(layer_id)),
        )
        .fetchall()
    )
    for (table,) in rows:
        raw(conn).execute(
            sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(_ident(STAGING_SCHEMA, table))
        )


# -- from staging to the incoming table -------------------------------------------------------
def decide_shape(
    fields: list[Field],
    facts: LayerFacts,
    layer_id: str,
    current: LayerEntry | None = None,
    complete: bool = True,
) -> LayerShape:
    """Final column types and the geometry type, from what the normalizer saw.

    Real numbers that are all whole become bigint: shapefiles store identifiers as reals. When
    only changed features were seen (`complete` false), the live layer's types stand unless
    those features do not fit them.
    """
    live_types = {c.name: c.sql_type for c in current.columns} if current else {}
    if not complete and current is not None and not facts.kinds:
        return LayerShape(list(current.columns), current.geometry_type)
    columns = [
        ColumnInfo(
            f.name, _column_type(f, facts.whole.get(f.name), live_types.get(f.name), complete)
        )
        for f in fields
    ]
    if not complete and current is not None and _fits(current.geometry_type, facts.kinds):
        return LayerShape(columns, current.geometry_type)
    families = {FAMILIES.get(k, k) for k in facts.kinds}
    if len(families) > 1:
        raise SourceError(
            f"layer '{layer_id}': the source mixes geometry types "
            f"({', '.join(sorted(families))}); one layer holds one type"
        )
    family = next(iter(families), "Geometry")
    multi = any(k.startswith("Multi") for k in facts.kinds)
    return LayerShape(columns, ("Multi" + family) if multi and family != "Geometry" else family)


def _column_type(field: Field, whole: bool | None, live_type: str | None, complete: bool) -> str:
    if field.sql_type != "double precision":
        return field.sql_type
    if whole is None and not complete and live_type in ("bigint", "double precision"):
        return live_type  # the changed features have no value here: nothing to go by
    if whole and (complete or live_type != "double precision"):
        return "bigint"
    return "double precision"


def _fits(geometry_type: str, kinds: set[str]) -> bool:
    """Tell whether features of these kinds fit a column of `geometry_type`."""
    family = FAMILIES.get(geometry_type)
    if family is None:
        return False
    multi = geometry_type.startswith("Multi")
    return all(FAMILIES.get(k) == family and (multi or not k.startswith("Multi")) for k in kinds)


def quarantine_duplicates(conn: Connection, name: str, key: str, layer_id: str, run_id: int) -> int:
    """Move features whose key occurs more than once into quarantine (all of them)."""
    table = _ident(STAGING_SCHEMA, name)
    k = _ident(key)
    moved = (
        raw(conn)
        .execute(
            sql.SQL("""
        WITH dup AS (SELECT {k} AS k, count(*) AS n FROM {t} GROUP BY {k} HAVING count(*) > 1),
        gone AS (DELETE FROM {t} s USING dup WHERE s.{k} = dup.k RETURNING s.*, dup.n)
        INSERT INTO urbis_meta.quarantine (layer_id, run_id, feature_key, reason, properties, geom)
        SELECT %(layer)s, %(run)s, gone.{k}::text,
               'duplicate key ' || %(key)s || '=' || gone.{k}::text || ' ('
                   || gone.n || ' features)',
               to_jsonb(gone) - 'geom' - 'n' - 'source_hash' - 'row_hash' - 'valid_from',
               ST_SetSRID(gone.geom, {srid})
        FROM gone
    """).format(k=k, t=table, srid=sql.Literal(STORAGE_SRID)),
            {"layer": layer_id, "run": run_id, "key": key},
        )
        .rowcount
    )
    return max(moved, 0)


class DuplicateKeys(Exception):  # noqa: N818 - a signal to quarantine them
    """Some key occurs more than once among the staged features."""


def build_incoming(conn: Connection, name: str, shape: LayerShape, key: str) -> str:
    """A view of the staged rows with final types, geometry type and fingerprint.

    A view rather than a copy: the apply step reads it once or twice, and writing the layer a
    second time would cost more than computing the casts again.
    """
    incoming = f"{name}_in"[:63]
    exprs = [
        sql.SQL("{}::{} AS {}").format(_ident(c.name), sql.SQL(c.sql_type), _ident(c.name))
        for c in shape.columns
    ]
    geom = sql.SQL("ST_SetSRID({}, {})").format(
        sql.SQL("ST_Multi(geom)") if shape.geometry_type.startswith("Multi") else sql.SQL("geom"),
        sql.Literal(STORAGE_SRID),
    )
    cur = raw(conn).cursor()
    # Fresh tables have no statistics; with them the planner joins a few changed features to
    # the live layer through its primary key instead of reading it whole.
    cur.execute(sql.SQL("ANALYZE {}").format(_ident(STAGING_SCHEMA, name)))
    duplicate = cur.execute(
        sql.SQL("SELECT 1 FROM {stg} GROUP BY {k} HAVING count(*) > 1 LIMIT 1").format(
            stg=_ident(STAGING_SCHEMA, name), k=_ident(key)
        )
    ).fetchone()
    if duplicate:
        raise DuplicateKeys(key)
    cur.execute(
        sql.SQL("""
        CREATE VIEW {inc} AS
        SELECT {exprs}, {geom} AS geom, source_hash AS row_hash
        FROM {stg}
    """).format(
            inc=_ident(STAGING_SCHEMA, incoming),
            exprs=sql.SQL(", ").join(exprs),
            geom=geom,
            stg=_ident(STAGING_SCHEMA, name),
        )
    )
    return incoming


# -- apply ------------------------------------------------------------------------------------
def apply(
    conn: Connection,
    layer_id: str,
    layer: LayerConfig,
    shape: LayerShape,
    incoming: str,
    run_id: int,
    unmatched: str | None = None,
) -> ApplyResult:
    """Make the live layer equal to the source; the caller's transaction makes it atomic.

    `incoming` holds the whole layer when `unmatched` is None; otherwise only the features
    whose fingerprint changed, and `unmatched` the fingerprints of the live features that no
    source feature had (changed or gone). When
    `incoming` is the layer's next table (a first load streamed into it), it is swapped in.
    """
    current = current_entry(conn, layer_id)
    cur = raw(conn).cursor()
    drift = _drift(current, shape)
    if current is not None and drift is None and not _has_history_columns(cur, layer_id):
        drift = "table rebuilt with row hashes and validity (made by an earlier version)"
    if current is None or drift is not None:
        if unmatched is not None:
            raise NeedsFullRun(drift or "first load")
        counts = _rebuild(cur, layer_id, layer.key, shape, incoming, run_id, current)
        bbox = None  # the whole extent, old and new: known once the catalog is written
    else:
        counts, bbox = _diff(cur, layer_id, layer.key, shape, incoming, run_id, unmatched)
    filter_indexes.reconcile_indexes(cur, layer_id, layer.key, shape.columns, layer.indexes)
    changed = bool(any(counts) or drift or current is None)
    version = (current.version if current else 0) + (1 if changed else 0)
    if not changed:
        assert current is not None
        conn.execute(
            layer_catalog.update()
            .where(layer_catalog.c.id == layer_id)
            .values(last_success=func.now(), tiles=layer.tiles.model_dump())
        )
        return ApplyResult(version, 0, 0, 0, current.feature_count, None, None)
    count, extent = _write_catalog(conn, layer_id, layer, shape, version)
    if current is None:  # a first load: every feature is new
        counts = (count, 0, 0)
    if bbox is None and extent is not None:
        old = current.bbox_native if current is not None else None
        bbox = (
            extent
            if not old
            else (
                min(extent[0], old[0]),
                min(extent[1], old[1]),
                max(extent[2], old[2]),
                max(extent[3], old[3]),
            )
        )
    inserted, updated, deleted = counts
    return ApplyResult(version, inserted, updated, deleted, count, bbox, drift)


def _has_history_columns(cur: psycopg.Cursor[Any], layer_id: str) -> bool:
    found = cur.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = %s AND column_name IN ('row_hash', 'valid_from')",
        (LAYER_SCHEMA, layer_id),
    ).fetchone()
    return bool(found and found[0] == 2)


def _drift(current: LayerEntry | None, shape: LayerShape) -> str | None:
    if current is None:
        return None
    before = {c.name: c.sql_type for c in current.columns}
    after = {c.name: c.sql_type for c in shape.columns}
    notes = [f"added {n} ({t})" for n, t in after.items() if n not in before]
    notes += [f"dropped {n}" for n in before if n not in after]
    notes += [
        f"{n}: {before[n]} -> {t}" for n, t in after.items() if n in before and before[n] != t
    ]
    if current.geometry_type != shape.geometry_type:
        notes.append(f"geometry: {current.geometry_type} -> {shape.geometry_type}")
    return "; ".join(notes) or None


def _change_counts(cur: psycopg.Cursor[Any]) -> tuple[int, int, int]:
    """Inserted, updated and deleted keys in the `_changes` table of this transaction."""
    by_op = dict(cur.execute("SELECT op, count(*) FROM _changes GROUP BY op").fetchall())
    return by_op.get("insert", 0), by_op.get("update", 0), by_op.get("delete", 0)


def _counts_and_bbox(
    cur: psycopg.Cursor[Any], live: sql.Identifier, inc: sql.Identifier, key: str
) -> tuple[tuple[int, int, int], Any]:
    counts = _change_counts(cur)
    if not any(counts):
        return counts, None
    row = cur.execute(
        sql.SQL("""
        SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(g) e FROM (
            SELECT l.geom g FROM {live} l JOIN _changes c ON c.k = l.{k} WHERE c.op <> 'insert'
            UNION ALL
            SELECT i.geom FROM {inc} i JOIN _changes c ON c.k = i.{k} WHERE c.op <> 'delete'
        ) s) t""").format(live=live, inc=inc, k=_ident(key))
    ).fetchone()
    bbox = tuple(row) if row and row[0] is not None else None
    return counts, bbox


def _diff(
    cur: psycopg.Cursor[Any],
    layer_id: str,
    key: str,
    shape: LayerShape,
    incoming: str,
    run_id: int,
    unmatched: str | None,
) -> tuple[tuple[int, int, int], Any]:
    live = _ident(LAYER_SCHEMA, layer_id)
    inc = _ident(STAGING_SCHEMA, incoming)
    hist = _ident(HISTORY_SCHEMA, layer_id)
    k = _ident(key)
    names = [c.name for c in shape.columns]
    if unmatched is None:  # the whole layer was staged: what it lacks is deleted
        gone = sql.SQL(
            "SELECT l.{k} FROM {live} l WHERE NOT EXISTS "
            "(SELECT 1 FROM {inc} i WHERE i.{k} = l.{k})"
        ).format(k=k, live=live, inc=inc)
    else:  # only candidates were staged: a live feature no one matched and no candidate has
        missed = _ident(STAGING_SCHEMA, unmatched)
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
            icols=_cols(names, "i"),
            lcols=_cols(names, "l"),
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
    """).format(hist=hist, cols=_cols(names), lcols=_cols(names, "l"), live=live, k=k),
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
            targets=_cols(targets),
            sources=_cols(targets, "i"),
            inc=inc,
            k=k,
            derived=_cols(list(TILE_COLUMNS)),  # made again after the run
            nulls=sql.SQL(", ").join(sql.NULL for _ in TILE_COLUMNS),
        )
    )
    cur.execute(
        sql.SQL("""
        INSERT INTO {live} ({cols}, geom, row_hash, valid_from)
        SELECT {icols}, i.geom, i.row_hash, now()
        FROM {inc} i JOIN _changes c ON c.k = i.{k} AND c.op = 'insert'
    """).format(live=live, cols=_cols(names), icols=_cols(names, "i"), inc=inc, k=k)
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
        ).format(k=_ident(key), inc=inc, live=live, missed=missed)
    ).fetchone()
    if row:
        raise NeedsFullRun(f"key {row[0]} occurs more than once")


def _rebuild(
    cur: psycopg.Cursor[Any],
    layer_id: str,
    key: str,
    shape: LayerShape,
    incoming: str,
    run_id: int,
    current: LayerEntry | None,
) -> tuple[int, int, int]:
    """Build the new table beside the live one, keep the old rows in history, swap."""
    live = _ident(LAYER_SCHEMA, layer_id)
    inc = _ident(STAGING_SCHEMA, incoming)
    hist = _ident(HISTORY_SCHEMA, layer_id)
    nxt_name = next_table_name(layer_id)
    nxt = _ident(STAGING_SCHEMA, nxt_name)
    k = _ident(key)
    names = [c.name for c in shape.columns]
    _ensure_history(cur, layer_id, shape, current)
    if current is not None:
        # Keys are matched as text: the natural key survives a change of product even when its
        # field is renamed or retyped (legacy NAT_CODE text -> current NISCODE).
        old_k = _ident(current.key_field)
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
        if _has_history_columns(cur, layer_id):
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
                cols=_cols(old_names),
                lcols=_cols(old_names, "l"),
                live=live,
                old_k=old_k,
                kept=kept,
            ),
            {"run": run_id},
        )
        counts = _change_counts(cur)
    else:
        counts = (0, 0, 0)  # a first load: counted by the caller

    cur.execute(_INDEX_MEMORY)
    if incoming != nxt_name:
        _create_next(
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
        """).format(nxt=nxt, cols=_cols(names), inc=inc)
        )
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
                nxt, _ident(_primary_key_name(layer_id)), k
            )
        )
        cur.execute(
            sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(
                _ident(f"{layer_id}_geom_gist"[:63]), nxt
            )
        )
    else:  # streamed and indexed during staging (index_next_table)
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY USING INDEX {}").format(
                nxt, _ident(_primary_key_name(layer_id)), _ident(_primary_key_name(layer_id))
            )
        )
    # The swap: the only moment readers wait, kept short by lock_timeout (the caller retries).
    cur.execute("SET LOCAL lock_timeout = '5s'")
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(live))
    cur.execute(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(nxt, _ident(LAYER_SCHEMA)))
    cur.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            _ident(LAYER_SCHEMA, nxt_name), _ident(layer_id)
        )
    )
    return counts


def _ensure_history(
    cur: psycopg.Cursor[Any], layer_id: str, shape: LayerShape, current: LayerEntry | None
) -> None:
    """The history table holds every column a layer ever had; new ones are added as they come.

    A column whose type changed becomes text there, so old and new values both fit.
    """
    hist = _ident(HISTORY_SCHEMA, layer_id)
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
            sql.SQL("{} {}").format(_ident(c.name), sql.SQL(c.sql_type)) for c in columns
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
            sql.SQL("CREATE INDEX {} ON {} (valid_from, valid_to)").format(_ident(key_index), hist)
        )
        return
    declared = {c.name: c.sql_type for c in (current.columns if current else [])}
    for column in shape.columns:
        if column.name not in existing:
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                    hist, _ident(column.name), sql.SQL(column.sql_type)
                )
            )
        elif (
            declared.get(column.name, column.sql_type) != column.sql_type
            and existing[column.name] != "text"
        ):
            cur.execute(
                sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE text USING {}::text").format(
                    hist, _ident(column.name), _ident(column.name)
                )
            )


def _write_catalog(
    conn: Connection, layer_id: str, layer: LayerConfig, shape: LayerShape, version: int
) -> tuple[int, tuple[float, float, float, float] | None]:
    """Describe the layer as it now is; returns its feature count and extent."""
    live = f'{LAYER_SCHEMA}."{layer_id}"'
    extent = conn.exec_driver_sql(
        f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e), n FROM "
        f"(SELECT ST_Extent(geom) e, count(*) n FROM {live}) s"
    ).one()
    bbox = list(extent[:4]) if extent[0] is not None else None
    values = {
        "table_name": layer_id,
        "title": {k: v for k, v in layer.title.model_dump().items() if v},
        "description": layer.description,
        "source": json.loads(layer.source.model_dump_json()),
        "key_field": layer.key,
        "geometry_type": shape.geometry_type,
        "srid": STORAGE_SRID,
        "columns": [{"name": c.name, "type": c.sql_type} for c in shape.columns],
        "feature_count": int(extent[4]),
        "bbox_native": bbox,
        "bbox_crs84": _crs84_bbox(conn, bbox),
        "version": version,
        "last_success": func.now(),
        "tiles": layer.tiles.model_dump(),
    }
    exists = conn.execute(select(layer_catalog.c.id).where(layer_catalog.c.id == layer_id)).first()
    if exists:
        conn.execute(layer_catalog.update().where(layer_catalog.c.id == layer_id).values(values))
    else:
        conn.execute(layer_catalog.insert().values(id=layer_id, **values))
    return int(extent[4]), (tuple(bbox) if bbox else None)


def _crs84_bbox(conn: Connection, bbox: list[float] | None) -> list[float] | None:
    """The native extent in CRS84, from the densified envelope so curved edges are covered."""
    if bbox is None:
        return None
    env = func.ST_Transform(
        func.ST_Segmentize(func.ST_MakeEnvelope(*bbox, STORAGE_SRID), 50.0), 4326
    )
    row = conn.execute(
        select(func.ST_XMin(env), func.ST_YMin(env), func.ST_XMax(env), func.ST_YMax(env))
    ).one()
    return [float(v) for v in row]
