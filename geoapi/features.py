"""SQL for features, composed with SQLAlchemy Core: identifiers from the catalog, values bound.

PostgreSQL writes each feature's GeoJSON itself; Python only joins the rows, which keeps large
pages cheap.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Select, func
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.ext.asyncio import AsyncConnection

from geoapi.crs import CRS84_URI, SUPPORTED, OutputCrs
from urbis_core.catalog import LayerEntry
from urbis_core.db import HISTORY_SCHEMA
from urbis_core.errors import NotFound

MAX_PAIRS_PER_CALL = 50  # PostgreSQL functions take at most 100 arguments


@dataclass(frozen=True)
class ItemsQuery:
    limit: int
    offset: int
    bbox: tuple[float, float, float, float] | None = None
    bbox_crs: OutputCrs = SUPPORTED[CRS84_URI]
    crs: OutputCrs = SUPPORTED[CRS84_URI]
    as_of: datetime | None = None


@dataclass(frozen=True)
class ItemsPage:
    features: list[str]  # each a GeoJSON Feature as JSON text
    number_matched: int


def _const(text: str) -> ColumnElement[Any]:
    return sa.cast(sa.literal(text), sa.Text)


def _properties(layer: LayerEntry, table: sa.Table) -> ColumnElement[Any]:
    """Properties in the source's field order (json keeps it; jsonb would sort the keys)."""
    pairs: list[ColumnElement[Any]] = []
    for column in layer.columns:
        pairs += [_const(column.name), table.c[column.name]]
    if len(pairs) <= 2 * MAX_PAIRS_PER_CALL:
        return func.json_build_object(*pairs)
    # Too many fields for one call: merge jsonb chunks (key order is then jsonb's own).
    chunks = [func.jsonb_build_object(*pairs[i:i + 2 * MAX_PAIRS_PER_CALL])
              for i in range(0, len(pairs), 2 * MAX_PAIRS_PER_CALL)]
    merged: ColumnElement[Any] = chunks[0]
    for chunk in chunks[1:]:
        merged = merged.op("||")(chunk)
    return merged


def feature_json(layer: LayerEntry, table: sa.Table, crs: OutputCrs) -> ColumnElement[str]:
    geom: ColumnElement[Any] = table.c.geom
    if crs.srid != layer.srid:
        geom = func.ST_Transform(geom, crs.srid)
    if crs.lat_first:
        geom = func.ST_FlipCoordinates(geom)
    geometry = sa.cast(func.ST_AsGeoJSON(geom, crs.decimals), JSON)
    return sa.cast(func.json_build_object(
        _const("type"), _const("Feature"),
        _const("id"), table.c[layer.key_field],
        _const("geometry"), geometry,
        _const("properties"), _properties(layer, table),
    ), sa.Text)


def _filters(layer: LayerEntry, table: sa.Table, query: ItemsQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.bbox is not None:
        # Transform the literal, not the column, so the GiST index is used; densify first so
        # the envelope's edges stay where the user drew them.
        envelope = func.ST_MakeEnvelope(*query.bbox, query.bbox_crs.srid)
        if query.bbox_crs.srid != layer.srid:
            step = 0.001 if query.bbox_crs.geographic else 100.0
            envelope = func.ST_Transform(func.ST_Segmentize(envelope, step), layer.srid)
        conditions.append(func.ST_Intersects(table.c.geom, envelope))
    return conditions


async def has_history(conn: AsyncConnection, layer: LayerEntry) -> bool:
    found = await conn.execute(sa.select(func.to_regclass(
        f'{HISTORY_SCHEMA}."{layer.table_name}"')))
    return found.scalar() is not None


async def fetch_items(conn: AsyncConnection, layer: LayerEntry, query: ItemsQuery) -> ItemsPage:
    if query.as_of is not None:
        return await _fetch_as_of(conn, layer, query, query.as_of)
    table = layer.table()
    conditions = _filters(layer, table, query)
    page: Select[Any] = (
        sa.select(feature_json(layer, table, query.crs)).where(*conditions)
        .order_by(table.c[layer.key_field]).limit(query.limit).offset(query.offset)
    )
    features = list((await conn.execute(page)).scalars())
    if conditions:
        count = sa.select(func.count()).select_from(table).where(*conditions)
        matched = int((await conn.execute(count)).scalar_one())
    else:
        matched = layer.feature_count
    return ItemsPage(features, matched)


async def _fetch_as_of(conn: AsyncConnection, layer: LayerEntry, query: ItemsQuery,
                       instant: datetime) -> ItemsPage:
    """The layer as it was at `instant`.

    Live rows already valid then, plus superseded rows (history) that were valid then.
    """
    live = layer.table()
    branches = [sa.select(feature_json(layer, live, query.crs).label("feature"),
                          live.c[layer.key_field].label("k"))
                .where(*_filters(layer, live, query), live.c.valid_from <= instant)]
    if await has_history(conn, layer):
        hist = layer.history_table()
        branches.append(
            sa.select(feature_json(layer, hist, query.crs).label("feature"),
                      hist.c[layer.key_field].label("k"))
            .where(*_filters(layer, hist, query), hist.c.valid_from <= instant,
                   hist.c.valid_to > instant))
    union = sa.union_all(*branches).subquery("as_of")
    page = sa.select(union.c.feature).order_by(union.c.k).limit(query.limit).offset(query.offset)
    features = list((await conn.execute(page)).scalars())
    matched = int((await conn.execute(sa.select(func.count()).select_from(union))).scalar_one())
    return ItemsPage(features, matched)


_INTEGER_LIMITS = {"integer": 2**31, "bigint": 2**63}
_INTEGER_TEXT = re.compile(r"-?[0-9]+")


def _key_condition(
    layer: LayerEntry, table: sa.Table, feature_id: str
) -> ColumnElement[bool] | None:
    """`key = <feature id>` with the id bound as the key's type; None when it cannot match."""
    key = table.c[layer.key_field]
    sql_type = layer.key_column.sql_type
    if "\x00" in feature_id:  # PostgreSQL text cannot hold NUL: no key has one
        return None
    if sql_type in _INTEGER_LIMITS:
        limit = _INTEGER_LIMITS[sql_type]
        if not _INTEGER_TEXT.fullmatch(feature_id) or not -limit <= int(feature_id) < limit:
            return None
        return key == sa.bindparam("key", int(feature_id), type_=sa.BigInteger())
    if sql_type == "double precision":
        try:
            number = float(feature_id)
        except ValueError:
            return None
        if not math.isfinite(number):
            return None
        return key == sa.bindparam("key", number, type_=sa.Float())
    if sql_type == "text":
        return key == sa.bindparam("key", feature_id, type_=sa.Text())
    return sa.cast(key, sa.Text) == sa.bindparam("key", feature_id, type_=sa.Text())


async def fetch_feature(
    conn: AsyncConnection, layer: LayerEntry, feature_id: str, crs: OutputCrs
) -> str:
    table = layer.table()
    condition = _key_condition(layer, table, feature_id)
    row = None
    if condition is not None:
        selected = sa.select(feature_json(layer, table, crs)).where(condition)
        row = (await conn.execute(selected)).first()
    if row is None:
        raise NotFound(f"no feature '{feature_id}' in collection '{layer.id}'")
    return str(row[0])
