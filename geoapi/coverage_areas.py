"""The area a coverage's statistics are taken over, and the percentiles asked for.

An area comes from the request (a posted GeoJSON geometry in its `crs`) or from a stored
feature (`<collection>/<key>`, read from PostGIS in EPSG:31370). Either way only polygons are
taken: the statistics count the cells whose centre lies inside the area
(urbis_core.raster_values), and a point or a line holds no area, so its answer would always be
"no cells" whatever the raster says. That is refused as a 400 pointing to /point (a point's
values), rather than answered with a count of 0 that reads like "no data here".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from pyproj import Transformer
from sqlalchemy import ColumnElement, func
from sqlalchemy.ext.asyncio import AsyncConnection

from geoapi.area_of_use import clip, densify_step
from geoapi.features import key_condition
from urbis_core.catalog import get_layer
from urbis_core.coverages import CoverageEntry
from urbis_core.errors import InvalidParameter, NotFound, TooLarge
from urbis_core.raster_values import LAYER_SRID

MAX_PERCENTILES = 100
NOT_AN_AREA = (
    "statistics are taken over the cells whose centre lies inside an area, and a {kind} has "
    "none; send a Polygon or MultiPolygon, or ask /coverages/{coverage}/point for the values "
    "at a point"
)


def parse_percentiles(raw: str | None) -> list[float]:
    """`p=10,50,90`: numbers from 0 to 100, in the order given, each once."""
    if raw is None or not raw.strip():
        return []
    found: list[float] = []
    for item in raw.split(","):
        try:
            value = float(item.strip())
        except ValueError:
            raise InvalidParameter(
                "p", f"'{item.strip()}' is not a number; give percentiles as e.g. p=10,50,90"
            ) from None
        if not (math.isfinite(value) and 0 <= value <= 100):
            raise InvalidParameter("p", f"{item.strip()} is not a percentile from 0 to 100")
        if value not in found:
            found.append(value)
    if len(found) > MAX_PERCENTILES:
        raise InvalidParameter("p", f"at most {MAX_PERCENTILES} percentiles, not {len(found)}")
    return found


def percentile_key(value: float) -> str:
    """A percentile as the answer names it: 10 for 10.0, 12.5 as it is."""
    return str(int(value)) if value.is_integer() else repr(value)


def check_area(geometry: shapely.Geometry, parameter: str, coverage: str) -> None:
    if shapely.get_dimensions(geometry) < 2:
        raise InvalidParameter(
            parameter, NOT_AN_AREA.format(kind=geometry.geom_type, coverage=coverage)
        )


def polygonal(geometry: shapely.Geometry) -> shapely.Geometry:
    """The polygons of a geometry (a collection's others dropped); empty when it has none."""
    parts = shapely.get_parts(geometry)
    polygons = [p for p in parts if shapely.get_dimensions(p) == 2 and not p.is_empty]
    return shapely.union_all(polygons) if polygons else shapely.Polygon()


def in_raster_crs(geometry: shapely.Geometry, srid: int) -> shapely.Geometry:
    """A posted area (x/y in EPSG:`srid`) as polygons in EPSG:31370, the coverages' CRS.

    Cut to EPSG:31370's area of use first (geoapi.area_of_use), so that a polygon reaching far
    beyond Belgium transforms cleanly; empty when no part of it lies there. Its edges are cut
    every ~100 m before the transform, so that they stay where they were drawn, and the result
    is made valid again (moving vertices can make a ring touch itself).
    """
    part = clip(geometry, srid, LAYER_SRID)
    if part is None:
        return shapely.Polygon()
    if srid == LAYER_SRID:
        return polygonal(part)
    transform = Transformer.from_crs(srid, LAYER_SRID, always_xy=True).transform
    dense = shapely.segmentize(part, densify_step(part, srid))

    def move(xy: np.ndarray) -> np.ndarray:
        xs, ys = transform(xy[:, 0], xy[:, 1])
        return np.column_stack([xs, ys])

    return polygonal(shapely.make_valid(shapely.transform(dense, move)))


def cells_under(entry: CoverageEntry, area: shapely.Geometry) -> int:
    """How many cells band_stats reads for the area: its bounds' whole cells on the grid."""
    if area.is_empty:
        return 0
    minx, miny, maxx, maxy = area.bounds
    left, _, _, top = entry.bbox_native
    resx, resy = entry.resolution
    col0 = max(0, math.floor((minx - left) / resx))
    col1 = min(entry.width, math.ceil((maxx - left) / resx))
    row0 = max(0, math.floor((top - maxy) / resy))
    row1 = min(entry.height, math.ceil((top - miny) / resy))
    return max(0, col1 - col0) * max(0, row1 - row0)


def check_cells(entry: CoverageEntry, area: shapely.Geometry, most: int) -> None:
    """A 413 when the area (in EPSG:31370) would have more than `most` cells read."""
    cells = cells_under(entry, area)
    if cells > most:
        raise TooLarge(
            f"the area covers {cells:,} cells of '{entry.id}' ({entry.resolution[0]:g} m), more "
            f"than the {most:,} one request may read (URBIS_MAX_STATS_CELLS); ask for a "
            f"smaller area, or for each feature of a collection with POST "
            f"/coverages/{entry.id}/zonal"
        )


async def stored_area(conn: AsyncConnection, feature: str, coverage: str) -> shapely.Geometry:
    """The geometry of the stored feature `<collection>/<key>`, in EPSG:31370.

    A 404 for an unknown collection or key; a 400 when the feature is a point or a line.
    """
    source_id, slash, key = feature.partition("/")
    if not slash or not source_id or not key:
        raise InvalidParameter(
            "feature", f"'{feature}' is not <collection>/<key>, e.g. municipalities/21013"
        )
    layer = await get_layer(conn, source_id)
    table = layer.table()
    condition = key_condition(layer, table, key)
    row = None
    if condition is not None:
        geom: ColumnElement[Any] = table.c.geom
        if layer.srid != LAYER_SRID:
            geom = func.ST_Transform(geom, LAYER_SRID)
        row = (await conn.execute(sa.select(func.ST_AsBinary(geom)).where(condition))).first()
    if row is None or row[0] is None:
        raise NotFound(f"no feature '{key}' in collection '{layer.id}'")
    geometry = shapely.from_wkb(bytes(row[0]))
    check_area(geometry, "feature", coverage)
    return polygonal(geometry)
