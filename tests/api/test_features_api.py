"""OGC API Features over HTTP, checked against the source files read independently."""

from __future__ import annotations

import re
import subprocess
from urllib.parse import quote

import geopandas as gpd
import pyogrio
import pytest
import shapely

from tests.api.conftest import assert_problem
from tests.conftest import SAMPLE_COUNTS, SAMPLE_DIR
from urbis_core.migrate import HEAD

pytestmark = pytest.mark.api

IN_BRUSSELS = (4.24, 50.76, 4.49, 50.92)


def source_addresses_crs84() -> gpd.GeoDataFrame:
    frame = gpd.read_file(
        f"/vsizip/{SAMPLE_DIR / 'UrbAdm_AdPt_sample.zip'}/shp/UrbAdm_AdPt.shp", columns=["ID"]
    )
    return frame.to_crs("OGC:CRS84")


def assert_in_brussels(coords: list[list[float]]) -> None:
    lon0, lat0, lon1, lat1 = IN_BRUSSELS
    for lon, lat in coords:
        assert lon0 <= lon <= lon1 and lat0 <= lat <= lat1, (lon, lat)


def test_landing_conformance_openapi_health(client):
    landing = client.get("/").json()
    rels = {link["rel"] for link in landing["links"]}
    assert {"self", "service-desc", "service-doc", "conformance", "data"} <= rels
    assert "UrbIS" in landing["attribution"]
    conf = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conf
    spec = client.get("/openapi.json").json()
    assert "/collections/{collection_id}/items" in spec["paths"]
    health = client.get("/healthz").json()
    assert {k: health[k] for k in ("status", "database")} == {
        "status": "ok",
        "database": "reachable",
    }
    assert client.get("/readyz").json() == {
        "status": "ready",
        "database": "ok",
        "layers": len(SAMPLE_COUNTS),
        "migration": HEAD,
    }
    assert set(health["tile_cache"]) == {
        "hits",
        "misses",
        "dropped",
        "entries",
        "bytes",
        "changes",
        "disk_write_errors",
    }


