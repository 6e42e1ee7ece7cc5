"""The area and the percentiles of a coverage stats request (geoapi.coverage_areas)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Transformer

from geoapi.coverage_areas import (
    cells_under,
    check_area,
    check_cells,
    in_raster_crs,
    parse_percentiles,
    percentile_key,
    polygonal,
)
from tests.support import rasters
from urbis_core import raster_values
from urbis_core.coverages import CoverageEntry
from urbis_core.errors import InvalidParameter, TooLarge


def test_percentiles_keep_their_order_once_each():
    assert parse_percentiles(None) == []
    assert parse_percentiles("") == []
    assert parse_percentiles("90, 10,50,10,90.0") == [90.0, 10.0, 50.0]
    assert parse_percentiles("0,100,12.5") == [0.0, 100.0, 12.5]


@pytest.mark.parametrize("raw", ["abc", "10,,50", "101", "-0.5", "nan", "inf", "1e3", "10;50"])
def test_a_bad_percentile_names_p(raw):
    with pytest.raises(InvalidParameter) as caught:
        parse_percentiles(raw)
    assert caught.value.parameter == "p"


def test_too_many_percentiles_are_refused():
    assert len(parse_percentiles(",".join(str(n) for n in range(100)))) == 100
    with pytest.raises(InvalidParameter, match="at most 100"):
        parse_percentiles(",".join(str(n) for n in range(101)))


def test_percentile_keys_read_as_written():
    assert [percentile_key(v) for v in (10.0, 0.0, 100.0, 12.5, 99.99)] == [
        "10",
        "0",
        "100",
        "12.5",
        "99.99",
    ]


@pytest.mark.parametrize(
    "geometry",
    [shapely.Point(4.35, 50.84), shapely.LineString([(4.35, 50.84), (4.36, 50.84)])],
)
def test_points_and_lines_hold_no_area(geometry):
    with pytest.raises(InvalidParameter) as caught:
        check_area(geometry, "body", "terrain")
    assert caught.value.parameter == "body"
    assert geometry.geom_type in str(caught.value) and "/coverages/terrain/point" in str(
        caught.value
    )
    check_area(shapely.box(0, 0, 1, 1), "body", "terrain")  # a polygon passes


def test_polygonal_keeps_the_polygons_of_a_collection():
    square = shapely.box(0, 0, 1, 1)
    mixed = shapely.GeometryCollection([square, shapely.LineString([(5, 5), (6, 6)])])
    assert polygonal(mixed).equals(square)
    assert polygonal(shapely.LineString([(0, 0), (1, 1)])).is_empty


def test_a_crs84_polygon_lands_where_pyproj_puts_its_corners():
    rectangle = shapely.box(4.345, 50.835, 4.361, 50.843)
    moved = in_raster_crs(rectangle, 4326)
    to_l72 = Transformer.from_crs(4326, 31370, always_xy=True)
    for lon, lat in rectangle.exterior.coords:
        corner = shapely.Point(to_l72.transform(lon, lat))
        assert moved.exterior.distance(corner) < 1e-6
    # its edges follow the parallels and meridians (densified), within a millimetre
    middle = shapely.Point(to_l72.transform(4.353, 50.835))
    assert moved.exterior.distance(middle) < 1e-3
    assert moved.is_valid and moved.area == pytest.approx(1_000_000, rel=0.2)


def test_a_lambert_72_polygon_is_kept_as_it_is():
    square = shapely.box(148_000, 169_000, 149_000, 170_000)
    assert in_raster_crs(square, 31370).equals(square)


def test_an_area_outside_belgium_is_empty_and_one_across_its_edge_cut():
    assert in_raster_crs(shapely.box(10, 10, 11, 11), 4326).is_empty
    world = in_raster_crs(shapely.box(-180, -90, 180, 90), 4326)
    assert not world.is_empty and world.is_valid
    to_l72 = Transformer.from_crs(4326, 31370, always_xy=True)
    assert world.covers(shapely.Point(to_l72.transform(4.35, 50.84)))
    west, south, east, north = world.bounds
    assert -100_000 < west and east < 400_000 and -100_000 < south and north < 300_000


def _entry(path: Path) -> CoverageEntry:
    with rasterio.open(path) as src:
        return CoverageEntry(
            id="terrain",
            title={},
            description=None,
            path=str(path),
            version=1,
            checksum="",
            bands=(),
            width=src.width,
            height=src.height,
            resolution=src.res,
            bbox_native=tuple(src.bounds),
            bbox_crs84=(0.0, 0.0, 0.0, 0.0),
            srid=31370,
            style={},
            last_success=None,
        )


def test_the_cells_counted_are_those_band_stats_reads(tmp_path):
    path = rasters.write_terrain(tmp_path / "dtm.tif")
    entry = _entry(path)
    random = np.random.default_rng(15)
    areas = [shapely.box(100_000, 100_000, 110_000, 110_000), shapely.Polygon()]
    for _ in range(200):
        x, y = random.uniform(146_000, 153_000), random.uniform(167_000, 173_000)
        w, h = random.uniform(0.1, 3_000), random.uniform(0.1, 3_000)
        areas.append(shapely.box(x, y, x + w, y + h))
    with rasterio.open(path) as src:
        for area in areas:
            window = raster_values._window(src, area)
            read = 0 if window is None else window.width * window.height
            assert cells_under(entry, area) == read, area.bounds
    check_cells(entry, areas[2], cells_under(entry, areas[2]))  # as many as allowed: fine
    with pytest.raises(TooLarge, match="URBIS_MAX_STATS_CELLS"):
        check_cells(entry, shapely.box(148_000, 169_000, 148_010, 169_010), 3)
