"""Raster tiles: one tile of a Cloud-Optimized GeoTIFF on one of our tile matrix sets.

The tile's window is read through rasterio's `WarpedVRT` straight into the tile's CRS, extent
and size, from the coarsest overview still as fine as the tile (so a zoom-8 tile of a city-wide
orthophoto reads a few overview blocks, not the whole file). Then either the values themselves
(`tif`: float32 with nodata, for clients that want numbers) or a picture (PNG, WebP): RGB
imagery as it is, a single band rescaled through a colour ramp, optionally hillshaded.
Transparent where the source is nodata or absent.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import rasterio
from PIL import Image
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_bounds
from rasterio.vrt import WarpedVRT

from tiles.tms import TILE_PIXELS, TileMatrixSet
from urbis_core.errors import InvalidParameter
from urbis_core.ramps import RAMPS

TileFormat = Literal["png", "webp", "tif"]
FORMATS: tuple[str, ...] = ("png", "webp", "tif")


@dataclass(frozen=True)
class RasterStyle:
    """How a tile is drawn.

    `rescale` maps (min, max) of a single band to the ramp's ends; None takes the band's
    statistics from the file (the caller should pass the catalog's numbers instead: the same
    for every tile, so tiles join). `resampling` is "bilinear" for continuous data and
    "nearest" for categories. `hillshade` shades a single band (terrain) under its ramp.
    """

    rescale: tuple[float, float] | None = None
    colormap: str = "greys"
    resampling: Literal["bilinear", "nearest"] = "bilinear"
    hillshade: bool = False
    # Sun for the hillshade, degrees (GDAL's defaults: from the north-west, 45 degrees up).
    azimuth: float = 315.0
    altitude: float = 45.0

    def __post_init__(self) -> None:
        if self.colormap not in RAMPS:
            raise InvalidParameter(
                "colormap", f"unknown colour ramp '{self.colormap}'; one of {', '.join(RAMPS)}"
            )
        if self.rescale is not None:
            low, high = self.rescale
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise InvalidParameter("rescale", f"two finite numbers min < max, not {low},{high}")
        if self.resampling not in ("bilinear", "nearest"):
            raise InvalidParameter("resampling", f"bilinear or nearest, not '{self.resampling}'")


def tile_grid(tms: TileMatrixSet, z: int, x: int, y: int, margin: int = 0) -> dict[str, Any]:
    """The WarpedVRT options putting a tile (with `margin` pixels around it) on its grid."""
    minx, miny, maxx, maxy = tms.bounds(z, x, y)
    pad = margin * tms.cell_size(z)
    size = TILE_PIXELS + 2 * margin
    return {
        "crs": _crs(tms.srid),
        "transform": from_bounds(minx - pad, miny - pad, maxx + pad, maxy + pad, size, size),
        "width": size,
        "height": size,
    }


_TMS_CRS: dict[int, CRS] = {}


def _crs(srid: int) -> CRS:
    """The CRS object of an EPSG code, made once: GDAL parses it from its database each time."""
    crs = _TMS_CRS.get(srid)
    if crs is None:
        crs = _TMS_CRS[srid] = CRS.from_epsg(srid)
    return crs


@functools.lru_cache(maxsize=32)
def _transformer(from_wkt: str, to_wkt: str) -> Transformer:
    """A pyproj transformer, made once per pair: making one takes PROJ some 20 ms."""
    return Transformer.from_crs(
        ProjCRS.from_wkt(from_wkt), ProjCRS.from_wkt(to_wkt), always_xy=True
    )


class RasterSource:
    """An opened raster, and what each of its tiles asks of it, worked out once.

    Its extent in each tile matrix set's CRS, and its overviews, opened as tiles need them.
    Not for two threads at once (a rasterio dataset is not): tiles.raster_datasets lends
    each to one render at a time.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.dataset = rasterio.open(path)
        src = self.dataset
        self.crs = src.crs
        self.nodata = src.nodata
        self.factors: list[int] = src.overviews(1)
        self.native = min(abs(src.res[0]), abs(src.res[1]))
        # A source without nodata (imagery) gets an alpha band, so "outside" shows.
        self.add_alpha = src.nodata is None and not _has_alpha(src)
        self.bands = _data_bands(src)
        self._levels: dict[int, Any] = {}
        self._extents: dict[int, tuple[float, float, float, float]] = {}
        self._wkt = src.crs.to_wkt()

    def level(self, level: int | None) -> Any:
        """The dataset at an overview level (None: full resolution), opened once."""
        if level is None:
            return self.dataset
        opened = self._levels.get(level)
        if opened is None:
            opened = self._levels[level] = rasterio.open(self.path, overview_level=level)
        return opened

    def extent_in(self, srid: int) -> tuple[float, float, float, float]:
        """The raster's bounds in a CRS (edges densified, so the box covers it)."""
        box = self._extents.get(srid)
        if box is None:
            left, bottom, right, top = self.dataset.bounds
            box = self._extents[srid] = _transformer(
                self._wkt, _crs(srid).to_wkt()
            ).transform_bounds(left, bottom, right, top, densify_pts=21)
        return box

    def box_from(
        self, srid: int, box: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float]:
        """A box of another CRS in the raster's (edges densified)."""
        left, bottom, right, top = box
        result: tuple[float, float, float, float] = _transformer(
            _crs(srid).to_wkt(), self._wkt
        ).transform_bounds(left, bottom, right, top, densify_pts=21)
        return result

    def close(self) -> None:
        for opened in (*self._levels.values(), self.dataset):
            opened.close()
        self._levels.clear()

    def __enter__(self) -> RasterSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def meets(source: RasterSource, tms: TileMatrixSet, z: int, x: int, y: int) -> bool:
    """Whether the tile meets the raster's extent (in the tile's CRS, edges densified)."""
    minx, miny, maxx, maxy = tms.bounds(z, x, y)
    left, bottom, right, top = source.extent_in(tms.srid)
    return minx < right and maxx > left and miny < top and maxy > bottom


