"""The coverages API against an independent reading of the same rasters.

A real `urbis serve` over three synced raster layers (tests/api/conftest.py `coverage_*`):
`terrain` (EPSG:31370, float32, nodata holes), `imagery` (RGB uint8, nodata 0) and
`terrain_l08` (the same terrain on a Lambert 2008 grid, reprojected by the sync). Every number
the API gives is compared with rasterio and numpy reading the files directly: the metadata with
the COG the sync wrote, the point values and the statistics with the SOURCE file the tests
generated (tests/support/rasters.py), never with a figure copied from a run.
"""

from __future__ import annotations

import itertools
import math
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
import rasterio
import rasterio.mask
import schemathesis
import shapely
from openapi_schema_validator import OAS30Validator
from pyproj import Transformer
from schemathesis import GenerationMode
from selenium.webdriver.support.ui import WebDriverWait

from tests.api.conftest import CoverageSources, start_server
from tests.api.test_property_run import FAST_EXAMPLES, Outcome, fuzz
from tests.conftest import TEMPLATE_DB, create_database, drop_database
from tests.support import rasters
from tiles.raster import RAMPS
from urbis_core.config import load_config
from urbis_core.db import create_sync_engine
from urbis_core.settings import SyncSettings
from urbis_sync.run import sync_layer

pytestmark = pytest.mark.api

L72 = "EPSG:31370"
PROBLEM = "application/problem+json"
IDS = ["imagery", "terrain", "terrain_l08"]


# -- helpers ------------------------------------------------------------------------------------


def cog_of(sources: CoverageSources, coverage: str) -> Path:
    """The COG the sync wrote for a coverage (the one file in its folder)."""
    files = sorted((sources.raster_dir / coverage).glob("*.tif"))
    assert len(files) == 1, files
    return files[0]


def source_of(sources: CoverageSources, coverage: str) -> Path:
    return {
        "terrain": sources.terrain,
        "imagery": sources.imagery,
        "terrain_l08": sources.terrain_l08,
    }[coverage]


def centre_of(row: int, col: int) -> tuple[float, float]:
    """The Lambert 72 centre of a pixel of the terrain and imagery grids."""
    return (
        rasters.ORIGIN[0] + (col + 0.5) * rasters.PIXEL,
        rasters.ORIGIN[1] - (row + 0.5) * rasters.PIXEL,
    )


def to_crs(srid_from: int | str, srid_to: int | str, x: float, y: float) -> tuple[float, float]:
    return Transformer.from_crs(srid_from, srid_to, always_xy=True).transform(x, y)


