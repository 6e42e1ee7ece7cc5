"""Numbers out of a raster layer: the values at a point, statistics over polygons.

Plain functions over a GeoTIFF path (the sync's COGs, in EPSG:31370), called by the API's
point, stats and zonal routes.

Which cells a polygon counts: those whose centre is inside it, rasterio.mask's rule
(`rasterio.features.geometry_mask` with `all_touched=False`: GDAL's rasterizer), the same in
`band_stats` and `zonal_stats`. Of those, cells equal to the band's nodata (or masked by the
file) are the `nodata_count`; the others are the `count` the statistics are computed over.
Statistics of no cells are None, never 0. `std` is the population standard deviation (numpy's
default, as rasterstats); percentiles use numpy's linear interpolation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import rasterio
import shapely
from pyproj import Transformer
from rasterio.features import geometry_mask, rasterize
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from urbis_core.errors import InvalidParameter

LAYER_SRID = 31370
# Features taken from the iterator at once in `zonal_stats`: the memory bound. Within a batch,
# neighbouring features share one read of the raster.
ZONAL_BATCH = 4096
# A group of neighbouring features is read in one window when it covers at most this many
# cells (a float32 band: 16 MB); a larger group is read feature by feature.
GROUP_CELLS = 4_000_000
# Features are grouped by the raster block of this many cells across their window's corner.
GROUP_SPAN = 512


def values_at(path: str, x: float, y: float, srid: int = LAYER_SRID) -> list[float | None]:
    """Every band's value at the point (x, y) in EPSG:`srid`: None where nodata or outside."""
    with rasterio.open(path) as src:
        px, py = _transformer(srid, src.crs)(x, y)
        if not (math.isfinite(px) and math.isfinite(py)):
            return [None] * src.count
        row, col = src.index(px, py)
        if not (0 <= row < src.height and 0 <= col < src.width):
            return [None] * src.count
        cell = src.read(window=Window(col, row, 1, 1), masked=True)
    empty = np.ma.getmaskarray(cell)
    return [None if empty[b, 0, 0] else float(cell.data[b, 0, 0]) for b in range(cell.shape[0])]


def band_stats(
    path: str,
    geometry: BaseGeometry,
    srid: int = LAYER_SRID,
    percentiles: Sequence[float] = (),
    *,
    band: int = 1,
) -> dict[str, Any]:
    """Statistics of one band over the cells whose centre is inside a (multi)polygon."""
    _check_percentiles(percentiles)
    with rasterio.open(path) as src:
        _check_band(src, band)
        geometry = _to_raster_crs(geometry, srid, src.crs)
        return _stats_of(src, band, geometry, percentiles)


