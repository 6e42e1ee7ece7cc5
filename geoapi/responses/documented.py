"""The `responses=` of a route: its answer's model under its media type, and its real errors.

FastAPI documents a 422 for every operation with parameters; the API answers bad input with a
400 in the one error model (geoapi.errors), so `geoapi.openapi` drops the 422s and adds the
models named here to the document's components.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from geoapi.media_types import GEOJSON, HTML, JSON, PROBLEM
from geoapi.responses.common import Problem

REF = "#/components/schemas/{model}"
ALSO_HTML: dict[str, dict[str, object]] = {HTML: {}}  # `also=`: a page for browsers too

# What each error status means here; an operation lists those it can answer.
ERRORS: dict[int, str] = {
    400: "A parameter, or the body, has a value the service cannot use: the detail names it",
    401: "No bearer token, or a wrong one: send `Authorization: Bearer <URBIS_ADMIN_TOKEN>`",
    404: "No such collection, feature, tile matrix set or resource",
    408: "The request body did not arrive within URBIS_BODY_TIMEOUT",
    409: "The resource is not ready for this request (a job's results before it succeeded), "
    "or busy (a sync run of the layer is already going)",
    413: "The answer, or the posted body, would be larger than one request may hold",
    414: "The URL is longer than URBIS_MAX_URL_BYTES",
    431: "The request headers together are larger than URBIS_MAX_HEADER_BYTES",
    503: "The database is busy, slow or away: try again after Retry-After seconds",
}
# Answered by the edge (geoapi.request_limits) before any route runs, so by every operation:
# control characters or broken UTF-8 in the URL (400), its length (414), the headers' (431);
# and by those with a body, its size (413) and its arrival (408).
EDGE_ERRORS = (400, 414, 431)
BODY_ERRORS = (408, 413)
EDGE_ONLY = (408, 414, 431)  # statuses only the edge answers (always a problem document)
PROBLEM_ONLY = (*EDGE_ONLY, 401)  # never a page: a bearer token is a program's business
CATALOG_ERRORS = (400, 404, 503)  # a collection looked up in the catalog

_documented: dict[str, type[BaseModel]] = {}


def schema_ref(model: type[BaseModel]) -> dict[str, str]:
    """A reference to the model's schema, which the document's components then hold."""
    known = _documented.setdefault(model.__name__, model)
    if known is not model:
        raise ValueError(f"two response models named {model.__name__}")
    return {"$ref": REF.format(model=model.__name__)}


def accepted(model: type[BaseModel], description: str, named: str) -> dict[int | str, Any]:
    """A 202 whose `Location` names what was started (`named`), with `model` as its body."""
    return {
        202: {
            "description": description,
            "headers": {"Location": {"schema": {"type": "string"}, "description": named}},
            "content": {JSON: {"schema": schema_ref(model)}},
        }
    }


def started(doc: dict[str, Any], location: str) -> JSONResponse:
    """The 202 that `accepted` documents: what was started, and where to follow it."""
    return JSONResponse(doc, status_code=202, headers={"Location": location})


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "description": ERRORS[status],
            "content": {
                PROBLEM: {"schema": schema_ref(Problem)},
                # a browser that asks for a page (f=html, or its Accept) gets the problem as
                # one, but from the edge, which answers before any route
                **({} if status in PROBLEM_ONLY else {HTML: {}}),
            },
        }
        for status in statuses
    }


def answers(
    model: type[BaseModel],
    media_type: str = JSON,
    *,
    also: Mapping[str, dict[str, Any]] | None = None,
    errors_: tuple[int, ...] = (400,),
    description: str = "Successful Response",
) -> dict[int | str, dict[str, Any]]:
    """A 200 of `model` as `media_type` (and the other formats in `also`), and its errors."""
    content = {media_type: {"schema": schema_ref(model)}, **(also or {})}
    return {200: {"description": description, "content": content}, **errors(*errors_)}


def component_schemas() -> dict[str, Any]:
    """The JSON Schema of every model documented so far (and of the models they use)."""
    if not _documented:
        return {}
    _, top = models_json_schema(
        [(m, "serialization") for m in _documented.values()], ref_template=REF
    )
    schemas: dict[str, Any] = top.get("$defs", {})
    return schemas


# The body /docs offers to try: a small area in Saint-Gilles, in CRS84.
EXAMPLE_AREA = {
    "type": "Polygon",
    "coordinates": [
        [
            [4.3440, 50.8310],
            [4.3460, 50.8310],
            [4.3460, 50.8325],
            [4.3440, 50.8325],
            [4.3440, 50.8310],
        ]
    ],
}


def geometry_body(description: str, *, required: bool) -> dict[str, Any]:
    """The `openapi_extra=` of an operation that takes a posted GeoJSON geometry.

    FastAPI knows nothing of the body: the route reads it raw, so that a large one is decoded
    off the event loop (geoapi.offload.in_process) and its errors are the API's own 400s.
    """
    schema = {
        "type": "object",
        "required": ["type", "coordinates"],
        "properties": {"type": {"type": "string"}, "coordinates": {"type": "array", "items": {}}},
    }
    return {
        "requestBody": {
            "required": required,
            "description": description,
            "content": {ct: {"schema": schema, "example": EXAMPLE_AREA} for ct in (GEOJSON, JSON)},
        }
    }
