"""Duplicate keys: the features whose natural key occurs more than once go to quarantine."""

from __future__ import annotations

from psycopg import sql
from sqlalchemy import Connection

from urbis_core.catalog import STORAGE_SRID
from urbis_core.db import STAGING_SCHEMA
from urbis_sync.reconcile.tables import ident, raw


class DuplicateKeys(Exception):  # noqa: N818 - a signal to quarantine them
    """Some key occurs more than once among the staged features."""


def quarantine_duplicates(conn: Connection, name: str, key: str, layer_id: str, run_id: int) -> int:
    """Move features whose key occurs more than once into quarantine (all of them)."""
    table = ident(STAGING_SCHEMA, name)
    k = ident(key)
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
