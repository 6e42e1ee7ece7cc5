"""Where the storage CRS is valid, in the CRS of a query; query shapes cut to that area.

EPSG:31370 (Belgian Lambert 72) is a conic projection made for Belgium. Transformed to it, a
shape reaching far beyond Belgium (the whole-world bbox QGIS sends for "everything", a world
polygon) comes out folded over itself or with points thrown to infinity, and then matches
nothing; a bbox millions of kilometres wide in Web Mercator, densified before its transform,
costs seconds. Cut first to the CRS's area of use (the lon/lat box EPSG gives it), a query
shape keeps every part where stored data can lie and transforms cleanly and quickly. A shape
with nothing in that area matches nothing, which callers can tell without asking the database.

The area is closed: a point on its edge is inside. Every path that turns a user's geometry
into the storage CRS goes through `in_storage` (or `inside`, for points).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from pyproj import CRS, Transformer
from sqlalchemy import ColumnElement, func

from geoapi.once import once

Bbox = tuple[float, float, float, float]

# Steps at which an edge is cut before a transform, so that it stays where it was drawn
# (straight in its own CRS) rather than becoming the chord between its transformed ends.
STEP_DEGREES = 0.001  # about 100 m
STEP_METRES = 100.0
MAX_DENSIFIED_VERTICES = 100_000
# The area's own edges, straight in longitude/latitude, are drawn in other CRSs with a
# vertex every 0.01 degree (about 1 km): the area is a generous box around the country, so
# the few metres a chord strays from the curve never decide which stored feature matches.
AREA_STEP_DEGREES = 0.01


@functools.cache
def _crs(srid: int) -> CRS:
    return CRS.from_epsg(srid)


@functools.cache
def area_of_use(storage_srid: int, srid: int) -> shapely.Polygon:
    """The area of use of EPSG:`storage_srid`, as x/y in EPSG:`srid` (longitude/easting first).

    Prepared for fast repeated tests. In longitude/latitude it is a box; in a conic projection
    such as EPSG:31370 a ring sector, with its parallels curved.
    """
    area = _crs(storage_srid).area_of_use
    if area is None:
        raise ValueError(f"EPSG:{storage_srid} has no area of use")
    west, south, east, north = area.bounds
    if west > east:
        raise ValueError(f"the area of use of EPSG:{storage_srid} crosses the antimeridian")
    shape = shapely.box(west, south, east, north)
    if srid != 4326:
        to_srid = Transformer.from_crs(4326, srid, always_xy=True)

        def move(xy: np.ndarray) -> np.ndarray:
            x, y = to_srid.transform(xy[:, 0], xy[:, 1], errcheck=True)
            return np.column_stack([x, y])

        # simplify(0) drops only the vertices that fall on a straight line (Web Mercator's
        # edges stay straight), so a rectangle stays a rectangle of four corners.
        shape = shapely.simplify(
            shapely.transform(shapely.segmentize(shape, AREA_STEP_DEGREES), move), 0
        )
    shapely.prepare(shape)
    return shape


def warm(storage_srid: int, srids: set[int]) -> None:
    """Compute the areas ahead: pyproj's first use reads its database (a few hundred ms)."""
    for srid in srids:
        area_of_use(storage_srid, srid)


def bbox_shape(bbox: Bbox) -> shapely.Geometry:
    """The bbox as a geometry: a rectangle, or a line or a point when it is flat."""
    minx, miny, maxx, maxy = bbox
    if minx < maxx and miny < maxy:
        return shapely.box(minx, miny, maxx, maxy)
    if (minx, miny) == (maxx, maxy):
        return shapely.Point(minx, miny)
    return shapely.LineString([(minx, miny), (maxx, maxy)])


def inside(shape: shapely.Geometry, srid: int, storage_srid: int) -> bool:
    """Whether all of `shape` (x/y in EPSG:`srid`) lies in the area of use of `storage_srid`."""
    return bool(area_of_use(storage_srid, srid).covers(shape))


def clip(shape: shapely.Geometry, srid: int, storage_srid: int) -> shapely.Geometry | None:
    """The part of `shape` (x/y in EPSG:`srid`) in the area of use of `storage_srid`.

    `shape` itself when it lies wholly inside; None when no part of it does.
    """
    area = area_of_use(storage_srid, srid)
    box = _box(shape)
    if box is not None:
        # A bbox is cut to the area's bounds by its numbers first: exact, and GEOS then never
        # sees a bbox of 1e308 (past about 1e300 its overlay overflows to infinity and fails).
        minx, miny, maxx, maxy = box
        west, south, east, north = area.bounds
        box = (max(minx, west), max(miny, south), min(maxx, east), min(maxy, north))
        if box[0] > box[2] or box[1] > box[3]:
            return None
        shape = bbox_shape(box)
    if area.covers(shape):
        return shape
    if not area.intersects(shape):
        return None
    part = _intersection(shape, area)
    return None if part.is_empty else part