def overview_level(source: RasterSource, tms: TileMatrixSet, z: int, x: int, y: int) -> int | None:
    """The coarsest overview whose cells are still no larger than the tile's (None: full size).

    gdalwarp's own rule (-ovr AUTO): a WarpedVRT given a coarse target transform would otherwise
    read every full-resolution pixel under the tile.
    """
    if not source.factors:
        return None
    # The tile's cell size measured in the source's CRS, across the tile's middle.
    left, bottom, right, top = source.box_from(tms.srid, tms.bounds(z, x, y))
    needed = min(right - left, top - bottom) / TILE_PIXELS
    level = None
    for i, factor in enumerate(source.factors):
        if source.native * factor <= needed:
            level = i
    return level


def read_tile(
    source: RasterSource,
    tms: TileMatrixSet,
    z: int,
    x: int,
    y: int,
    *,
    resampling: str = "bilinear",
    margin: int = 0,
) -> np.ma.MaskedArray | None:
    """The tile's values, every band, masked where nodata or outside; None off the raster."""
    if not meets(source, tms, z, x, y):
        return None
    src = source.level(overview_level(source, tms, z, x, y))
    with WarpedVRT(
        src,
        resampling=Resampling[resampling],
        add_alpha=source.add_alpha,
        **tile_grid(tms, z, x, y, margin),
    ) as vrt:
        if source.nodata is None:
            # the alpha band (the source's, or the one added) is warped with the data
            alpha = [i + 1 for i, ci in enumerate(vrt.colorinterp) if ci.name == "alpha"]
            read = vrt.read(indexes=source.bands + alpha[:1])
            data, mask = read[:-1], read[-1] == 0
        else:
            data = vrt.read(indexes=source.bands)
            mask = _nodata_mask(data, source.nodata)
    return np.ma.MaskedArray(data, mask=np.broadcast_to(mask, data.shape))


def _nodata_mask(data: np.ndarray, nodata: float) -> np.ndarray:
    """Where every band holds nodata (outside the source too: the warp fills it with nodata).

    GDAL's dataset mask of a source with a nodata value, computed from the values read rather
    than by warping the mask band again (which took as long as the data).
    """
    if math.isnan(nodata):
        return np.isnan(data).all(axis=0)
    return (data == np.asarray(nodata, dtype=data.dtype)).all(axis=0)


def render_tile(
    source: RasterSource | str,
    tms: TileMatrixSet,
    z: int,
    x: int,
    y: int,
    *,
    fmt: TileFormat = "png",
    style: RasterStyle | None = None,
) -> bytes | None:
    """One tile of a raster, None when the tile does not meet it.

    `source` is a path, or a raster kept open by tiles.raster_datasets.

    `tif` holds the data values (float32, every band, nodata as the source's, NaN when it has
    none); `png` and `webp` a picture: 3 or 4 bands as RGB(A), one band through the style's ramp.
    """
    if isinstance(source, str):
        with RasterSource(source) as opened:
            return render_tile(opened, tms, z, x, y, fmt=fmt, style=style)
    if fmt not in FORMATS:
        raise InvalidParameter("f", f"a raster tile is one of {', '.join(FORMATS)}, not '{fmt}'")
    style = style or RasterStyle()
    margin = 1 if style.hillshade and fmt != "tif" else 0
    values = read_tile(source, tms, z, x, y, resampling=style.resampling, margin=margin)
    if values is None:
        return None
    if fmt == "tif":
        return _geotiff(source.nodata, values, tms, z, x, y)
    if values.shape[0] >= 3:
        rgb = _imagery(values[:3])
        valid = ~np.ma.getmaskarray(values[0])
    else:
        rescale = style.rescale or band_range(source.path)
        rgb = colourize(values[0], rescale, style.colormap)
        if style.hillshade:
            shade = hillshade(
                values[0],
                tms.ground_pixel(z),
                azimuth=style.azimuth,
                altitude=style.altitude,
            )
            rgb = (rgb * (0.35 + 0.65 * shade[..., None])).astype(np.uint8)
        valid = ~np.ma.getmaskarray(values[0])
        if margin:
            rgb = rgb[margin:-margin, margin:-margin]
            valid = valid[margin:-margin, margin:-margin]
    rgba = np.dstack([rgb, np.where(valid, 255, 0).astype(np.uint8)])
    # Transparent pixels hold zeros, so a picture's bytes do not depend on what lies under.
    rgba[~valid] = 0
    buffer = io.BytesIO()
    image = Image.fromarray(rgba, "RGBA")
    # Fast settings: at zlib's default (6) or libwebp's (method 4), encoding took longer than
    # reading and drawing the tile (9 ms and 44 ms a tile; now 4 ms and 2.5 ms), for files
    # a third smaller (PNG) or equal (WebP: still lossless).
    if fmt == "png":
        image.save(buffer, "PNG", optimize=False, compress_level=3)
    else:
        image.save(buffer, "WEBP", lossless=True, exact=True, method=0, quality=0)
    return buffer.getvalue()


