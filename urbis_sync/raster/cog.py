"""Writing a Cloud-Optimized GeoTIFF in EPSG:31370 from a layer's files.

GDAL's COG driver (through rasterio, which bundles it) does the work: tiling, internal
overviews, and the reprojection of a source in another CRS (`TARGET_SRS`) in one pass. It is
GDAL's own writer of the layout its readers expect, so rio-cogeo (a second writer over the
same library) is not needed to write; the tests use rio-cogeo only to validate the result.
Several files, or a file whose CRS or nodata the config declares, are first gathered into one
plain GeoTIFF (rasterio.merge), the declarations written into it.
"""

from __future__ import annotations

import os
from pathlib import Path

import rasterio
import rasterio.shutil
from pyproj import CRS
from rasterio.crs import CRS as RioCRS
from rasterio.merge import merge

from urbis_core.catalog import STORAGE_SRID
from urbis_sync.normalize import same_crs
from urbis_sync.raster.validate import RasterFacts

# Terrain and imagery are continuous: bilinear for the reprojection, average for overviews.
WARP_RESAMPLING = "BILINEAR"
OVERVIEW_RESAMPLING = "AVERAGE"
BLOCK_SIZE = 512


def write_cog(files: list[Path], facts: RasterFacts, workdir: Path, target: Path) -> None:
    """Write the COG to `target` (a temporary name; the caller renames it) and fsync it."""
    prepared = files[0]
    if len(files) > 1 or facts.crs_declared or facts.nodata_declared:
        prepared = _gathered(files, facts, workdir / "gathered.tif")
    options: dict[str, str | int] = {
        "BLOCKSIZE": BLOCK_SIZE,
        "COMPRESS": "DEFLATE",
        "PREDICTOR": "YES",
        "OVERVIEWS": "AUTO",
        "OVERVIEW_RESAMPLING": OVERVIEW_RESAMPLING,
        "BIGTIFF": "IF_SAFER",
        "NUM_THREADS": "ALL_CPUS",
    }
    if not same_crs(facts.crs, CRS.from_epsg(STORAGE_SRID)):
        options |= {"TARGET_SRS": f"EPSG:{STORAGE_SRID}", "RESAMPLING": WARP_RESAMPLING}
    with rasterio.open(prepared) as src:
        rasterio.shutil.copy(src, target, driver="COG", **options)
    if same_crs(facts.crs, CRS.from_epsg(STORAGE_SRID)):
        # A source in Lambert 72 under another name (ESRI WKT) is labelled EPSG:31370 in the
        # COG, so readers never have to guess; the pixels are the source's.
        with rasterio.open(target, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
            if dst.crs is None or dst.crs.to_epsg() != STORAGE_SRID:
                dst.crs = RioCRS.from_epsg(STORAGE_SRID)
    with target.open("rb") as written:
        os.fsync(written.fileno())


def _gathered(files: list[Path], facts: RasterFacts, out: Path) -> Path:
    """The files as one GeoTIFF carrying the CRS and nodata the facts say (declared or own)."""
    sources = [rasterio.open(p) for p in files]
    try:
        # With dst_path, rasterio (>= 1.4) writes the mosaic in chunks within its `mem_limit`:
        # a mosaic of orthophoto tiles is never held whole.
        merge(sources, nodata=facts.nodata, dst_path=out)
    finally:
        for ds in sources:
            ds.close()
    with rasterio.open(out, "r+") as dst:
        dst.crs = RioCRS.from_wkt(facts.crs.to_wkt())
        dst.nodata = facts.nodata
    return out