def assert_problem(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM
    doc = response.json()
    assert doc["status"] == status and doc["title"] and doc["detail"]
    for word in words:
        assert word in doc["detail"], doc["detail"]


def point(client: httpx.Client, coverage: str, x: float, y: float, crs: str | None = None) -> dict:
    params = {"x": repr(x), "y": repr(y), **({"crs": crs} if crs else {})}
    response = client.get(f"/coverages/{coverage}/point", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def reference_stats(path: Path, geometry: shapely.Geometry, band: int = 1) -> dict:
    """numpy over rasterio.mask of the file: the cells whose centre is inside the geometry."""
    with rasterio.open(path) as src:
        inside_mask, _, window = rasterio.mask.raster_geometry_mask(
            src, [shapely.geometry.mapping(geometry)], crop=True
        )
        data = src.read(band, window=window)
        nodata = src.nodata
    inside = ~inside_mask
    hole = data == nodata if nodata is not None else np.zeros(data.shape, bool)
    values = data[inside & ~hole].astype(np.float64)
    return {"count": values.size, "nodataCount": int((inside & hole).sum()), "values": values}


def post_stats(client: httpx.Client, coverage: str, body: object | None, **params: str) -> dict:
    response = client.post(f"/coverages/{coverage}/stats", params=params, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def assert_stats_equal(answer: dict, expected: dict, percentiles: tuple[float, ...] = ()) -> None:
    values = expected["values"]
    assert answer["count"] == expected["count"]
    assert answer["nodataCount"] == expected["nodataCount"]
    assert answer["count"] > 0
    assert answer["min"] == float(values.min())
    assert answer["max"] == float(values.max())
    assert answer["mean"] == pytest.approx(float(values.mean()), rel=1e-12)
    assert answer["std"] == pytest.approx(float(values.std()), rel=1e-9)
    for p in percentiles:
        key = str(int(p)) if float(p).is_integer() else repr(p)
        assert answer["percentiles"][key] == pytest.approx(float(np.percentile(values, p)))


def ring(minx: float, miny: float, maxx: float, maxy: float) -> list[list[float]]:
    return [[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]


# -- metadata -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listing(coverage_client: httpx.Client) -> dict:
    response = coverage_client.get("/coverages")
    assert response.status_code == 200, response.text
    return response.json()


def test_the_list_holds_the_three_synced_coverages_with_their_links(listing, coverage_api):
    assert [c["id"] for c in listing["coverages"]] == IDS
    rels = {(lk["rel"], lk["type"]) for lk in listing["links"]}
    assert ("self", "application/json") in rels and ("alternate", "text/html") in rels
    for coverage in listing["coverages"]:
        href = f"{coverage_api}/coverages/{coverage['id']}"
        links = coverage["links"]
        assert {"rel": "self", "type": "application/json", "href": href} in links
        tiles = [lk for lk in links if lk["rel"] == "item"]
        assert {lk["href"] for lk in tiles} == {
            f"{href}/tiles/{tms}/{{z}}/{{x}}/{{y}}.png"
            for tms in ("WebMercatorQuad", "BelgianLambert72")
        }
        assert all(lk["templated"] and lk["type"] == "image/png" for lk in tiles)
        assert {lk["href"] for lk in links if lk["rel"] == "describedby"} == {
            f"{href}/tiles/{tms}/tilejson.json" for tms in ("WebMercatorQuad", "BelgianLambert72")
        }
        related = {lk["href"] for lk in links if lk["rel"] == "related"}
        assert related == {
            f"{href}/point?x={{x}}&y={{y}}",
            f"{href}/stats",
            f"{href}/zonal?collection={{collection}}",
        }


@pytest.mark.parametrize("coverage", IDS)
def test_metadata_is_what_rasterio_reads_from_the_cog(
    coverage_client, coverage_sources, listing, coverage
):
    doc = coverage_client.get(f"/coverages/{coverage}").json()
    assert doc == next(c for c in listing["coverages"] if c["id"] == coverage)
    with rasterio.open(cog_of(coverage_sources, coverage)) as src:
        assert src.crs.to_epsg() == 31370
        assert (doc["width"], doc["height"]) == (src.width, src.height)
        assert doc["resolution"] == list(src.res)
        assert doc["extent"]["native"] == {
            "crs": "http://www.opengis.net/def/crs/EPSG/0/31370",
            "bbox": list(src.bounds),
        }
        west, south, east, north = Transformer.from_crs(
            31370, "OGC:CRS84", always_xy=True
        ).transform_bounds(*src.bounds, densify_pts=21)
        assert doc["extent"]["crs84"] == pytest.approx([west, south, east, north], abs=1e-9)
        assert len(doc["bands"]) == src.count
        for n, band in enumerate(doc["bands"], start=1):
            assert band["dtype"] == src.dtypes[n - 1]
            assert band["nodata"] == src.nodata
            data = src.read(n, masked=True)
            valid = data.compressed().astype(np.float64)
            assert band["min"] == float(valid.min())
            assert band["max"] == float(valid.max())
            assert band["mean"] == pytest.approx(float(valid.mean()), rel=1e-9)
            assert band["std"] == pytest.approx(float(valid.std()), rel=1e-6)
    assert doc["imagery"] is (coverage == "imagery")
    assert doc["titles"]["en"] == doc["title"] and set(doc["titles"]) == {"en", "fr", "nl"}
    assert doc["version"] >= 1 and re.fullmatch(r"[0-9a-f]{64}", doc["checksum"])
    assert doc["lastSuccess"] is not None


def test_a_coverage_in_lambert_72_keeps_the_source_grid(coverage_sources):
    """What lets the point tests compare with the source pixel by pixel."""
    for coverage in ("terrain", "imagery"):
        with (
            rasterio.open(cog_of(coverage_sources, coverage)) as cog,
            rasterio.open(source_of(coverage_sources, coverage)) as src,
        ):
            assert cog.transform == src.transform and cog.shape == src.shape


def test_the_style_is_the_layers_and_its_ramp_the_tiles(coverage_client):
    terrain = coverage_client.get("/coverages/terrain").json()
    band = terrain["bands"][0]
    style = terrain["style"]
    # configured: colormap terrain, hillshade; rescale: the band's range (the default)
    assert style["colormap"] == "terrain" and style["hillshade"] is True
    assert style["units"] == "m"  # the layer's style.units, for legends
    assert style["rescale"] == [band["min"], band["max"]]
    assert style["ramp"] == [[where, "#" + bytes(rgb).hex()] for where, rgb in RAMPS["terrain"]]
    l08 = coverage_client.get("/coverages/terrain_l08").json()["style"]
    assert l08["colormap"] == "greys" and l08["hillshade"] is False
    assert l08["ramp"] == [[0.0, "#000000"], [1.0, "#ffffff"]] and l08["units"] is None
    imagery = coverage_client.get("/coverages/imagery").json()["style"]
    assert imagery == {
        "colormap": None,
        "rescale": None,
        "hillshade": False,
        "ramp": None,
        "units": None,
    }


def test_an_empty_catalog_lists_no_coverage(client):
    """The plain sample server: no raster layer synced."""
    response = client.get("/coverages")
    assert response.status_code == 200
    assert response.json()["coverages"] == []
    page = client.get("/coverages?f=html&lang=nl")
    assert page.status_code == 200 and "Er is nog geen rasterlaag" in page.text


def test_an_unknown_coverage_is_a_404_naming_the_known_ones(coverage_client):
    for path in ("/coverages/nope", "/coverages/nope/point?x=4.35&y=50.84"):
        assert_problem(coverage_client.get(path), 404, "nope", "imagery, terrain, terrain_l08")
    assert_problem(
        coverage_client.post("/coverages/nope/stats", json={"type": "Point"}), 404, "nope"
    )
    page = coverage_client.get("/coverages/nope?f=html&lang=fr")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]


def test_the_landing_page_links_the_coverages(coverage_client, coverage_api):
    links = coverage_client.get("/").json()["links"]
    found = [lk for lk in links if lk["href"] == f"{coverage_api}/coverages"]
    assert [lk["rel"] for lk in found] == ["http://www.opengis.net/def/rel/ogc/1.0/coverage"]
    assert [lk["rel"] for lk in links].count("data") == 1  # still the collections alone
    for lang, words in (("fr", "Les couvertures"), ("nl", "De coverages"), ("en", "The coverages")):
        page = coverage_client.get(f"/?f=html&lang={lang}").text
        assert f'href="{coverage_api}/coverages?f=html&amp;lang={lang}">{words}' in page


# -- values at a point ----------------------------------------------------------------------------

# Pixels (row, column) of the terrain grid away from its holes, spread over it.
PIXELS = [(0, 0), (10, 590), (200, 300), (250, 123), (399, 599), (387, 4)]


@pytest.mark.parametrize(("row", "col"), PIXELS)
def test_point_values_equal_the_source_pixel_in_each_crs(
    coverage_client, coverage_sources, row, col
):
    with rasterio.open(coverage_sources.terrain) as src:
        height = float(src.read(1)[row, col])
    with rasterio.open(coverage_sources.imagery) as src:
        # the unflown corner (0, nodata) answers null and nodata
        colours = [
            (None, True) if v == src.nodata else (float(v), False) for v in src.read()[:, row, col]
        ]
    x, y = centre_of(row, col)
    lon, lat = to_crs(31370, 4326, x, y)
    mx, my = to_crs(31370, 3857, x, y)
    asked = [(x, y, L72), (lon, lat, None), (lat, lon, "EPSG:4326"), (mx, my, "EPSG:3857")]
    for qx, qy, crs in asked:
        terrain = point(coverage_client, "terrain", qx, qy, crs)
        assert terrain["values"] == [
            {"band": 1, "name": "band1", "value": height, "nodata": False, "outside": False}
        ], crs
        imagery = point(coverage_client, "imagery", qx, qy, crs)
        assert [(v["value"], v["nodata"]) for v in imagery["values"]] == colours, crs
        assert [v["name"] for v in imagery["values"]] == ["red", "green", "blue"]
    answer = point(coverage_client, "terrain", lat, lon, "EPSG:4326")
    assert answer["point"] == {
        "x": lat,
        "y": lon,
        "crs": "http://www.opengis.net/def/crs/EPSG/0/4326",
    }
    assert answer["coverage"] == "terrain" and answer["version"] >= 1


def test_the_reprojected_coverage_holds_the_source_values_near_the_point(
    coverage_client, coverage_sources
):
    """terrain_l08 was resampled (bilinear) from a Lambert 2008 grid to a Lambert 72 one.

    Its cell under the point has its centre within half a cell's diagonal of the point, and
    bilinear resampling gives it a weighted mean of the 2 x 2 source cells around that centre:
    all lie within `reach` source cells of the source cell under the point. So the value lies
    between the least and the greatest source value of that neighbourhood, a bound that
    follows from the resampling rather than from a tolerance picked to pass. It must also be
    closer to the source cell's own value than that neighbourhood's spread.
    """
    with rasterio.open(cog_of(coverage_sources, "terrain_l08")) as cog:
        half_diagonal = math.hypot(*cog.res) / 2
    with rasterio.open(coverage_sources.terrain_l08) as src:
        data = src.read(1)
        to_l08 = Transformer.from_crs(31370, src.crs.to_wkt(), always_xy=True)
        reach = 1 + math.ceil(half_diagonal / src.res[0])
        checked = 0
        for x in np.linspace(148_300, 150_700, 7):
            for y in np.linspace(169_300, 170_700, 5):
                row, col = src.index(*to_l08.transform(x, y))
                near = data[row - reach : row + reach + 1, col - reach : col + reach + 1]
                if (near == src.nodata).any():
                    continue
                value = point(coverage_client, "terrain_l08", float(x), float(y), L72)
                got = value["values"][0]["value"]
                assert near.min() <= got <= near.max(), (x, y, got, near)
                checked += 1
    assert checked >= 25


def test_nodata_holes_say_nodata(coverage_client, coverage_sources):
    lake = centre_of(120, 420)  # the disc's centre (tests.support.rasters._holes)
    strip = centre_of(305, 100)
    for x, y in (lake, strip):
        assert point(coverage_client, "terrain", x, y, L72)["values"] == [
            {"band": 1, "name": "band1", "value": None, "nodata": True, "outside": False}
        ]
    # the lake of the Lambert 2008 grid, where the sync carried it
    with rasterio.open(coverage_sources.terrain_l08) as src:
        lx, ly = src.xy(120, 420)
    x, y = to_crs(src.crs.to_wkt(), 31370, lx, ly)
    assert point(coverage_client, "terrain_l08", x, y, L72)["values"][0]["nodata"] is True
    # the imagery's unflown corner: 0 in every band
    corner = point(coverage_client, "imagery", *centre_of(5, 5), L72)["values"]
    assert [(v["value"], v["nodata"], v["outside"]) for v in corner] == [(None, True, False)] * 3


def test_a_point_off_the_raster_is_outside_not_an_error(coverage_client):
    west, north = rasters.ORIGIN
    east, south = west + 600 * rasters.PIXEL, north - 400 * rasters.PIXEL
    off = [
        (east, 170_000.0, L72),  # the east edge belongs to no cell
        (149_000.0, south, L72),  # nor does the south one
        (west - 0.001, 170_000.0, L72),
        (141_500.0, 167_000.0, L72),  # the sample's buildings, west of the rasters
        (4.35, 50.83, None),  # just south of them, in CRS84
        (0.0, 0.0, None),  # far from Belgium
        (-170.0, -80.0, None),
    ]
    for x, y, crs in off:
        for coverage, bands in (("terrain", 1), ("imagery", 3)):
            values = point(coverage_client, coverage, x, y, crs)["values"]
            assert [(v["value"], v["nodata"], v["outside"]) for v in values] == [
                (None, False, True)
            ] * bands, (x, y, crs)
    # the west and north edges belong to the first cells
    first = point(coverage_client, "terrain", west, north, L72)["values"][0]
    assert first["outside"] is False and first["value"] == float(rasters.terrain_array()[0, 0])


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("y=50.84", "x"),
        ("x=4.35", "y"),
        ("x=abc&y=50.84", "x"),
        ("x=nan&y=50.84", "x"),
        ("x=200&y=50.84", "x"),
        ("x=4.35&y=95", "y"),
        ("x=50.84&y=200&crs=EPSG:4326", "y"),
        ("x=4.35&y=50.84&crs=EPSG:9999", "crs"),
        ("x=3e7&y=170000&crs=EPSG:31370", "x"),
        ("x=4.35&y=50.84&band=1", "band"),
    ],
)
def test_bad_point_parameters_are_400s_naming_them(coverage_client, query, parameter):
    response = coverage_client.get(f"/coverages/terrain/point?{query}")
    assert_problem(response, 400, parameter)


# -- statistics -----------------------------------------------------------------------------------

# A Lambert 72 polygon over the terrain's western hill, its edges not on the grid's lines,
# with a hole, crossing the missing strip's row band.
AREA_L72 = shapely.Polygon(
    [
        (148_103.2, 169_402.7),
        (149_611.9, 169_377.1),
        (149_950.4, 170_488.8),
        (148_240.6, 170_702.3),
    ],
    holes=[[(148_800.0, 169_900.0), (149_100.0, 169_900.0), (149_000.0, 170_100.0)]],
)
PERCENTILES = (0, 10, 12.5, 50, 90, 100)


def test_stats_of_a_posted_polygon_equal_numpy_over_rasterio_mask_of_the_source(
    coverage_client, coverage_sources
):
    answer = post_stats(
        coverage_client,
        "terrain",
        shapely.geometry.mapping(AREA_L72),
        crs=L72,
        p=",".join(str(p) for p in PERCENTILES),
    )
    expected = reference_stats(coverage_sources.terrain, AREA_L72)
    assert expected["nodataCount"] > 0  # the strip's cells are in it
    assert_stats_equal(answer, expected, PERCENTILES)
    assert list(answer["percentiles"]) == ["0", "10", "12.5", "50", "90", "100"]
    assert (answer["coverage"], answer["band"]) == ("terrain", 1)


def test_stats_of_each_imagery_band(coverage_client, coverage_sources):
    for band in (1, 2, 3):
        answer = post_stats(
            coverage_client,
            "imagery",
            shapely.geometry.mapping(AREA_L72),
            crs=L72,
            band=str(band),
            p="50",
        )
        assert answer["band"] == band
        assert_stats_equal(answer, reference_stats(coverage_sources.imagery, AREA_L72, band), (50,))


def test_a_polygon_in_crs84_or_as_a_feature_is_the_same_area(coverage_client, coverage_sources):
    """A CRS84 rectangle: the reference transforms it densely (every ~1 m) to Lambert 72."""
    rectangle = shapely.box(4.3452, 50.8352, 4.3611, 50.8437)
    to_l72 = Transformer.from_crs(4326, 31370, always_xy=True)
    dense = shapely.segmentize(rectangle, 0.00001)
    in_l72 = shapely.transform(dense, lambda xy: np.column_stack(to_l72.transform(*xy.T)))
    expected = reference_stats(coverage_sources.terrain, in_l72)
    plain = post_stats(coverage_client, "terrain", shapely.geometry.mapping(rectangle), p="50")
    assert_stats_equal(plain, expected, (50,))
    feature = {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(rectangle)}
    assert post_stats(coverage_client, "terrain", feature, p="50") == plain
    swapped = shapely.transform(rectangle, lambda xy: xy[:, ::-1])
    lat_first = post_stats(
        coverage_client, "terrain", shapely.geometry.mapping(swapped), crs="EPSG:4326", p="50"
    )
    assert lat_first == plain


def test_stats_of_a_stored_feature_use_its_geometry(coverage_client, coverage_sources):
    """Saint-Gilles (21013) overlaps the rasters' west part."""
    response = coverage_client.get(
        "/collections/municipalities/items/21013", params={"crs": L72, "f": "json"}
    )
    geometry = shapely.geometry.shape(response.json()["geometry"])
    expected = reference_stats(coverage_sources.terrain, geometry)
    answer = post_stats(coverage_client, "terrain", None, feature="municipalities/21013", p="90")
    assert_stats_equal(answer, expected, (90,))
    # the same numbers as posting that geometry
    posted = post_stats(
        coverage_client, "terrain", shapely.geometry.mapping(geometry), crs=L72, p="90"
    )
    assert posted == answer


def test_the_reprojected_coverage_stats_equal_numpy_over_its_cog(coverage_client, coverage_sources):
    """terrain_l08's numbers are those of the resampled grid: the COG is the reference."""
    answer = post_stats(
        coverage_client, "terrain_l08", shapely.geometry.mapping(AREA_L72), crs=L72, p="50"
    )
    assert_stats_equal(answer, reference_stats(cog_of(coverage_sources, "terrain_l08"), AREA_L72))
    # and close to the source terrain's: the same surface, resampled
    terrain = post_stats(
        coverage_client, "terrain", shapely.geometry.mapping(AREA_L72), crs=L72, p="50"
    )
    assert answer["mean"] == pytest.approx(terrain["mean"], abs=0.5)


def test_an_area_off_the_raster_or_all_nodata_has_no_statistics(coverage_client, coverage_sources):
    empty = {"min": None, "max": None, "mean": None, "std": None, "percentiles": {"50": None}}
    buildings = {"type": "Polygon", "coordinates": [ring(141_200, 166_400, 142_600, 167_800)]}
    far = {"type": "Polygon", "coordinates": [ring(10.0, 10.0, 10.1, 10.1)]}
    for body, crs in ((buildings, L72), (far, None)):
        answer = post_stats(
            coverage_client, "terrain", body, p="50", **({"crs": crs} if crs else {})
        )
        assert {k: answer[k] for k in ("count", "nodataCount")} == {"count": 0, "nodataCount": 0}
        assert {k: answer[k] for k in empty} == empty
    # inside the lake: every cell is nodata
    x, y = centre_of(120, 420)
    lake = shapely.Point(x, y).buffer(100)
    answer = post_stats(coverage_client, "terrain", shapely.geometry.mapping(lake), crs=L72, p="50")
    expected = reference_stats(coverage_sources.terrain, lake)
    assert expected["count"] == 0 and expected["nodataCount"] > 0
    assert (answer["count"], answer["nodataCount"]) == (0, expected["nodataCount"])
    assert {k: answer[k] for k in empty} == empty
    # a polygon smaller than a cell, between cell centres: no cell
    tiny = {"type": "Polygon", "coordinates": [ring(149_000.1, 170_000.1, 149_001.0, 170_001.0)]}
    answer = post_stats(coverage_client, "terrain", tiny, crs=L72)
    assert (answer["count"], answer["nodataCount"], answer["mean"]) == (0, 0, None)


SQUARE = {"type": "Polygon", "coordinates": [ring(149_000, 170_000, 149_100, 170_100)]}


@pytest.mark.parametrize(
    ("query", "body", "parameter"),
    [
        ("p=abc", SQUARE, "p"),
        ("p=10,,50", SQUARE, "p"),
        ("p=101", SQUARE, "p"),
        ("p=-1", SQUARE, "p"),
        ("p=nan", SQUARE, "p"),
        ("band=0", SQUARE, "band"),
        ("band=2", SQUARE, "band"),
        ("band=x", SQUARE, "band"),
        ("crs=EPSG:1234", SQUARE, "crs"),
        ("crs=EPSG:31370&nope=1", SQUARE, "nope"),
        ("", None, "body"),
        ("crs=EPSG:31370", {"type": "Point", "coordinates": [149_000, 170_000]}, "Point"),
        (
            "crs=EPSG:31370",
            {"type": "LineString", "coordinates": [[149_000, 170_000], [149_100, 170_000]]},
            "LineString",
        ),
        (
            "",
            {"type": "Polygon", "coordinates": [ring(149_000, 170_000, 149_100, 170_100)]},
            "body",
        ),
        ("feature=municipalities", None, "feature"),
        ("feature=municipalities/21013", SQUARE, "feature"),
        ("feature=municipalities/21013&crs=EPSG:31370", None, "crs"),
    ],
)
def test_bad_stats_requests_are_400s_naming_the_parameter(coverage_client, query, body, parameter):
    response = coverage_client.post(f"/coverages/terrain/stats?{query}", json=body)
    assert_problem(response, 400, parameter)


def test_a_point_feature_is_refused_for_holding_no_area(coverage_client):
    key = coverage_client.get("/collections/addresses/items?limit=1").json()["features"][0]["id"]
    response = coverage_client.post(f"/coverages/terrain/stats?feature=addresses/{key}")
    assert_problem(response, 400, "feature", "Point", "/point")


def test_an_unknown_feature_or_collection_is_a_404(coverage_client):
    for feature, words in (
        ("nope/1", ("nope",)),
        ("municipalities/99999", ("99999", "municipalities")),
        ("municipalities/not-a-number", ("not-a-number",)),
    ):
        response = coverage_client.post(f"/coverages/terrain/stats?feature={feature}")
        assert_problem(response, 404, *words)


def test_a_body_that_is_not_json_is_a_400(coverage_client):
    response = coverage_client.post(
        "/coverages/terrain/stats",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400, "body", "not JSON")


# -- pages ----------------------------------------------------------------------------------------

TITLES = {"en": "Terrain model", "fr": "Modèle de terrain", "nl": "Terreinmodel"}
WORDS = {
    "en": ("Bands", "Legend", "cell size (m)", "with hillshading"),
    "fr": ("Bandes", "Légende", "taille de cellule (m)", "avec ombrage du relief"),
    "nl": ("Banden", "Legende", "celgrootte (m)", "met reliëfschaduw"),
}


@pytest.mark.parametrize("lang", ["en", "fr", "nl"])
def test_the_pages_are_in_three_languages(coverage_client, coverage_api, lang):
    listing = coverage_client.get(f"/coverages?f=html&lang={lang}")
    assert listing.status_code == 200 and listing.headers["content-language"] == lang
    assert TITLES[lang] in listing.text
    assert f'href="{coverage_api}/coverages/terrain?f=html&amp;lang={lang}"' in listing.text
    page = coverage_client.get(f"/coverages/terrain?f=html&lang={lang}")
    assert page.status_code == 200 and page.headers["content-language"] == lang
    assert f"<h1>{TITLES[lang]}</h1>" in page.text
    for word in WORDS[lang]:
        assert word in page.text, word
    # the legend is the style's ramp, its ends the rescale
    doc = coverage_client.get("/coverages/terrain").json()
    stops = ", ".join(f"{colour} {where * 100:g}%" for where, colour in doc["style"]["ramp"])
    assert f"linear-gradient(to right, {stops})" in page.text
    # the map draws the coverage's WebMercatorQuad tiles over its extent
    config = re.search(r'id="map-config">(.*?)</script>', page.text)
    assert config is not None
    assert f"{coverage_api}/coverages/terrain/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png" in (
        config.group(1)
    )
    assert str(doc["extent"]["crs84"][0]) in config.group(1)


def test_a_browser_asking_for_html_gets_the_page(coverage_client):
    response = coverage_client.get(
        "/coverages/imagery", headers={"accept": "text/html", "accept-language": "nl"}
    )
    assert response.status_code == 200 and "<h1>Orthofoto</h1>" in response.text
    assert "Getekend in de eigen kleuren." in response.text  # imagery has no ramp
    assert "Accept" in response.headers["vary"]


# -- the definition -------------------------------------------------------------------------------

MODELS = {
    ("get", "/coverages"): "Coverages",
    ("get", "/coverages/{coverage_id}"): "Coverage",
    ("get", "/coverages/{coverage_id}/point"): "PointValues",
    ("post", "/coverages/{coverage_id}/stats"): "CoverageStats",
}


@pytest.fixture(scope="module")
def definition(coverage_client: httpx.Client) -> dict:
    return coverage_client.get("/openapi.json").json()


def test_the_definition_lists_the_operations_with_their_models(definition):
    for (method, path), model in MODELS.items():
        responses = definition["paths"][path][method]["responses"]
        schema = responses["200"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}
        assert model in definition["components"]["schemas"]
        assert "400" in responses and "422" not in responses
    assert "404" in definition["paths"]["/coverages/{coverage_id}/point"]["get"]["responses"]


@pytest.mark.parametrize(
    ("method", "target", "body", "status"),
    [
        ("GET", "/coverages", None, 200),
        ("GET", "/coverages/terrain", None, 200),
        ("GET", "/coverages/imagery", None, 200),
        ("GET", "/coverages/terrain/point?x=4.35&y=50.84", None, 200),
        ("GET", "/coverages/imagery/point?x=0&y=0", None, 200),
        ("POST", "/coverages/terrain/stats?p=50&crs=EPSG:31370", SQUARE, 200),
        (
            "POST",
            "/coverages/terrain/stats?p=50",
            {"type": "Polygon", "coordinates": [ring(0, 0, 1, 1)]},
            200,
        ),
        ("GET", "/coverages/nope", None, 404),
        ("GET", "/coverages/terrain/point?x=abc&y=1", None, 400),
        ("POST", "/coverages/terrain/stats?band=9", SQUARE, 400),
    ],
)
def test_each_answer_is_what_the_definition_says(
    coverage_client, definition, method, target, body, status
):
    response = coverage_client.request(method, target, json=body)
    assert response.status_code == status, response.text
    path = target.split("?")[0]
    template = next(
        t
        for t, item in definition["paths"].items()
        if method.lower() in item
        and re.match("^" + re.sub(r"\\{[^/]+\\}", "[^/]+", re.escape(t)) + "$", path)
    )
    documented = definition["paths"][template][method.lower()]["responses"][str(status)]
    media_type = response.headers["content-type"].split(";")[0]
    schema = documented["content"][media_type]["schema"]
    validator = OAS30Validator({**schema, "components": definition["components"]})
    errors = [e.message[:200] for e in validator.iter_errors(response.json())]
    assert not errors, errors


# -- the page's map, in a real browser -------------------------------------------------------------


def test_the_page_map_draws_the_coverage_tiles_over_its_extent(
    browser, coverage_client, coverage_api
):
    """Chromium opens the page: MapLibre fits the coverage's extent and asks for its tiles."""
    doc = coverage_client.get("/coverages/terrain").json()
    browser.get(f"{coverage_api}/coverages/terrain?f=html&lang=en")
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script(
            "const map = window.urbisCoverageMap;"
            "const asked = performance.getEntriesByType('resource')"
            "  .some(e => e.name.includes('/coverages/terrain/tiles/'));"
            "return !!(map && asked && map.loaded() && map.areTilesLoaded());"
        )
    )
    west, south, east, north = doc["extent"]["crs84"]
    view = browser.execute_script(
        "const b = window.urbisCoverageMap.getBounds();"
        "return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()];"
    )
    # fitted with 20 px of padding: the view holds the extent, and not much more
    assert view[0] <= west and view[1] <= south and view[2] >= east and view[3] >= north
    assert (view[2] - view[0]) < 2 * (east - west) or (view[3] - view[1]) < 2 * (north - south)
    source = browser.execute_script("return window.urbisCoverageMap.getSource('coverage').tiles;")
    template = f"{coverage_api}/coverages/terrain/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png"
    assert source == [template]
    urls = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);"
    )
    pattern = re.escape(template).replace(r"\{z\}", r"\d+").replace(r"\{x\}", r"\d+")
    tiles = [u for u in urls if re.fullmatch(pattern.replace(r"\{y\}", r"\d+"), u)]
    assert tiles, urls
    for url in tiles:  # only tiles over the coverage (its source's bounds)
        z, x, y = (int(n) for n in re.findall(r"/(\d+)/(\d+)/(\d+)\.png$", url)[0])
        lon0, lon1 = x / 2**z * 360 - 180, (x + 1) / 2**z * 360 - 180
        lat0 = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 1) / 2**z))))
        lat1 = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / 2**z))))
        assert lon0 < east and lon1 > west and lat0 < north and lat1 > south, url
    host = urlparse(coverage_api).netloc
    assert [u for u in urls if urlparse(u).netloc != host] == []
    # a script error fails the test; a tile the server has not drawn is no script error
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert all("/coverages/terrain/tiles/" in e["message"] for e in errors), errors


