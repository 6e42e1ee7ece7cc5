"""Swagger UI for /docs, served from the npm package installed at set-up (no CDN)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import Response

from geoapi.errors import problem

SWAGGER_STATIC = "/static/swagger-ui"


def docs_router(assets_available: bool) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/docs", response_model=None)
    async def docs() -> Response:
        if not assets_available:
            return problem(503, "the API documentation page needs the front-end packages: "
                                "run `make install` (npm ci); /openapi.json works without them")
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="URBIS GeoService - API",
            swagger_js_url=f"{SWAGGER_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_STATIC}/favicon-32x32.png",
        )

    return router
