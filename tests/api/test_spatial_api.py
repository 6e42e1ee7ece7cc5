"""Spatial queries over HTTP, checked against geopandas/shapely on the source files."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator

import geopandas as gpd
import httpx
import pyogrio
import pyproj
import pytest
import shapely

from tests.api.conftest import assert_problem
from tests.conftest import SAMPLE_DIR
from tests.support.layers import file_layer, geojson_feature
from urbis_core.config import load_config
from urbis_core.db import create_sync_engine
from urbis_sync.run import sync_layer

pytestmark = pytest.mark.api

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
IN_SAINT_GILLES = (4.3445, 50.8316)  # lon, lat: near the Barriere de Saint-Gilles
URIS = {
    CRS84: CRS84,
    "EPSG:4326": "http://www.opengis.net/def/crs/EPSG/0/4326",
    "EPSG:31370": "http://www.opengis.net/def/crs/EPSG/0/31370",
}
TO_LAMBERT = pyproj.Transformer.from_crs("OGC:CRS84", 31370, always_xy=True)
TO_CRS84 = pyproj.Transformer.from_crs(31370, "OGC:CRS84", always_xy=True)
# A pentagon across the Saint-Gilles / Bruxelles boundary, in EPSG:31370.
PENTAGON = shapely.Polygon(
    [(148150, 169050), (148450, 169080), (148480, 169330), (148280, 169400), (148120, 169250)]
)
# Lines around the same boundary (a test layer `lines`, EPSG:31370), keyed by LID.
LINES = {
    "a": shapely.LineString([(148000, 169300), (148400, 169300)]),
    "b": shapely.LineString([(148050, 169050), (148120, 169120)]),
    "c": shapely.MultiLineString(
        [[(148300, 169000), (148300, 169250)], [(148450, 169300), (148500, 169350)]]
    ),
    "d": shapely.LineString([(148060, 169200), (148260, 169100)]),
    "e": shapely.LineString([(148000, 169250), (148250, 169250)]),
    "f": shapely.LineString([(148000, 169300), (148400, 169300)]),  # a twin of "a": ties
}


# -- the sources, read independently ------------------------------------------------------------


@pytest.fixture(scope="module")
def addresses() -> gpd.GeoDataFrame:
    path = SAMPLE_DIR / "UrbAdm_AdPt_sample.zip"
    frame = gpd.read_file(f"/vsizip/{path}/shp/UrbAdm_AdPt.shp", columns=["ID"])
    frame["ID"] = frame["ID"].astype(int)
    return frame.set_crs(31370, allow_override=True).set_index("ID").sort_index()


@pytest.fixture(scope="module")
def municipalities(tmp_path_factory) -> gpd.GeoDataFrame:
    tmp = tmp_path_factory.mktemp("municipalities")
    for ext in ("shp", "dbf"):
        shutil.copy(SAMPLE_DIR / f"UrbAdm_MUNICIPALITY.{ext}", tmp / f"m.{ext}")
    pyogrio.set_gdal_config_options({"SHAPE_RESTORE_SHX": "YES"})
    try:
        frame = gpd.read_file(tmp / "m.shp", columns=["NAT_CODE", "NAME_FRE"])
    finally:
        pyogrio.set_gdal_config_options({"SHAPE_RESTORE_SHX": None})
    return frame.set_crs(31370, allow_override=True).set_index("NAT_CODE").sort_index()


@pytest.fixture(scope="module")
def client(api: str, synced_database_url: str, tmp_path_factory) -> Iterator[httpx.Client]:
    """The API over the synced sample plus a small line layer `lines` (before any test)."""
    tmp = tmp_path_factory.mktemp("lines")
    config = file_layer(
        tmp,
        "lines",
        "LID",
        (
            geojson_feature({"LID": key, "LABEL": f"line {key}"}, shapely.geometry.mapping(line))
            for key, line in LINES.items()
        ),
    )
    engine = create_sync_engine(synced_database_url)
    try:
        assert sync_layer(engine, load_config(config), "lines").status == "success"
    finally:
        engine.dispose()
    with httpx.Client(base_url=api, timeout=30) as c:
        yield c


def lambert(lon: float, lat: float) -> tuple[float, float]:
    x, y = TO_LAMBERT.transform(lon, lat)
    return float(x), float(y)


def ranked(frame: gpd.GeoDataFrame, point: shapely.Point) -> list[tuple[float, object]]:
    """(distance, key) of every feature, nearest first, ties by key: what the API promises."""
    return sorted((float(d), k) for k, d in frame.distance(point).items())


def ids_and_distances(body: dict) -> tuple[list, list[float]]:
    return (
        [f["id"] for f in body["features"]],
        [f["properties"]["distance"] for f in body["features"]],
    )


def feature_collection(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    assert body["type"] == "FeatureCollection"
    assert body["numberReturned"] == len(body["features"])
    return body


# -- lookup ---------------------------------------------------------------------------------------


def test_lookup_in_saint_gilles_finds_the_municipality(client, municipalities):
    x, y = lambert(*IN_SAINT_GILLES)
    expected = sorted(municipalities.index[municipalities.contains(shapely.Point(x, y))])
    assert expected == ["21013"]
    response = client.get("/lookup", params={"x": IN_SAINT_GILLES[0], "y": IN_SAINT_GILLES[1]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["point"] == {"type": "Point", "coordinates": list(IN_SAINT_GILLES)}
    assert body["crs"] == CRS84
    every = {c["id"] for c in client.get("/collections").json()["collections"]}
    assert set(body["results"]) == every  # no `collections`: all of them
    (found,) = body["results"]["municipalities"]
    assert found["id"] == "21013" and found["properties"]["NAME_FRE"] == "Saint-Gilles"
    assert found["type"] == "Feature" and found["geometry"]["type"] == "MultiPolygon"
    assert body["results"]["addresses"] == []  # no address within 1 m of this point


def test_lookup_at_an_address_finds_it_and_its_municipality(client, addresses, municipalities):
    point = addresses.geometry.loc[1116857]
    response = client.get(
        "/lookup",
        params={
            "x": point.x,
            "y": point.y,
            "crs": "EPSG:31370",
            "collections": "addresses,municipalities",
        },
    )
    body = response.json()
    assert list(body["results"]) == ["addresses", "municipalities"]
    near = sorted(addresses.index[addresses.distance(point) <= 1.0])
    assert 1116857 in near
    assert sorted(f["id"] for f in body["results"]["addresses"]) == near
    found = next(f for f in body["results"]["addresses"] if f["id"] == 1116857)
    assert found["properties"]["PW_NAME_FR"] == "Rue de la Victoire"
    assert [f["id"] for f in body["results"]["municipalities"]] == list(
        municipalities.index[municipalities.intersects(point)]
    )
    coords = found["geometry"]["coordinates"]
    assert body["point"]["coordinates"] == [point.x, point.y]
    assert coords == pytest.approx([point.x, point.y], abs=1e-4)  # answered in EPSG:31370


def test_lookup_on_a_line_layer_means_within_one_metre(client):
    on = client.get(
        "/lookup", params={"x": 148200, "y": 169300.9, "crs": "EPSG:31370", "collections": "lines"}
    ).json()
    assert [f["id"] for f in on["results"]["lines"]] == ["a", "f"]
    off = client.get(
        "/lookup", params={"x": 148200, "y": 169301.1, "crs": "EPSG:31370", "collections": "lines"}
    ).json()
    assert off["results"] == {"lines": []}


# -- within and nearest ---------------------------------------------------------------------------


def test_within_100_m_matches_geopandas(client, addresses):
    point = shapely.Point(lambert(*IN_SAINT_GILLES))
    expected = [(d, k) for d, k in ranked(addresses, point) if d <= 100]
    assert 10 < len(expected) < 200
    body = feature_collection(
        client.get(
            "/collections/addresses/within",
            params={
                "x": IN_SAINT_GILLES[0],
                "y": IN_SAINT_GILLES[1],
                "distance": 100,
                "limit": 1000,
            },
        )
    )
    ids, distances = ids_and_distances(body)
    assert body["numberMatched"] == len(expected)
    assert ids == [k for _, k in expected]
    assert distances == pytest.approx([d for d, _ in expected], abs=1e-3)
    assert distances == sorted(distances)
    page = feature_collection(
        client.get(
            "/collections/addresses/within",
            params={
                "x": IN_SAINT_GILLES[0],
                "y": IN_SAINT_GILLES[1],
                "distance": 100,
                "limit": 5,
                "offset": 5,
            },
        )
    )
    assert page["numberMatched"] == len(expected)
    assert [f["id"] for f in page["features"]] == ids[5:10]


def test_within_a_polygon_layer_gives_zero_inside(client, municipalities):
    x, y = lambert(*IN_SAINT_GILLES)
    expected = [(d, k) for d, k in ranked(municipalities, shapely.Point(x, y)) if d <= 2000]
    body = feature_collection(
        client.get(
            "/collections/municipalities/within",
            params={"x": x, "y": y, "crs": "EPSG:31370", "distance": 2000},
        )
    )
    ids, distances = ids_and_distances(body)
    assert ids == [k for _, k in expected] and ids[0] == "21013" and distances[0] == 0
    assert distances == pytest.approx([d for d, _ in expected], abs=1e-3)
    assert body["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::31370"


def test_nearest_5_matches_geopandas(client, addresses):
    point = shapely.Point(lambert(*IN_SAINT_GILLES))
    expected = ranked(addresses, point)[:5]
    body = feature_collection(
        client.get(
            "/collections/addresses/nearest",
            params={"x": IN_SAINT_GILLES[0], "y": IN_SAINT_GILLES[1], "k": 5},
        )
    )
    ids, distances = ids_and_distances(body)
    assert ids == [k for _, k in expected]
    assert distances == pytest.approx([d for d, _ in expected], abs=1e-3)
    single = feature_collection(
        client.get(
            "/collections/addresses/nearest",
            params={"x": IN_SAINT_GILLES[0], "y": IN_SAINT_GILLES[1]},
        )
    )
    assert [f["id"] for f in single["features"]] == ids[:1]  # k defaults to 1


def test_nearest_ties_are_broken_by_key(client):
    # Lines "a" and "f" are the same line: whichever the index meets first, "a" comes first.
    for k, expected in ((1, ["a"]), (2, ["a", "f"]), (3, ["a", "f", "c"])):
        body = feature_collection(
            client.get(
                "/collections/lines/nearest",
                params={"x": 148390, "y": 169301, "crs": "EPSG:31370", "k": k},
            )
        )
        assert [f["id"] for f in body["features"]] == expected
    assert body["features"][0]["properties"]["distance"] == 1.0


def test_nearest_lines_and_polygons_use_true_distances(client, municipalities):
    point = shapely.Point(148700, 169500)
    lines = gpd.GeoSeries(LINES)
    for collection, frame in (("lines", lines), ("municipalities", municipalities)):
        expected = ranked(frame, point)[:3]
        body = feature_collection(
            client.get(
                f"/collections/{collection}/nearest",
                params={"x": point.x, "y": point.y, "crs": "EPSG:31370", "k": 3},
            )
        )
        ids, distances = ids_and_distances(body)
        assert ids == [k for _, k in expected]
        assert distances == pytest.approx([d for d, _ in expected], abs=1e-3)


# -- intersects -----------------------------------------------------------------------------------


def pentagon_body(crs: str) -> dict:
    if crs == "EPSG:31370":
        ring = list(PENTAGON.exterior.coords)
    else:
        ring = [TO_CRS84.transform(x, y) for x, y in PENTAGON.exterior.coords]
        if crs == "EPSG:4326":
            ring = [(lat, lon) for lon, lat in ring]
    return {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}


def test_intersects_a_polygon_matches_shapely(client, addresses, municipalities):
    inside = sorted(addresses.index[addresses.intersects(PENTAGON)])
    assert 20 < len(inside) < 666
    body = feature_collection(
        client.post(
            "/collections/addresses/intersects",
            params={"crs": "EPSG:31370", "limit": 1000},
            json=pentagon_body("EPSG:31370"),
        )
    )
    assert body["numberMatched"] == len(inside)
    assert [f["id"] for f in body["features"]] == inside
    areas = {
        k: g.intersection(PENTAGON).area
        for k, g in municipalities.geometry.items()
        if g.intersects(PENTAGON)
    }
    assert set(areas) == {"21004", "21013"}
    measured = feature_collection(
        client.post(
            "/collections/municipalities/intersects",
            params={"crs": "EPSG:31370", "measure": "true"},
            json=pentagon_body("EPSG:31370"),
        )
    )
    got = {f["id"]: f["properties"]["intersection_area"] for f in measured["features"]}
    assert got == pytest.approx(areas, abs=0.01)
    assert sum(got.values()) == pytest.approx(PENTAGON.area, abs=0.05)


@pytest.mark.parametrize("crs", [CRS84, "EPSG:4326"])
def test_intersects_a_geographic_polygon_matches_shapely(client, municipalities, crs):
    # The server draws the edges straight in longitude/latitude (a vertex every 0.001 degree)
    # and moves the vertices to EPSG:31370; so do shapely and pyproj here, independently.
    geographic = shapely.Polygon([TO_CRS84.transform(x, y) for x, y in PENTAGON.exterior.coords])
    ring = [lambert(x, y) for x, y in shapely.segmentize(geographic, 0.001).exterior.coords]
    moved = shapely.Polygon(ring)
    areas = {
        k: g.intersection(moved).area
        for k, g in municipalities.geometry.items()
        if g.intersects(moved)
    }
    body = feature_collection(
        client.post(
            "/collections/municipalities/intersects",
            params={"crs": crs, "measure": "true"},
            json={"type": "Feature", "properties": {}, "geometry": pentagon_body(crs)},
        )
    )
    got = {f["id"]: f["properties"]["intersection_area"] for f in body["features"]}
    assert got == pytest.approx(areas, abs=0.01)
    saint_gilles = next(f for f in body["features"] if f["id"] == "21013")
    lon, lat = shapely.geometry.shape(saint_gilles["geometry"]).representative_point().coords[0]
    if crs == "EPSG:4326":
        lon, lat = lat, lon
    assert 4.2 < lon < 4.5 and 50.7 < lat < 50.95  # answered in the CRS asked for


def test_intersects_measures_lengths_of_lines(client, municipalities):
    body = feature_collection(
        client.post(
            "/collections/lines/intersects",
            params={"crs": "EPSG:31370", "measure": "true"},
            json=pentagon_body("EPSG:31370"),
        )
    )
    expected = {
        k: line.intersection(PENTAGON).length
        for k, line in LINES.items()
        if line.intersects(PENTAGON)
    }
    got = {f["id"]: f["properties"]["intersection_length"] for f in body["features"]}
    assert got == pytest.approx(expected, abs=1e-3)
    line = LINES["a"]
    crossing = feature_collection(
        client.post(
            "/collections/municipalities/intersects",
            params={"crs": "EPSG:31370", "measure": "1"},
            json=shapely.geometry.mapping(line),
        )
    )
    got = {f["id"]: f["properties"]["intersection_length"] for f in crossing["features"]}
    expected = {
        k: g.intersection(line).length
        for k, g in municipalities.geometry.items()
        if g.intersects(line)
    }
    assert got == pytest.approx(expected, abs=1e-3)


def test_intersects_a_stored_municipality_gives_its_addresses(client, addresses, municipalities):
    saint_gilles = municipalities.geometry.loc["21013"]
    expected = sorted(addresses.index[addresses.within(saint_gilles)])
    assert len(expected) == 419
    body = feature_collection(
        client.get(
            "/collections/addresses/intersects",
            params={"feature": "municipalities/21013", "limit": 1000},
        )
    )
    assert body["numberMatched"] == 419
    assert [f["id"] for f in body["features"]] == expected
    bruxelles = feature_collection(
        client.get(
            "/collections/addresses/intersects",
            params={"feature": "municipalities/21004", "limit": 10},
        )
    )
    assert bruxelles["numberMatched"] == 247 and bruxelles["numberReturned"] == 10


# -- stats ----------------------------------------------------------------------------------------


def test_stats_addresses_by_municipality_in_json_and_csv(client, addresses, municipalities):
    joined = gpd.sjoin(addresses.reset_index(), municipalities.reset_index(), predicate="within")
    counts = joined.groupby("NAT_CODE").size().to_dict()
    assert counts == {"21013": 419, "21004": 247}
    expected = [
        (code, municipalities.loc[code, "NAME_FRE"], counts.get(code, 0))
        for code in municipalities.index
    ]
    response = client.get("/collections/addresses/stats", params={"by": "municipalities"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["keyField"], body["titleField"], body["measure"]) == ("NAT_CODE", "NAME_FRE", None)
    assert [(g["key"], g["title"], g["count"]) for g in body["groups"]] == expected
    assert body["numberReturned"] == 19
    response = client.get(
        "/collections/addresses/stats", params={"by": "municipalities", "f": "csv"}
    )
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["NAT_CODE", "NAME_FRE", "count"]
    assert [(r[0], r[1], int(r[2])) for r in rows[1:]] == expected
    by_accept = client.get(
        "/collections/addresses/stats",
        params={"by": "municipalities"},
        headers={"Accept": "text/csv"},
    )
    assert by_accept.text == response.text


def test_stats_polygons_count_representative_points_and_split_areas(client, municipalities):
    body = client.get("/collections/municipalities/stats", params={"by": "municipalities"}).json()
    assert body["measure"] == "area_m2"
    geoms = municipalities.geometry
    for group in body["groups"]:
        inside = geoms[geoms.intersects(geoms.loc[group["key"]])]
        area = sum(g.intersection(geoms.loc[group["key"]]).area for g in inside)
        points = inside.representative_point()
        count = int(geoms.loc[group["key"]].covers(points).sum())
        assert group["count"] == count == 1
        assert group["area_m2"] == pytest.approx(area, abs=0.01)


def test_stats_lines_count_where_most_of_their_length_is(client, municipalities):
    lengths: dict[str, float] = {}
    counts: dict[str, int] = {}
    for line in LINES.values():
        parts = sorted(
            (-g.intersection(line).length, code)
            for code, g in municipalities.geometry.items()
            if g.intersects(line)
        )
        for length, code in parts:
            lengths[code] = lengths.get(code, 0) - length
        if parts and parts[0][0] < 0:
            counts[parts[0][1]] = counts.get(parts[0][1], 0) + 1
    assert counts == {"21004": 3, "21013": 3}
    body = client.get("/collections/lines/stats", params={"by": "municipalities"}).json()
    assert body["measure"] == "length_m"
    assert {g["key"]: g["count"] for g in body["groups"] if g["count"]} == counts
    got = {g["key"]: g["length_m"] for g in body["groups"] if g["length_m"]}
    assert got == pytest.approx(lengths, abs=1e-3)
    rows = list(
        csv.reader(
            io.StringIO(
                client.get(
                    "/collections/lines/stats", params={"by": "municipalities", "f": "csv"}
                ).text
            )
        )
    )
    assert rows[0] == ["NAT_CODE", "NAME_FRE", "count", "length_m"]


# -- CRS ------------------------------------------------------------------------------------------


def test_lambert_and_lat_lon_points_give_the_crs84_answers(client):
    lon, lat = IN_SAINT_GILLES
    x, y = lambert(lon, lat)
    asked = {CRS84: (lon, lat), "EPSG:4326": (lat, lon), "EPSG:31370": (x, y)}
    answers = {}
    for crs, (first, second) in asked.items():
        common = {"x": first, "y": second, "crs": crs}
        within = client.get("/collections/addresses/within", params={**common, "distance": 60})
        nearest = client.get("/collections/addresses/nearest", params={**common, "k": 7})
        lookup = client.get("/lookup", params=common)
        answers[crs] = (
            ids_and_distances(feature_collection(within)),
            ids_and_distances(feature_collection(nearest)),
            {k: [f["id"] for f in v] for k, v in lookup.json()["results"].items()},
        )
        assert within.headers["content-crs"] == f"<{URIS[crs]}>"
    reference = answers[CRS84]
    assert reference[0][0] and reference[2]["municipalities"] == ["21013"]
    for crs in ("EPSG:4326", "EPSG:31370"):
        (w_ids, w_d), (n_ids, n_d), found = answers[crs]
        assert w_ids == reference[0][0] and n_ids == reference[1][0] and found == reference[2]
        assert w_d == pytest.approx(reference[0][1], abs=1e-3)
        assert n_d == pytest.approx(reference[1][1], abs=1e-3)
    # Features come back in the CRS asked for, in its axis order.
    crs84 = client.get("/collections/addresses/nearest", params={"x": lon, "y": lat}).json()
    lat_lon = client.get(
        "/collections/addresses/nearest", params={"x": lat, "y": lon, "crs": "EPSG:4326"}
    ).json()
    a, b = crs84["features"][0]["geometry"]["coordinates"]
    assert lat_lon["features"][0]["geometry"]["coordinates"] == pytest.approx([b, a], abs=1e-9)


def test_the_openapi_documents_the_spatial_queries(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method in [
        ("/lookup", "get"),
        ("/collections/{collection_id}/within", "get"),
        ("/collections/{collection_id}/nearest", "get"),
        ("/collections/{collection_id}/intersects", "get"),
        ("/collections/{collection_id}/intersects", "post"),
        ("/collections/{collection_id}/stats", "get"),
    ]:
        assert paths[path][method]["tags"] == ["Spatial queries"], path
        assert paths[path][method]["description"]
    within = {
        p["name"]: p for p in paths["/collections/{collection_id}/within"]["get"]["parameters"]
    }
    assert within["distance"]["required"] and within["distance"]["schema"]["maximum"] == 10_000
    nearest = {
        p["name"]: p for p in paths["/collections/{collection_id}/nearest"]["get"]["parameters"]
    }
    assert nearest["k"]["schema"]["maximum"] == 100
    post = paths["/collections/{collection_id}/intersects"]["post"]
    assert "application/geo+json" in post["requestBody"]["content"]
    assert "1 m" in paths["/lookup"]["get"]["description"]


# -- bad input ------------------------------------------------------------------------------------

POINT = "x=4.3445&y=50.8316"
BOWTIE = {
    "type": "Polygon",
    "coordinates": [[[4.34, 50.83], [4.35, 50.84], [4.35, 50.83], [4.34, 50.84], [4.34, 50.83]]],
}
SQUARE = {
    "type": "Polygon",
    "coordinates": [[[4.34, 50.83], [4.35, 50.83], [4.35, 50.84], [4.34, 50.84], [4.34, 50.83]]],
}
BAD_GETS = [
    ("/lookup?x=abc&y=50.8", 400, "'x'"),
    ("/lookup?x=nan&y=50.8", 400, "'x'"),
    ("/lookup?x=4.3&y=inf", 400, "'y'"),
    ("/lookup?y=50.8", 400, "'x'"),
    ("/lookup?x=200&y=50.8", 400, "'x'"),
    ("/lookup?x=4.3&y=95", 400, "'y'"),
    ("/lookup?x=50.8&y=200&crs=EPSG:4326", 400, "'y'"),  # lat/lon order: y is the longitude
    ("/lookup?x=95&y=4.3&crs=EPSG:4326", 400, "latitude"),
    ("/lookup?x=1e300&y=169000&crs=EPSG:31370", 400, "'x'"),
    (f"/lookup?{POINT}&crs=EPSG:9999", 400, "'crs'"),
    (f"/lookup?{POINT}&collections=nope", 400, "no collection 'nope'"),
    (f"/lookup?{POINT}&collections=addresses,,municipalities", 400, "'collections'"),
    (f"/lookup?{POINT}&collections=addresses';DROP TABLE x;--", 400, "no collection"),
    (f"/lookup?{POINT}&radius=3", 400, "'radius'"),
    (f"/collections/addresses/within?{POINT}", 400, "'distance'"),
    (f"/collections/addresses/within?{POINT}&distance=-5", 400, "'distance'"),
    (f"/collections/addresses/within?{POINT}&distance=0", 400, "'distance'"),
    (f"/collections/addresses/within?{POINT}&distance=10001", 400, "'distance'"),
    (f"/collections/addresses/within?{POINT}&distance=1e999", 400, "'distance'"),
    (f"/collections/addresses/within?{POINT}&distance=NaN", 400, "'distance'"),
    (f"/collections/addresses/within?{POINT}&distance=ten", 400, "'distance'"),
    (f"/collections/addresses/within?{POINT}&distance=10&limit=0", 400, "'limit'"),
    (f"/collections/addresses/within?{POINT}&distance=10&offset=-1", 400, "'offset'"),
    (f"/collections/nope/within?{POINT}&distance=10", 404, "no collection 'nope'"),
    (f"/collections/addresses/nearest?{POINT}&k=0", 400, "'k'"),
    (f"/collections/addresses/nearest?{POINT}&k=101", 400, "'k'"),
    (f"/collections/addresses/nearest?{POINT}&k=two", 400, "'k'"),
    ("/collections/addresses/nearest?x=4.3445&y=-91", 400, "'y'"),
    (f"/collections/nope/nearest?{POINT}", 404, "no collection 'nope'"),
    ("/collections/addresses/intersects", 400, "'feature'"),
    ("/collections/addresses/intersects?feature=municipalities", 400, "'feature'"),
    ("/collections/addresses/intersects?feature=/21013", 400, "'feature'"),
    ("/collections/addresses/intersects?feature=nope/1", 404, "no collection 'nope'"),
    ("/collections/addresses/intersects?feature=municipalities/99999", 404, "no feature '99999'"),
    ("/collections/addresses/intersects?feature=addresses/abc", 404, "no feature 'abc'"),
    (
        "/collections/addresses/intersects?feature=municipalities/21013';DROP TABLE x;--",
        404,
        "no feature",
    ),
    (
        "/collections/addresses/intersects?feature=municipalities/21013&measure=true",
        400,
        "'measure'",
    ),
    (
        "/collections/addresses/intersects?feature=municipalities/21013&measure=maybe",
        400,
        "'measure'",
    ),
    ("/collections/lines/intersects?feature=lines/a&measure=true", 400, "'measure'"),
    ("/collections/nope/intersects?feature=municipalities/21013", 404, "no collection 'nope'"),
    ("/collections/addresses/stats", 400, "'by'"),
    ("/collections/addresses/stats?by=addresses", 400, "'by'"),
    ("/collections/addresses/stats?by=lines", 400, "'by'"),
    ("/collections/addresses/stats?by=nope", 404, "no collection 'nope'"),
    ("/collections/nope/stats?by=municipalities", 404, "no collection 'nope'"),
    ("/collections/addresses/stats?by=municipalities&f=xml", 400, "'f'"),
]
BAD_BODIES = [
    (b"", 400, "empty"),
    (b"not json", 400, "not JSON"),
    (b"[1, 2]", 400, "GeoJSON geometry"),
    (b'{"type": "Circle", "coordinates": [4.3, 50.8]}', 400, "Circle"),
    (b'{"type": "GeometryCollection", "geometries": []}', 400, "GeometryCollection"),
    (b'{"type": "Feature", "properties": {}}', 400, "no geometry"),
    (b'{"type": "Polygon"}', 400, "no 'coordinates'"),
    (b'{"type": "Polygon", "coordinates": []}', 400, "empty"),
    (b'{"type": "Polygon", "coordinates": [4.3, 50.8]}', 400, "nested 3 deep"),
    (b'{"type": "Polygon", "coordinates": [[4.3, 50.8]]}', 400, "numbers"),
    (b'{"type": "MultiPolygon", "coordinates": [[], []]}', 400, "empty"),
    (b'{"type": "Point", "coordinates": ["4.3", "50.8"]}', 400, "numbers"),
    (b'{"type": "Point", "coordinates": [true, 50.8]}', 400, "numbers"),
    (b'{"type": "Point", "coordinates": [4.3]}', 400, "numbers"),
    (b'{"type": "Point", "coordinates": [Infinity, 50.8]}', 400, "not finite"),
    (b'{"type": "Point", "coordinates": [400, 50.8]}', 400, "longitude"),
    (b'{"type": "LineString", "coordinates": [[4.3, 50.8]]}', 400, "LineString"),
    (
        b'{"type": "Polygon", "coordinates": [[[4.3, 50.8], [4.4, 50.8], [4.3, 50.8]]]}',
        400,
        "Polygon",
    ),
    (json.dumps(BOWTIE).encode(), 400, "Self-intersection"),
]


@pytest.mark.parametrize("path, status, words", BAD_GETS)
def test_bad_queries_get_a_json_error_naming_the_parameter(client, path, status, words):
    assert_problem(client.get(path), status, words)


@pytest.mark.parametrize("body, status, words", BAD_BODIES)
def test_bad_geometries_get_a_json_error_that_says_why(client, body, status, words):
    response = client.post(
        "/collections/addresses/intersects",
        content=body,
        headers={"Content-Type": "application/geo+json"},
    )
    assert_problem(response, status, words)
    assert "'body'" in response.json()["detail"]


@pytest.mark.parametrize(
    "path, status, words",
    [
        ("/collections/nope/intersects", 404, "no collection 'nope'"),
        ("/collections/addresses/intersects?measure=true", 400, "'measure'"),
        ("/collections/addresses/intersects?crs=EPSG:1", 400, "'crs'"),
        ("/collections/addresses/intersects?feature=municipalities/21013", 400, "'feature'"),
        ("/collections/addresses/intersects?limit=0", 400, "'limit'"),
    ],
)
def test_bad_posts_get_a_json_error(client, path, status, words):
    assert_problem(client.post(path, json=SQUARE), status, words)


def test_a_point_body_finds_the_polygon_around_it(client):
    body = feature_collection(
        client.post(
            "/collections/municipalities/intersects",
            json={"type": "Point", "coordinates": list(IN_SAINT_GILLES)},
        )
    )
    assert [f["id"] for f in body["features"]] == ["21013"]
    assert body["links"][0]["href"].endswith("/collections/municipalities")
