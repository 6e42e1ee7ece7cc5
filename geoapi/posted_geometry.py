"""A query geometry posted as GeoJSON, read and checked before it reaches the database.

A body may be megabytes of JSON: decoding it holds the interpreter for a few hundred
milliseconds, which no worker thread can share, so `parse_geometry` runs in a worker process
(geoapi.offload). What a geometry may hold is checked on the way, before shapely builds it:
its nesting (the lists of a MultiPolygon are 4 deep), its vertices (a query geometry of
hundreds of thousands of them would keep the database busy for minutes), its numbers (finite,
in range for the CRS), and then its validity.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import shapely
import shapely.geometry

from geoapi.crs import PROJECTED_LIMIT_M, OutputCrs
from urbis_core.errors import InvalidParameter

LISTS_PER_VERTEX = 2  # a generous bound: one list per vertex, a few per ring and polygon
GEOMETRY_DEPTH = {
    "Point": 1,
    "MultiPoint": 2,
    "LineString": 2,
    "MultiLineString": 3,
    "Polygon": 3,
    "MultiPolygon": 4,
}  # nesting of lists down to the numbers


def out_of_range(first: float, second: float, crs: OutputCrs) -> tuple[int, str] | None:
    """Which of the two values of a position (in `crs` axis order) is out of range, and why."""
    if crs.geographic:
        lon_at, lat_at = (1, 0) if crs.lat_first else (0, 1)
        lon, lat = (first, second)[lon_at], (first, second)[lat_at]
        if not -180 <= lon <= 180:
            order = " (EPSG:4326 takes latitude first)" if crs.lat_first else ""
            return lon_at, f"longitude {lon} is not between -180 and 180{order}"
        if not -90 <= lat <= 90:
            order = "" if crs.lat_first else " (CRS84 takes longitude first)"
            return lat_at, f"latitude {lat} is not between -90 and 90{order}"
        return None
    for at, value in enumerate((first, second)):
        if abs(value) > PROJECTED_LIMIT_M:
            return at, (
                f"{value} m is out of range; projected coordinates lie within "
                f"±{PROJECTED_LIMIT_M:,.0f} m"
            )
    return None


def _positions(kind: str, coordinates: Any, depth: int) -> Iterator[Any]:
    if depth == 1:
        yield coordinates
        return
    if not isinstance(coordinates, list):
        raise InvalidParameter(
            "body",
            f"the 'coordinates' of a {kind} are lists nested "
            f"{GEOMETRY_DEPTH[kind]} deep down to the numbers; found "
            f"{json.dumps(coordinates)[:60]}",
        )
    for item in coordinates:
        yield from _positions(kind, item, depth - 1)


def _check_coordinates(kind: str, coordinates: Any, crs: OutputCrs, max_vertices: int) -> None:
    count = 0
    for position in _positions(kind, coordinates, GEOMETRY_DEPTH[kind]):
        if count == max_vertices:
            raise InvalidParameter(
                "body",
                f"the {kind} has more than {max_vertices:,} "
                "vertices, the most a query geometry may have "
                "(URBIS_MAX_QUERY_VERTICES); simplify it",
            )
        if (
            not isinstance(position, list)
            or len(position) not in (2, 3)
            or not all(isinstance(n, int | float) and not isinstance(n, bool) for n in position)
        ):
            raise InvalidParameter(
                "body",
                "each position must be a list of 2 (or 3) numbers; "
                f"found {json.dumps(position)[:60]}",
            )
        if not all(math.isfinite(n) for n in position):
            raise InvalidParameter("body", f"position {position} has a number that is not finite")
        problem = out_of_range(position[0], position[1], crs)
        if problem is not None:
            raise InvalidParameter("body", f"position {position}: {problem[1]}")
        count += 1
    if count == 0:
        raise InvalidParameter("body", f"the {kind} is empty")


def check_lists(raw: bytes, max_vertices: int) -> None:
    """Refuse a body with far more vertices than allowed, before it is decoded.

    Even before it is sent to a worker process: a vertex is a JSON list, and counting them
    takes milliseconds.
    """
    lists = raw.count(b"[")
    if lists > LISTS_PER_VERTEX * max_vertices + 100:
        raise InvalidParameter(
            "body",
            f"it holds {lists:,} JSON lists: more than a geometry "
            f"of at most {max_vertices:,} vertices "
            "(URBIS_MAX_QUERY_VERTICES) has; simplify it",
        )


def parse_geometry(raw: bytes, crs: OutputCrs, max_vertices: int) -> shapely.Geometry:
    """The GeoJSON geometry (or a Feature's) of a body, with longitude/easting first.

    Checked to be well-formed, of at most `max_vertices`, in range for `crs`, non-empty and
    valid (OGC simple features). Its nesting and size are checked before shapely builds it.
    Its size was bounded while it was read (geoapi.request_limits, URBIS_MAX_BODY_BYTES), and
    `check_lists` has refused it when it plainly holds too many vertices (before the body is
    sent here). CPU-bound for large bodies: run it off the event loop (geoapi.offload).
    """
    example = '{"type": "Polygon", "coordinates": [[[4.34, 50.83], [4.35, 50.83], ...]]}'
    if not raw.strip():
        raise InvalidParameter("body", f"empty; send a GeoJSON geometry, e.g. {example}")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidParameter("body", f"not JSON ({exc})") from None
    except RecursionError:
        raise InvalidParameter(
            "body",
            "JSON nested too deeply for a GeoJSON geometry (a "
            "MultiPolygon's coordinates are 4 lists deep)",
        ) from None
    if isinstance(doc, dict) and doc.get("type") == "Feature":
        doc = doc.get("geometry")
        if not isinstance(doc, dict):
            raise InvalidParameter("body", "the Feature has no geometry")
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("type"), str)
        or doc["type"] not in GEOMETRY_DEPTH
    ):
        kind = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        raise InvalidParameter(
            "body",
            f"expected a GeoJSON geometry of type "
            f"{', '.join(GEOMETRY_DEPTH)} (or a Feature with one); "
            f"got {json.dumps(kind)[:60]}",
        )
    if "coordinates" not in doc:
        raise InvalidParameter("body", f"the {doc['type']} has no 'coordinates'")
    _check_coordinates(doc["type"], doc["coordinates"], crs, max_vertices)
    try:
        geometry = shapely.force_2d(shapely.geometry.shape(doc))
    except (ValueError, TypeError, IndexError, shapely.errors.GEOSException) as exc:
        raise InvalidParameter("body", f"not a valid {doc['type']}: {exc}") from None
    if geometry.is_empty:
        raise InvalidParameter("body", f"the {doc['type']} is empty")
    if not geometry.is_valid:
        raise InvalidParameter(
            "body", f"the {doc['type']} is not valid: {shapely.is_valid_reason(geometry)}"
        )
    if crs.lat_first:
        geometry = shapely.transform(geometry, lambda xy: xy[:, ::-1])
    return geometry
