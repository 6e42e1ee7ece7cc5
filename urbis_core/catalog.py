"""The service schema (`urbis_meta`) as SQLAlchemy Core tables, and the layer catalog model.

Alembic owns the DDL (`migrations/`); these definitions are what the code queries, and a test
checks that they match what the migrations create.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from urbis_core.config import TileSettings
from urbis_core.db import HISTORY_SCHEMA, LAYER_SCHEMA, META_SCHEMA
from urbis_core.errors import NotFound

STORAGE_SRID = 31370
# Each live layer table keeps, for the tiles, what drawing a tile would otherwise compute for
# every feature it meets: the geometry in Web Mercator, the largest side of its bounding box
# (metres) and its area (m², polygons) or length (m, lines). The sync fills them after each run
# (urbis_sync.tile_geometry); NULL where not yet filled.
MERCATOR_SRID = 3857
MERCATOR_GEOM = "geom_3857"
GEOM_SIZE = "geom_size"
GEOM_MEASURE = "geom_measure"
TILE_COLUMNS = {  # name: SQL type
    MERCATOR_GEOM: f"geometry(Geometry, {MERCATOR_SRID})",
    GEOM_SIZE: "double precision",
    GEOM_MEASURE: "double precision",
}


def tile_ready_values(geom: sa.ColumnElement[Any]) -> dict[str, sa.ColumnElement[Any]]:
    """The TILE_COLUMNS of a row, as expressions of its geometry.

    The sync fills the columns with them, and tiles compute them for a row not filled yet, so
    a tile is the same either way.
    """
    dimension = sa.func.ST_Dimension(geom)
    return {
        MERCATOR_GEOM: sa.func.ST_Transform(geom, MERCATOR_SRID),
        GEOM_SIZE: sa.func.greatest(
            sa.func.ST_XMax(geom) - sa.func.ST_XMin(geom),
            sa.func.ST_YMax(geom) - sa.func.ST_YMin(geom),
        ),
        GEOM_MEASURE: sa.case(
            (dimension == 2, sa.func.ST_Area(geom)), (dimension == 1, sa.func.ST_Length(geom))
        ),
    }


metadata = sa.MetaData(schema=META_SCHEMA)

layer_catalog = sa.Table(
    "layer_catalog",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("table_name", sa.Text, nullable=False),
    sa.Column("title", JSONB, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("source", JSONB, nullable=False),
    sa.Column("key_field", sa.Text, nullable=False),
    sa.Column("geometry_type", sa.Text, nullable=False),
    sa.Column("srid", sa.Integer, nullable=False),
    sa.Column("columns", JSONB, nullable=False),
    sa.Column("feature_count", sa.BigInteger, nullable=False),
    sa.Column("bbox_native", ARRAY(sa.Float)),
    sa.Column("bbox_crs84", ARRAY(sa.Float)),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("last_success", sa.DateTime(timezone=True)),
    # Vector tile settings (urbis_core.config.TileSettings), as the sync last wrote them.
    sa.Column("tiles", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    # The configured name field per language (urbis_core.config.Label), as the sync last wrote it.
    sa.Column("label", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
)

sync_run = sa.Table(
    "sync_run",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("layer_id", sa.Text, nullable=False),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("fetched", sa.BigInteger, nullable=False),
    sa.Column("inserted", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Column("deleted", sa.BigInteger, nullable=False),
    sa.Column("repaired", sa.BigInteger, nullable=False),
    sa.Column("quarantined", sa.BigInteger, nullable=False),
    sa.Column("version", sa.BigInteger),
    sa.Column("error", sa.Text),
    sa.Column("drift", sa.Text),
    sa.Column("source_info", sa.Text),
)


def first_run_after(layer_id: str, after: int) -> sa.Select[Any]:
    """The id of the layer's first run after run `after` (run ids only grow), if any."""
    return (
        sa.select(sync_run.c.id)
        .where(sync_run.c.layer_id == layer_id, sync_run.c.id > after)
        .order_by(sync_run.c.id)
        .limit(1)
    )


def sync_lock_key(layer_id: str) -> int:
    """The advisory lock that lets one process at a time sync a layer (held while it runs)."""
    return zlib.crc32(f"urbis_sync:{layer_id}".encode())


