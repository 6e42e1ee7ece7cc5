"""CQL2 filters (OGC API Features Part 3) over HTTP, and queryables.

Each answer is compared with the same filter evaluated independently on the sample files with
geopandas/shapely/pandas.
"""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import mapping

from tests.conftest import SAMPLE_DIR
from tests.db.test_reconcile import legacy_municipalities

pytestmark = pytest.mark.api

MUNI = "/collections/municipalities/items"
ADDR = "/collections/addresses/items"
# A triangle over part of the sample addresses (CRS84, lon/lat).
TRIANGLE = [(4.3395, 50.832), (4.3452, 50.8324), (4.3421, 50.8347), (4.3395, 50.832)]
# A square in the middle of the region (EPSG:31370).
SQUARE = [(147000, 167000), (153000, 167000), (153000, 173000), (147000, 173000), (147000, 167000)]


@pytest.fixture(scope="module")
def addresses() -> gpd.GeoDataFrame:
    frame = gpd.read_file(
        f"/vsizip/{SAMPLE_DIR / 'UrbAdm_AdPt_sample.zip'}/shp/UrbAdm_AdPt.shp",
        columns=["ID", "PZNC", "MU_NAME_FR"],
    )
    frame["ID"] = frame["ID"].astype("int64")
    return frame.set_crs(31370, allow_override=True)


@pytest.fixture(scope="module")
def municipalities(tmp_path_factory) -> gpd.GeoDataFrame:
    return legacy_municipalities(tmp_path_factory.mktemp("muni_cql2"))


