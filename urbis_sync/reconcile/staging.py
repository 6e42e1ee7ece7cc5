"""The staging tables: a run's scratch rows and the incoming view the apply reads.

Also the live fingerprints no source feature matched, when only changes are staged;
`NeedsFullRun` is the signal that staging only the changed features was not enough.
"""

from __future__ import annotations

import numpy as np
from psycopg import sql
from sqlalchemy import Connection

from urbis_core.catalog import STORAGE_SRID, LayerEntry
from urbis_core.db import LAYER_SCHEMA, STAGING_SCHEMA
from urbis_sync.copystream import CopyStream
from urbis_sync.fingerprint import LiveFingerprints, hex_digests
from urbis_sync.reconcile.duplicates import DuplicateKeys
from urbis_sync.reconcile.history import has_history_columns
from urbis_sync.reconcile.shape import LayerShape
from urbis_sync.reconcile.tables import ident, next_table_name, raw
from urbis_sync.sources import Field


class NeedsFullRun(Exception):  # noqa: N818 - a signal between the run and the apply
    """Only changed features were staged, but the change needs the whole layer (drift)."""


def create_staging(conn: Connection, name: str, fields: list[Field]) -> CopyStream:
    """A scratch table for the source's rows as they come, and the COPY that fills it."""
    defs: list[sql.Composable] = [
        sql.SQL("{} {}").format(ident(f.name), sql.SQL(f.sql_type)) for f in fields
    ]
    defs.append(sql.SQL("geom geometry"))
    defs.append(sql.SQL("source_hash uuid"))
    raw(conn).execute(
        sql.SQL("CREATE UNLOGGED TABLE {} ({})").format(
            ident(STAGING_SCHEMA, name), sql.SQL(", ").join(defs)
        )
    )
    return CopyStream(
        raw(conn), ident(STAGING_SCHEMA, name), [*(f.name for f in fields), "geom", "source_hash"]
    )


def stage_unmatched(conn: Connection, name: str, digests: np.ndarray) -> str:
    """The fingerprints of live features no source feature matched: changed or deleted."""
    table = f"{name}_gone"[:63]
    cur = raw(conn).cursor()
    cur.execute(sql.SQL("CREATE UNLOGGED TABLE {} (h uuid)").format(ident(STAGING_SCHEMA, table)))
    with cur.copy(sql.SQL("COPY {} (h) FROM STDIN").format(ident(STAGING_SCHEMA, table))) as cp:
        cp.write("".join(f"{h}\n" for h in hex_digests(digests)))
    cur.execute(sql.SQL("ANALYZE {}").format(ident(STAGING_SCHEMA, table)))
    return table


def live_fingerprints(conn: Connection, layer: LayerEntry) -> LiveFingerprints:
    return LiveFingerprints.load(raw(conn), ident(LAYER_SCHEMA, layer.table_name))


def has_fingerprints(conn: Connection, layer_id: str) -> bool:
    with raw(conn).cursor() as cur:
        return has_history_columns(cur, layer_id)


def build_incoming(conn: Connection, name: str, shape: LayerShape, key: str) -> str:
    """A view of the staged rows with final types, geometry type and fingerprint.

    A view rather than a copy: the apply step reads it once or twice, and writing the layer a
    second time would cost more than computing the casts again.
    """
    incoming = f"{name}_in"[:63]
    exprs = [
        sql.SQL("{}::{} AS {}").format(ident(c.name), sql.SQL(c.sql_type), ident(c.name))
        for c in shape.columns
    ]
    geom = sql.SQL("ST_SetSRID({}, {})").format(
        sql.SQL("ST_Multi(geom)") if shape.geometry_type.startswith("Multi") else sql.SQL("geom"),
        sql.Literal(STORAGE_SRID),
    )
    cur = raw(conn).cursor()
    # Fresh tables have no statistics; with them the planner joins a few changed features to
    # the live layer through its primary key instead of reading it whole.
    cur.execute(sql.SQL("ANALYZE {}").format(ident(STAGING_SCHEMA, name)))
    duplicate = cur.execute(
        sql.SQL("SELECT 1 FROM {stg} GROUP BY {k} HAVING count(*) > 1 LIMIT 1").format(
            stg=ident(STAGING_SCHEMA, name), k=ident(key)
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
            inc=ident(STAGING_SCHEMA, incoming),
            exprs=sql.SQL(", ").join(exprs),
            geom=geom,
            stg=ident(STAGING_SCHEMA, name),
        )
    )
    return incoming


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
            sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(ident(STAGING_SCHEMA, table))
        )
