"""The API's answers are what /openapi.json says: every JSON operation, successes and errors.

Each request goes to a real `urbis serve`; its answer is validated against the schema the
served definition gives for that operation, status and media type (OpenAPI 3.0 schemas,
`nullable` included). A status the operation does not document fails the test too.
"""

from __future__ import annotations

import re

import httpx
import pytest
from openapi_schema_validator import OAS30Validator

pytestmark = pytest.mark.api

POINT = "x=4.3445&y=50.8316"
LAMBERT = "x=148200&y=169300&crs=EPSG:31370"
# (method, path as requested, body): successes of every JSON operation, then errors.
REQUESTS = [
    ("GET", "/", None),
    ("GET", "/conformance", None),
    ("GET", "/healthz", None),
    ("GET", "/readyz", None),
    ("GET", "/collections", None),
    ("GET", "/collections/addresses", None),
    ("GET", "/collections/municipalities", None),
    ("GET", "/collections/addresses/items?limit=3", None),
    ("GET", "/collections/municipalities/items?limit=2&crs=EPSG:31370", None),
    ("GET", "/collections/municipalities/items/21015", None),
    ("GET", "/collections/addresses/changes?since=2000-01-01T00:00:00Z&limit=3", None),
    ("GET", "/collections/addresses/quarantine", None),
    ("GET", "/collections/addresses/queryables", None),
    ("GET", "/collections/addresses/schema", None),
    ("GET", f"/lookup?{POINT}", None),
    ("GET", f"/collections/addresses/within?{POINT}&distance=50&limit=2", None),
    ("GET", f"/collections/addresses/nearest?{POINT}&limit=2", None),
    (
        "GET",
        "/collections/addresses/intersects?collection=municipalities&feature=21015&limit=2",
        None,
    ),
    (
        "POST",
        "/collections/addresses/intersects?limit=2",
        {
            "type": "Polygon",
            "coordinates": [[[4.344, 50.831], [4.346, 50.831], [4.346, 50.8325], [4.344, 50.831]]],
        },
    ),
    ("GET", "/collections/addresses/stats?by=municipalities", None),
    ("GET", "/geocode?q=Rue%20de%20la%20Victoire%202&limit=2", None),
    ("GET", f"/reverse?{LAMBERT}", None),
    ("GET", "/tileMatrixSets", None),
    ("GET", "/tileMatrixSets/WebMercatorQuad", None),
    ("GET", "/tileMatrixSets/BelgianLambert72", None),
    ("GET", "/collections/addresses/tiles", None),
    ("GET", "/collections/addresses/tiles/WebMercatorQuad", None),
    ("GET", "/tiles", None),
    ("GET", "/tiles/BelgianLambert72?collections=municipalities,addresses", None),
    ("GET", "/collections/addresses/tiles/WebMercatorQuad/tilejson.json", None),
    ("GET", "/tiles/WebMercatorQuad/tilejson.json", None),
    ("GET", "/styles", None),
    ("GET", "/styles/default/style.json", None),
    ("GET", "/archives", None),
    ("GET", "/jobs", None),
    # errors, in the one problem model
    ("GET", "/collections/nope", None),
    ("GET", "/collections/addresses/items?limit=x", None),
    ("GET", "/collections/addresses/items?bbox=1,2,3", None),
    ("GET", "/collections/addresses/items/999999999", None),
    ("GET", f"/lookup?{POINT}&collections=nope", None),
    ("GET", f"/lookup?{POINT}&collections=addresses,,municipalities", None),
    ("GET", "/collections/addresses/stats", None),
    ("GET", "/geocode", None),
    ("GET", "/tileMatrixSets/nope", None),
    ("GET", "/tiles/BelgianLambert72/tilejson.json", None),
    ("GET", "/tiles/WebMercatorQuad/1/0/0?collections=nope", None),
    ("GET", "/archives/nope.pmtiles/tilejson.json", None),
    ("POST", "/coverages/nope/zonal?collection=buildings", None),
    ("GET", "/jobs/nope", None),
    ("GET", "/jobs/nope/results?f=csv", None),
    ("DELETE", "/jobs/nope", None),
    # refused by the edge before any route runs: documented on every operation
    ("GET", "/collections?f=json%00", None),
    ("GET", "/styles?" + "x" * 9000, None),
    ("GET", "/tileMatrixSets?" + "y" * 9000, None),
]


@pytest.fixture(scope="module")
def definition(client: httpx.Client) -> dict:
    return client.get("/openapi.json").json()


def _operation(definition: dict, method: str, path: str) -> dict:
    """The operation whose path template matches `path`."""
    for template, item in definition["paths"].items():
        pattern = "^" + re.sub(r"\\{[^/]+\\}", "[^/]+", re.escape(template)) + "$"
        if method.lower() in item and re.match(pattern, path):
            return item[method.lower()]
    raise AssertionError(f"{method} {path} is not in /openapi.json")


def _validator(definition: dict, schema: dict) -> OAS30Validator:
    # The schema's references point into the document's components.
    return OAS30Validator({**schema, "components": definition["components"]})


@pytest.mark.parametrize(("method", "target", "body"), REQUESTS)
def test_each_answer_is_what_the_definition_says(client, definition, method, target, body):
    response = client.request(method, target, json=body)
    operation = _operation(definition, method, target.split("?")[0])
    documented = operation["responses"]
    assert str(response.status_code) in documented, (
        f"{method} {target} answered {response.status_code}, documented: {sorted(documented)}"
    )
    media_type = response.headers["content-type"].split(";")[0]
    content = documented[str(response.status_code)].get("content", {})
    assert media_type in content, f"{media_type} not documented: {sorted(content)}"
    schema = content[media_type]["schema"]
    assert "$ref" in schema  # a model, not an empty schema
    errors = sorted(
        _validator(definition, schema).iter_errors(response.json()), key=lambda e: e.path
    )
    assert not errors, f"{method} {target}: " + "; ".join(
        f"{list(e.path)}: {e.message[:200]}" for e in errors[:5]
    )


def test_every_json_answer_documented_has_a_model_and_no_422(definition):
    for template, item in definition["paths"].items():
        for method, operation in item.items():
            assert "422" not in operation["responses"], f"{method} {template}"
            for status, response in operation["responses"].items():
                for media_type, media in response.get("content", {}).items():
                    if "json" in media_type:
                        assert "$ref" in media.get("schema", {}), (method, template, status)
                    if status.startswith(("4", "5")):  # the problem, or a page for browsers
                        assert media_type in ("application/problem+json", "text/html")
                if status.startswith(("4", "5")):
                    assert "application/problem+json" in response["content"]
                    edge = status in ("408", "414", "431")  # before any route: never a page
                    assert ("text/html" in response["content"]) is not edge, (template, status)
            if operation.get("parameters"):  # validated parameters: a bad one is a 400
                assert "400" in operation["responses"] or all(
                    p["in"] == "path" and p["schema"].get("type") == "string"
                    for p in operation["parameters"]
                ), f"{method} {template}"


def test_an_edge_refusal_of_headers_is_what_every_operation_documents(client, definition):
    response = client.get(f"/lookup?{POINT}", headers={"X-Padding": "z" * 40_000})
    assert response.status_code == 431, response.text
    schema = _operation(definition, "GET", "/lookup")["responses"]["431"]["content"]
    problem = schema["application/problem+json"]["schema"]
    assert not list(_validator(definition, problem).iter_errors(response.json()))
