"""Items options over HTTP: properties, sortby, property filters, CSV and GeoPackage output.

Answers are checked against the sample files read independently with geopandas.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely

from tests.conftest import SAMPLE_DIR
from tests.db.test_reconcile import legacy_municipalities

pytestmark = pytest.mark.api

MUNI = "/collections/municipalities/items"
ADDR = "/collections/addresses/items"


@pytest.fixture(scope="module")
def addresses() -> gpd.GeoDataFrame:
    frame = gpd.read_file(
        f"/vsizip/{SAMPLE_DIR / 'UrbAdm_AdPt_sample.zip'}/shp/UrbAdm_AdPt.shp",
        columns=["ID", "PZNC", "MU_NAME_FR", "PW_NAME_FR"],
    )
    frame["ID"] = frame["ID"].astype("int64")
    return frame.to_crs("OGC:CRS84")


@pytest.fixture(scope="module")
def municipalities(tmp_path_factory) -> gpd.GeoDataFrame:
    return legacy_municipalities(tmp_path_factory.mktemp("muni"))


@pytest.fixture(scope="module")
def catalog_columns(client) -> dict[str, list[str]]:
    """Property names per collection, in the source's order, as the API's features carry them."""
    names: dict[str, list[str]] = {}
    for layer in ("municipalities", "addresses"):
        body = client.get(
            f"/collections/{layer}/items/" + ("21009" if layer == "municipalities" else "1116857")
        ).json()
        names[layer] = list(body["properties"])
    return names


def walk(client, url: str, **params) -> tuple[list[dict], list[str]]:
    """Every feature behind `url` by following next links; also the hrefs that were followed."""
    features: list[dict] = []
    followed: list[str] = []
    response = client.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        features += body["features"]
        href = next((lk["href"] for lk in body["links"] if lk["rel"] == "next"), None)
        if href is None:
            return features, followed
        followed.append(href)
        response = client.get(href)


def csv_rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


# --- properties -------------------------------------------------------------------------------


def test_properties_keeps_only_the_named_ones_in_their_order(client):
    body = client.get(MUNI, params={"properties": "NAME_FRE,AREA", "limit": 100}).json()
    assert body["numberReturned"] == 19
    for feature in body["features"]:
        assert list(feature["properties"]) == ["NAME_FRE", "AREA"]
        assert len(feature["id"]) == 5  # still the key (NIS code), not a property
    ixelles = client.get(f"{MUNI}/21009", params={"properties": "NAME_DUT"}).json()
    assert ixelles["id"] == "21009" and ixelles["properties"] == {"NAME_DUT": "Elsene"}
    none = client.get(MUNI, params={"properties": ""}).json()
    assert all(f["properties"] == {} for f in none["features"])
    assert all(f["geometry"]["type"] == "MultiPolygon" for f in none["features"])


@pytest.mark.parametrize(
    "path, params, parameter, words",
    [
        (MUNI, {"properties": "NAME_FRE,NOPE"}, "properties", "unknown property 'NOPE'"),
        (f"{MUNI}/21009", {"properties": "name_fre"}, "properties", "did you mean 'NAME_FRE'"),
        (MUNI, {"properties": "NAME_FRE,,AREA"}, "properties", "empty name"),
        (MUNI, {"sortby": "-NOPE"}, "sortby", "unknown property 'NOPE'"),
        (MUNI, {"sortby": "NAME_FRE,-"}, "sortby", "empty entry"),
        (MUNI, {"sortby": "AREA,-AREA"}, "sortby", "twice"),
        (MUNI, {"sortby": "NAME_FRE;DROP TABLE x"}, "sortby", "unknown property"),
        (ADDR, {"ID": "abc"}, "ID", "property 'ID' is bigint: expected an integer, got 'abc'"),
        (ADDR, {"ID": "1.5"}, "ID", "expected an integer"),
        (ADDR, {"ID": "99999999999999999999999"}, "ID", "expected an integer"),
        (ADDR, {"ANGLE": "north"}, "ANGLE", "double precision: expected a number"),
        (ADDR, {"ANGLE": "nan"}, "ANGLE", "expected a number"),
        (MUNI, {"AREA": "1e999"}, "AREA", "expected a number"),
        (MUNI, {"BEGIN_LIFE": "2016-13-45"}, "BEGIN_LIFE", "date: expected a date (YYYY-MM-DD)"),
        (MUNI, {"BEGIN_LIFE": "yesterday"}, "BEGIN_LIFE", "expected a date"),
        (MUNI, {"NAME_FRE": "a\x00b"}, "NAME_FRE", "control character U+0000"),
        (ADDR, {"pznc": "1060"}, "pznc", "did you mean 'PZNC'"),
        (ADDR, {"colour": "red"}, "colour", "properties of 'addresses' as filters"),
    ],
)
def test_bad_options_are_400s_that_name_the_parameter(client, path, params, parameter, words):
    response = client.get(path, params=params)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert f"parameter '{parameter}'" in detail and words in detail, detail


# --- sortby -----------------------------------------------------------------------------------


def test_sortby_name_descending_matches_the_source(client, municipalities):
    body = client.get(
        MUNI, params={"sortby": "-NAME_FRE", "limit": 100, "properties": "NAME_FRE"}
    ).json()
    names = [f["properties"]["NAME_FRE"] for f in body["features"]]
    assert names == sorted(municipalities["NAME_FRE"], reverse=True)


def test_sortby_area_ascending_with_an_unencoded_plus(client, municipalities):
    # `+AREA` typed into a URL arrives as " AREA": still ascending.
    body = client.get(f"{MUNI}?sortby=+AREA&limit=100").json()
    expected = municipalities.sort_values("AREA")["NAT_CODE"].tolist()
    assert [f["id"] for f in body["features"]] == expected
    areas = [f["properties"]["AREA"] for f in body["features"]]
    assert areas == sorted(areas)


def test_sortby_with_ties_pages_stably_with_the_key_as_tie_breaker(client, addresses):
    features, followed = walk(client, ADDR, sortby="-PZNC", limit=100, properties="PZNC")
    assert len(followed) == 6 and all("sortby=-PZNC" in href for href in followed)
    got = [(f["properties"]["PZNC"], f["id"]) for f in features]
    expected = addresses.sort_values(["PZNC", "ID"], ascending=[False, True], na_position="last")
    postcodes = [p if isinstance(p, str) else None for p in expected["PZNC"]]
    assert None in postcodes  # a feature without a postcode: last, also when descending
    assert got == list(zip(postcodes, expected["ID"], strict=True))


# --- property filters -------------------------------------------------------------------------


def test_text_filter_matches_the_source_and_combines_with_bbox(client, addresses):
    body = client.get(ADDR, params={"PZNC": "1060", "limit": 1000}).json()
    expected = addresses[addresses["PZNC"] == "1060"]
    assert body["numberMatched"] == body["numberReturned"] == len(expected) == 418
    assert sorted(f["id"] for f in body["features"]) == sorted(expected["ID"])
    bbox = (4.3435, 50.8300, 4.3470, 50.8330)
    both = client.get(
        ADDR, params={"PZNC": "1060", "bbox": ",".join(map(str, bbox)), "limit": 1000}
    ).json()
    inside = expected[expected.intersects(shapely.box(*bbox))]
    assert 0 < len(inside) < len(expected)
    assert both["numberMatched"] == len(inside)
    assert sorted(f["id"] for f in both["features"]) == sorted(inside["ID"])


def test_filter_next_links_keep_the_filter_and_walk_every_page_once(client, addresses):
    features, followed = walk(client, ADDR, MU_NAME_FR="Bruxelles", limit=100)
    expected = addresses[addresses["MU_NAME_FR"] == "Bruxelles"]
    assert len(expected) == 247 and len(followed) == 2
    assert all("MU_NAME_FR=Bruxelles" in href for href in followed)
    ids = [f["id"] for f in features]
    assert len(ids) == len(set(ids)) == 247 and sorted(ids) == sorted(expected["ID"])
    assert {f["properties"]["MU_NAME_FR"] for f in features} == {"Bruxelles"}
    first = client.get(ADDR, params={"MU_NAME_FR": "Bruxelles"}).json()
    assert first["numberMatched"] == 247


def test_typed_filters_and_several_together(client, municipalities):
    one = client.get(ADDR, params={"ID": "1116857"}).json()
    assert [f["id"] for f in one["features"]] == [1116857]
    ixelles = client.get(MUNI, params={"AREA": "6406685.25"}).json()
    assert [f["id"] for f in ixelles["features"]] == ["21009"]
    dated = client.get(MUNI, params={"BEGIN_LIFE": "2016-10-12", "limit": 100}).json()
    expected = municipalities[municipalities["BEGIN_LIFE"] == "2016-10-12"]["NAT_CODE"]
    assert dated["numberMatched"] == len(expected) == 6
    assert sorted(f["id"] for f in dated["features"]) == sorted(expected)
    both = client.get(MUNI, params={"BEGIN_LIFE": "2016-10-12", "NAME_FRE": "Ixelles"}).json()
    assert [f["id"] for f in both["features"]] == ["21009"]
    repeated = client.get(ADDR, params=[("PZNC", "1060"), ("PZNC", "1000")]).json()
    assert repeated["numberMatched"] == 0  # the same property twice: both must hold


def test_filters_work_with_datetime_history_and_sortby(client):
    params = {"PZNC": "1000", "sortby": "-ID", "properties": "PZNC", "limit": 50}
    live = client.get(ADDR, params=params).json()
    as_of = client.get(ADDR, params={**params, "datetime": "2100-01-01T00:00:00Z"}).json()
    assert as_of["numberMatched"] == live["numberMatched"] == 247
    assert [f["id"] for f in as_of["features"]] == [f["id"] for f in live["features"]]
    assert [f["id"] for f in live["features"]] == sorted(
        (f["id"] for f in live["features"]), reverse=True
    )
    before = client.get(ADDR, params={**params, "datetime": "2000-01-01T00:00:00Z"}).json()
    assert before["numberMatched"] == 0


def test_an_injection_attempt_in_a_value_is_just_a_value(client):
    for value in ("x' OR '1'='1", "x'; DROP TABLE urbis.municipalities; --", "%", "*"):
        body = client.get(MUNI, params={"NAME_FRE": value}).json()
        assert body["numberMatched"] == 0 and body["features"] == [], value
    assert client.get(MUNI).json()["numberMatched"] == 19


# --- CSV ----------------------------------------------------------------------------------


def test_csv_has_a_header_one_row_per_feature_and_the_geojson_geometry(client, catalog_columns):
    response = client.get(MUNI, params={"f": "csv", "limit": 100})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    header, rows = csv_rows(response.text)
    assert header == [*catalog_columns["municipalities"], "WKT"]
    assert len(rows) == 19
    geojson = {f["id"]: f for f in client.get(MUNI, params={"limit": 100}).json()["features"]}
    for row in rows:
        feature = geojson[row["NAT_CODE"]]
        wkt = shapely.from_wkt(row["WKT"])
        assert shapely.equals_exact(
            wkt, shapely.geometry.shape(feature["geometry"]), tolerance=1e-9
        )
        assert row["NAME_FRE"] == feature["properties"]["NAME_FRE"]
        assert float(row["AREA"]) == feature["properties"]["AREA"]
        assert row["BEGIN_LIFE"] == feature["properties"]["BEGIN_LIFE"]


def test_csv_pages_with_link_headers_keep_filters_and_crs(client, addresses):
    url, ids, pages = ADDR, [], 0
    params: dict | None = {
        "f": "csv",
        "limit": 150,
        "PZNC": "1060",
        "properties": "PW_NAME_FR",
        "crs": "EPSG:31370",
    }
    while url:
        response = client.get(url, params=params)
        params = None
        header, rows = csv_rows(response.text)
        assert header == ["ID", "PW_NAME_FR", "WKT"]  # the key comes first when not selected
        assert response.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/31370>"
        for row in rows:
            x, y = shapely.get_coordinates(shapely.from_wkt(row["WKT"]))[0]
            assert 140_000 < x < 160_000 and 160_000 < y < 180_000  # Lambert 72 metres
        ids += [int(r["ID"]) for r in rows]
        pages += 1
        url = response.links.get("next", {}).get("url")
        if url:
            assert "f=csv" in url and "PZNC=1060" in url and "crs=EPSG%3A31370" in url
    assert pages == 3 and len(ids) == len(set(ids)) == 418
    assert sorted(ids) == sorted(addresses[addresses["PZNC"] == "1060"]["ID"])


def test_accept_header_negotiates_csv_geopackage_html_and_geojson(client):
    cases = {
        "text/csv": "text/csv",
        "application/geopackage+sqlite3": "application/geopackage+sqlite3",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8": "text/html",
        "application/geo+json": "application/geo+json",
        "text/csv;q=0.5, application/geo+json": "application/geo+json",
        "*/*": "application/geo+json",
    }
    for accept, media in cases.items():
        response = client.get(MUNI, headers={"Accept": accept})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media), accept
    forced = client.get(MUNI, params={"f": "json"}, headers={"Accept": "text/csv"})
    assert forced.headers["content-type"].startswith("application/geo+json")


# --- GeoPackage -------------------------------------------------------------------------------


def test_geopackage_reads_back_with_geopandas(client, tmp_path: Path, catalog_columns, addresses):
    response = client.get(
        ADDR,
        params={
            "f": "gpkg",
            "limit": 1000,
            "PZNC": "1000",
            "crs": "http://www.opengis.net/def/crs/EPSG/0/31370",
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geopackage+sqlite3"
    assert 'filename="addresses.gpkg"' in response.headers["content-disposition"]
    assert response.headers["number-matched"] == "247"
    path = tmp_path / "a.gpkg"
    path.write_bytes(response.content)
    assert [name for name, _ in pyogrio.list_layers(path)] == ["addresses"]
    frame = gpd.read_file(path)
    assert len(frame) == 247 and frame.crs.to_epsg() == 31370
    assert list(frame.columns) == [*catalog_columns["addresses"], "geometry"]
    assert set(frame["PZNC"]) == {"1000"} and frame["ID"].dtype == "int64"
    assert sorted(frame["ID"]) == sorted(addresses[addresses["PZNC"] == "1000"]["ID"])
    assert frame.total_bounds[0] > 140_000 and frame.total_bounds[3] < 180_000  # metres


def test_geopackage_in_crs84_with_selected_properties(client, tmp_path: Path, municipalities):
    response = client.get(MUNI, params={"f": "gpkg", "limit": 100, "properties": "AREA"})
    path = tmp_path / "m.gpkg"
    path.write_bytes(response.content)
    frame = gpd.read_file(path)
    assert list(frame.columns) == ["NAT_CODE", "AREA", "geometry"]
    assert len(frame) == 19 and frame.crs.to_string() == "OGC:CRS84"
    assert set(frame.geom_type) == {"MultiPolygon"}
    lambert = frame.set_index("NAT_CODE").to_crs(31370)
    assert (lambert.area - lambert["AREA"]).abs().max() < 1.0
    assert sorted(frame["NAT_CODE"]) == sorted(municipalities["NAT_CODE"])
    empty = client.get(MUNI, params={"f": "gpkg", "NAME_FRE": "nowhere"})
    path.write_bytes(empty.content)
    assert len(gpd.read_file(path)) == 0


# --- documentation ----------------------------------------------------------------------------


def test_openapi_documents_the_new_parameters(client):
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/collections/{collection_id}/items"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert "+NAME_FRE,-AREA" in params["sortby"]["description"]
    assert "comma-separated" in params["properties"]["description"]
    assert "gpkg" in params["f"]["description"] and "csv" in params["f"]["description"]
    assert "<property>=<value>" in operation["description"]
    content = operation["responses"]["200"]["content"]
    assert {"text/csv", "application/geopackage+sqlite3"} <= set(content)