POINT_WORDS = {
    "en": ("Terrain model: the values at a point", "no data", "lies off the raster"),
    "fr": ("Modèle de terrain : les valeurs en un point", "pas de donnée", "hors de la couche"),
    "nl": ("Terreinmodel: de waarden op een punt", "geen gegevens", "buiten de rasterlaag"),
}


@pytest.mark.parametrize("lang", ["en", "fr", "nl"])
def test_the_point_page_tells_values_nodata_and_outside(coverage_client, coverage_api, lang):
    title, nodata, outside = POINT_WORDS[lang]
    x, y = centre_of(200, 300)
    asked = f"/coverages/terrain/point?x={x}&y={y}&crs=EPSG:31370&f=html&lang={lang}"
    page = coverage_client.get(asked)
    assert page.status_code == 200 and page.headers["content-language"] == lang
    assert f"<h1>{title}</h1>" in page.text
    value = point(coverage_client, "terrain", x, y, L72)["values"][0]["value"]
    shown = f"{round(value, 3):,}"
    shown = shown.replace(".", ",") if lang != "en" else shown
    assert f"<td>{shown}</td>" in page.text
    # the form asks another point in the same crs, as a page in the same language
    assert f'action="{coverage_api}/coverages/terrain/point"' in page.text
    assert '<input type="hidden" name="crs" value="EPSG:31370">' in page.text
    assert f'<input type="hidden" name="lang" value="{lang}">' in page.text
    lake = centre_of(120, 420)
    hole = coverage_client.get(
        f"/coverages/terrain/point?x={lake[0]}&y={lake[1]}&crs=EPSG:31370&f=html&lang={lang}"
    )
    assert f"<td>{nodata}</td>" in hole.text
    off = coverage_client.get(f"/coverages/terrain/point?x=0&y=0&f=html&lang={lang}")
    assert off.status_code == 200 and outside in off.text and "<table>" not in off.text


