"""The area of use of the storage CRS in each query CRS, and query shapes cut to it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyproj
import pytest
import shapely
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from geoapi.area_of_use import (
    MAX_DENSIFIED_VERTICES,
    STEP_DEGREES,
    STEP_METRES,
    area_of_use,
    bbox_shape,
    clip,
    densify_step,
    in_storage,
    inside,
)

LAMBERT, MERCATOR, LONLAT = 31370, 3857, 4326
# EPSG's area of use of Belgian Lambert 72 ("Belgium - onshore"), as the registry publishes it.
BELGIUM = (2.5, 49.5, 6.4, 51.51)
BRUSSELS_LAMBERT = (148_250.0, 169_230.0)


def moved(srid: int, lon: float, lat: float) -> tuple[float, float]:
    x, y = pyproj.Transformer.from_crs("OGC:CRS84", srid, always_xy=True).transform(lon, lat)
    return float(x), float(y)


def compiled(expr: Any) -> tuple[str, dict[str, Any]]:
    statement = sa.select(expr).compile(dialect=postgresql.psycopg.dialect())
    return str(statement), dict(statement.params)


def test_the_area_in_longitude_latitude_is_epsgs_box():
    assert area_of_use(LAMBERT, LONLAT).equals(shapely.box(*BELGIUM))


def test_the_area_in_web_mercator_is_a_rectangle_of_four_corners():
    area = area_of_use(LAMBERT, MERCATOR)
    expected = shapely.box(*moved(MERCATOR, 2.5, 49.5), *moved(MERCATOR, 6.4, 51.51))
    assert len(area.exterior.coords) == 5
    assert shapely.equals_exact(shapely.normalize(area), shapely.normalize(expected), 1e-6)


def test_the_area_in_lambert_72_follows_the_curved_parallels():
    area = area_of_use(LAMBERT, LAMBERT)
    assert area.contains(shapely.Point(BRUSSELS_LAMBERT))
    # Points every 0.001 degree along each edge, moved by pyproj here, lie on its boundary.
    west, south, east, north = BELGIUM
    lons = np.arange(west, east, 0.001)
    lats = np.arange(south, north, 0.001)
    edges = [
        (lons, np.full_like(lons, south)),
        (lons, np.full_like(lons, north)),
        (np.full_like(lats, west), lats),
        (np.full_like(lats, east), lats),
    ]
    to_lambert = pyproj.Transformer.from_crs("OGC:CRS84", LAMBERT, always_xy=True)
    for lon, lat in edges:
        x, y = to_lambert.transform(lon, lat)
        gaps = shapely.distance(area.exterior, shapely.points(np.column_stack([x, y])))
        assert gaps.max() < 0.05  # metres
    # Parallels are arcs around the cone's apex: the northern edge's middle lies 1.6 km south
    # of the chord between its ends, and the area keeps that bend.
    middle = moved(LAMBERT, 4.45, 51.51)
    assert middle[1] < moved(LAMBERT, 2.5, 51.51)[1] - 1_000
    assert area.exterior.distance(shapely.Point(middle)) < 0.05


@pytest.mark.parametrize(
    ("srid", "world"),
    [
        (LONLAT, (-180, -90, 180, 90)),
        (MERCATOR, (-20037508.34, -20037508.34, 20037508.34, 20037508.34)),
        (MERCATOR, (-3e8, -3e8, 3e8, 3e8)),  # fifteen times the world's width
        (LAMBERT, (-1e8, -1e8, 1e8, 1e8)),
    ],
)
def test_a_world_bbox_is_cut_to_the_whole_area(srid, world):
    assert clip(bbox_shape(world), srid, LAMBERT).equals(area_of_use(LAMBERT, srid))


def test_a_world_bbox_becomes_the_envelope_of_belgium_before_it_is_densified():
    sql, params = compiled(in_storage(bbox_shape((-3e8, -3e8, 3e8, 3e8)), MERCATOR, LAMBERT))
    assert "ST_Transform(ST_Segmentize(ST_MakeEnvelope(" in sql
    assert "ST_GeomFromEWKB" not in sql
    corners = [v for k, v in params.items() if k.startswith("ST_MakeEnvelope")]
    assert corners[:4] == pytest.approx([*moved(MERCATOR, 2.5, 49.5), *moved(MERCATOR, 6.4, 51.51)])


def test_a_bbox_inside_keeps_its_numbers_and_its_statement():
    bbox = (4.3435, 50.83, 4.347, 50.833)
    assert clip(bbox_shape(bbox), LONLAT, LAMBERT).equals(shapely.box(*bbox))
    sql, params = compiled(in_storage(bbox_shape(bbox), LONLAT, LAMBERT))
    assert "ST_Transform(ST_Segmentize(ST_MakeEnvelope(" in sql and "MakeValid" not in sql
    assert [params[f"ST_MakeEnvelope_{i}"] for i in range(1, 6)] == [*bbox, LONLAT]
    assert params["ST_Segmentize_1"] == 0.001
    same_crs, _ = compiled(
        in_storage(bbox_shape((148_000, 169_000, 148_300, 169_300)), LAMBERT, LAMBERT)
    )
    assert "ST_MakeEnvelope" in same_crs and "ST_Transform" not in same_crs


def test_a_flat_bbox_is_a_line_and_a_point_bbox_a_point():
    flat = bbox_shape((148_000, 169_000, 148_002, 169_000))
    assert flat.equals(shapely.LineString([(148_000, 169_000), (148_002, 169_000)]))
    assert bbox_shape((4.3, 50.8, 4.3, 50.8)).equals(shapely.Point(4.3, 50.8))
    # Flat and crossing the area's edge: cut like any line.
    assert clip(bbox_shape((0.0, 50.0, 5.0, 50.0)), LONLAT, LAMBERT).equals(
        shapely.LineString([(2.5, 50.0), (5.0, 50.0)])
    )


@pytest.mark.parametrize(
    ("srid", "far"),
    [
        (LONLAT, (139.5, 35.5, 140.0, 36.0)),  # Tokyo
        (LONLAT, (-40.0, 30.0, -30.0, 40.0)),  # the Atlantic
        (LONLAT, (-180.0, -90.0, 180.0, -80.0)),  # around the south pole
        (MERCATOR, (15_530_000.0, 4_230_000.0, 15_590_000.0, 4_300_000.0)),  # Tokyo
        (MERCATOR, (3e7, 3e7, 4e7, 4e7)),  # beyond the world
        (LAMBERT, (1e6, 1e6, 2e6, 2e6)),
        (LAMBERT, (-1e6, -1e6, 0.0, 0.0)),
    ],
)
def test_a_shape_far_from_belgium_is_nothing(srid, far):
    assert clip(bbox_shape(far), srid, LAMBERT) is None
    assert in_storage(bbox_shape(far), srid, LAMBERT) is None


def test_a_bbox_partly_in_belgium_keeps_its_part():
    part = clip(bbox_shape((0.0, 0.0, 5.0, 60.0)), LONLAT, LAMBERT)
    assert part.equals(shapely.box(2.5, 49.5, 5.0, 51.51))
    sql, params = compiled(in_storage(bbox_shape((0.0, 0.0, 5.0, 60.0)), LONLAT, LAMBERT))
    assert "ST_MakeEnvelope" in sql  # still a rectangle: four numbers
    assert [params[f"ST_MakeEnvelope_{i}"] for i in range(1, 5)] == [2.5, 49.5, 5.0, 51.51]
    # In Lambert 72 the part is bounded by the curved area: a polygon, made valid again.
    lambert_part = clip(bbox_shape((-1e8, -1e8, 150_000, 1e8)), LAMBERT, LAMBERT)
    assert lambert_part.geom_type == "Polygon" and lambert_part.bounds[2] == 150_000
    assert lambert_part.contains(shapely.Point(140_000, 169_000))
    sql, _ = compiled(in_storage(bbox_shape((-1e8, -1e8, 150_000, 1e8)), LAMBERT, LAMBERT))
    assert "ST_GeomFromEWKB" in sql and "ST_Transform" not in sql


def test_a_polygon_partly_far_away_keeps_the_part_inside_whatever_its_orientation():
    triangle = shapely.Polygon([(0, 0), (4, 60), (-10, 60)])  # its east edge crosses Belgium
    kept = clip(triangle, LONLAT, LAMBERT)
    expected = shapely.Polygon([(2.5, 49.5), (3.3, 49.5), (3.434, 51.51), (2.5, 51.51)])
    assert shapely.equals_exact(shapely.normalize(kept), shapely.normalize(expected), 1e-9)
    world = shapely.box(-180, -90, 180, 90)
    clockwise = shapely.Polygon(list(world.exterior.coords)[::-1])
    assert not clockwise.exterior.is_ccw and world.exterior.is_ccw
    assert clip(clockwise, LONLAT, LAMBERT).equals(clip(world, LONLAT, LAMBERT))


def test_a_transformed_polygon_is_densified_then_made_valid():
    sql, params = compiled(
        in_storage(shapely.Polygon([(0, 0), (4, 60), (-10, 60)]), LONLAT, LAMBERT)
    )
    assert "ST_MakeValid(ST_Transform(ST_Segmentize(ST_GeomFromEWKB(" in sql
    ewkb = next(v for v in params.values() if isinstance(v, bytes))
    shape = shapely.from_wkb(ewkb)
    assert shapely.get_srid(shape) == LONLAT and shape.within(shapely.box(*BELGIUM))


def test_a_collection_keeps_the_parts_of_its_members_inside():
    mixed = shapely.GeometryCollection(
        [
            shapely.Point(4.35, 50.83),
            shapely.Point(139.7, 35.7),
            shapely.LineString([(0, 50), (10, 50)]),
            shapely.box(-10, -10, 100, 80),
        ]
    )
    kept = clip(mixed, LONLAT, LAMBERT)
    assert [g.geom_type for g in kept.geoms] == ["Point", "LineString", "Polygon"]
    assert kept.geoms[1].equals(shapely.LineString([(2.5, 50), (6.4, 50)]))
    assert kept.geoms[2].equals(shapely.box(*BELGIUM))
    far = shapely.GeometryCollection([shapely.Point(139.7, 35.7), shapely.box(100, 0, 110, 5)])
    assert clip(far, LONLAT, LAMBERT) is None


def test_the_edge_of_the_area_belongs_to_it():
    assert inside(shapely.Point(2.5, 49.5), LONLAT, LAMBERT)
    assert inside(shapely.Point(6.4, 50.0), LONLAT, LAMBERT)
    assert not inside(shapely.Point(2.5 - 1e-9, 49.5), LONLAT, LAMBERT)
    assert not inside(shapely.Point(139.7, 35.7), LONLAT, LAMBERT)
    assert clip(shapely.Point(2.5, 49.5), LONLAT, LAMBERT).equals(shapely.Point(2.5, 49.5))
    assert inside(shapely.Point(*BRUSSELS_LAMBERT), LAMBERT, LAMBERT)
    assert inside(shapely.Point(*moved(MERCATOR, 4.35, 50.83)), MERCATOR, LAMBERT)
    assert not inside(shapely.Point(1e7, 1e7), LAMBERT, LAMBERT)


def test_densifying_adds_at_most_a_bounded_number_of_vertices():
    # a bbox of Brussels keeps its ~100 m step
    assert densify_step(shapely.box(4.24, 50.76, 4.48, 50.92), 4326) == STEP_DEGREES
    assert densify_step(shapely.box(470_000, 6_570_000, 500_000, 6_600_000), 3857) == STEP_METRES
    # thousands of edges hundreds of kilometres long: a coarser step, the same bound
    teeth = shapely.union_all(
        [shapely.box(300_000, 6_400_000, 700_000, 6_410_000)]
        + [
            shapely.box(300_000 + 80 * i, 6_409_999, 300_040 + 80 * i, 6_650_000)
            for i in range(5_000)
        ]
    )
    step = densify_step(teeth, 3857)
    assert step > STEP_METRES
    added = shapely.get_num_coordinates(shapely.segmentize(teeth, step))
    assert added <= MAX_DENSIFIED_VERTICES + shapely.get_num_coordinates(teeth)
