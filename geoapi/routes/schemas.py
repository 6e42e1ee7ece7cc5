"""A collection's JSON Schemas, as JSON or HTML: queryables (Part 3), features' schema (Part 5)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from geoapi import html
from geoapi.deps import ConnDep, FormatDep, LangDep, base_url
from geoapi.i18n import PageLanguage, text
from geoapi.json_schema import SCHEMA_MEDIA_TYPE, feature_schema_doc, queryables_doc
from geoapi.params import reject_unknown
from geoapi.responses.documented import CATALOG_ERRORS, answers
from geoapi.responses.features import JsonSchema
from geoapi.routes.collections import CollectionId
from urbis_core.catalog import LayerEntry, get_layer

router = APIRouter(tags=["Data"])
_SCHEMA_RESPONSE = answers(
    JsonSchema, SCHEMA_MEDIA_TYPE, also={"text/html": {}}, errors_=CATALOG_ERRORS
)


async def _schema(
    request: Request,
    conn: ConnDep,
    fmt: str,
    lang: PageLanguage,
    collection_id: str,
    what: str,
    build: Callable[[LayerEntry, str], dict[str, Any]],
) -> Response:
    reject_unknown(request.query_params.keys(), {"f", "lang"})
    base = base_url(request)
    layer = await get_layer(conn, collection_id)
    doc = build(layer, base)
    if fmt == "html":
        rows = [
            [
                html.esc(name),
                html.esc(spec.get("type", "")),
                html.esc(spec.get("format", "")),
                html.esc(spec.get("x-ogc-role", "")),
            ]
            for name, spec in doc["properties"].items()
        ]
        code = lang.code
        headers = [text(code, k) for k in ("col.name", "col.type", "col.format", "col.role")]
        return html.page(
            request,
            lang,
            text(code, f"{what}.title", layer=layer.display_title(code)),
            html.table(headers, rows),
            f"{base}/collections/{layer.id}/{what}?f=json",
        )
    return Response(json.dumps(doc), media_type=SCHEMA_MEDIA_TYPE)


@router.get(
    "/collections/{collection_id}/queryables",
    response_class=Response,
    summary="The properties a filter can use (JSON Schema)",
    responses=_SCHEMA_RESPONSE,
)
async def queryables(
    collection_id: CollectionId,
    request: Request,
    conn: ConnDep,
    fmt: FormatDep,
    lang: LangDep,
) -> Response:
    return await _schema(request, conn, fmt, lang, collection_id, "queryables", queryables_doc)


@router.get(
    "/collections/{collection_id}/schema",
    response_class=Response,
    summary="The schema of the features (JSON Schema, OGC API Features Part 5)",
    description="Every property the features carry, in their order, with its JSON type "
    "and format as the database holds it; the key has the role `id`, the "
    "geometry `primary-geometry`.",
    responses=_SCHEMA_RESPONSE,
)
async def feature_schema(
    collection_id: CollectionId,
    request: Request,
    conn: ConnDep,
    fmt: FormatDep,
    lang: LangDep,
) -> Response:
    return await _schema(request, conn, fmt, lang, collection_id, "schema", feature_schema_doc)
