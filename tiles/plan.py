"""Which tiles show some layers: per zoom, the boxes (in the grid's CRS) whose tiles count.

Each layer drawn at a zoom (its tile settings' zooms) contributes its extent grown by the MVT
buffer, whose features a tile also carries; within a CRS84 bbox when one is given. Used by the
seeder (every tile of an archive) and the low-zoom keeper (the tiles drawn ahead).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from pyproj import Transformer

from tiles.keys import bbox_in
from tiles.mvt import BUFFER, EXTENT
from tiles.tilejson import crs84_extent
from tiles.tms import WEB_MERCATOR_QUAD, TileMatrixSet
from urbis_core.catalog import LayerEntry

Box = tuple[float, float, float, float]
MERCATOR_MAX_LAT = 85.05112878  # where Web Mercator ends


@lru_cache(maxsize=4)
def _from_crs84(srid: int) -> Transformer:
    return Transformer.from_crs("OGC:CRS84", srid, always_xy=True)


def crs84_bbox_in(tms: TileMatrixSet, bbox: Box) -> Box:
    """A lon/lat box in the set's CRS (edges densified, so the result still covers it)."""
    west, south, east, north = bbox
    if tms.srid == WEB_MERCATOR_QUAD.srid:  # the poles are infinitely far in Web Mercator
        south, north = max(south, -MERCATOR_MAX_LAT), min(north, MERCATOR_MAX_LAT)
    minx, miny, maxx, maxy = _from_crs84(tms.srid).transform_bounds(
        west, south, east, north, densify_pts=21
    )
    return minx, miny, maxx, maxy


def _intersection(a: Box, b: Box) -> Box | None:
    box = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return box if box[0] <= box[2] and box[1] <= box[3] else None


def _grown(box: Box, margin: float) -> Box:
    return box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin


def _merged(spans: list[tuple[int, int]]) -> list[range]:
    """Column ranges [start, stop) joined where they touch or overlap."""
    merged: list[list[int]] = []
    for start, stop in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return [range(start, stop) for start, stop in merged]


@dataclass(frozen=True)
class TilePlan:
    """The tiles to render: per zoom, the boxes (in the set's CRS) whose tiles count."""

    tms: TileMatrixSet
    layers: list[LayerEntry]
    boxes: dict[int, list[Box]]
    bounds: Box | None  # CRS84, for the archive's metadata

    def rows(self, z: int) -> Iterator[tuple[int, list[range]]]:
        """(row, column ranges) of zoom `z`, top to bottom; overlapping boxes count once."""
        rects = [self.tms.tiles_covering(z, box) for box in self.boxes.get(z, [])]
        rects = [(cols, rows) for cols, rows in rects if cols and rows]
        if not rects:
            return
        for y in range(min(r.start for _, r in rects), max(r.stop for _, r in rects)):
            spans = [(c.start, c.stop) for c, r in rects if y in r]
            if spans:
                yield y, _merged(spans)

    def tiles(self, z: int) -> Iterator[tuple[int, int]]:
        for y, spans in self.rows(z):
            for cols in spans:
                for x in cols:
                    yield x, y

    def count(self, z: int) -> int:
        return sum(len(cols) for _, spans in self.rows(z) for cols in spans)

    @property
    def zooms(self) -> list[int]:
        return sorted(self.boxes)

    @property
    def total(self) -> int:
        return sum(self.count(z) for z in self.zooms)


def plan_for(
    tms: TileMatrixSet, zooms: Iterable[int], layers: list[LayerEntry], bbox: Box | None = None
) -> TilePlan:
    """Per zoom, each layer drawn there contributes its extent (grown by the MVT buffer).

    Within `bbox` (CRS84) when given.
    """
    area = crs84_bbox_in(tms, bbox) if bbox else None
    boxes: dict[int, list[Box]] = {}
    for z in zooms:
        margin = tms.tile_span(z) * BUFFER / EXTENT
        for layer in layers:
            settings = layer.tiles
            if not layer.bbox_native or not settings.minzoom <= z <= settings.maxzoom:
                continue
            box: Box | None = _grown(bbox_in(tms, _box(layer.bbox_native)), margin)
            if area is not None and box is not None:
                box = _intersection(box, area)
            if box is not None:
                boxes.setdefault(z, []).append(box)
    return TilePlan(tms, layers, boxes, _crs84_bounds(layers, bbox))


def _box(values: Sequence[float]) -> Box:
    return values[0], values[1], values[2], values[3]


def _crs84_bounds(layers: list[LayerEntry], bbox: Box | None) -> Box | None:
    bounds = crs84_extent(layers)
    if bounds is None:
        return bbox
    return _intersection(bounds, bbox) if bbox else bounds
