"""Raster tiles (tiles.raster) against a WarpedVRT read of the same window done here.

The rasters are written by the test (tests/support/raster_cogs.py); the reference read puts the
source on the tile's grid (CRS, bounds, 256 x 256) with rasterio directly.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_bounds
from rasterio.vrt import WarpedVRT

from tests.support.raster_cogs import NODATA, write_rgba
from tiles.raster import RasterStyle, hillshade, render_tile
from tiles.tms import BELGIAN_LAMBERT_72, WEB_MERCATOR_QUAD, TileMatrixSet
from urbis_core.errors import InvalidParameter

# Zooms whose cells are about the terrain model's 4 m (BL72 z8: 4.35 m; Web Mercator z14:
# 6.0 m on the ground), so the tile is drawn from the full-resolution data.
FULL = [(BELGIAN_LAMBERT_72, 8), (WEB_MERCATOR_QUAD, 14)]
GRID_IDS = [tms.id for tms, _ in FULL]


def tile_at(tms: TileMatrixSet, z: int, x31370: float, y31370: float) -> tuple[int, int]:
    x, y = Transformer.from_crs(31370, tms.srid, always_xy=True).transform(x31370, y31370)
    cols, rows = tms.tiles_covering(z, (x, y, x, y))
    return cols[0], rows[0]


def reference(
    path: str, tms: TileMatrixSet, z: int, x: int, y: int, resampling: Resampling
) -> np.ma.MaskedArray:
    """The tile's window read with rasterio here: every band, masked where nodata/outside."""
    with (
        rasterio.open(path) as src,
        WarpedVRT(
            src,
            crs=CRS.from_epsg(tms.srid),
            transform=from_bounds(*tms.bounds(z, x, y), 256, 256),
            width=256,
            height=256,
            resampling=resampling,
            add_alpha=src.nodata is None and "alpha" not in [c.name for c in src.colorinterp],
        ) as vrt,
    ):
        bands = [i for i in range(1, vrt.count + 1) if vrt.colorinterp[i - 1].name != "alpha"]
        data = vrt.read(bands)
        mask = vrt.dataset_mask() == 0
    return np.ma.MaskedArray(data, mask=np.broadcast_to(mask, data.shape))


def decode_tif(data: bytes) -> tuple[np.ndarray, float | None, dict]:
    with rasterio.MemoryFile(data) as memory, memory.open() as tif:
        return tif.read(), tif.nodata, {"crs": tif.crs, "transform": tif.transform}