def ids(client, url: str, **params) -> set:
    """The ids of every feature the filter keeps (one page), checked against numberMatched."""
    response = client.get(url, params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["numberMatched"] == body["numberReturned"] == len(body["features"])
    return {f["id"] for f in body["features"]}


def address_ids(frame: gpd.GeoDataFrame) -> set[int]:
    return set(frame["ID"].tolist())


def wkt(points) -> str:
    return "POLYGON((" + ", ".join(f"{x} {y}" for x, y in points) + "))"


def error(client, url: str, **params) -> dict:
    response = client.get(url, params=params)
    assert response.status_code == 400, response.text
    return response.json()


# --- comparison, LIKE, IN, BETWEEN, IS NULL, NOT, AND/OR --------------------------------------


def test_equal(client, addresses):
    expected = address_ids(addresses[addresses["PZNC"] == "1060"])
    assert ids(client, ADDR, filter="PZNC = '1060'") == expected
    assert 0 < len(expected) < len(addresses)


def test_like(client, addresses):
    expected = address_ids(addresses[addresses["MU_NAME_FR"].str.startswith("Saint", na=False)])
    assert ids(client, ADDR, filter="MU_NAME_FR LIKE 'Saint%'") == expected
    assert expected


def test_in(client, addresses):
    chosen = sorted(addresses["ID"].tolist())[::97]
    filter_ = f"ID IN ({', '.join(str(i) for i in chosen)}, 1)"
    assert ids(client, ADDR, filter=filter_) == set(chosen)


def test_between(client, municipalities):
    areas = sorted(municipalities["AREA"].tolist())
    low, high = areas[5], areas[12]
    expected = set(municipalities[municipalities["AREA"].between(low, high)]["NAT_CODE"])
    assert ids(client, MUNI, filter=f"AREA BETWEEN {low!r} AND {high!r}") == expected
    assert len(expected) == 8


def test_is_null(client, addresses):
    expected = address_ids(addresses[addresses["MU_NAME_FR"].isna()])
    assert len(expected) == 1
    assert ids(client, ADDR, filter="MU_NAME_FR IS NULL") == expected


def test_not(client, addresses):
    # As in SQL (and CQL2), a comparison with a missing value is unknown, and so is its NOT.
    pznc = addresses["PZNC"]
    expected = address_ids(addresses[pznc.notna() & (pznc != "1060")])
    assert len(expected) == len(addresses) - (pznc == "1060").sum() - 1
    assert ids(client, ADDR, filter="NOT (PZNC = '1060')") == expected


def test_and_or(client, addresses):
    a = addresses
    kept = (a["PZNC"] == "1000") & ((a["ID"] < 2105511) | (a["MU_NAME_FR"] == "Saint-Gilles"))
    filter_ = "PZNC = '1000' AND (ID < 2105511 OR MU_NAME_FR = 'Saint-Gilles')"
    assert ids(client, ADDR, filter=filter_) == address_ids(a[kept])
    assert 0 < kept.sum() < (a["PZNC"] == "1000").sum()


def test_filter_combines_with_property_filter_and_bbox_and_pages(client, addresses):
    a = addresses
    kept = a[(a["PZNC"] == "1060") & a["MU_NAME_FR"].str.startswith("Saint", na=False)]
    params = {"filter": "MU_NAME_FR LIKE 'Saint%'", "PZNC": "1060", "limit": 100}
    first = client.get(ADDR, params=params).json()
    assert first["numberMatched"] == len(kept)
    nxt = next(lk["href"] for lk in first["links"] if lk["rel"] == "next")
    assert "filter=MU_NAME_FR+LIKE" in nxt
    second = client.get(nxt).json()
    assert second["numberMatched"] == len(kept)
    got = {f["id"] for f in first["features"]} | {f["id"] for f in second["features"]}
    assert got <= address_ids(kept) and len(got) == 200


@pytest.mark.parametrize("share", [0.03, 0.3, 0.9])  # few matches are found, then sorted
@pytest.mark.parametrize("sortby", ["ID", "-PZNC"])
def test_filtered_pages_follow_the_order_whatever_the_share_that_matches(
    client, addresses, share, sortby
):
    ordered = sorted(addresses["ID"].tolist())
    bound = ordered[int(share * len(ordered))]
    kept = addresses[addresses["ID"] < bound]
    if sortby == "ID":
        expected = sorted(kept["ID"].tolist())
    else:  # descending postcode, missing ones last, then the key
        with_code = kept[kept["PZNC"].notna()].sort_values(["PZNC", "ID"], ascending=[False, True])
        expected = with_code["ID"].tolist() + sorted(kept[kept["PZNC"].isna()]["ID"].tolist())
    for offset in (0, 14):
        body = client.get(
            ADDR, params={"filter": f"ID < {bound}", "sortby": sortby, "limit": 7, "offset": offset}
        ).json()
        assert body["numberMatched"] == len(kept)
        assert [f["id"] for f in body["features"]] == expected[offset : offset + 7]


# --- spatial ----------------------------------------------------------------------------------


def triangle_31370() -> shapely.Polygon:
    return gpd.GeoSeries([shapely.Polygon(TRIANGLE)], crs="OGC:CRS84").to_crs(31370).iloc[0]


def test_intersects_crs84(client, addresses):
    polygon = triangle_31370()
    # No address so close to the edge that transformation details could decide.
    assert addresses.distance(polygon.boundary).min() > 0.5
    expected = address_ids(addresses[addresses.intersects(polygon)])
    assert 0 < len(expected) < len(addresses)
    filter_ = f"S_INTERSECTS(geom, {wkt(TRIANGLE)})"
    assert ids(client, ADDR, filter=filter_) == expected
    # EPSG:4326 is latitude first.
    swapped = wkt([(y, x) for x, y in TRIANGLE])
    assert (
        ids(
            client,
            ADDR,
            **{
                "filter": f"S_INTERSECTS(geometry, {swapped})",
                "filter-crs": "http://www.opengis.net/def/crs/EPSG/0/4326",
            },
        )
        == expected
    )


def test_intersects_in_31370(client, addresses):
    polygon = triangle_31370()
    coords = [(round(x, 3), round(y, 3)) for x, y in polygon.exterior.coords]
    expected = address_ids(addresses[addresses.intersects(shapely.Polygon(coords))])
    params = {"filter": f"S_INTERSECTS(geom, {wkt(coords)})", "filter-crs": "EPSG:31370"}
    assert ids(client, ADDR, **params) == expected
    assert expected


def test_within_and_disjoint(client, municipalities):
    square = shapely.Polygon(SQUARE)
    within = set(municipalities[municipalities.within(square)]["NAT_CODE"])
    disjoint = set(municipalities[municipalities.disjoint(square)]["NAT_CODE"])
    assert 0 < len(within) < 19 and disjoint
    crs = {"filter-crs": "EPSG:31370"}
    assert ids(client, MUNI, filter=f"S_WITHIN(geom, {wkt(SQUARE)})", **crs) == within
    assert ids(client, MUNI, filter=f"S_DISJOINT(geom, {wkt(SQUARE)})", **crs) == disjoint


def test_contains_point(client, municipalities):
    point = municipalities.geometry.iloc[3].representative_point()
    expected = set(municipalities[municipalities.contains(point)]["NAT_CODE"])
    assert len(expected) == 1
    params = {"filter": f"S_CONTAINS(geom, POINT({point.x} {point.y}))", "filter-crs": "EPSG:31370"}
    assert ids(client, MUNI, **params) == expected


# --- CQL2 JSON --------------------------------------------------------------------------------


def test_json_equivalents(client):
    pairs = [
        (
            "PZNC = '1060' AND MU_NAME_FR LIKE 'Saint%'",
            {
                "op": "and",
                "args": [
                    {"op": "=", "args": [{"property": "PZNC"}, "1060"]},
                    {"op": "like", "args": [{"property": "MU_NAME_FR"}, "Saint%"]},
                ],
            },
        ),
        (
            f"S_INTERSECTS(geom, {wkt(TRIANGLE)})",
            {
                "op": "s_intersects",
                "args": [{"property": "geom"}, mapping(shapely.Polygon(TRIANGLE))],
            },
        ),
        (
            "ID BETWEEN 1116800 AND 1116900",
            {"op": "between", "args": [{"property": "ID"}, 1116800, 1116900]},
        ),
    ]
    for text, document in pairs:
        expected = ids(client, ADDR, filter=text)
        assert expected
        got = ids(client, ADDR, **{"filter": json.dumps(document), "filter-lang": "cql2-json"})
        assert got == expected, text


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "parameter", "words"),
    [
        ({"filter": "PZNC = "}, "filter", "cql2-text"),
        ({"filter": '{"op": "="', "filter-lang": "cql2-json"}, "filter", "cql2-json"),
        ({"filter": "NOPE = 'x'"}, "filter", "NOPE"),
        ({"filter": "S_INTERSECTS(NOPE, POINT(4.34 50.83))"}, "filter", "NOPE"),
        ({"filter": "ID + 1 = 2"}, "filter", "+"),
        (
            {
                "filter": json.dumps(
                    {
                        "op": "t_after",
                        "args": [{"property": "ID"}, {"timestamp": "2020-01-01T00:00:00Z"}],
                    }
                ),
                "filter-lang": "cql2-json",
            },
            "filter",
            "not supported",
        ),
        ({"filter": "PZNC = 1060"}, "filter", "PZNC"),
        ({"filter": "S_INTERSECTS(geom, POINT(400 50))"}, "filter", "range"),
        ({"filter": "S_INTERSECTS(geom, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))"}, "filter", "valid"),
        ({"filter": "PZNC = '1060'", "filter-lang": "cql3"}, "filter-lang", "cql3"),
        ({"filter": "PZNC = '1060'", "filter-crs": "EPSG:2154"}, "filter-crs", "EPSG:2154"),
    ],
)
def test_errors_name_the_parameter(client, params, parameter, words):
    body = error(client, ADDR, **params)
    assert f"'{parameter}'" in body["detail"]
    assert words in body["detail"]


