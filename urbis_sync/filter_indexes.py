"""Indexes on the properties a layer's configuration lists under `indexes`.

They make a filter on a large layer answer from indexes alone, for its page and for the
`numberMatched` that comes with it (`AREA > 150`, `CAPAKEY LIKE '21004A%'`):

- one B-tree per property, carrying the key (INCLUDE): the matching keys are read from it
  without visiting the table, then sorted. Text properties use `text_pattern_ops`, which
  serves equality and LIKE prefixes whatever the database's collation (the default operator
  class serves LIKE only under the C collation);
- one B-tree on the key carrying every listed property: pages come in key order, and a filter
  that keeps many features is answered by walking it, testing the properties in the index.

PostgreSQL picks between the two by their costs. The sync owns these indexes: it builds them
with a new table and creates or drops them on the live table when the list changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import psycopg
from psycopg import sql

from urbis_core.catalog import ColumnInfo
from urbis_core.db import LAYER_SCHEMA
from urbis_core.errors import SourceError

MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names


def _prefix(layer_id: str) -> str:
    return f"{layer_id}__by_"


def _name(layer_id: str, suffix: str) -> str:
    """`<layer>__by_<suffix>`; a long one ends in a digest so that two never collide."""
    name = _prefix(layer_id) + suffix
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_IDENTIFIER - 9]}_{digest}"


def index_name(layer_id: str, column: str) -> str:
    return _name(layer_id, column)


def walk_index_name(layer_id: str, columns: list[str]) -> str:
    """The key index carrying `columns`: its name changes with them, so a new list rebuilds it."""
    digest = hashlib.sha1("\0".join(columns).encode()).hexdigest()[:8]
    return _name(layer_id, f"key+{digest}")


@dataclass(frozen=True)
class PlannedIndex:
    name: str
    statement: sql.Composed


def _wanted_columns(
    layer_id: str, key: str, columns: list[ColumnInfo], names: list[str]
) -> list[ColumnInfo]:
    """The columns to index, in the configuration's order; a name the source lacks is an error."""
    by_name = {c.name: c for c in columns}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise SourceError(
            f"layer '{layer_id}': the configuration's indexes name "
            f"{', '.join(repr(n) for n in missing)}, which the source does not have (its "
            f"fields: {', '.join(by_name)}); correct the layer's `indexes`"
        )
    return [by_name[n] for n in dict.fromkeys(names) if n != key]  # the key has its own


def planned_indexes(
    table: sql.Identifier, layer_id: str, key: str, columns: list[ColumnInfo], names: list[str]
) -> list[PlannedIndex]:
    """The indexes `names` asks for on `table`.

    IF NOT EXISTS: a build retried after duplicate keys were quarantined skips the done ones.
    """
    wanted = _wanted_columns(layer_id, key, columns, names)
    if not wanted:
        return []
    k = sql.Identifier(key)
    planned = [
        PlannedIndex(
            index_name(layer_id, c.name),
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({}{}) INCLUDE ({})").format(
                sql.Identifier(index_name(layer_id, c.name)),
                table,
                sql.Identifier(c.name),
                sql.SQL(" text_pattern_ops" if c.sql_type == "text" else ""),
                k,
            ),
        )
        for c in wanted
    ]
    walk = walk_index_name(layer_id, [c.name for c in wanted])
    planned.append(
        PlannedIndex(
            walk,
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({}) INCLUDE ({})").format(
                sql.Identifier(walk),
                table,
                k,
                sql.SQL(", ").join(sql.Identifier(c.name) for c in wanted),
            ),
        )
    )
    return planned


def create_statements(
    table: sql.Identifier, layer_id: str, key: str, columns: list[ColumnInfo], names: list[str]
) -> list[sql.Composed]:
    return [p.statement for p in planned_indexes(table, layer_id, key, columns, names)]


def reconcile_indexes(
    cur: psycopg.Cursor[tuple[str, bool]],
    layer_id: str,
    key: str,
    columns: list[ColumnInfo],
    names: list[str],
) -> None:
    """Make the live table's property indexes those the configuration lists.

    Runs in the apply's transaction: an index added to the list is built there (writers wait,
    readers do not), one taken off it is dropped.
    """
    table = sql.Identifier(LAYER_SCHEMA, layer_id)
    wanted = {p.name: p for p in planned_indexes(table, layer_id, key, columns, names)}
    # (an index of the same name without INCLUDE columns is from before they were carried)
    found = cur.execute(
        "SELECT c.relname, i.indnatts > i.indnkeyatts FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE n.nspname = %s AND t.relname = %s AND starts_with(c.relname, %s)",
        (LAYER_SCHEMA, layer_id, _prefix(layer_id)),
    ).fetchall()
    existing = {name for name, carries in found if carries}
    for name, _ in found:
        if name not in existing or name not in wanted:
            cur.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(LAYER_SCHEMA, name)))
    for name, planned in wanted.items():
        if name not in existing:
            cur.execute(planned.statement)