def decode_picture(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.mode == "RGBA"
    return np.asarray(image)


@pytest.mark.parametrize(("tms", "z"), FULL, ids=GRID_IDS)
@pytest.mark.parametrize("resampling", ["nearest", "bilinear"])
def test_a_tif_tile_holds_the_values_of_the_window_and_nodata_where_there_is_none(
    terrain: str, tms: TileMatrixSet, z: int, resampling: str
):
    # The tile over the top edge: it holds the edge's notch of nodata and some outside.
    x, y = tile_at(tms, z, 149_010.0, 171_995.0)
    got = render_tile(terrain, tms, z, x, y, fmt="tif", style=RasterStyle(resampling=resampling))  # type: ignore[arg-type]
    assert got is not None
    values, nodata, grid = decode_tif(got)
    expected = reference(terrain, tms, z, x, y, Resampling[resampling])
    assert grid["crs"] == CRS.from_epsg(tms.srid)
    assert grid["transform"].almost_equals(from_bounds(*tms.bounds(z, x, y), 256, 256))
    assert nodata == NODATA
    assert values.dtype == np.float32
    empty = values[0] == NODATA
    assert (empty == expected.mask[0]).all()
    assert 0 < empty.sum() < empty.size  # the tile has both
    np.testing.assert_array_equal(values[0][~empty], expected[0].compressed())


@pytest.mark.parametrize(("tms", "z"), FULL, ids=GRID_IDS)
@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_a_single_band_picture_is_the_rescaled_ramp_and_transparent_exactly_where_nodata(
    terrain: str, tms: TileMatrixSet, z: int, fmt: str
):
    # Over the rectangle of nodata (rows 200-240, cols 40-100 of the terrain model).
    x, y = tile_at(tms, z, 148_280.0, 171_120.0)
    got = render_tile(
        terrain,
        tms,
        z,
        x,
        y,
        fmt=fmt,  # type: ignore[arg-type]
        style=RasterStyle(rescale=(20.0, 80.0), colormap="greys", resampling="nearest"),
    )
    assert got is not None
    picture = decode_picture(got)
    expected = reference(terrain, tms, z, x, y, Resampling.nearest)
    transparent = picture[..., 3] == 0
    assert (transparent == expected.mask[0]).all()
    assert transparent.any() and not transparent.all()
    assert set(np.unique(picture[..., 3])) == {0, 255}
    # greys: black at 20 m, white at 80 m, linear between, clipped outside.
    grey = np.rint(np.clip((expected[0].astype(np.float64) - 20) / 60, 0, 1) * 255)
    for channel in range(3):
        np.testing.assert_array_equal(picture[..., channel][~transparent], grey.compressed())


@pytest.mark.parametrize(("tms", "z"), FULL, ids=GRID_IDS)
def test_rgb_imagery_is_drawn_as_it_is_and_transparent_outside(
    rgb: str, tms: TileMatrixSet, z: int
):
    # Over the image's north-east corner: part image, part outside.
    x, y = tile_at(tms, z, 149_040.0, 170_990.0)
    got = render_tile(rgb, tms, z, x, y, fmt="png", style=RasterStyle(resampling="nearest"))
    assert got is not None
    picture = decode_picture(got)
    expected = reference(rgb, tms, z, x, y, Resampling.nearest)
    transparent = picture[..., 3] == 0
    assert (transparent == expected.mask[0]).all()
    assert transparent.any() and not transparent.all()
    for band in range(3):
        np.testing.assert_array_equal(picture[..., band][~transparent], expected[band].compressed())


def test_an_alpha_band_is_the_transparency(tmp_path: Path):
    rgba = str(write_rgba(tmp_path / "rgba.tif"))
    tms, z = BELGIAN_LAMBERT_72, 8
    x, y = tile_at(tms, z, 148_024.0, 169_976.0)  # the image's middle, over its clear disc
    got = render_tile(rgba, tms, z, x, y, fmt="webp", style=RasterStyle(resampling="nearest"))
    assert got is not None
    picture = decode_picture(got)
    expected = reference(rgba, tms, z, x, y, Resampling.nearest)
    transparent = picture[..., 3] == 0
    assert (transparent == expected.mask[0]).all()
    assert transparent.sum() > 1000 and not transparent.all()
    for band in range(3):
        np.testing.assert_array_equal(picture[..., band][~transparent], expected[band].compressed())


@pytest.mark.parametrize(("tms", "z"), FULL, ids=GRID_IDS)
def test_a_tile_that_does_not_meet_the_raster_is_none(terrain: str, tms: TileMatrixSet, z: int):
    x, y = tile_at(tms, z, 160_000.0, 165_000.0)  # 10 km east
    assert render_tile(terrain, tms, z, x, y, fmt="png") is None
    assert render_tile(terrain, tms, z, x, y, fmt="tif") is None


def _bytes_read() -> int:
    with open("/proc/self/io") as io_counters:
        return next(int(line.split()[1]) for line in io_counters if line.startswith("rchar"))


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts reads with /proc/self/io")
def test_a_low_zoom_tile_reads_an_overview_not_the_full_resolution(terrain: str):
    tms, z = BELGIAN_LAMBERT_72, 4  # 69.5 m cells: the 16 m overview serves
    x, y = tile_at(tms, z, 149_000.0, 171_000.0)
    before = _bytes_read()
    got = render_tile(terrain, tms, z, x, y, fmt="tif")
    ours = _bytes_read() - before
    before = _bytes_read()
    naive = reference(terrain, tms, z, x, y, Resampling.bilinear)
    full = _bytes_read() - before
    assert ours * 4 < full, (ours, full)
    # And the picture is the same one, to the overview's averaging.
    assert got is not None
    values, _, _ = decode_tif(got)
    both = (values[0] != NODATA) & ~naive.mask[0]
    assert both.sum() > 500
    assert np.abs(values[0][both] - naive[0].data[both]).mean() < 1.0  # metres, over 20-90 m


def test_hillshaded_neighbours_join_without_a_seam(terrain: str):
    tms, z = BELGIAN_LAMBERT_72, 9
    x, y = tile_at(tms, z, 149_000.0, 171_000.0)
    style = RasterStyle(rescale=(20.0, 90.0), hillshade=True, resampling="nearest")
    left = decode_picture(render_tile(terrain, tms, z, x, y, fmt="png", style=style) or b"")
    right = decode_picture(render_tile(terrain, tms, z, x + 1, y, fmt="png", style=style) or b"")
    # Both tiles drawn at once, from one read a pixel wider all round: the same pixels.
    minx, miny, _, maxy = tms.bounds(z, x, y)
    pad = tms.cell_size(z)
    maxx = tms.bounds(z, x + 1, y)[2]
    with (
        rasterio.open(terrain) as src,
        WarpedVRT(
            src,
            crs=CRS.from_epsg(tms.srid),
            transform=from_bounds(minx - pad, miny - pad, maxx + pad, maxy + pad, 514, 258),
            width=514,
            height=258,
            resampling=Resampling.nearest,
        ) as vrt,
    ):
        wide = vrt.read(1, masked=True)
    shade = hillshade(wide, tms.ground_pixel(z))[1:-1, 1:-1]
    grey = np.clip((wide[1:-1, 1:-1].filled(20.0) - 20) / 70, 0, 1) * 255
    expected = (np.rint(grey).astype(np.uint8) * (0.35 + 0.65 * shade)).astype(np.uint8)
    joined = np.concatenate([left[..., 0], right[..., 0]], axis=1)
    valid = np.concatenate([left[..., 3], right[..., 3]], axis=1) == 255
    # To one grey level: a value ending in .5 may round either way through the ramp's floats.
    np.testing.assert_allclose(joined[valid], expected[valid], atol=1, rtol=0)
    # No seam: the columns either side of the join are shaded as in the wide read.
    np.testing.assert_allclose(joined[:, 254:258], expected[:, 254:258], atol=1, rtol=0)
    assert (valid == ~np.ma.getmaskarray(wide[1:-1, 1:-1])).all()


def test_hillshade_of_a_plane_is_the_textbook_illumination():
    # A plane rising 0.5 m per metre eastwards faces west; GDAL's sun is at azimuth 315,
    # altitude 45: cos(zenith) cos(slope) + sin(zenith) sin(slope) cos(315 - 270).
    cols = np.arange(20, dtype=np.float64)
    plane = np.ma.MaskedArray(np.tile(cols * 0.5 * 2.0, (20, 1)))  # cells of 2 m
    slope = math.atan(0.5)
    zenith = math.radians(45)
    expected = math.cos(zenith) * math.cos(slope) + math.sin(zenith) * math.sin(slope) * math.cos(
        math.radians(45)
    )
    shade = hillshade(plane, 2.0)
    # single precision (the shade scales 8-bit colours): a millionth is far below a colour step
    np.testing.assert_allclose(shade[1:-1, 1:-1], expected, rtol=1e-6)


def test_a_style_that_cannot_be_drawn_says_what_is_wrong(terrain: str):
    with pytest.raises(InvalidParameter, match="'colormap'.*unknown colour ramp 'rainbow'"):
        RasterStyle(colormap="rainbow")
    with pytest.raises(InvalidParameter, match="rescale.*min < max"):
        RasterStyle(rescale=(10.0, 10.0))
    with pytest.raises(InvalidParameter, match="'f'.*not 'jpg'"):
        render_tile(terrain, BELGIAN_LAMBERT_72, 8, 0, 0, fmt="jpg")  # type: ignore[arg-type]
