"""Where a run's tables are and how the phases reach them.

The names of the staging tables, of a first load's next table and of the indexes built on it,
the driver connection the phases write SQL on, the identifier helpers they write it with, and
what an apply makes live (`IncomingLayer`: the tables the diff and the rebuild both work on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Connection

from urbis_core.db import HISTORY_SCHEMA, LAYER_SCHEMA, STAGING_SCHEMA
from urbis_sync.reconcile.shape import LayerShape

INDEX_MEMORY = "SET LOCAL maintenance_work_mem = '256MB'"  # index builds sort in memory


def raw(conn: Connection) -> psycopg.Connection[Any]:
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver


def ident(*names: str) -> sql.Identifier:
    return sql.Identifier(*names)


def column_list(names: list[str], prefix: str | None = None) -> sql.Composable:
    if prefix is None:
        return sql.SQL(", ").join(ident(n) for n in names)
    return sql.SQL(", ").join(ident(prefix, n) for n in names)


def staging_name(layer_id: str, run_id: int) -> str:
    return f"r{run_id}_{layer_id}"[:63]


def next_table_name(layer_id: str) -> str:
    """The new table of a layer, built in the staging schema before it is swapped in."""
    return f"{layer_id}__next"


def primary_key_name(layer_id: str) -> str:
    return f"{layer_id}_pkey"[:63]


def gist_index_name(layer_id: str) -> str:
    return f"{layer_id}_geom_gist"[:63]


@dataclass(frozen=True)
class IncomingLayer:
    """What an apply makes live: a layer's incoming rows, their shape, the run that brings them."""

    layer_id: str
    key: str
    shape: LayerShape
    table: str  # in the staging schema: the incoming view, or a first load's next table
    run_id: int

    def tables(self) -> tuple[sql.Identifier, sql.Identifier, sql.Identifier]:
        """The live table, the incoming one and the history table."""
        return (
            ident(LAYER_SCHEMA, self.layer_id),
            ident(STAGING_SCHEMA, self.table),
            ident(HISTORY_SCHEMA, self.layer_id),
        )