def _box(shape: shapely.Geometry) -> Bbox | None:
    """The bounds of a shape that is its own bounding box (what `bbox_shape` makes), else None.

    Found from the numbers alone: a point, a horizontal or vertical line of two points, or a
    polygon without holes whose ring of four edges each runs along an axis.
    """
    if isinstance(shape, shapely.Point):
        return shape.bounds
    if isinstance(shape, shapely.LineString):
        xy = shapely.get_coordinates(shape)
        flat = len(xy) == 2 and (xy[0, 0] == xy[1, 0] or xy[0, 1] == xy[1, 1])
        return shape.bounds if flat else None
    if not isinstance(shape, shapely.Polygon) or len(shape.interiors) > 0:
        return None
    xy = shapely.get_coordinates(shape.exterior)
    if len(xy) != 5:
        return None
    moves = xy[1:] != xy[:-1]
    if not (moves.sum(axis=1) == 1).all():  # each edge runs along one axis only
        return None
    minx, miny, maxx, maxy = shape.bounds
    if minx == maxx or miny == maxy:
        return None
    return minx, miny, maxx, maxy


def _intersection(shape: shapely.Geometry, area: shapely.Geometry) -> shapely.Geometry:
    # GEOS' overlay refuses collections that mix dimensions: cut their members one by one.
    if isinstance(shape, shapely.GeometryCollection) and not isinstance(
        shape, shapely.MultiPoint | shapely.MultiLineString | shapely.MultiPolygon
    ):
        parts = [_intersection(g, area) for g in shape.geoms]
        return shapely.GeometryCollection([p for p in parts if not p.is_empty])
    return shapely.intersection(shape, area)


def densify_step(shape: shapely.Geometry, srid: int) -> float:
    """The step at which the shape's edges are cut before a transform.

    About 100 m, coarser when that would add more than `MAX_DENSIFIED_VERTICES` (edges of
    hundreds of kilometres, thousands of them): the database would build a geometry of
    millions of vertices, for a precision nobody asked for.
    """
    step = STEP_DEGREES if _crs(srid).is_geographic else STEP_METRES
    return max(step, float(shapely.length(shape)) / MAX_DENSIFIED_VERTICES)


def _is_rectangle(shape: shapely.Geometry) -> bool:
    return isinstance(shape, shapely.Polygon) and shape.equals(shapely.envelope(shape))


def in_storage(shape: shapely.Geometry, srid: int, storage_srid: int) -> ColumnElement[Any] | None:
    """`shape` (x/y in EPSG:`srid`) cut to the storage CRS's area of use, in that CRS.

    SQL evaluated once per statement (`geoapi.once`); None when no part of the shape lies in
    the area, so that nothing can match it. Before the transform its edges are cut every
    ~100 m, so that they stay where they were drawn; a rectangle is sent as its four numbers
    (the plain bbox's statement), and any other shape is made valid again after the
    transform (moving vertices can make a valid polygon touch itself, and GEOS refuses to
    compare invalid geometries).
    """
    part = clip(shape, srid, storage_srid)
    if part is None:
        return None
    rectangle = _is_rectangle(part)
    geom: ColumnElement[Any]
    if rectangle:
        geom = func.ST_MakeEnvelope(*part.bounds, srid)
    else:
        # EWKB: the SRID travels inside the bound value. GeoAlchemy2 writes the SRID of
        # ST_GeomFromWKB(wkb, srid) into the SQL text while SQLAlchemy's statement cache
        # takes it for a bound value, so a statement first compiled for one CRS would be
        # reused for the next with that first SRID.
        ewkb = shapely.to_wkb(shapely.set_srid(part, srid), include_srid=True)
        geom = func.ST_GeomFromEWKB(sa.literal(ewkb, sa.LargeBinary()))
    if srid != storage_srid:
        geom = func.ST_Transform(func.ST_Segmentize(geom, densify_step(part, srid)), storage_srid)
        if not rectangle:
            geom = func.ST_MakeValid(geom)
    return once(geom)
