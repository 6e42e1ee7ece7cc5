"""SQL for the spatial queries: what is here, within a distance, nearest, intersects, stats.

Composed with SQLAlchemy Core like `geoapi.features`: identifiers come only from the catalog
(`LayerEntry.table()`), values are always bound. The user's point or geometry (the literal) is
transformed to the layer's SRID, never the column, so the GiST index answers; a geometry is cut
to the area where that CRS is valid first, and a point outside it finds nothing
(`geoapi.area_of_use`). Distances, areas and lengths are planar in the storage CRS (EPSG:31370,
metres; within Brussels they differ from ground distances by about 0.005 %).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import shapely
import sqlalchemy as sa
from sqlalchemy import ColumnElement, Select, func
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.selectable import NamedFromClause

from geoapi.area_of_use import in_storage, inside
from geoapi.crs import OutputCrs
from geoapi.features import feature_json, key_condition
from geoapi.once import once
from urbis_core.catalog import LayerEntry
from urbis_core.errors import InvalidParameter, NotFound

LOOKUP_TOLERANCE_M = 1.0  # point and line layers: what lies this close to the point is "here"
LOOKUP_MAX_PER_COLLECTION = 100
MAX_DISTANCE_M = 10_000.0
MAX_NEAREST = 100
MAX_STATS_GROUPS = 10_000
KNN_SLACK_M = 1e-6  # floating-point slack when re-reading the k-th nearest distance
MM = 3  # decimals of metres (distances, lengths) and of square metres (areas)

_DIMENSIONS = {
    "Point": 0,
    "MultiPoint": 0,
    "LineString": 1,
    "MultiLineString": 1,
    "Polygon": 2,
    "MultiPolygon": 2,
}
Measure = Callable[[ColumnElement[Any]], ColumnElement[Any]]  # ST_Area or ST_Length
_TITLE_NAME = re.compile(r"(^|_)(name|title|label|nom|naam|titre|titel)", re.IGNORECASE)


def dimension(layer: LayerEntry) -> int | None:
    """0 for point layers, 1 for lines, 2 for polygons; None for a layer without a type yet."""
    return _DIMENSIONS.get(layer.geometry_type)


@dataclass(frozen=True)
class QueryPoint:
    """A point the user gave, as x/y in the axis order of its SRID (longitude first)."""

    x: float
    y: float
    srid: int

    def inside(self, srid: int) -> bool:
        """Whether the point lies in the area of use of `srid` (its edge included).

        Outside it, no stored feature lies near, and planar distances in that CRS mean little.
        """
        return inside(shapely.Point(self.x, self.y), self.srid, srid)

    def in_srid(self, srid: int) -> ColumnElement[Any]:
        point: ColumnElement[Any] = func.ST_SetSRID(
            func.ST_MakePoint(sa.literal(self.x, sa.Float), sa.literal(self.y, sa.Float)), self.srid
        )
        return once(point if srid == self.srid else func.ST_Transform(point, srid))


@dataclass(frozen=True)
class QueryShape:
    """The geometry to intersect with: its SQL in the layer's SRID, and its dimension.

    No SQL (None) when the request's geometry lies outside the area where the layer's CRS is
    valid: no stored feature can intersect it.
    """

    geometry: ColumnElement[Any] | None
    dimension: int


def literal_shape(shape: shapely.Geometry, srid: int, layer: LayerEntry) -> QueryShape:
    """A geometry from the request (x/y in `srid`) in the layer's SRID.

    Cut to the area where the layer's CRS is valid, then transformed and made valid again
    (`geoapi.area_of_use.in_storage`).
    """
    return QueryShape(in_storage(shape, srid, layer.srid), int(shapely.get_dimensions(shape)))


async def stored_shape(
    conn: AsyncConnection, source: LayerEntry, feature_id: str, layer: LayerEntry
) -> QueryShape:
    """The geometry of a stored feature (a scalar subquery, so it never leaves the database)."""
    table = source.table()
    condition = key_condition(source, table, feature_id)
    dim = None
    if condition is not None:
        found = await conn.execute(sa.select(func.ST_Dimension(table.c.geom)).where(condition))
        dim = found.scalar()
    if condition is None or dim is None:
        raise NotFound(f"no feature '{feature_id}' in collection '{source.id}'")
    geom: ColumnElement[Any] = sa.select(table.c.geom).where(condition).scalar_subquery()
    if source.srid != layer.srid:
        geom = once(func.ST_Transform(geom, layer.srid))
    return QueryShape(geom, int(dim))


def _feature_query(
    layer: LayerEntry, table: sa.Table, crs: OutputCrs, **extra: ColumnElement[Any]
) -> Select[Any]:
    """Each feature's GeoJSON (`feature_json`) with extra values to add to its properties."""
    return sa.select(
        feature_json(layer, table, crs).label("feature"),
        *(value.label(name) for name, value in extra.items()),
    )


