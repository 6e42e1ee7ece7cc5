"""Deterministic rasters for the raster-layer tests, written by the tests themselves.

Every value comes from a formula of the pixel's position, so a test can regenerate or reason
about a file without storing one. The terrain covers a 3 x 2 km patch of central Brussels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.transform import Affine, from_origin

TERRAIN_NODATA = -9999.0
# Lambert 72 coordinates of the top-left corner, 5 m pixels: 600 x 400 pixels.
ORIGIN = (148_000.0, 171_000.0)
PIXEL = 5.0
SHAPE = (400, 600)  # rows, columns


def terrain_height(x: np.ndarray, y: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """Metres above sea level at Lambert 72 coordinates: the Senne valley and two hills."""
    valley = 15.0 + 0.004 * (x - ORIGIN[0])
    hill = 40.0 * np.exp(-((x - 149_800.0) ** 2 + (y - 170_300.0) ** 2) / (2 * 400.0**2))
    ridge = 25.0 * np.exp(-((y - 170_000.0) ** 2) / (2 * 300.0**2)) * np.cos(x / 350.0) ** 2
    return (valley + hill + ridge + offset).astype(np.float32)


def _holes(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Where the survey has no data: a lake (a disc) and a missing strip."""
    lake = (rows - 120) ** 2 + (cols - 420) ** 2 < 35**2
    strip = (rows >= 300) & (rows < 312) & (cols >= 50) & (cols < 260)
    return lake | strip


def terrain_array(offset: float = 0.0) -> np.ndarray:
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    x = ORIGIN[0] + (cols + 0.5) * PIXEL
    y = ORIGIN[1] - (rows + 0.5) * PIXEL
    heights = terrain_height(x, y, offset)
    heights[_holes(rows, cols)] = TERRAIN_NODATA
    return heights


def terrain_transform() -> Affine:
    return from_origin(ORIGIN[0], ORIGIN[1], PIXEL, PIXEL)


def write_terrain(path: Path, offset: float = 0.0, crs: bool = True, nodata: bool = True) -> Path:
    """The terrain model in EPSG:31370, float32, nodata -9999 (`crs`/`nodata`: leave them out)."""
    _write(
        path,
        terrain_array(offset)[np.newaxis],
        terrain_transform(),
        CRS.from_epsg(31370) if crs else None,
        TERRAIN_NODATA if nodata else None,
    )
    return path


def write_terrain_nan(path: Path) -> Path:
    """The terrain model with its holes as NaN, NaN declared as nodata (as some DTMs are)."""
    heights = terrain_array()
    heights[heights == TERRAIN_NODATA] = np.nan
    _write(path, heights[np.newaxis], terrain_transform(), CRS.from_epsg(31370), float("nan"))
    return path


def write_terrain_tiles(folder: Path, offset: float = 0.0) -> list[Path]:
    """The same terrain cut into a west and an east half (a mosaic of two files)."""
    heights = terrain_array(offset)
    half = SHAPE[1] // 2
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, start in (("west", 0), ("east", half)):
        path = folder / f"dtm_{name}.tif"
        transform = from_origin(ORIGIN[0] + start * PIXEL, ORIGIN[1], PIXEL, PIXEL)
        _write(
            path,
            heights[np.newaxis, :, start : start + half],
            transform,
            CRS.from_epsg(31370),
            TERRAIN_NODATA,
        )
        out.append(path)
    return out


def write_rgb(path: Path) -> Path:
    """An RGB orthophoto-like image, uint8, nodata 0 (a black corner left unflown)."""
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    red = 1 + (cols * 254 // (SHAPE[1] - 1))
    green = 1 + (rows * 254 // (SHAPE[0] - 1))
    blue = 1 + ((rows + cols) % 64) * 4
    bands = np.stack([red, green, blue]).astype(np.uint8)
    bands[:, :40, :40] = 0
    _write(path, bands, terrain_transform(), CRS.from_epsg(31370), 0, rgb=True)
    return path


def write_terrain_lambert2008(path: Path) -> Path:
    """The same terrain sampled on an EPSG:3812 (Lambert 2008) grid: it needs reprojecting."""
    to_l72 = Transformer.from_crs(3812, 31370, always_xy=True)
    west, north = Transformer.from_crs(31370, 3812, always_xy=True).transform(*ORIGIN)
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    x08 = west + (cols + 0.5) * PIXEL
    y08 = north - (rows + 0.5) * PIXEL
    x, y = to_l72.transform(x08, y08)
    heights = terrain_height(np.asarray(x), np.asarray(y))
    heights[_holes(rows, cols)] = TERRAIN_NODATA
    _write(
        path,
        heights[np.newaxis],
        from_origin(west, north, PIXEL, PIXEL),
        CRS.from_epsg(3812),
        TERRAIN_NODATA,
    )
    return path


def write_corrupt(path: Path) -> Path:
    """A GeoTIFF cut short: the header promises strips the file no longer holds."""
    write_terrain(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def write_garbage(path: Path) -> Path:
    """Bytes that are no raster at all, under a .tif name."""
    path.write_bytes(b"II*\x00" + b"not a tiff, just a file named like one\n" * 50)
    return path


def _write(
    path: Path,
    bands: np.ndarray,
    transform: Affine,
    crs: CRS | None,
    nodata: float | None,
    rgb: bool = False,
) -> None:
    profile = {
        "driver": "GTiff",
        "width": bands.shape[2],
        "height": bands.shape[1],
        "count": bands.shape[0],
        "dtype": str(bands.dtype),
        "transform": transform,
        "compress": "deflate",
    }
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    if rgb:
        profile["photometric"] = "RGB"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)