def _run_record(name: str, *columns: sa.Column[Any]) -> sa.Table:
    """A table of rows a sync run writes about one layer: numbered, naming the layer and run."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("layer_id", sa.Text, nullable=False),
        sa.Column("run_id", sa.BigInteger, sa.ForeignKey(sync_run.c.id), nullable=False),
        *columns,
    )


change_log = _run_record(
    "change_log",
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("inserted", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Column("deleted", sa.BigInteger, nullable=False),
    sa.Column("bbox", Geometry("POLYGON", srid=STORAGE_SRID, spatial_index=False)),
)

quarantine = _run_record(
    "quarantine",
    sa.Column("feature_key", sa.Text),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("properties", JSONB, nullable=False),
    sa.Column("geom", Geometry("GEOMETRY", srid=STORAGE_SRID, spatial_index=False)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class ColumnInfo:
    """A property column of a layer table: its name as the source spells it, its SQL type."""

    name: str
    sql_type: str


@dataclass(frozen=True)
class LayerEntry:
    """One row of the layer catalog: everything the API needs to query a layer safely."""

    id: str
    table_name: str
    title: dict[str, str]
    description: str | None
    key_field: str
    geometry_type: str
    srid: int
    columns: tuple[ColumnInfo, ...]
    feature_count: int
    bbox_native: tuple[float, ...] | None
    bbox_crs84: tuple[float, ...] | None
    version: int
    last_success: datetime | None
    tiles: TileSettings = field(default_factory=TileSettings)  # read once, with the row
    label: dict[str, str] = field(default_factory=dict)  # as configured; see label_fields()

    @classmethod
    def from_row(cls, row: Any) -> LayerEntry:
        m = row._mapping
        return cls(
            id=m["id"],
            table_name=m["table_name"],
            title=dict(m["title"] or {}),
            description=m["description"],
            key_field=m["key_field"],
            geometry_type=m["geometry_type"],
            srid=m["srid"],
            columns=tuple(ColumnInfo(c["name"], c["type"]) for c in m["columns"]),
            feature_count=m["feature_count"],
            bbox_native=tuple(m["bbox_native"]) if m["bbox_native"] else None,
            bbox_crs84=tuple(m["bbox_crs84"]) if m["bbox_crs84"] else None,
            version=m["version"],
            last_success=m["last_success"],
            tiles=TileSettings.stored(m["tiles"] or {}),
            label=dict(m["label"] or {}),
        )

    @property
    def key_column(self) -> ColumnInfo:
        return next(c for c in self.columns if c.name == self.key_field)

    def display_title(self, language: str = "en") -> str:
        return self.title.get(language) or next(iter(self.title.values()), None) or self.id

    def table(self) -> sa.Table:
        """The layer table as SQLAlchemy sees it; identifiers come only from this catalog row."""
        return _layer_table(
            LAYER_SCHEMA, self.table_name, tuple(c.name for c in self.columns), self.srid
        )

    def history_table(self) -> sa.Table:
        """Superseded rows of the layer, each with the interval it was current."""
        return _layer_table(
            HISTORY_SCHEMA, self.table_name, tuple(c.name for c in self.columns), self.srid
        )


@functools.lru_cache(maxsize=512)
def _layer_table(schema: str, name: str, columns: tuple[str, ...], srid: int) -> sa.Table:
    """One Table object per table definition, shared by every request and tile.

    SQLAlchemy keys its cache of compiled statements on the Table object: a new one at each
    request would compile every query afresh (milliseconds of Python each time).
    """
    extra: list[sa.Column[Any]] = [sa.Column("valid_from", sa.DateTime(timezone=True))]
    if schema == HISTORY_SCHEMA:
        extra += [sa.Column("valid_to", sa.DateTime(timezone=True)), sa.Column("op", sa.Text)]
    else:
        extra += [
            sa.Column(MERCATOR_GEOM, Geometry(srid=MERCATOR_SRID, spatial_index=False)),
            sa.Column(GEOM_SIZE, sa.Float),
            sa.Column(GEOM_MEASURE, sa.Float),
        ]
    return sa.Table(
        name,
        sa.MetaData(),
        *(sa.Column(c, sa.types.NullType()) for c in columns),
        sa.Column("geom", Geometry(srid=srid, spatial_index=False)),
        *extra,
        schema=schema,
    )


# --- the reader: the only place collection ids turn into tables ----------------------------


# What a request's snapshot noted of the catalog, in its connection's `info` (the API's
# geoapi.budgets): the memo of entries, and each row's stamp in this snapshot.
SNAPSHOT_CATALOG = "urbis.snapshot_catalog"

# Each catalog row's stamp: its xmin, the transaction that wrote this version of the row (a
# new one at every update, whatever the update changes).
CATALOG_STAMPS_SQL = "(SELECT json_object_agg(id, xmin::text) FROM urbis_meta.layer_catalog)"


class CatalogMemo:
    """Layer entries kept between requests, each as long as its catalog row is unchanged.

    Reading a row and making its entry cost more than the rest of a small request's Python;
    the snapshot notes every row's stamp in the statement that starts it, so an entry is
    taken from here only when the row in the request's own snapshot is the one it was made
    from: never staler than a read of the row.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, LayerEntry]] = {}

    def get(self, layer_id: str, stamp: str) -> LayerEntry | None:
        kept = self._entries.get(layer_id)
        return kept[1] if kept is not None and kept[0] == stamp else None

    def keep(self, stamp: str, entry: LayerEntry) -> None:
        self._entries[entry.id] = (stamp, entry)

    def forget_others(self, layer_ids: set[str]) -> None:
        for gone in self._entries.keys() - layer_ids:
            del self._entries[gone]


