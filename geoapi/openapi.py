"""The API definition as OpenAPI 3.0, the version OGC API Features Part 1 has a class for.

FastAPI writes OpenAPI 3.1 (JSON Schema 2020-12). Conformance declares
`.../ogcapi-features-1/1.0/conf/oas30`, and clients that read the definition (OWSLib, code
generators, validators) take the version it states, so the document is served as 3.0.3: the
few 3.1 constructs FastAPI emits become their 3.0 spelling. It is built once per app; the
`servers` entry is the request's own public base URL (proxy-aware), added per answer so that no
caller's host ends up in what the next caller gets.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from fastapi import FastAPI

from geoapi.responses.documented import BODY_ERRORS, EDGE_ERRORS, component_schemas, errors

OPENAPI_VERSION = "3.0.3"


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, {type: null}]` (3.1) as X with `nullable: true` (3.0)."""
    options = schema["anyOf"]
    others = [o for o in options if o != {"type": "null"}]
    if len(others) == len(options):
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    if len(others) == 1 and "$ref" not in others[0]:
        merged = {**others[0], **rest, "nullable": True}
        if "enum" in merged and None not in merged["enum"]:
            merged["enum"] = [*merged["enum"], None]  # 3.0: an enum allows null only if it lists it
        return merged
    return {**rest, "anyOf": others, "nullable": True}


def _schema_30(node: Any) -> Any:
    """A JSON value with every 3.1-only schema keyword rewritten, recursively."""
    if isinstance(node, list):
        return [_schema_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _schema_30(value) for key, value in node.items()}
    if isinstance(out.get("anyOf"), list):
        out = _nullable(out)
    kind = out.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        out["type"] = kinds[0] if len(kinds) == 1 else "string"
        if len(kinds) < len(kind):
            out["nullable"] = True
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[plain] = value
            out[bound] = True
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("examples"), list):  # a schema's examples; 3.0's are a map elsewhere
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    return out


def with_answers(document: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's document with our answers' models and without the 422s it adds.

    FastAPI documents a 422 wherever parameters are validated; the API answers those errors
    400 in its one error model (geoapi.errors), which each operation lists with its others,
    and with those the edge answers for any of them (EDGE_ERRORS, BODY_ERRORS).
    """
    typed = copy.deepcopy(document)
    for path_item in typed.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses", {})
            responses.pop("422", None)
            edge = EDGE_ERRORS + (BODY_ERRORS if "requestBody" in operation else ())
            for status, response in errors(*edge).items():
                responses.setdefault(str(status), response)
            for response in responses.values():
                for media in response.get("content", {}).values():
                    # A route returning a dict also gets FastAPI's schema of its annotation,
                    # merged with the model's reference: the reference alone says it.
                    if "$ref" in media.get("schema", {}):
                        media["schema"] = {"$ref": media["schema"]["$ref"]}
    schemas = typed.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(component_schemas())
    if "#/components/schemas/HTTPValidationError" in json.dumps(typed):
        raise AssertionError("a 422 is still documented")  # a route's own responses= has one
    return typed


def openapi_30(document: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = _schema_30(document)
    converted["openapi"] = OPENAPI_VERSION
    return converted


class ApiDefinition:
    """The app's OpenAPI 3.0 document, built on first use and copied with each request's base."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._document: dict[str, Any] | None = None

    def for_base(self, base: str) -> dict[str, Any]:
        if self._document is None:
            self._document = openapi_30(with_answers(self._app.openapi()))
        document = copy.copy(self._document)
        document["servers"] = [{"url": base, "description": "This service"}]
        return document
