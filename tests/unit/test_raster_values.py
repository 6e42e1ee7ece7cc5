"""Point values and polygon statistics (urbis_core.raster_values) against rasterio and numpy.

The reference reads the source directly: the pixel under a point with `src.index`, a polygon's
cells with `rasterio.mask` (centres inside: all_touched=False), the statistics with numpy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.mask
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from tests.support import rasters
from tests.support.raster_cogs import NODATA
from urbis_core import raster_values
from urbis_core.errors import InvalidParameter
from urbis_core.raster_values import band_stats, values_at, zonal_stats

PERCENTILES = (5, 25, 50, 75, 95)


def expected_stats(path: str, geometry: BaseGeometry) -> dict[str, Any]:
    with rasterio.open(path) as src:
        try:
            cells, _ = rasterio.mask.mask(src, [geometry], crop=True, filled=False, indexes=1)
            outside, _, window = rasterio.mask.raster_geometry_mask(src, [geometry], crop=True)
        except ValueError:  # rasterio.mask: "Input shapes do not overlap raster."
            return {"count": 0, "nodata_count": 0}
        raw = src.read(1, window=window)
    values = cells.compressed().astype(np.float64)
    result: dict[str, Any] = {
        "count": values.size,
        "nodata_count": int(((raw == NODATA) & ~outside).sum()),
    }
    if values.size:
        result |= {
            "min": values.min(),
            "max": values.max(),
            "mean": values.mean(),
            "std": values.std(),
            "percentiles": dict(zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True)),
        }
    return result


def assert_same(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert got["count"] == expected["count"]
    assert got["nodata_count"] == expected["nodata_count"]
    if expected["count"] == 0:
        assert got["min"] is got["max"] is got["mean"] is got["std"] is None
        assert got["percentiles"] == {p: None for p in PERCENTILES}
        return
    for name in ("min", "max", "mean", "std"):
        assert got[name] == pytest.approx(expected[name], rel=1e-9, abs=1e-9), name
    for p in PERCENTILES:
        assert got["percentiles"][p] == pytest.approx(expected["percentiles"][p], rel=1e-9)


# ---- values_at ----


def test_a_point_gets_the_value_of_the_pixel_under_it(terrain: str):
    with rasterio.open(terrain) as src:
        band = src.read(1)
        for row, col in [(0, 0), (17, 301), (150, 300), (511, 511), (333, 77)]:
            x, y = src.xy(row, col)  # the cell's centre
            assert values_at(terrain, x + 1.3, y - 0.7, 31370) == [float(band[row, col])]


def test_a_point_in_another_crs_is_reprojected(terrain: str):
    with rasterio.open(terrain) as src:
        band = src.read(1)
        x, y = src.xy(123, 456)
    lon, lat = Transformer.from_crs(31370, 4326, always_xy=True).transform(x, y)
    assert values_at(terrain, lon, lat, 4326) == [float(band[123, 456])]
    mx, my = Transformer.from_crs(31370, 3857, always_xy=True).transform(x, y)
    assert values_at(terrain, mx, my, 3857) == [float(band[123, 456])]


def test_a_point_on_nodata_or_outside_is_none(terrain: str):
    with rasterio.open(terrain) as src:
        assert src.read(1)[220, 60] == NODATA
        x, y = src.xy(220, 60)
    assert values_at(terrain, x, y) == [None]
    assert values_at(terrain, 160_000.0, 160_000.0) == [None]
    assert values_at(terrain, 148_000.0 - 0.01, 171_000.0) == [None]  # just west of the edge


def test_a_nan_nodata_is_nodata_for_points_and_statistics(tmp_path):
    path = str(rasters.write_terrain_nan(tmp_path / "nan.tif"))
    with rasterio.open(path) as src:
        heights = src.read(1)
        lake_x, lake_y = src.xy(120, 420)  # the lake's centre (tests.support.rasters._holes)
        dry_x, dry_y = src.xy(120, 300)
        assert np.isnan(heights[120, 420]) and not np.isnan(heights[120, 300])
    assert values_at(path, lake_x, lake_y) == [None]
    assert values_at(path, dry_x, dry_y) == [float(heights[120, 300])]
    around = box(lake_x - 250, lake_y - 250, lake_x + 250, lake_y + 250)
    got = band_stats(path, around, 31370)
    with rasterio.open(path) as src:
        cells, _ = rasterio.mask.mask(src, [around], crop=True, filled=True, nodata=np.nan)
        outside = rasterio.mask.raster_geometry_mask(src, [around], crop=True)[0]
    inside = cells[0][~outside]
    valid = inside[~np.isnan(inside)].astype(np.float64)
    assert (got["count"], got["nodata_count"]) == (valid.size, inside.size - valid.size)
    assert got["nodata_count"] > 0 and got["mean"] == pytest.approx(valid.mean(), rel=1e-9)


def test_every_band_of_an_image_is_given(rgb: str):
    with rasterio.open(rgb) as src:
        bands = src.read()
        x, y = src.xy(40, 200)
    assert values_at(rgb, x, y) == [float(v) for v in bands[:, 40, 200]]
    assert values_at(rgb, 0.0, 0.0) == [None, None, None]


def test_an_unknown_crs_is_named(terrain: str):
    with pytest.raises(InvalidParameter, match="EPSG:999999"):
        values_at(terrain, 0, 0, 999999)


# ---- band_stats ----

# Polygons over the terrain model (x 148,000-150,048, y 169,952-172,000).
SHAPES: dict[str, BaseGeometry] = {
    "triangle": Polygon([(148_101.3, 171_903.1), (148_977.7, 171_611.9), (148_333.3, 170_555.5)]),
    # Covers the nodata rectangle (rows 200-240, cols 40-100) and some data around it.
    "over_the_hole": box(148_100.0, 171_000.0, 148_500.0, 171_250.0),
    "with_a_hole": Polygon(
        [(149_000, 171_000), (149_800, 171_000), (149_800, 171_800), (149_000, 171_800)],
        [[(149_200.5, 171_200.5), (149_600.5, 171_200.5), (149_400.5, 171_600.5)]],
    ),
    "multi": MultiPolygon(
        [box(148_010.0, 170_010.0, 148_090.0, 170_090.0), Point(149_700, 170_300).buffer(80)]
    ),
    # Half on the raster, half east of it.
    "across_the_edge": box(149_900.0, 170_500.0, 150_300.0, 170_700.0),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_polygon_statistics_are_numpy_over_rasterio_mask(terrain: str, name: str):
    got = band_stats(terrain, SHAPES[name], 31370, PERCENTILES)
    expected = expected_stats(terrain, SHAPES[name])
    assert expected["count"] > 0
    assert_same(got, expected)
    if name == "over_the_hole":
        assert got["nodata_count"] > 0


def test_a_polygon_over_only_nodata_has_no_statistics(terrain: str):
    hole = box(148_200.0, 171_060.0, 148_350.0, 171_180.0)  # inside the nodata rectangle
    got = band_stats(terrain, hole, 31370, PERCENTILES)
    assert got["count"] == 0
    assert got["nodata_count"] == expected_stats(terrain, hole)["nodata_count"] > 0
    assert got["min"] is got["max"] is got["mean"] is got["std"] is None
    assert got["percentiles"] == {p: None for p in PERCENTILES}


def test_a_polygon_outside_the_raster_counts_nothing(terrain: str):
    got = band_stats(terrain, box(160_000, 160_000, 160_100, 160_100), 31370, PERCENTILES)
    assert got == {
        "count": 0,
        "nodata_count": 0,
        "min": None,
        "max": None,
        "mean": None,
        "std": None,
        "percentiles": {p: None for p in PERCENTILES},
    }


def test_a_polygon_in_another_crs_is_reprojected(terrain: str):
    shape = SHAPES["triangle"]
    to_wgs84 = Transformer.from_crs(31370, 4326, always_xy=True)
    ring = [to_wgs84.transform(x, y) for x, y in shape.exterior.coords]
    got = band_stats(terrain, Polygon(ring), 4326, PERCENTILES)
    # The same polygon brought back to Lambert 72 for rasterio.mask.
    back = Transformer.from_crs(4326, 31370, always_xy=True)
    expected = expected_stats(terrain, Polygon([back.transform(x, y) for x, y in ring]))
    assert_same(got, expected)


def test_bad_percentiles_and_bands_are_named(terrain: str):
    with pytest.raises(InvalidParameter, match="percentile .* not 101"):
        band_stats(terrain, SHAPES["triangle"], 31370, [50, 101])
    with pytest.raises(InvalidParameter, match="band 2 is not in the raster"):
        band_stats(terrain, SHAPES["triangle"], 31370, band=2)


# ---- zonal_stats ----


def buildings(count: int, seed: int) -> list[tuple[str, BaseGeometry]]:
    """Small rotated rectangles all over the raster and a little beyond it."""
    rng = np.random.default_rng(seed)
    features: list[tuple[str, BaseGeometry]] = []
    for i in range(count):
        cx, cy = rng.uniform(147_950, 150_100), rng.uniform(169_900, 172_050)
        w, h, angle = rng.uniform(3, 40), rng.uniform(3, 30), rng.uniform(0, math.pi)
        c, s = math.cos(angle), math.sin(angle)
        corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
        ring = [(cx + x * c - y * s, cy + x * s + y * c) for x, y in corners]
        features.append((f"b{i}", Polygon(ring)))
    return features


@pytest.mark.parametrize(
    ("batch", "span", "group_cells"),
    [(4096, 512, 4_000_000), (37, 16, 4_000_000), (50, 512, 0)],
    ids=["defaults", "small-batches-and-groups", "one-read-per-feature"],
)
def test_zonal_statistics_are_each_features_band_statistics(
    terrain: str, monkeypatch: pytest.MonkeyPatch, batch: int, span: int, group_cells: int
):
    monkeypatch.setattr(raster_values, "ZONAL_BATCH", batch)
    monkeypatch.setattr(raster_values, "GROUP_SPAN", span)
    monkeypatch.setattr(raster_values, "GROUP_CELLS", group_cells)
    features = buildings(300, seed=15) + [(name, shape) for name, shape in SHAPES.items()]
    features.append(("outside", box(160_000, 160_000, 160_010, 160_010)))
    features.append(("only_nodata", box(148_200.0, 171_060.0, 148_350.0, 171_180.0)))
    results = list(zonal_stats(terrain, iter(features), PERCENTILES))
    assert [key for key, _ in results] == [key for key, _ in features]
    kinds = {"empty": 0, "some": 0}
    for (_, got), (_, shape) in zip(results, features, strict=True):
        expected = expected_stats(terrain, shape)
        assert_same(got, expected)
        kinds["some" if expected["count"] else "empty"] += 1
    assert kinds["some"] > 250 and kinds["empty"] >= 2