def test_docs_page_is_served_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/static/swagger-ui/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    js = client.get("/static/swagger-ui/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000


def test_collections_list_every_layer_with_extents(client):
    doc = client.get("/collections").json()
    by_id = {c["id"]: c for c in doc["collections"]}
    assert {i: c["featureCount"] for i, c in by_id.items()} == SAMPLE_COUNTS
    muni = by_id["municipalities"]
    assert muni["titles"] == {"fr": "Communes", "nl": "Gemeenten", "en": "Municipalities"}
    assert muni["storageCrs"] == "http://www.opengis.net/def/crs/EPSG/0/31370"
    (bbox,) = muni["extent"]["spatial"]["bbox"]
    assert IN_BRUSSELS[0] <= bbox[0] < bbox[2] <= IN_BRUSSELS[2]
    assert IN_BRUSSELS[1] <= bbox[1] < bbox[3] <= IN_BRUSSELS[3]
    items = [lk for lk in muni["links"] if lk["rel"] == "items"]
    assert any(lk["type"] == "application/geo+json" for lk in items)


def test_a_collection_says_how_its_features_are_named_per_language(client):
    addresses = client.get("/collections/addresses").json()["featureLabel"]
    french = "{PW_NAME_FR} {ADRN}"
    assert addresses == {"fr": french, "nl": "{PW_NAME_DU} {ADRN}", "en": french}
    municipalities = client.get("/collections/municipalities").json()["featureLabel"]
    ixelles = client.get("/collections/municipalities/items/21009").json()["properties"]
    names = {lang: template.format(**ixelles) for lang, template in municipalities.items()}
    assert names == {"fr": "Ixelles", "nl": "Elsene", "en": "Ixelles"}


def test_a_feature_keyed_by_a_uri_is_one_path_segment_percent_encoded(client):
    """Current URBIS keys are INSPIRE_ID URIs: their '/' arrive decoded, and are the id's."""
    first = client.get("/collections/buildings/items", params={"limit": 1}).json()["features"][0]
    key = first["id"]
    assert key.startswith("https://databrussels.be/id/building/")
    href = f"/collections/buildings/items/{quote(key, safe='')}"
    feature = client.get(href).json()
    assert feature["id"] == key and feature["properties"] == first["properties"]
    (own,) = [lk["href"] for lk in feature["links"] if lk["rel"] == "self"]
    assert own.endswith(f"{href}?f=json")
    assert client.get(href, params={"f": "html"}).status_code == 200
    absent = client.get(f"/collections/buildings/items/{quote(key + '0', safe='')}")
    assert absent.status_code == 404 and key + "0" in absent.json()["detail"]
    assert client.get("/collections/buildings/items/").status_code == 404


def test_items_counts_and_coordinates(client):
    muni = client.get("/collections/municipalities/items", params={"limit": 100})
    assert muni.headers["content-type"].startswith("application/geo+json")
    body = muni.json()
    assert body["numberMatched"] == 19 and body["numberReturned"] == 19
    for feature in body["features"]:
        geom = shapely.geometry.shape(feature["geometry"])
        assert_in_brussels([list(c) for c in shapely.get_coordinates(geom)])
    assert sorted(f["id"] for f in body["features"]) == [str(n) for n in range(21001, 21020)]
    addresses = client.get("/collections/addresses/items").json()
    assert addresses["numberMatched"] == 666 and addresses["numberReturned"] == 10


def test_next_links_walk_every_feature_once(client):
    url = "/collections/addresses/items?limit=100"
    seen: list[int] = []
    pages = 0
    while url:
        body = client.get(url).json()
        seen += [f["id"] for f in body["features"]]
        url = next((lk["href"] for lk in body["links"] if lk["rel"] == "next"), None)
        pages += 1
    assert pages == 7 and len(seen) == 666 and len(set(seen)) == 666


def test_bbox_matches_an_independent_shapely_computation(client):
    bbox = (4.3435, 50.8300, 4.3470, 50.8330)
    expected = source_addresses_crs84()
    box = shapely.box(*bbox)
    expected_ids = sorted(int(i) for i in expected[expected.intersects(box)]["ID"])
    assert 20 < len(expected_ids) < 666
    body = client.get(
        "/collections/addresses/items", params={"bbox": ",".join(map(str, bbox)), "limit": 1000}
    ).json()
    assert body["numberMatched"] == len(expected_ids)
    assert sorted(f["id"] for f in body["features"]) == expected_ids


def test_feature_by_key_matches_the_source(client):
    ixelles = client.get("/collections/municipalities/items/21009").json()
    assert ixelles["properties"]["NAME_FRE"] == "Ixelles"
    assert ixelles["properties"]["NAME_DUT"] == "Elsene"
    assert ixelles["geometry"]["type"] == "MultiPolygon"
    assert len(ixelles["geometry"]["coordinates"]) == 2  # Ixelles comes in two parts
    address = client.get("/collections/addresses/items/1116857").json()
    assert address["properties"]["ANGLE"] == 309.92
    source = source_addresses_crs84().set_index("ID").loc[1116857]
    lon, lat = address["geometry"]["coordinates"]
    assert lon == pytest.approx(source.geometry.x, abs=1e-7)
    assert lat == pytest.approx(source.geometry.y, abs=1e-7)


@pytest.mark.parametrize(
    "path, status, words",
    [
        ("/collections/nope", 404, "no collection 'nope'"),
        ("/collections/nope/items", 404, "no collection 'nope'"),
        ("/collections/municipalities/items/99999", 404, "no feature '99999'"),
        ("/collections/addresses/items/not-a-number", 404, "no feature 'not-a-number'"),
        ("/collections/addresses/items/99999999999999999999999", 404, "no feature"),
        ("/collections/addresses/items/1_116_857", 404, "no feature"),
        ("/collections/municipalities/items/21009%00", 400, "control character U+0000"),
        ("/collections/municipalities/items/21009';DROP TABLE x;--", 404, "no feature"),
        ("/collections/addresses/items?limit=0", 400, "limit"),
        ("/collections/addresses/items?limit=abc", 400, "limit"),
        ("/collections/addresses/items?offset=-1", 400, "offset"),
        ("/collections/addresses/items?bbox=1,2,3", 400, "bbox"),
        ("/collections/addresses/items?bbox=5,51,4,50", 400, "min <= max"),
        ("/collections/addresses/items?colour=red", 400, "'colour'"),
        ("/collections/addresses/items?f=xml", 400, "f"),
        ("/no/such/thing", 404, "no resource"),
    ],
)
def test_bad_requests_get_a_json_error_that_says_why(client, path, status, words):
    assert_problem(client.get(path), status, words)


def test_limit_above_the_maximum_is_reduced(client):
    body = client.get("/collections/addresses/items", params={"limit": 50_000}).json()
    assert body["numberReturned"] == 666
    assert "limit=10000" in body["links"][0]["href"]


def test_html_pages_for_people(client):
    for path in (
        "/",
        "/collections",
        "/collections/municipalities",
        "/collections/municipalities/items",
        "/collections/municipalities/items/21009",
    ):
        page = client.get(path, headers={"Accept": "text/html"})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "UrbIS" in page.text
    items = client.get("/collections/municipalities/items?f=html&limit=19").text
    assert "Ixelles" in items and "Sint-Gillis" in items


def test_geopandas_reads_the_items_url(api):
    frame = gpd.read_file(f"{api}/collections/municipalities/items?limit=100")
    assert len(frame) == 19
    assert frame.crs.to_epsg() == 4326
    lambert = frame.set_index("NAT_CODE").to_crs(31370)
    # Areas computed from what the API sent (CRS84, reprojected here) match the source's AREA.
    assert (lambert.area - lambert["AREA"]).abs().max() < 1.0


def test_gdal_oapif_driver_lists_and_reads_collections(api):
    layers = {name for name, _ in pyogrio.list_layers(f"OAPIF:{api}")}
    assert layers == set(SAMPLE_COUNTS)
    frame = pyogrio.read_dataframe(f"OAPIF:{api}", layer="addresses")
    assert len(frame) == 666
    assert frame["ID"].nunique() == 666


def test_ogrinfo_command_lists_collections_and_counts_features(api):
    """Debian's own GDAL command line (gdal-bin), as a GIS user would run it."""
    listing = subprocess.run(
        ["ogrinfo", "-ro", "-q", f"OAPIF:{api}"], capture_output=True, text=True, timeout=120
    )
    assert listing.returncode == 0, listing.stderr
    names = {
        line.split(":", 1)[1].split("(")[0].strip()
        for line in listing.stdout.splitlines()
        if re.match(r"^\d+: ", line)
    }
    assert names == set(SAMPLE_COUNTS)
    for layer, count in SAMPLE_COUNTS.items():
        summary = subprocess.run(
            ["ogrinfo", "-ro", "-so", "-oo", "PAGE_SIZE=1000", f"OAPIF:{api}", layer],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert summary.returncode == 0, summary.stderr
        assert f"Feature Count: {count}" in summary.stdout, summary.stdout
    # reading every feature (not only the advertised count): -al without -so
    features = subprocess.run(
        ["ogrinfo", "-ro", "-al", "-q", f"OAPIF:{api}", "addresses"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert features.returncode == 0, features.stderr
    assert len(re.findall(r"^OGRFeature\(addresses\):", features.stdout, re.M)) == 666


def test_output_crs_and_content_crs_header(client):
    path = "/collections/addresses/items/1116857"
    lambert = client.get(path, params={"crs": "http://www.opengis.net/def/crs/EPSG/0/31370"})
    assert lambert.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/31370>"
    # The stored Lambert 72 coordinates, as the source file has them (POINT (148384.639 ...)).
    assert lambert.json()["geometry"]["coordinates"] == [148384.639, 169116.879]
    crs84 = client.get(path)
    assert crs84.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    lon, lat = crs84.json()["geometry"]["coordinates"]
    latlon = client.get(path, params={"crs": "http://www.opengis.net/def/crs/EPSG/0/4326"})
    assert latlon.json()["geometry"]["coordinates"] == [lat, lon]
    bad = client.get(path, params={"crs": "EPSG:2154"})
    assert bad.status_code == 400 and "'crs'" in bad.json()["detail"]


def test_bbox_in_lambert_72_selects_the_same_features(client):
    lambert = client.get(
        "/collections/addresses/items",
        params={
            "bbox": "148000,169000,148300,169300",
            "limit": 1000,
            "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/31370",
            "crs": "http://www.opengis.net/def/crs/EPSG/0/31370",
        },
    ).json()
    assert 0 < lambert["numberMatched"] < 666
    for feature in lambert["features"]:
        x, y = feature["geometry"]["coordinates"]
        assert 148000 <= x <= 148300 and 169000 <= y <= 169300
