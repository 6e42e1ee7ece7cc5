"""The API's open raster files (tiles.raster_datasets): kept, lent one at a time, renewed.

Each tile drawn through the pool is compared with the same tile drawn by opening the file
anew (tiles.raster.render_tile), so keeping files open changes nothing drawn.
"""

from __future__ import annotations

import io
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_bounds
from rasterio.vrt import WarpedVRT

from tests.support import rasters
from tiles.raster import RasterStyle, render_tile
from tiles.raster_datasets import RasterDatasets
from tiles.tms import BELGIAN_LAMBERT_72, WEB_MERCATOR_QUAD

STYLE = RasterStyle(colormap="terrain", rescale=(10.0, 90.0), hillshade=True)
# the zoom-8 Lambert tiles over the terrain model's middle (tests.support.raster_cogs)
_COLS, _ROWS = BELGIAN_LAMBERT_72.tiles_covering(8, (148_600.0, 170_600.0, 149_400.0, 171_400.0))
TILES = [(BELGIAN_LAMBERT_72, 8, x, y) for x in _COLS for y in _ROWS]


@pytest.fixture
def versions(terrain: str, tmp_path: Path) -> tuple[str, str]:
    """Two files, as two versions of a coverage (the same pixels: the files are what differ)."""
    first, second = tmp_path / "1.tif", tmp_path / "2.tif"
    shutil.copy(terrain, first)
    shutil.copy(terrain, second)
    return str(first), str(second)


def _tiles_meeting(path: str) -> list[tuple]:
    found = [t for t in TILES if render_tile(path, *t, fmt="tif") is not None]
    assert found, "no test tile meets the terrain"
    return found


def test_a_file_is_opened_once_for_many_tiles_and_draws_the_same(versions: tuple[str, str]):
    path = versions[0]
    datasets = RasterDatasets()
    for fmt in ("png", "webp", "tif"):
        for tile in _tiles_meeting(path) * 3:
            kept = datasets.render("dtm", 1, path, *tile, fmt=fmt, style=STYLE)  # type: ignore[arg-type]
            assert kept == render_tile(path, *tile, fmt=fmt, style=STYLE)  # type: ignore[arg-type]
    assert datasets.opened == 1
    datasets.close()


def test_a_tile_off_the_raster_is_none_through_the_pool(versions: tuple[str, str]):
    datasets = RasterDatasets()
    far = WEB_MERCATOR_QUAD.tiles_covering(15, (0.0, 0.0, 1.0, 1.0))
    tile = (WEB_MERCATOR_QUAD, 15, far[0][0], far[1][0])
    assert datasets.render("dtm", 1, versions[0], *tile, fmt="png", style=STYLE) is None
    datasets.close()


def test_a_new_version_closes_the_old_files_and_an_older_one_is_not_kept(
    versions: tuple[str, str],
):
    first, second = versions
    tile = _tiles_meeting(first)[0]
    datasets = RasterDatasets()
    datasets.render("dtm", 1, first, *tile, fmt="tif", style=STYLE)
    (old,) = datasets._kept["dtm"].idle
    datasets.render("dtm", 2, second, *tile, fmt="tif", style=STYLE)
    assert old.dataset.closed  # the first version's file, once the second is drawn from
    (new,) = datasets._kept["dtm"].idle
    assert new.path == second
    # a render that read the catalog before the swap: drawn from its own file, not kept
    datasets.render("dtm", 1, first, *tile, fmt="tif", style=STYLE)
    assert datasets._kept["dtm"].idle == [new] and datasets.opened == 3
    datasets.close()
    assert new.dataset.closed


def test_threads_drawing_at_once_never_share_a_dataset(versions: tuple[str, str]):
    path = versions[0]
    tiles = _tiles_meeting(path)
    expected = {t: render_tile(path, *t, fmt="png", style=STYLE) for t in tiles}  # type: ignore[arg-type]
    datasets = RasterDatasets()
    lent: set[int] = set()
    shared: list[int] = []
    lock = threading.Lock()
    borrow, give_back = datasets._borrow, datasets._give_back

    def watched_borrow(*args):  # type: ignore[no-untyped-def]
        source = borrow(*args)
        with lock:
            if id(source) in lent:
                shared.append(id(source))
            lent.add(id(source))
        return source

    def watched_give_back(coverage_id, version, source):  # type: ignore[no-untyped-def]
        with lock:
            lent.discard(id(source))
        give_back(coverage_id, version, source)

    datasets._borrow = watched_borrow  # type: ignore[method-assign]
    datasets._give_back = watched_give_back  # type: ignore[method-assign]
    wrong: list[tuple] = []

    def draw() -> None:
        for tile in tiles * 10:
            if datasets.render("dtm", 1, path, *tile, fmt="png", style=STYLE) != expected[tile]:
                wrong.append(tile)

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not shared and not wrong
    assert 1 <= datasets.opened <= 4
    datasets.close()


def test_a_nan_nodata_is_transparent_and_nan_in_the_values(tmp_path: Path):
    """NaN never equals itself: the holes of a NaN-nodata raster are found all the same, as
    rasterio's own dataset mask finds them."""
    path = str(rasters.write_terrain_nan(tmp_path / "nan.tif"))
    lake = (150_100.0, 170_400.0)  # the terrain's nodata disc (tests.support.rasters)
    cols, rows = BELGIAN_LAMBERT_72.tiles_covering(8, (*lake, *lake))
    tile = (BELGIAN_LAMBERT_72, 8, cols[0], rows[0])
    with (
        rasterio.open(path) as src,
        WarpedVRT(
            src,
            crs=CRS.from_epsg(31370),
            transform=from_bounds(*BELGIAN_LAMBERT_72.bounds(8, cols[0], rows[0]), 256, 256),
            width=256,
            height=256,
            resampling=Resampling.bilinear,
        ) as vrt,
    ):
        valid = vrt.dataset_mask() > 0
    assert 0.05 < valid.mean() < 1
    datasets = RasterDatasets()
    picture = datasets.render("nan", 1, path, *tile, fmt="png", style=STYLE)
    alpha = np.asarray(Image.open(io.BytesIO(picture or b"")).convert("RGBA"))[..., 3]
    assert np.array_equal(alpha == 255, valid)
    values = datasets.render("nan", 1, path, *tile, fmt="tif", style=STYLE)
    with rasterio.MemoryFile(values) as memory, memory.open() as tif:
        band = tif.read(1)
        assert np.isnan(tif.nodata)
    assert np.array_equal(~np.isnan(band), valid)
    datasets.close()