def zonal_stats(
    path: str,
    features: Iterable[tuple[Any, BaseGeometry]],
    percentiles: Sequence[float] = (),
    *,
    band: int = 1,
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """(key, statistics) for each (key, geometry in EPSG:31370), in the features' order.

    Reads only the features' windows, a batch of `ZONAL_BATCH` features at a time; neighbours
    in a batch share one read.
    """
    _check_percentiles(percentiles)
    with rasterio.open(path) as src:
        _check_band(src, band)
        to_raster = _transformer(LAYER_SRID, src.crs) if _differs(src.crs) else None
        batch: list[tuple[Any, BaseGeometry]] = []
        for key, geometry in features:
            if to_raster is not None:
                geometry = shapely.transform(geometry, _vectorized(to_raster))
            batch.append((key, geometry))
            if len(batch) == ZONAL_BATCH:
                yield from _zonal_batch(src, band, batch, percentiles)
                batch = []
        if batch:
            yield from _zonal_batch(src, band, batch, percentiles)


def _zonal_batch(
    src: Any, band: int, batch: list[tuple[Any, BaseGeometry]], percentiles: Sequence[float]
) -> Iterator[tuple[Any, dict[str, Any]]]:
    windows = [_window(src, geometry) for _, geometry in batch]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, window in enumerate(windows):
        if window is not None:
            cell = (window.row_off // GROUP_SPAN, window.col_off // GROUP_SPAN)
            groups.setdefault(cell, []).append(i)
    results: list[dict[str, Any] | None] = [None] * len(batch)
    for members in groups.values():
        spans = [_span(windows[i]) for i in members]
        row0, col0 = min(s[0] for s in spans), min(s[2] for s in spans)
        row1, col1 = max(s[1] for s in spans), max(s[3] for s in spans)
        if (row1 - row0) * (col1 - col0) > GROUP_CELLS:  # far-flung or large: one by one
            for i in members:
                results[i] = _stats_of(src, band, batch[i][1], percentiles, window=windows[i])
            continue
        block_window = Window(col0, row0, col1 - col0, row1 - row0)
        block = src.read(band, window=block_window, masked=True)
        empty = np.ma.getmaskarray(block)
        for layer in _layers(members, spans, row0, col0, block.shape):
            # One rasterize call for features whose windows do not overlap: each burns its
            # number into its own cells, as it would alone (same grid, same centre rule).
            labels = rasterize(
                [(batch[i][1], n + 1) for n, (i, _) in enumerate(layer)],
                out_shape=block.shape,
                transform=src.window_transform(block_window),
                all_touched=False,
                fill=0,
                dtype="int32",
            )
            for n, (i, (r0, r1, c0, c1)) in enumerate(layer):
                r0, r1, c0, c1 = r0 - row0, r1 - row0, c0 - col0, c1 - col0
                inside = labels[r0:r1, c0:c1] == n + 1
                hole = empty[r0:r1, c0:c1]
                values = block.data[r0:r1, c0:c1][inside & ~hole]
                results[i] = _summary(values, int(np.count_nonzero(inside & hole)), percentiles)
    for (key, _), result in zip(batch, results, strict=True):
        yield key, result if result is not None else _summary(np.empty(0), 0, percentiles)


def _span(window: Window) -> tuple[int, int, int, int]:
    """(first row, row after the last, first column, column after the last)."""
    return (
        window.row_off,
        window.row_off + window.height,
        window.col_off,
        window.col_off + window.width,
    )


def _layers(
    members: list[int],
    spans: list[tuple[int, int, int, int]],
    row0: int,
    col0: int,
    shape: tuple[int, ...],
) -> Iterator[list[tuple[int, tuple[int, int, int, int]]]]:
    """The members split into layers of features whose windows do not overlap (first fit)."""
    taken: list[np.ndarray] = []
    layers: list[list[tuple[int, tuple[int, int, int, int]]]] = []
    for i, span in zip(members, spans, strict=True):
        r0, r1, c0, c1 = span[0] - row0, span[1] - row0, span[2] - col0, span[3] - col0
        free = next((k for k, o in enumerate(taken) if not o[r0:r1, c0:c1].any()), None)
        if free is None:
            free = len(taken)
            taken.append(np.zeros(shape, dtype=bool))
            layers.append([])
        taken[free][r0:r1, c0:c1] = True
        layers[free].append((i, span))
    yield from layers


def _stats_of(
    src: Any,
    band: int,
    geometry: BaseGeometry,
    percentiles: Sequence[float],
    *,
    window: Window | None = None,
) -> dict[str, Any]:
    window = window or _window(src, geometry)
    if window is None:
        return _summary(np.empty(0), 0, percentiles)
    data = src.read(band, window=window, masked=True)
    inside = ~geometry_mask(
        [geometry],
        out_shape=(window.height, window.width),
        transform=src.window_transform(window),
        all_touched=False,
    )
    nodata = np.ma.getmaskarray(data)
    values = np.asarray(data.data[inside & ~nodata], dtype=np.float64)
    return _summary(values, int(np.count_nonzero(inside & nodata)), percentiles)


def _summary(values: np.ndarray, nodata_count: int, percentiles: Sequence[float]) -> dict[str, Any]:
    if values.size == 0:
        return {
            "count": 0,
            "nodata_count": nodata_count,
            "min": None,
            "max": None,
            "mean": None,
            "std": None,
            "percentiles": {p: None for p in percentiles},
        }
    values = np.sort(values.astype(np.float64, copy=False))
    return {
        "count": int(values.size),
        "nodata_count": nodata_count,
        "min": float(values[0]),
        "max": float(values[-1]),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "percentiles": {p: _percentile(values, p) for p in percentiles},
    }


def _percentile(ordered: np.ndarray, p: float) -> float:
    """The default (linear) percentile of numpy over sorted values, without its call overhead."""
    position = p / 100 * (ordered.size - 1)
    low = math.floor(position)
    high = min(low + 1, ordered.size - 1)
    t = position - low
    a, b = float(ordered[low]), float(ordered[high])
    # numpy's lerp: from the nearer end, so that t = 1 gives b exactly.
    return a + (b - a) * t if t < 0.5 else b - (b - a) * (1 - t)


def _window(src: Any, geometry: BaseGeometry) -> Window | None:
    """The whole cells under the geometry's bounds, clipped to the raster (None: off it)."""
    if geometry.is_empty:
        return None
    minx, miny, maxx, maxy = geometry.bounds
    inverse = ~src.transform
    cols, rows = zip(
        *(inverse @ corner for corner in ((minx, miny), (minx, maxy), (maxx, miny), (maxx, maxy))),
        strict=True,
    )
    col0, col1 = max(0, math.floor(min(cols))), min(src.width, math.ceil(max(cols)))
    row0, row1 = max(0, math.floor(min(rows))), min(src.height, math.ceil(max(rows)))
    if col0 >= col1 or row0 >= row1:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


def _check_percentiles(percentiles: Sequence[float]) -> None:
    for p in percentiles:
        if not (isinstance(p, int | float) and 0 <= p <= 100):
            raise InvalidParameter("p", f"a percentile is a number from 0 to 100, not {p!r}")


def _check_band(src: Any, band: int) -> None:
    if not 1 <= band <= src.count:
        raise InvalidParameter("band", f"band {band} is not in the raster (1 to {src.count})")


def _differs(crs: Any) -> bool:
    return crs.to_epsg() != LAYER_SRID


def _transformer(srid: int, crs: Any) -> Callable[..., tuple[float, float]]:
    try:
        return Transformer.from_crs(f"EPSG:{srid}", crs.to_wkt(), always_xy=True).transform
    except Exception as e:  # pyproj's CRSError, and its other complaints about a code
        raise InvalidParameter("crs", f"EPSG:{srid} is not a CRS pyproj knows: {e}") from None


def _vectorized(transform: Callable[..., tuple[float, float]]) -> Callable[[Any], Any]:
    def apply(coords: np.ndarray) -> np.ndarray:
        xs, ys = transform(coords[:, 0], coords[:, 1])
        return np.column_stack([xs, ys])

    return apply


def _to_raster_crs(geometry: BaseGeometry, srid: int, crs: Any) -> BaseGeometry:
    if crs.to_epsg() == srid:
        return geometry
    return shapely.transform(geometry, _vectorized(_transformer(srid, crs)))
