"""Indexes on the properties a layer's configuration lists under `indexes`.

They are what makes a filter on a large layer answer from an index instead of reading every
row: `AREA > 150` or `CAPAKEY LIKE '21004A%'`, and the `numberMatched` count that comes with
each page. One B-tree per property; text ones use `text_pattern_ops`, the operator class that
serves equality and LIKE prefixes whatever the database's collation (the default one serves
LIKE only under the C collation). The sync owns them: it builds them with a new table and
creates or drops them on the live table when the list changes.
"""

from __future__ import annotations

import hashlib

import psycopg
from psycopg import sql

from urbis_core.catalog import ColumnInfo
from urbis_core.db import LAYER_SCHEMA
from urbis_core.errors import SourceError

MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names


def index_prefix(layer_id: str) -> str:
    return f"{layer_id}__by_"


def index_name(layer_id: str, column: str) -> str:
    """`<layer>__by_<column>`; a long one ends in a digest so that two never collide."""
    name = index_prefix(layer_id) + column
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[:MAX_IDENTIFIER - 9]}_{digest}"


def wanted_columns(layer_id: str, columns: list[ColumnInfo],
                   names: list[str]) -> list[ColumnInfo]:
    """The columns to index, in the configuration's order; a name the source lacks is an error."""
    by_name = {c.name: c for c in columns}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise SourceError(
            f"layer '{layer_id}': the configuration's indexes name "
            f"{', '.join(repr(n) for n in missing)}, which the source does not have (its "
            f"fields: {', '.join(by_name)}); correct the layer's `indexes`")
    return [by_name[n] for n in names]


def create_statement(table: sql.Identifier, layer_id: str,
                     column: ColumnInfo) -> sql.Composed:
    """The index of one property; IF NOT EXISTS so that a retried build skips the done ones."""
    opclass = sql.SQL(" text_pattern_ops" if column.sql_type == "text" else "")
    return sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({}{})").format(
        sql.Identifier(index_name(layer_id, column.name)), table, sql.Identifier(column.name),
        opclass)


def create_statements(table: sql.Identifier, layer_id: str, columns: list[ColumnInfo],
                      names: list[str]) -> list[sql.Composed]:
    return [create_statement(table, layer_id, c)
            for c in wanted_columns(layer_id, columns, names)]


def reconcile_indexes(cur: psycopg.Cursor[tuple[str]], layer_id: str,
                      columns: list[ColumnInfo], names: list[str]) -> None:
    """Make the live table's property indexes those the configuration lists.

    Runs in the apply's transaction: an index added to the list is built there (writers wait,
    readers do not), one taken off it is dropped.
    """
    wanted = {index_name(layer_id, c.name): c
              for c in wanted_columns(layer_id, columns, names)}
    existing = {row[0] for row in cur.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s "
        "AND starts_with(indexname, %s)", (LAYER_SCHEMA, layer_id, index_prefix(layer_id)))}
    table = sql.Identifier(LAYER_SCHEMA, layer_id)
    for name in existing - wanted.keys():
        cur.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(LAYER_SCHEMA, name)))
    for name, column in wanted.items():
        if name not in existing:
            cur.execute(create_statement(table, layer_id, column))