def band_range(path: str) -> tuple[float, float]:
    """The first band's (min, max) from its coarsest overview: the default rescale."""
    with rasterio.open(path) as src:
        factors = src.overviews(1)
        level = len(factors) - 1 if factors else None
    opened = rasterio.open(path, overview_level=level) if level is not None else rasterio.open(path)
    with opened as src:
        band = src.read(1, masked=True)
    if band.count() == 0:
        return 0.0, 1.0
    low, high = float(band.min()), float(band.max())
    return (low, high) if low < high else (low, low + 1.0)


def colourize(band: np.ma.MaskedArray, rescale: Sequence[float], ramp: str) -> np.ndarray:
    """A single band through a colour ramp: (rows, cols, 3) uint8, values clipped to the ends."""
    low, high = rescale
    stops = RAMPS[ramp]
    where = np.array([s[0] for s in stops])
    colours = np.array([s[1] for s in stops], dtype=np.float64)
    t = np.clip((np.ma.filled(band, low).astype(np.float64) - low) / (high - low), 0.0, 1.0)
    rgb = np.stack([np.interp(t, where, colours[:, i]) for i in range(3)], axis=-1)
    return np.rint(rgb).astype(np.uint8)


def hillshade(
    band: np.ma.MaskedArray, pixel: float, *, azimuth: float = 315.0, altitude: float = 45.0
) -> np.ndarray:
    """Shade 0-1 of a height grid whose cells are `pixel` metres (Horn's slope, GDAL's formula).

    Edge cells use their own value for a missing neighbour; the caller reads a one-pixel margin
    and crops it, so that neighbouring tiles compute their common edge from the same cells.
    """
    # float32: the shade is a factor on 8-bit colours; single precision halves the work.
    height = np.ma.filled(band.astype(np.float32), np.nan)
    padded = np.pad(height, 1, mode="edge")
    rows, cols = height.shape

    holes = np.isnan(padded)

    def neighbour(dr: int, dc: int) -> np.ndarray:
        # A nodata neighbour counts as the cell itself: no cliffs drawn around holes.
        window = (slice(1 + dr, 1 + dr + rows), slice(1 + dc, 1 + dc + cols))
        return np.where(holes[window], height, padded[window])

    nw, n, ne = neighbour(-1, -1), neighbour(-1, 0), neighbour(-1, 1)
    w, e = neighbour(0, -1), neighbour(0, 1)
    sw, s, se = neighbour(1, -1), neighbour(1, 0), neighbour(1, 1)
    dzdx = ((ne + 2 * e + se) - (nw + 2 * w + sw)) / (8 * pixel)
    dzdy = ((sw + 2 * s + se) - (nw + 2 * n + ne)) / (8 * pixel)
    slope = np.arctan(np.hypot(dzdx, dzdy))
    aspect = np.arctan2(dzdy, -dzdx)
    zenith = math.radians(90.0 - altitude)
    sun = math.radians(360.0 - azimuth + 90.0)
    shade = math.cos(zenith) * np.cos(slope) + math.sin(zenith) * np.sin(slope) * np.cos(
        sun - aspect
    )
    return np.nan_to_num(np.clip(shade, 0.0, 1.0), nan=1.0)


def _imagery(bands: np.ma.MaskedArray) -> np.ndarray:
    """RGB imagery as it is: uint8 kept, other types clipped to 0-255."""
    data = np.ma.filled(bands, 0)
    if data.dtype != np.uint8:
        data = np.clip(data, 0, 255).astype(np.uint8)
    return np.moveaxis(data, 0, -1)


def _has_alpha(src: Any) -> bool:
    return any(ci.name == "alpha" for ci in src.colorinterp)


def _data_bands(src: Any) -> list[int]:
    return [i + 1 for i, ci in enumerate(src.colorinterp) if ci.name != "alpha"]


def _geotiff(
    nodata: float | None, values: np.ma.MaskedArray, tms: TileMatrixSet, z: int, x: int, y: int
) -> bytes:
    fill = float(nodata) if nodata is not None else float("nan")
    data = np.ma.filled(values.astype(np.float32), fill)
    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": data.shape[0],
        "nodata": fill,
        "compress": "deflate",
        **tile_grid(tms, z, x, y),
    }
    with rasterio.MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(data)
        return bytes(memory.read())