# -- a NaN nodata, end to end ---------------------------------------------------------------------

NAN_CONFIG = """\
layers:
  dtm_nan:
    type: raster
    title: {{fr: Terrain NaN, nl: Terrein NaN, en: NaN terrain}}
    source: {{kind: file, path: {path}}}
"""


@pytest.fixture(scope="module")
def nan_terrain(
    admin_url: str, template_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, Path]]:
    """A server whose one coverage marks its holes with NaN (a database without the sample)."""
    folder = tmp_path_factory.mktemp("nan")
    source = rasters.write_terrain_nan(folder / "dtm_nan.tif")
    config = folder / "urbis.yaml"
    config.write_text(NAN_CONFIG.format(path=source))
    name = f"cov_nan_{uuid.uuid4().hex[:8]}"
    url = create_database(admin_url, name, template=TEMPLATE_DB)
    engine = create_sync_engine(url)
    try:
        settings = SyncSettings(raster_dir=folder / "cogs")
        report = sync_layer(engine, load_config(config), "dtm_nan", settings)
        assert report.status == "success", report.error
    finally:
        engine.dispose()
    proc, base = start_server(url)
    try:
        with httpx.Client(base_url=base, timeout=30) as nan_client:
            yield nan_client, source
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        drop_database(admin_url, name)


