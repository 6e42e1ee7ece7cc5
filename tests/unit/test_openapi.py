"""The API definition as OpenAPI 3.0: what FastAPI writes in 3.1 comes out valid 3.0."""

from __future__ import annotations

from openapi_spec_validator import validate

from geoapi.app import create_app
from geoapi.openapi import openapi_30
from urbis_core.settings import ApiSettings


def test_3_1_schema_keywords_become_their_3_0_spelling():
    converted = openapi_30(
        {
            "openapi": "3.1.0",
            "components": {
                "schemas": {
                    "A": {
                        "anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}],
                        "title": "A",
                        "properties": {
                            "b": {"type": ["string", "null"]},
                            "c": {"exclusiveMinimum": 0, "type": "number"},
                            "d": {"const": "x"},
                            "e": {"type": "string", "examples": ["one", "two"]},
                            "f": {"anyOf": [{"$ref": "#/components/schemas/B"}, {"type": "null"}]},
                            "g": {"anyOf": [{"enum": ["m2", "m"]}, {"type": "null"}]},
                        },
                    }
                }
            },
        }
    )
    schema = converted["components"]["schemas"]["A"]
    assert converted["openapi"] == "3.0.3"
    assert schema["type"] == "integer" and schema["nullable"] is True and "anyOf" not in schema
    props = schema["properties"]
    assert props["b"] == {"type": "string", "nullable": True}
    assert props["c"] == {"type": "number", "minimum": 0, "exclusiveMinimum": True}
    assert props["d"] == {"enum": ["x"]}
    assert props["e"] == {"type": "string", "example": "one"}
    assert props["f"] == {"anyOf": [{"$ref": "#/components/schemas/B"}], "nullable": True}
    assert props["g"] == {"enum": ["m2", "m", None], "nullable": True}  # 3.0: null listed


def test_the_app_definition_is_valid_openapi_3_0():
    app = create_app(ApiSettings(database_url="postgresql://nobody@127.0.0.1:1/none"))
    raw = app.openapi()
    assert raw["openapi"].startswith("3.1")  # what FastAPI writes...
    document = app.state.api_definition.for_base("https://maps.example.org/urbis")
    validate(document)  # ...served as valid 3.0
    assert document["openapi"] == "3.0.3"
    assert document["servers"] == [
        {"url": "https://maps.example.org/urbis", "description": "This service"}
    ]
    # built once, each answer with its own base
    assert (
        app.state.api_definition.for_base("https://b.example")["servers"][0]["url"]
        == "https://b.example"
    )
