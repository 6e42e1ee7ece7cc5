"""The standards the API declares, each checked against the running API.

`/conformance` lists exactly the classes that have a check here (a class added without one, or
one dropped, fails); the OpenAPI document served is valid OpenAPI 3.0, the version conformance,
the landing page and the README claim; the features' schema (Part 5) is read by OWSLib and
agrees, with the queryables, with the database's column types and with the values the items
carry; and GeoJSON geometries carry no `crs` member.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import geopandas as gpd
import httpx
import jsonschema
import mapbox_vector_tile
import numpy as np
import psycopg
import pyarrow as pa
import pyogrio
import pytest
import shapely
from openapi_spec_validator import validate as validate_openapi
from owslib.ogcapi.features import Features

from tests.api.conftest import start_server, sync_file_layer
from tests.conftest import ROOT, create_database, drop_database

pytestmark = pytest.mark.api

SPEC = "http://www.opengis.net/spec/"
ADDR = "/collections/addresses/items"
SAINT_GILLES_POINT = "POINT(4.3458 50.8325)"  # inside Saint-Gilles, among the sample addresses


def ok(response: httpx.Response, media: str = "") -> httpx.Response:
    assert response.status_code == 200, (response.request.url, response.text[:300])
    assert response.headers["content-type"].startswith(media), response.headers["content-type"]
    return response


def matched(client: httpx.Client, **params: str) -> int:
    return int(ok(client.get(ADDR, params=params), "application/geo+json").json()["numberMatched"])


def check_core(c: httpx.Client) -> None:
    rels = {link["rel"] for link in ok(c.get("/")).json()["links"]}
    assert {"service-desc", "conformance", "data"} <= rels
    assert {x["id"] for x in ok(c.get("/collections")).json()["collections"]} >= {"addresses"}
    assert ok(c.get(f"{ADDR}/1115955")).json()["id"] == 1115955
    assert c.get(f"{ADDR}/999").status_code == 404


def check_geojson(c: httpx.Client) -> None:
    body = ok(c.get(ADDR, params={"limit": 3}), "application/geo+json").json()
    assert body["type"] == "FeatureCollection" and len(body["features"]) == 3


def check_html(c: httpx.Client) -> None:
    for path in (
        "/",
        "/conformance",
        "/collections",
        "/collections/addresses",
        ADDR,
        f"{ADDR}/1115955",
        "/collections/addresses/schema",
    ):
        ok(c.get(path, headers={"Accept": "text/html"}), "text/html")


def check_oas30(c: httpx.Client) -> None:
    spec = ok(c.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.0.")
    validate_openapi(spec)


def check_crs(c: httpx.Client) -> None:
    collection = ok(c.get("/collections/addresses")).json()
    lambert = "http://www.opengis.net/def/crs/EPSG/0/31370"
    assert lambert in collection["crs"] and collection["storageCrs"] == lambert
    answer = ok(c.get(f"{ADDR}/1115955", params={"crs": lambert}))
    assert answer.headers["content-crs"] == f"<{lambert}>"
    x, y = answer.json()["geometry"]["coordinates"]
    assert 140_000 < x < 160_000 and 160_000 < y < 180_000
    assert matched(c, bbox="147900,169300,148100,169500", **{"bbox-crs": lambert}) > 0


def check_filter(c: httpx.Client) -> None:
    assert 0 < matched(c, filter="PZNC = '1060'") < 666


def check_queryables(c: httpx.Client) -> None:
    doc = ok(c.get("/collections/addresses/queryables"), "application/schema+json").json()
    assert doc["properties"]["PZNC"]["type"] == "string"


def check_queryables_as_parameters(c: httpx.Client) -> None:
    assert matched(c, PZNC="1060") == matched(c, filter="PZNC = '1060'")


def check_schemas(c: httpx.Client) -> None:
    links = ok(c.get("/collections/addresses")).json()["links"]
    (schema_link,) = [lk for lk in links if lk["rel"].endswith("/rel/ogc/1.0/schema")]
    assert schema_link["type"] == "application/schema+json"
    doc = ok(c.get(schema_link["href"]), "application/schema+json").json()
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(doc)


def check_core_roles(c: httpx.Client) -> None:
    props = ok(c.get("/collections/addresses/schema")).json()["properties"]
    roles = {name: p["x-ogc-role"] for name, p in props.items() if "x-ogc-role" in p}
    assert roles == {"ID": "id", "geometry": "primary-geometry"}
    assert props["geometry"]["format"] == "geometry-point"


def check_cql2_text(c: httpx.Client) -> None:
    assert matched(c, filter="ADRN = '2'", **{"filter-lang": "cql2-text"}) > 0


def check_cql2_json(c: httpx.Client) -> None:
    cql = '{"op": "=", "args": [{"property": "ADRN"}, "2"]}'
    assert matched(c, filter=cql, **{"filter-lang": "cql2-json"}) == matched(c, filter="ADRN = '2'")


def check_basic_cql2(c: httpx.Client) -> None:
    total = matched(c)
    one = matched(c, filter="PZNC = '1060'")
    other = matched(c, filter="NOT (PZNC = '1060')")
    unknown = matched(c, filter="PZNC IS NULL")  # neither equal nor not equal
    assert unknown == 1 and one + other + unknown == total  # the sample's point without names
    assert matched(c, filter="PZNC = '1060' OR PZNC <> '1060'") == total - unknown
    assert matched(c, filter="PZNC IS NOT NULL") == total - unknown
    assert matched(c, filter="ID >= 1115955 AND ID < 1115955") == 0


def check_advanced_comparison(c: httpx.Client) -> None:
    assert (
        matched(c, filter="PW_NAME_FR LIKE 'Rue%'")
        > matched(c, filter="PW_NAME_FR LIKE 'Rue de la Victoire'")
        > 0
    )
    assert matched(c, filter="ID BETWEEN 1115955 AND 1115967") > 0
    assert matched(c, filter="PZNC IN ('1060', '1000')") == matched(c) - 1  # one has none


def check_basic_spatial(c: httpx.Client) -> None:
    assert matched(c, filter="S_INTERSECTS(geom, BBOX(4.34, 50.83, 4.35, 50.84))") > 0
    assert matched(c, filter="S_INTERSECTS(geometry, POINT(0 0))") == 0


def check_basic_spatial_plus(c: httpx.Client) -> None:
    polygon = "POLYGON((4.34 50.83, 4.35 50.83, 4.35 50.84, 4.34 50.84, 4.34 50.83))"
    inside = matched(c, filter=f"S_INTERSECTS(geom, {polygon})")
    assert inside > 0
    assert matched(c, filter=f"S_INTERSECTS(geom, MULTIPOLYGON(({polygon[8:-1]})))") == inside
    assert matched(c, filter=f"S_INTERSECTS(geom, GEOMETRYCOLLECTION({polygon}))") == inside
    assert matched(c, filter="S_INTERSECTS(geom, LINESTRING(4.34 50.83, 4.35 50.84))") >= 0


def check_spatial_functions(c: httpx.Client) -> None:
    box = "BBOX(4.34, 50.83, 4.35, 50.84)"
    inside = matched(c, filter=f"S_INTERSECTS(geom, {box})")
    assert matched(c, filter=f"S_WITHIN(geom, {box})") == inside
    assert matched(c, filter=f"S_DISJOINT(geom, {box})") == matched(c) - inside
    for name in ("S_CONTAINS", "S_EQUALS", "S_TOUCHES", "S_CROSSES", "S_OVERLAPS"):
        assert matched(c, filter=f"{name}(geom, {box})") == 0, name  # points in a box
    # a point of the layer as stored (Lambert 72, to the mm): equal to itself, touching a box
    # whose corner it is
    x, y = ok(c.get(f"{ADDR}/1115955", params={"crs": "EPSG:31370"})).json()["geometry"][
        "coordinates"
    ]
    lambert = {"filter-crs": "EPSG:31370"}
    assert matched(c, filter=f"S_EQUALS(geom, POINT({x} {y}))", **lambert) == 1
    corner = f"BBOX({x - 1:.3f}, {y - 1:.3f}, {x:.3f}, {y:.3f})"
    assert matched(c, filter=f"S_TOUCHES(geom, {corner})", **lambert) == 1
    assert matched(c, filter=f"S_INTERSECTS(geom, {corner})", **lambert) == 1


def _tile(c: httpx.Client, path: str) -> dict:
    answer = ok(c.get(path), "application/vnd.mapbox-vector-tile")
    return mapbox_vector_tile.decode(answer.content)


def check_tiles_core(c: httpx.Client) -> None:
    assert _tile(c, "/collections/addresses/tiles/WebMercatorQuad/15/16779/10994")["addresses"]


def check_tileset(c: httpx.Client) -> None:
    doc = ok(c.get("/collections/addresses/tiles/WebMercatorQuad")).json()
    assert doc["tileMatrixSetURI"] and doc["links"]


def check_tilesets_list(c: httpx.Client) -> None:
    assert ok(c.get("/collections/addresses/tiles")).json()["tilesets"]


def check_geodata_tilesets(c: httpx.Client) -> None:
    links = ok(c.get("/collections/addresses")).json()["links"]
    assert any(lk["rel"].endswith("tilesets-vector") for lk in links)


def check_dataset_tilesets(c: httpx.Client) -> None:
    assert ok(c.get("/tiles")).json()["tilesets"]
    assert set(_tile(c, "/tiles/WebMercatorQuad/15/16779/10994")) >= {"addresses", "municipalities"}


def check_mvt(c: httpx.Client) -> None:
    check_tiles_core(c)


def check_tilematrixset(c: httpx.Client) -> None:
    ids = {t["id"] for t in ok(c.get("/tileMatrixSets")).json()["tileMatrixSets"]}
    assert ids == {"WebMercatorQuad", "BelgianLambert72"}


def check_json_tilematrixset(c: httpx.Client) -> None:
    doc = ok(c.get("/tileMatrixSets/BelgianLambert72")).json()
    assert doc["crs"].endswith("/31370") and len(doc["tileMatrices"]) > 15


CHECKS: dict[str, Callable[[httpx.Client], None]] = {
    "ogcapi-features-1/1.0/conf/core": check_core,
    "ogcapi-features-1/1.0/conf/geojson": check_geojson,
    "ogcapi-features-1/1.0/conf/html": check_html,
    "ogcapi-features-1/1.0/conf/oas30": check_oas30,
    "ogcapi-features-2/1.0/conf/crs": check_crs,
    "ogcapi-features-3/1.0/conf/filter": check_filter,
    "ogcapi-features-3/1.0/conf/features-filter": check_filter,
    "ogcapi-features-3/1.0/conf/queryables": check_queryables,
    "ogcapi-features-3/1.0/conf/queryables-query-parameters": check_queryables_as_parameters,
    "ogcapi-features-5/1.0/conf/schemas": check_schemas,
    "ogcapi-features-5/1.0/conf/core-roles-features": check_core_roles,
    "cql2/1.0/conf/cql2-text": check_cql2_text,
    "cql2/1.0/conf/cql2-json": check_cql2_json,
    "cql2/1.0/conf/basic-cql2": check_basic_cql2,
    "cql2/1.0/conf/advanced-comparison-operators": check_advanced_comparison,
    "cql2/1.0/conf/basic-spatial-functions": check_basic_spatial,
    "cql2/1.0/conf/basic-spatial-functions-plus": check_basic_spatial_plus,
    "cql2/1.0/conf/spatial-functions": check_spatial_functions,
    "ogcapi-tiles-1/1.0/conf/core": check_tiles_core,
    "ogcapi-tiles-1/1.0/conf/tileset": check_tileset,
    "ogcapi-tiles-1/1.0/conf/tilesets-list": check_tilesets_list,
    "ogcapi-tiles-1/1.0/conf/geodata-tilesets": check_geodata_tilesets,
    "ogcapi-tiles-1/1.0/conf/dataset-tilesets": check_dataset_tilesets,
    "ogcapi-tiles-1/1.0/conf/mvt": check_mvt,
    "tms/2.0/conf/tilematrixset": check_tilematrixset,
    "tms/2.0/conf/json-tilematrixset": check_json_tilematrixset,
}


def test_conformance_declares_exactly_the_checked_classes(client):
    declared = ok(client.get("/conformance")).json()["conformsTo"]
    assert len(declared) == len(set(declared))
    assert {c.removeprefix(SPEC) for c in declared} == set(CHECKS)


@pytest.mark.parametrize("conformance_class", sorted(CHECKS))
def test_each_declared_class_holds(client, conformance_class):
    CHECKS[conformance_class](client)


def test_the_openapi_version_served_is_the_one_claimed(client):
    spec = ok(client.get("/openapi.json"), "application/json").json()
    validate_openapi(spec)  # valid as the version it states
    version = spec["openapi"]
    assert version == "3.0.3"
    landing = ok(client.get("/")).json()
    (desc,) = [lk for lk in landing["links"] if lk["rel"] == "service-desc"]
    assert desc["type"].endswith("version=3.0")
    readme = (ROOT / "README.md").read_text()
    claimed = set(re.findall(r"OpenAPI (\d\.\d)", readme))
    assert claimed == {"3.0"}, claimed
    assert "/collections/{collection_id}/schema" in spec["paths"]


def test_owslib_reads_the_features_schema(api):
    schema = Features(api).collection_schema("municipalities")
    properties = schema["properties"]
    assert properties["NAT_CODE"]["x-ogc-role"] == "id"
    assert properties["AREA"]["type"] == "number" and properties["ID"]["type"] == "integer"
    assert properties["BEGIN_LIFE"] == {
        "title": "BEGIN_LIFE",
        "type": "string",
        "format": "date",
        "x-ogc-propertySeq": 15,
    }
    assert properties["geometry"]["format"] == "geometry-multipolygon"
    sequence = [p["x-ogc-propertySeq"] for p in properties.values()]
    assert sequence == list(range(1, len(properties) + 1))


# --- the schema and the queryables agree with the database ---------------------------------

# What each PostgreSQL column type must be in JSON Schema (type, format).
EXPECTED = {
    "integer": ("integer", None),
    "bigint": ("integer", None),
    "double precision": ("number", None),
    "boolean": ("boolean", None),
    "text": ("string", None),
    "date": ("string", "date"),
    "timestamp with time zone": ("string", "date-time"),
}


def typed_layer(folder: Path) -> Path:
    """A layer with a field of every type a source can give, some values missing."""
    rng = np.random.default_rng(3)
    n = 30
    table = pa.table(
        {
            "CODE": [f"k{i}" for i in range(n)],
            "SMALL": pa.array(range(n), pa.int32()),
            "LARGE": pa.array([i * 10_000_000_000 for i in range(n)], pa.int64()),
            "RATIO": rng.uniform(0, 1, n),
            "FLAG": [i % 2 == 0 for i in range(n)],
            "DAY": pa.array([date(2026, 1, 1 + i % 28) for i in range(n)], pa.date32()),
            "SEEN": pa.array(
                [datetime(2026, 3, 1, 12, i, tzinfo=UTC) for i in range(n)],
                pa.timestamp("ms", tz="UTC"),
            ),
            "NOTE": [None if i % 3 == 0 else f"note {i}" for i in range(n)],
            "geom": shapely.to_wkb(shapely.points(148_000 + np.arange(n), 169_000)),
        }
    )
    source = folder / "typed.gpkg"
    pyogrio.write_arrow(
        table,
        str(source),
        layer="typed",
        driver="GPKG",
        geometry_name="geom",
        geometry_type="Point",
        crs="EPSG:31370",
    )
    config = folder / "typed.yaml"
    config.write_text(
        f"layers:\n  typed:\n    source: {{kind: file, path: {source}}}\n    key: CODE\n"
    )
    return config


@pytest.fixture(scope="module")
def typed_api(admin_url: str, template_url: str, tmp_path_factory) -> Iterator[tuple[str, str]]:
    name = f"typed_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, name, template="urbis_test_template")
    sync_file_layer(url, typed_layer(tmp_path_factory.mktemp("typed")), "typed")
    proc, base = start_server(url)
    try:
        yield base, url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        drop_database(admin_url, name)


def column_types(url: str, table: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'urbis' AND table_name = %s",
            (table,),
        ).fetchall()
    return {name: kind for name, kind in rows}


@pytest.mark.parametrize("layer", ["typed", "municipalities", "addresses"])
def test_schema_and_queryables_types_are_the_database_types(
    layer, typed_api, api, synced_database_url
):
    base, url = typed_api if layer == "typed" else (api, synced_database_url)
    with httpx.Client(base_url=base, timeout=30) as client:
        schema = ok(client.get(f"/collections/{layer}/schema")).json()["properties"]
        queryables = ok(client.get(f"/collections/{layer}/queryables")).json()["properties"]
    database = {
        name: kind
        for name, kind in column_types(url, layer).items()
        if name not in ("geom", "geom_3857", "geom_size", "geom_measure", "row_hash", "valid_from")
    }
    assert set(schema) - {"geometry"} == set(database) == set(queryables) - {"geometry"}
    if layer == "typed":  # every type a source gives is there
        assert set(database.values()) == set(EXPECTED)
    for name, kind in database.items():
        for spec in (schema[name], queryables[name]):
            assert (spec["type"], spec.get("format")) == EXPECTED[kind], (name, kind, spec)


@pytest.mark.parametrize("layer", ["typed", "municipalities", "addresses"])
def test_every_feature_validates_against_the_schema(layer, typed_api, api):
    base = typed_api[0] if layer == "typed" else api
    with httpx.Client(base_url=base, timeout=30) as client:
        schema = ok(client.get(f"/collections/{layer}/schema")).json()
        features = ok(client.get(f"/collections/{layer}/items", params={"limit": 1000})).json()[
            "features"
        ]
    assert features
    values_only = {
        **schema,
        "properties": {n: p for n, p in schema["properties"].items() if n != "geometry"},
    }
    validator = jsonschema.Draft202012Validator(
        values_only, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    key = next(n for n, p in schema["properties"].items() if p.get("x-ogc-role") == "id")
    for feature in features:
        present = {n: v for n, v in feature["properties"].items() if v is not None}
        validator.validate(present)  # each value has its schema type and format
        assert set(feature["properties"]) == set(values_only["properties"])
        assert feature["id"] == feature["properties"][key]
    if layer == "typed":
        (first,) = [f for f in features if f["id"] == "k1"]
        assert first["properties"]["LARGE"] == 10_000_000_000
        assert first["properties"]["DAY"] == "2026-01-02" and first["properties"]["FLAG"] is False


# --- GeoJSON geometries: no crs member ------------------------------------------------------


@pytest.mark.parametrize(
    "crs",
    [
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        "http://www.opengis.net/def/crs/EPSG/0/4326",
        "http://www.opengis.net/def/crs/EPSG/0/31370",
        "http://www.opengis.net/def/crs/EPSG/0/3857",
    ],
)
def test_geojson_geometries_carry_no_crs_member(client, crs):
    answers = [
        client.get(ADDR, params={"crs": crs, "limit": 20}),
        client.get(f"{ADDR}/1115955", params={"crs": crs}),
        client.get(
            "/collections/addresses/within",
            params={"x": 4.3458, "y": 50.8325, "distance": 30, "crs": crs},
        ),
        client.get("/geocode", params={"q": "Rue de la Victoire 2", "crs": crs}),
    ]
    for answer in answers:
        assert answer.headers["content-crs"] == f"<{crs}>"
        body = answer.json()
        for feature in body.get("features", [body]):
            assert set(feature["geometry"]) == {"type", "coordinates"}, feature["geometry"]


def test_geopandas_reads_a_lambert_answer_in_lambert(api):
    frame = gpd.read_file(f"{api}{ADDR}?limit=50&crs=EPSG:31370")
    assert frame.crs.to_epsg() == 31370 and len(frame) == 50
    assert frame.total_bounds[0] > 140_000
