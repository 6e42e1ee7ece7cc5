"""The raster tile benchmark: its rasters, its tile list, its URLs, its picture comparison; and
(slow) one whole run at a tiny size against a real TiTiler."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from bench import raster_bench
from bench.raster_bench import (
    COVERAGES,
    EXTENTS,
    TERRAIN_NODATA,
    TileAsk,
    draw_tiles,
    extent_3857,
    layer_config,
    meets,
    picture_difference,
    tile_path,
    viewport_tiles,
)
from tiles.tms import get_tms
from urbis_core.config import load_config

EXTENTS_3857 = {c: extent_3857(EXTENTS[c]) for c in COVERAGES}


def png(rgba: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgba.astype(np.uint8), "RGBA").save(buffer, "PNG")
    return buffer.getvalue()


def test_the_orthophoto_is_deterministic_rgb_and_never_its_nodata() -> None:
    first = raster_bench.ortho_array(120, seed=1)
    assert first.shape == (3, 100, 120) and first.dtype == np.uint8
    assert first.min() >= 1  # 0 is the layer's nodata: no pixel of the picture may be it
    assert np.array_equal(first, raster_bench.ortho_array(120, seed=1))
    assert not np.array_equal(first, raster_bench.ortho_array(120, seed=2))
    assert first.std() > 10  # a picture, not a flat fill


def test_the_terrain_has_heights_in_the_ramps_range_and_nodata_holes() -> None:
    heights = raster_bench.terrain_array(200, seed=1)
    assert heights.shape == (160, 200) and heights.dtype == np.float32
    holes = heights == TERRAIN_NODATA
    assert 0 < holes.mean() < 0.1
    low, high = raster_bench.TERRAIN_RESCALE
    valid = heights[~holes]
    assert low <= np.percentile(valid, 1) and np.percentile(valid, 99) <= high
    assert np.array_equal(heights, raster_bench.terrain_array(200, seed=1))


def test_sources_are_georeferenced_in_lambert_72_over_their_extents(tmp_path: Path) -> None:
    files = raster_bench.sources(tmp_path, 60, 40, seed=1)
    for coverage, path in files.items():
        with rasterio.open(path) as src:
            assert src.crs.to_epsg() == 31370
            assert tuple(src.bounds) == pytest.approx(EXTENTS[coverage])
    with rasterio.open(files["terrain"]) as src:
        assert src.nodata == TERRAIN_NODATA and src.dtypes[0] == "float32"
    with rasterio.open(files["ortho"]) as src:
        assert src.count == 3 and src.nodata is None  # declared in the layer config


def test_the_layer_config_is_two_raster_layers_our_config_accepts(tmp_path: Path) -> None:
    files = {"ortho": tmp_path / "ortho.tif", "terrain": tmp_path / "dtm.tif"}
    config = load_config(layer_config(tmp_path, files))
    assert sorted(config.rasters) == ["ortho", "terrain"]
    assert config.rasters["ortho"].nodata == 0
    style = config.rasters["terrain"].style
    assert style is not None
    assert (style.colormap, tuple(style.rescale or ()), style.hillshade) == (
        "viridis",
        raster_bench.TERRAIN_RESCALE,
        False,
    )


def test_a_viewport_is_the_tiles_a_1280_by_800_window_needs_nearest_first() -> None:
    tms = get_tms("WebMercatorQuad")
    centre = (485_000.0, 6_594_000.0)
    tiles = viewport_tiles(16, centre)
    columns = {c for c, _ in tiles}
    rows = {r for _, r in tiles}
    # 1280 / 256 = 5 columns (6 when the window straddles), 800 / 256 = 3.1 rows (4 or 5)
    assert len(columns) in (5, 6) and len(rows) in (4, 5)
    assert len(tiles) == len(columns) * len(rows)
    minx, miny, maxx, maxy = tms.bounds(16, *tiles[0])
    assert minx <= centre[0] <= maxx and miny <= centre[1] <= maxy


def test_the_tile_list_is_fixed_by_its_seed_distinct_and_on_the_coverages() -> None:
    asks = draw_tiles(EXTENTS_3857, places=2, seed=1)
    assert asks == draw_tiles(EXTENTS_3857, places=2, seed=1)
    assert asks != draw_tiles(EXTENTS_3857, places=2, seed=2)
    assert len(set(asks)) == len(asks)
    assert {a.z for a in asks} == set(raster_bench.ZOOMS)
    assert {a.coverage for a in asks} == set(COVERAGES)
    assert all(meets(a.z, a.x, a.y, EXTENTS_3857[a.coverage]) for a in asks)
    # the terrain covers the orthophoto's extent: each orthophoto tile has its overlay
    terrain = {(a.z, a.x, a.y) for a in asks if a.coverage == "terrain"}
    assert all((a.z, a.x, a.y) in terrain for a in asks if a.coverage == "ortho")


def test_a_tile_off_the_coverage_is_not_asked() -> None:
    tms = get_tms("WebMercatorQuad")
    extent = EXTENTS_3857["ortho"]  # z18 tiles are 153 m across

    def tile_at(x: float, y: float) -> tuple[int, int]:
        columns, rows = tms.tiles_covering(18, (x, y, x, y))
        return columns.start, rows.start

    assert not meets(18, *tile_at(extent[2] + 200, extent[3] - 500), extent)  # east of it
    assert meets(18, *tile_at(extent[2] - 200, extent[3] - 500), extent)
    # a tile the edge crosses shows part of the coverage: asked
    edge = tile_at(extent[2], extent[3] - 500)
    minx, _, maxx, _ = tms.bounds(18, *edge)
    assert meets(18, *edge, extent) == (extent[2] - minx > 2 * tms.cell_size(18))


def test_both_servers_are_asked_for_the_same_picture() -> None:
    cogs = {
        c: raster_bench.Cog(c, f"/data/cogs/{c}/1-abc.tif", 1, EXTENTS[c], 10, 10, 1.0)
        for c in COVERAGES
    }
    ortho, terrain = TileAsk("ortho", 16, 33561, 21982), TileAsk("terrain", 16, 33561, 21982)
    assert (
        tile_path("ours", ortho, cogs)
        == "/coverages/ortho/tiles/WebMercatorQuad/16/33561/21982.png"
    )
    assert tile_path("ours", terrain, cogs) == (
        "/coverages/terrain/tiles/WebMercatorQuad/16/33561/21982.png"
        "?colormap=viridis&rescale=10,110&hillshade=false"
    )
    assert tile_path("titiler", ortho, cogs) == (
        "/cog/tiles/WebMercatorQuad/16/33561/21982.png?url=/data/cogs/ortho/1-abc.tif"
        "&resampling=bilinear&reproject=bilinear"
    )
    assert tile_path("titiler", terrain, cogs).endswith(
        "url=/data/cogs/terrain/1-abc.tif&resampling=bilinear&reproject=bilinear"
        "&bidx=1&colormap_name=viridis&rescale=10,110"
    )


def test_picture_difference_counts_colours_where_both_show_and_alpha_apart() -> None:
    base = np.full((256, 256, 4), 255, dtype=np.int16)
    base[..., :3] = 100
    other = base.copy()
    other[..., 0] = 106  # +6 in one channel of three: mean 2
    other[:128, :, 3] = 0  # the top half transparent in the other one
    other[:128, :, :3] = 0
    same = picture_difference(png(base), png(base))
    assert same["mean_abs_diff"] == 0.0 and same["alpha_disagreement"] == 0.0
    apart = picture_difference(png(base), png(other))
    assert apart["mean_abs_diff"] == 2.0
    assert apart["alpha_disagreement"] == 0.5 and apart["opaque_share"] == 0.5
    assert picture_difference(png(base), b"")["decoded"] is False


def test_only_a_png_counts_as_an_answered_tile() -> None:
    assert raster_bench.is_png(png(np.zeros((2, 2, 4))))
    assert not raster_bench.is_png(b'{"detail": "Tile is outside bounds"}')
    assert not raster_bench.is_png(b"")


@pytest.mark.slow
def test_the_whole_bench_runs_at_a_tiny_size_against_titiler(tmp_path: Path) -> None:
    """Generation, sync, both servers, both passes, the comparison (TiTiler installed from
    PyPI under /tmp/urbis-bench/peers on first use, as the bench does)."""
    out = tmp_path / "result.json"
    code = raster_bench.main(
        [
            "--ortho-pixels=120",
            "--terrain-pixels=80",
            "--places=1",
            "--warm-seconds=0.5",
            "--compare=3",
            f"--workdir={tmp_path}",
            "--peers=/tmp/urbis-bench/peers",
            f"--json={out}",
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["every_tile_a_png"] == {
        "ours": {"cold": True, "warm": True},
        "titiler": {"cold": True, "warm": True},
    }
    for server in ("ours", "titiler"):
        assert result["passes"]["cold"][server]["requests"] == result["setup"]["tile_requests"]
    assert result["ratios"]["cold"] > 0 and result["ratios"]["warm"] > 0
    compared = result["pictures_compared"]["summary"]
    assert compared["ortho"]["decoded"] == compared["terrain"]["decoded"] == 3
    assert compared["ortho"]["mean_abs_diff"] < 1.0
    assert compared["terrain"]["mean_abs_diff"] < 5.0
    assert result["ours_cache_after_warm"] == {"hit": 6}