def test_a_nan_nodata_is_said_and_its_cells_are_nodata(nan_terrain):
    nan_client, source = nan_terrain
    doc = nan_client.get("/coverages/dtm_nan").json()
    assert doc["bands"][0]["nodata"] == "nan"
    definition = nan_client.get("/openapi.json").json()
    schema = {"$ref": "#/components/schemas/Coverage", "components": definition["components"]}
    assert not [e.message for e in OAS30Validator(schema).iter_errors(doc)]
    with rasterio.open(source) as src:
        heights = src.read(1)
    assert doc["bands"][0]["min"] == float(np.nanmin(heights))
    assert "<td>nan</td>" in nan_client.get("/coverages/dtm_nan?f=html").text
    lake = point(nan_client, "dtm_nan", *centre_of(120, 420), L72)["values"][0]
    assert (lake["value"], lake["nodata"], lake["outside"]) == (None, True, False)
    dry = point(nan_client, "dtm_nan", *centre_of(200, 300), L72)["values"][0]
    assert dry["value"] == float(heights[200, 300]) and not dry["nodata"]
    answer = post_stats(nan_client, "dtm_nan", shapely.geometry.mapping(AREA_L72), crs=L72, p="50")
    with rasterio.open(source) as src:
        inside_mask, _, window = rasterio.mask.raster_geometry_mask(
            src, [shapely.geometry.mapping(AREA_L72)], crop=True
        )
        data = src.read(1, window=window).astype(np.float64)
    inside = ~inside_mask
    values = data[inside & ~np.isnan(data)]
    assert answer["nodataCount"] == int((inside & np.isnan(data)).sum()) > 0
    assert answer["count"] == values.size
    assert answer["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert answer["percentiles"]["50"] == pytest.approx(np.percentile(values, 50))


@pytest.fixture(scope="module")
def few_cells_client(coverage_database_url: str) -> Iterator[httpx.Client]:
    """The coverages' server again, letting a stats request read at most 1,000 cells."""
    proc, base = start_server(coverage_database_url, URBIS_MAX_STATS_CELLS="1000")
    try:
        with httpx.Client(base_url=base, timeout=30) as few:
            yield few
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_an_area_over_more_cells_than_allowed_is_a_413(few_cells_client, coverage_sources):
    # 150 x 150 m on the 5 m grid, its edges on cell edges: 30 x 30 = 900 cells, allowed
    allowed = shapely.box(149_000, 170_000, 149_150, 170_150)
    answer = post_stats(few_cells_client, "terrain", shapely.geometry.mapping(allowed), crs=L72)
    assert_stats_equal(answer, reference_stats(coverage_sources.terrain, allowed))
    # 20 m wider, and 1 cm more reaching into a 35th column: 35 x 30 = 1,050 cells
    wider = shapely.box(149_000, 170_000, 149_170.01, 170_150)
    response = few_cells_client.post(
        "/coverages/terrain/stats?crs=EPSG:31370", json=shapely.geometry.mapping(wider)
    )
    assert_problem(response, 413, "1,050 cells", "URBIS_MAX_STATS_CELLS", "/zonal")
    # only the part over the raster counts: a large area mostly off it is read as its part
    mostly_off = shapely.box(140_000, 160_000, 148_010, 169_010)  # 2 x 2 cells on it
    answer = post_stats(few_cells_client, "terrain", shapely.geometry.mapping(mostly_off), crs=L72)
    assert answer["count"] + answer["nodataCount"] == 4
    feature = few_cells_client.post("/coverages/terrain/stats?feature=municipalities/21013")
    assert_problem(feature, 413, "URBIS_MAX_STATS_CELLS")


# -- generated requests ---------------------------------------------------------------------------


def test_generated_requests_get_no_server_error_and_what_is_documented(coverage_api):
    """schemathesis over these operations with real coverages (tests/api/test_property_run.py's
    checks: no 5xx but 503, within its time bound, status, media type and schema documented).

    The property run of the whole API has no raster layer: its coverage requests all end in
    404s. Here the path names real ones, so generated points, bodies, `p` and `band` reach the
    code behind them.
    """
    schema = schemathesis.openapi.from_url(f"{coverage_api}/openapi.json")
    schema.config.update(base_url=coverage_api)
    outcome = Outcome()
    failures = []
    for method, path in MODELS:
        operation = schema[path][method.upper()]
        for coverage, mode in itertools.product(
            ("terrain", "imagery"), (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ):
            names = {p.name for p in operation.path_parameters}
            paths = {"coverage_id": coverage} if names else None
            failure = fuzz(operation, mode, paths, FAST_EXAMPLES * 2, outcome)
            if failure:
                failures.append(f"{method} {path} {coverage} ({mode.value}): {failure}")
    assert not failures, "\n".join(failures)
    assert outcome.statuses[200] > 0 and outcome.statuses[400] > 0, outcome.statuses