async def _features(
    conn: AsyncConnection, query: Select[Any], extra: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Run a `_feature_query`; the extra values join the properties, rounded to the mm."""
    features = []
    for row in await conn.execute(query):
        feature = json.loads(row.feature)
        for name in extra:
            value = row._mapping[name]
            feature["properties"][name] = None if value is None else round(float(value), MM)
        features.append(feature)
    return features


async def _count(conn: AsyncConnection, table: sa.Table, condition: ColumnElement[bool]) -> int:
    counted = await conn.execute(sa.select(func.count()).select_from(table).where(condition))
    return int(counted.scalar_one())


async def features_at(
    conn: AsyncConnection, layer: LayerEntry, point: QueryPoint, crs: OutputCrs
) -> list[dict[str, Any]]:
    """The features of `layer` at the point, nearest first (then by key).

    Polygons that contain it (boundary included); points and lines within `LOOKUP_TOLERANCE_M`
    of it. At most `LOOKUP_MAX_PER_COLLECTION`.
    """
    if not point.inside(layer.srid):
        return []
    table = layer.table()
    here = point.in_srid(layer.srid)
    if dimension(layer) == 2:
        condition = func.ST_Intersects(table.c.geom, here)
    else:
        condition = func.ST_DWithin(table.c.geom, here, LOOKUP_TOLERANCE_M)
    query = (
        _feature_query(layer, table, crs)
        .where(condition)
        .order_by(func.ST_Distance(table.c.geom, here), table.c[layer.key_field])
        .limit(LOOKUP_MAX_PER_COLLECTION)
    )
    return await _features(conn, query)


async def features_within(
    conn: AsyncConnection,
    layer: LayerEntry,
    point: QueryPoint,
    distance: float,
    crs: OutputCrs,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Features within `distance` metres of the point, and how many there are in all.

    Nearest first (then by key), each with its `distance` in metres.
    """
    if not point.inside(layer.srid):
        return [], 0
    table = layer.table()
    here = point.in_srid(layer.srid)
    condition = func.ST_DWithin(table.c.geom, here, sa.literal(distance, sa.Float))
    metres = func.ST_Distance(table.c.geom, here)
    query = (
        _feature_query(layer, table, crs, distance=metres)
        .where(condition)
        .order_by(metres, table.c[layer.key_field])
        .limit(limit)
        .offset(offset)
    )
    return await _features(conn, query, ("distance",)), await _count(conn, table, condition)


async def nearest_features(
    conn: AsyncConnection,
    layer: LayerEntry,
    point: QueryPoint,
    k: int,
    crs: OutputCrs,
    within: float | None = None,
) -> list[dict[str, Any]]:
    """The `k` features nearest to the point, nearest first (then by key), with `distance`.

    Only those within `within` metres, when it is given.

    The GiST index's KNN operator (`<->`, the exact distance for geometries) finds how far the
    k-th nearest lies; the features that near are then ranked by distance and key, so that
    ties at the k-th place are broken by key rather than by chance (a KNN scan cannot sort on
    a second column).

    Nothing for a point outside the layer CRS's area of use: the nearest feature would lie
    hundreds of kilometres away at least, at a planar distance that means little there.
    """
    if not point.inside(layer.srid):
        return []
    table = layer.table()
    here = point.in_srid(layer.srid)
    near = layer.table().alias("near")
    knn = near.c.geom.op("<->", return_type=sa.Float)(here)
    nearest = sa.select(knn.label("d")).order_by(knn).limit(k).subquery("knn")
    reach = sa.select(func.max(nearest.c.d) + KNN_SLACK_M).scalar_subquery()
    metres = func.ST_Distance(table.c.geom, here)
    conditions = [func.ST_DWithin(table.c.geom, here, reach)]
    if within is not None:
        conditions.append(func.ST_DWithin(table.c.geom, here, sa.literal(within, sa.Float)))
    query = (
        _feature_query(layer, table, crs, distance=metres)
        .where(*conditions)
        .order_by(metres, table.c[layer.key_field])
        .limit(k)
    )
    return await _features(conn, query, ("distance",))


def _measured_part(
    geom: ColumnElement[Any], shape: ColumnElement[Any], measure: Measure
) -> ColumnElement[Any]:
    """`measure` of the part of `geom` inside `shape`, without intersecting what is all inside."""
    return sa.case(
        (func.ST_CoveredBy(geom, shape), measure(geom)),
        else_=measure(func.ST_Intersection(geom, shape)),
    )


def intersection_measure(layer: LayerEntry, shape: QueryShape) -> tuple[str, Measure]:
    """The property to add for `measure=true`, and the PostGIS function computing it.

    The intersection of a polygon with a polygon has an area; of a polygon with a line, a
    length; any other intersection is made of points, with nothing to measure.
    """
    layer_dim = dimension(layer)
    if layer_dim is not None and layer_dim + shape.dimension == 4:
        return "intersection_area", func.ST_Area
    if layer_dim is not None and layer_dim + shape.dimension == 3:
        return "intersection_length", func.ST_Length
    raise InvalidParameter(
        "measure",
        f"the intersection of {layer.geometry_type} features of "
        f"'{layer.id}' with this geometry is made of points: it "
        "has no area or length (polygons with polygons give an "
        "area, polygons with lines a length)",
    )


async def features_intersecting(
    conn: AsyncConnection,
    layer: LayerEntry,
    shape: QueryShape,
    crs: OutputCrs,
    measure: bool,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Features whose geometry intersects `shape` (by key), and how many there are in all.

    With `measure`, each has the area or the length of its part inside (`intersection_measure`).
    """
    extra: dict[str, ColumnElement[Any]] = {}
    measured = intersection_measure(layer, shape) if measure else None
    if shape.geometry is None:
        return [], 0
    table = layer.table()
    condition = func.ST_Intersects(table.c.geom, shape.geometry)
    if measured is not None:
        name, function = measured
        extra[name] = _measured_part(table.c.geom, shape.geometry, function)
    query = (
        _feature_query(layer, table, crs, **extra)
        .where(condition)
        .order_by(table.c[layer.key_field])
        .limit(limit)
        .offset(offset)
    )
    return await _features(conn, query, tuple(extra)), await _count(conn, table, condition)


def title_field(layer: LayerEntry) -> str | None:
    """A text field that names a feature (NAME_FRE, name, titre...), the first in field order."""
    return next(
        (
            c.name
            for c in layer.columns
            if c.name != layer.key_field and c.sql_type == "text" and _TITLE_NAME.search(c.name)
        ),
        None,
    )


@dataclass(frozen=True)
class GroupStats:
    """Per feature of the grouping layer: key, title, count and area or length inside it."""

    key_field: str
    title_field: str | None
    measure: str | None  # "area_m2", "length_m" or None (points)
    rows: list[dict[str, Any]]


def _stats_columns(
    layer: LayerEntry, f: NamedFromClause, b: NamedFromClause, by: LayerEntry
) -> tuple[ColumnElement[Any], ColumnElement[Any] | None]:
    """SQL of the count and the measure of the features `f` that fall in the group `b`."""
    dim = dimension(layer)
    if dim == 2:  # a polygon counts where its representative point is; its area is split
        count = func.count().filter(func.ST_Covers(b.c.geom, func.ST_PointOnSurface(f.c.geom)))
        return count, func.coalesce(func.sum(_measured_part(f.c.geom, b.c.geom, func.ST_Area)), 0)
    if dim == 1:  # a line counts where most of its length is; its length is split
        inside = _measured_part(f.c.geom, b.c.geom, func.ST_Length)
        other = by.table().alias("other")
        best = (
            sa.select(other.c[by.key_field])
            .where(func.ST_Intersects(other.c.geom, f.c.geom))
            .order_by(
                _measured_part(f.c.geom, other.c.geom, func.ST_Length).desc(), other.c[by.key_field]
            )
            .limit(1)
            .scalar_subquery()
        )
        count = func.count().filter(sa.and_(inside > 0, b.c[by.key_field] == best))
        return count, func.coalesce(func.sum(inside), 0)
    return func.count().filter(func.ST_Covers(b.c.geom, f.c.geom)), None


async def group_stats(conn: AsyncConnection, layer: LayerEntry, by: LayerEntry) -> GroupStats:
    """Per feature of the polygon layer `by` (by key): how much of `layer` lies in it.

    The count of `layer`'s features in it (points: covered by it; polygons: whose
    `ST_PointOnSurface` it covers; lines: whose longest part lies in it) and the area (polygons)
    or length (lines) of their parts inside it.
    """
    if dimension(by) != 2:
        raise InvalidParameter(
            "by",
            f"collection '{by.id}' holds {by.geometry_type} features; "
            "stats group by a collection of polygons",
        )
    if by.feature_count > MAX_STATS_GROUPS:
        raise InvalidParameter(
            "by",
            f"collection '{by.id}' has {by.feature_count} features; "
            f"stats group by at most {MAX_STATS_GROUPS}",
        )
    f = layer.table().alias("f")
    b = by.table().alias("b")
    count, measure = _stats_columns(layer, f, b, by)
    inside = (
        sa.select(count.label("n"), (measure if measure is not None else sa.null()).label("m"))
        .where(func.ST_Intersects(b.c.geom, f.c.geom))
        .lateral("s")
    )
    title = title_field(by)
    query = (
        sa.select(
            b.c[by.key_field].label("key"),
            (b.c[title] if title else sa.null()).label("title"),
            inside.c.n,
            inside.c.m,
        )
        .select_from(b.join(inside, sa.true()))
        .order_by(b.c[by.key_field])
    )
    name = {2: "area_m2", 1: "length_m"}.get(dimension(layer) or 0)
    rows = []
    for r in await conn.execute(query):
        row: dict[str, Any] = {"key": r.key, "title": r.title} if title else {"key": r.key}
        row["count"] = int(r.n)
        if name:
            row[name] = round(float(r.m), MM)
        rows.append(row)
    return GroupStats(by.key_field, title, name, rows)
