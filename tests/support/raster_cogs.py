"""Small deterministic rasters over Brussels for the raster reading tests, written as COGs.

A terrain model (float32, EPSG:31370, 4 m cells, nodata holes) and an RGB image (uint8, 3
bands, no nodata), both with internal overviews (GDAL's COG driver through rasterio). The
sync's tests write their sources with tests/support/rasters.py; these are COGs as the sync
leaves them, for the functions that read them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

NODATA = -9999.0
# Top-left corner of the terrain model: a 2,048 m square around the Grand-Place.
TERRAIN_ORIGIN = (148_000.0, 172_000.0)
TERRAIN_CELL = 4.0
TERRAIN_SIZE = 512


def terrain_values() -> np.ndarray:
    """Heights: a slope and two hills, a little deterministic noise, three nodata holes."""
    rows, cols = np.mgrid[0:TERRAIN_SIZE, 0:TERRAIN_SIZE].astype(np.float64)
    height = 20 + 0.08 * cols + 0.03 * rows
    height += 35 * np.exp(-((rows - 150) ** 2 + (cols - 300) ** 2) / (2 * 60.0**2))
    height += 20 * np.exp(-((rows - 380) ** 2 + (cols - 120) ** 2) / (2 * 40.0**2))
    height += np.random.default_rng(15).normal(0, 0.4, height.shape)
    height[200:240, 40:100] = NODATA  # a rectangle
    height[(rows - 420) ** 2 + (cols - 420) ** 2 < 25**2] = NODATA  # a disc
    height[0:10, 250:262] = NODATA  # a notch on the top edge
    return height.astype(np.float32)


def write_terrain(path: Path) -> Path:
    profile = {
        "driver": "COG",
        "width": TERRAIN_SIZE,
        "height": TERRAIN_SIZE,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:31370",
        "transform": from_origin(*TERRAIN_ORIGIN, TERRAIN_CELL, TERRAIN_CELL),
        "nodata": NODATA,
        "blocksize": 128,
        "compress": "deflate",
        "overview_resampling": "average",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(terrain_values(), 1)
    return path


def write_rgb(path: Path) -> Path:
    """256 x 256 cells of 8 m, overlapping the terrain model's south-west part."""
    rows, cols = np.mgrid[0:256, 0:256]
    bands = np.stack([(cols * 255 // 255), (rows * 255 // 255), ((rows + cols) * 7) % 256]).astype(
        np.uint8
    )
    profile = {
        "driver": "COG",
        "width": 256,
        "height": 256,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:31370",
        "transform": from_origin(147_000.0, 171_000.0, 8.0, 8.0),
        "blocksize": 128,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)
    return path


def write_rgba(path: Path) -> Path:
    """The RGB image with an alpha band: transparent over a disc in its middle."""
    rows, cols = np.mgrid[0:256, 0:256]
    bands = np.stack(
        [
            cols,
            rows,
            ((rows + cols) * 7) % 256,
            np.where((rows - 128) ** 2 + (cols - 128) ** 2 < 40**2, 0, 255),
        ]
    ).astype(np.uint8)
    profile = {
        "driver": "GTiff",
        "width": 256,
        "height": 256,
        "count": 4,
        "dtype": "uint8",
        "crs": "EPSG:31370",
        "transform": from_origin(147_000.0, 171_000.0, 8.0, 8.0),
        "photometric": "RGB",
        "alpha": "YES",
        "tiled": True,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)
    return path