def _noted(conn: AsyncConnection) -> tuple[CatalogMemo, dict[str, str]] | None:
    noted: tuple[CatalogMemo, dict[str, str]] | None = conn.info.get(SNAPSHOT_CATALOG)
    return noted


async def list_layers(conn: AsyncConnection) -> list[LayerEntry]:
    noted = _noted(conn)
    if noted is not None:
        memo, stamps = noted
        kept = [memo.get(layer_id, stamp) for layer_id, stamp in sorted(stamps.items())]
        if all(entry is not None for entry in kept):
            return kept  # type: ignore[return-value]
    rows = await conn.execute(
        sa.select(layer_catalog, sa.literal_column("xmin::text").label("stamp")).order_by(
            layer_catalog.c.id
        )
    )
    if noted is None:
        return [LayerEntry.from_row(row) for row in rows]
    memo = noted[0]
    entries = []
    for row in rows:
        entry = memo.get(row.id, row.stamp)
        if entry is None:
            memo.keep(row.stamp, entry := LayerEntry.from_row(row))
        entries.append(entry)
    memo.forget_others({entry.id for entry in entries})
    return entries


async def count_layers(conn: AsyncConnection) -> int:
    return int(
        (await conn.execute(sa.select(func.count()).select_from(layer_catalog))).scalar_one()
    )


async def get_layer(conn: AsyncConnection, layer_id: str) -> LayerEntry:
    noted = _noted(conn)
    if noted is not None:
        memo, stamps = noted
        stamp = stamps.get(layer_id)
        entry = None if stamp is None else memo.get(layer_id, stamp)
        if entry is not None:
            return entry
    row = (
        await conn.execute(
            sa.select(layer_catalog, sa.literal_column("xmin::text").label("stamp")).where(
                layer_catalog.c.id == layer_id
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"no collection '{layer_id}'; /collections lists the available ones")
    entry = LayerEntry.from_row(row)
    if noted is not None:
        noted[0].keep(row.stamp, entry)
    return entry


async def has_history(conn: AsyncConnection, layer: LayerEntry) -> bool:
    """Whether the layer has a history table yet (its first change makes one)."""
    found = await conn.execute(
        sa.select(func.to_regclass(f'{HISTORY_SCHEMA}."{layer.table_name}"'))
    )
    return found.scalar() is not None


def read_layer(conn: sa.Connection, layer_id: str) -> LayerEntry | None:
    """The sync's read of one layer's entry (None before its first load)."""
    row = conn.execute(sa.select(layer_catalog).where(layer_catalog.c.id == layer_id)).first()
    return LayerEntry.from_row(row) if row else None
