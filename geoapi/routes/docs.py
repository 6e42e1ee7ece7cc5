"""The API definition (/openapi.json, OpenAPI 3.0) and its Swagger UI (/docs, no CDN)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import Response

from geoapi.deps import base_url
from geoapi.errors import problem
from geoapi.openapi import ApiDefinition

SWAGGER_STATIC = "/static/swagger-ui"


def docs_router(assets_available: bool) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/openapi.json")
    async def openapi(request: Request) -> dict[str, Any]:
        definition: ApiDefinition = request.app.state.api_definition
        return definition.for_base(base_url(request))

    @router.get("/docs", response_model=None)
    async def docs(request: Request) -> Response:
        if not assets_available:
            return problem(
                503,
                "the API documentation page needs the front-end packages: "
                "run `make install` (npm ci); /openapi.json works without them",
            )
        base = base_url(request)
        return get_swagger_ui_html(
            openapi_url=f"{base}/openapi.json",
            title="URBIS GeoService - API",
            swagger_js_url=f"{base}{SWAGGER_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}{SWAGGER_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{base}{SWAGGER_STATIC}/favicon-32x32.png",
        )

    return router