def test_injection_inside_a_string_is_just_a_string(client, addresses):
    for filter_ in [
        'PZNC = \'1060" OR "1"="1\'',
        "PZNC = '1060; DROP TABLE addresses; --'",
        "MU_NAME_FR LIKE '%)) OR TRUE OR ((1=1'",
    ]:
        assert ids(client, ADDR, filter=filter_) == set()
    assert client.get(ADDR).json()["numberMatched"] == len(addresses)


# --- queryables, links, conformance -----------------------------------------------------------


def test_queryables(client):
    response = client.get("/collections/addresses/queryables")
    assert response.status_code == 200
    doc = response.json()
    assert doc["$schema"] == "https://json-schema.org/draft/2019-09/schema"
    assert doc["$id"].endswith("/collections/addresses/queryables")
    assert doc["type"] == "object"
    props = doc["properties"]
    assert props["ID"]["type"] == "integer"
    assert props["PZNC"]["type"] == "string"
    assert props["ANGLE"]["type"] == "number"
    assert props["geometry"]["format"] == "geometry-point"
    feature = client.get(ADDR, params={"limit": 1}).json()["features"][0]
    assert set(props) == set(feature["properties"]) | {"geometry"}
    muni = client.get("/collections/municipalities/queryables").json()["properties"]
    assert muni["AREA"]["type"] == "number" and muni["NAT_CODE"]["type"] == "string"
    assert client.get("/collections/nope/queryables").status_code == 404


def test_collection_links_queryables_and_conformance(client):
    links = client.get("/collections/addresses").json()["links"]
    rel = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
    assert any(
        lk["rel"] == rel and lk["href"].endswith("/collections/addresses/queryables")
        for lk in links
    )
    conforms = client.get("/conformance").json()["conformsTo"]
    for cls in (
        "ogcapi-features-3/1.0/conf/filter",
        "ogcapi-features-3/1.0/conf/queryables",
        "cql2/1.0/conf/cql2-text",
        "cql2/1.0/conf/cql2-json",
        "cql2/1.0/conf/basic-cql2",
        "cql2/1.0/conf/basic-spatial-functions",
    ):
        assert f"http://www.opengis.net/spec/{cls}" in conforms
