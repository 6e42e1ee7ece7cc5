"""Tile matrix sets (OGC 2D Tile Matrix Set 2.0): Web Mercator and URBIS' Belgian Lambert 72.

Both are quad trees of 256-pixel tiles: each zoom level halves the cell size. A tile is found
by (zoom, column x, row y), rows counted from the top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from urbis_core.errors import NotFound

TILE_PIXELS = 256
# OGC's standardized rendering pixel: 0.28 mm, which turns a cell size into a scale.
PIXEL_METRES = 0.00028
MAX_ZOOM = 24


@dataclass(frozen=True)
class TileMatrixSet:
    id: str
    title: str
    srid: int
    crs_uri: str
    origin: tuple[float, float]  # top-left corner (x, y) in the set's CRS
    cell_size_z0: float  # CRS units per pixel at zoom 0
    width_z0: int = 1  # tiles across at zoom 0
    height_z0: int = 1
    well_known_scale_set: str | None = None
    uri: str | None = None
    # Ground metres per CRS unit where the data lies (Web Mercator stretches by 1/cos(lat)).
    ground_metres_per_unit: float = 1.0

    def cell_size(self, z: int) -> float:
        return self.cell_size_z0 / 2**z

    def ground_pixel(self, z: int) -> float:
        """Metres on the ground of one pixel at zoom `z` (where the data lies)."""
        return self.cell_size(z) * self.ground_metres_per_unit

    def tile_span(self, z: int) -> float:
        return self.cell_size(z) * TILE_PIXELS

    def matrix_size(self, z: int) -> tuple[int, int]:
        return self.width_z0 * 2**z, self.height_z0 * 2**z

    def check(self, z: int, x: int, y: int) -> None:
        """404 with a message for a tile outside the set."""
        if not 0 <= z <= MAX_ZOOM:
            raise NotFound(f"zoom {z} is not in {self.id} (0 to {MAX_ZOOM})")
        width, height = self.matrix_size(z)
        if not (0 <= x < width and 0 <= y < height):
            raise NotFound(
                f"tile {z}/{x}/{y} is outside {self.id}: at zoom {z} columns run "
                f"0-{width - 1} and rows 0-{height - 1}"
            )

    def bounds(self, z: int, x: int, y: int) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) of a tile in the set's CRS."""
        span = self.tile_span(z)
        minx = self.origin[0] + x * span
        maxy = self.origin[1] - y * span
        return minx, maxy - span, minx + span, maxy

    def tiles_covering(
        self, z: int, bbox: tuple[float, float, float, float]
    ) -> tuple[range, range]:
        """The columns and rows of the tiles that touch a box (in the set's CRS)."""
        span = self.tile_span(z)
        width, height = self.matrix_size(z)
        first_x = max(0, math.floor((bbox[0] - self.origin[0]) / span))
        last_x = min(width - 1, math.floor((bbox[2] - self.origin[0]) / span))
        first_y = max(0, math.floor((self.origin[1] - bbox[3]) / span))
        last_y = min(height - 1, math.floor((self.origin[1] - bbox[1]) / span))
        return range(first_x, last_x + 1), range(first_y, last_y + 1)

    def limits(
        self, bbox: tuple[float, float, float, float], minzoom: int, maxzoom: int
    ) -> list[dict[str, Any]]:
        """A tileset's `tileMatrixSetLimits`: per zoom, the rows and columns that touch `bbox`."""
        limits = []
        for z in range(minzoom, maxzoom + 1):
            cols, rows = self.tiles_covering(z, bbox)
            limits.append(
                {
                    "tileMatrix": str(z),
                    "minTileRow": rows.start,
                    "maxTileRow": rows.stop - 1,
                    "minTileCol": cols.start,
                    "maxTileCol": cols.stop - 1,
                }
            )
        return limits

    def description(self) -> dict[str, Any]:
        """The TileMatrixSet document (OGC 2DTMS 2.0 JSON)."""
        matrices = []
        for z in range(MAX_ZOOM + 1):
            width, height = self.matrix_size(z)
            matrices.append(
                {
                    "id": str(z),
                    "scaleDenominator": self.cell_size(z) / PIXEL_METRES,
                    "cellSize": self.cell_size(z),
                    "cornerOfOrigin": "topLeft",
                    "pointOfOrigin": list(self.origin),
                    "tileWidth": TILE_PIXELS,
                    "tileHeight": TILE_PIXELS,
                    "matrixWidth": width,
                    "matrixHeight": height,
                }
            )
        doc: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "crs": self.crs_uri,
            "orderedAxes": ["E", "N"],
            "tileMatrices": matrices,
        }
        if self.uri:
            doc["uri"] = self.uri
        if self.well_known_scale_set:
            doc["wellKnownScaleSet"] = self.well_known_scale_set
        return doc


_MERCATOR_HALF = 20037508.3427892  # half the equator in Web Mercator metres

WEB_MERCATOR_QUAD = TileMatrixSet(
    id="WebMercatorQuad",
    title="Google Maps Compatible for the World",
    srid=3857,
    crs_uri="http://www.opengis.net/def/crs/EPSG/0/3857",
    origin=(-_MERCATOR_HALF, _MERCATOR_HALF),
    cell_size_z0=2 * _MERCATOR_HALF / TILE_PIXELS,
    well_known_scale_set="http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
    uri="http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad",
    ground_metres_per_unit=math.cos(math.radians(50.85)),  # Brussels' latitude
)

# Belgian Lambert 72 as URBIS' own WMTS serves it (GeoWebCache matrix set "EPSG:31370",
# matrices "EPSG:31370:0" to "EPSG:31370:15"): one 256-pixel tile at zoom 0 over the square
# x 16,478.795-301,307.738, y 19,244.928-304,073.871 (284,828.943 m, so 1,112.613 m cells),
# each zoom halving them. Our zoom z is URBIS' "EPSG:31370:z", tile for tile; we go on halving
# past its last zoom (15, 3.4 cm cells). Values as CIRB's own map code gives them for the
# service (OpenLayers `serverResolutions` and `maxExtent`, whose top-left is the WMTS origin).
BELGIAN_LAMBERT_72 = TileMatrixSet(
    id="BelgianLambert72",
    title="Belgian Lambert 72 (EPSG:31370), the grid of URBIS' WMTS (matrix set EPSG:31370)",
    srid=31370,
    crs_uri="http://www.opengis.net/def/crs/EPSG/0/31370",
    origin=(16_478.795, 304_073.871),
    cell_size_z0=1_112.61305859375,
)

TILE_MATRIX_SETS = {t.id: t for t in (WEB_MERCATOR_QUAD, BELGIAN_LAMBERT_72)}


def get_tms(tms_id: str) -> TileMatrixSet:
    try:
        return TILE_MATRIX_SETS[tms_id]
    except KeyError:
        raise NotFound(
            f"no tile matrix set '{tms_id}'; /tileMatrixSets lists {', '.join(TILE_MATRIX_SETS)}"
        ) from None
