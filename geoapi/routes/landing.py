"""Landing page, conformance and health."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from geoapi import html
from geoapi.budgets import Budgets
from geoapi.db_health import DatabaseHealth
from geoapi.deps import FormatDep, LangDep, base_url
from geoapi.errors import problem
from geoapi.i18n import text
from geoapi.links import OGC_REL, link
from geoapi.media_types import HTML, OPENAPI
from geoapi.responses.documented import ALSO_HTML, answers, errors
from geoapi.responses.features import Conformance, Health, LandingPage, Ready
from urbis_core.catalog import count_layers
from urbis_core.db import first_line
from urbis_core.migrate import HEAD, revisions

router = APIRouter(tags=["Capabilities"])
EXAMPLE_ADDRESS = "Rue de la Victoire 2, 1060 Saint-Gilles"

# Each class is declared because the service does what it requires, and
# tests/api/test_standards.py checks each one against the running API.
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/schemas",
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/core-roles-features",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/dataset-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
]


@router.get(
    "/",
    summary="Landing page",
    responses=answers(LandingPage, also=ALSO_HTML),
)
async def landing(request: Request, fmt: FormatDep, lang: LangDep) -> Any:
    base = base_url(request)
    links = [
        link("self", f"{base}/?f=json", title="This document"),
        link("alternate", f"{base}/?f=html", HTML, "This document as HTML"),
        link("service-desc", f"{base}/openapi.json", OPENAPI, "The API definition (OpenAPI 3)"),
        link("service-doc", f"{base}/docs", HTML, "The API documentation"),
        link("conformance", f"{base}/conformance", title="OGC API conformance classes implemented"),
        link("data", f"{base}/collections", title="The collections (URBIS layers)"),
        # not a second `data`: OGC API Features clients take that one for the collections
        link(
            f"{OGC_REL}coverage",
            f"{base}/coverages",
            title="The coverages (raster layers: orthophotos, terrain)",
        ),
        link(
            f"{OGC_REL}tilesets-vector",
            f"{base}/tiles",
            title="Vector tiles of all layers together",
        ),
        link(f"{OGC_REL}tiling-schemes", f"{base}/tileMatrixSets", title="The tile matrix sets"),
        link(f"{OGC_REL}styles", f"{base}/styles", title="Map styles (MapLibre)"),
        link("alternate", f"{base}/map", HTML, "A map of all layers"),
    ]
    title = "URBIS GeoService"
    doc = {
        "title": title,
        "description": text("en", "landing.description"),
        "attribution": html.ATTRIBUTION,
        "links": links,
    }
    if fmt == "html":
        code = lang.code
        pages = [
            (f"{base}/collections?f=html&lang={code}", "landing.collections"),
            (f"{base}/coverages?f=html&lang={code}", "landing.coverages"),
            (f"{base}/map", "landing.map"),
            # examples in Saint-Gilles: their pages have a form to ask another
            (
                f"{base}/geocode?{urlencode({'q': EXAMPLE_ADDRESS})}&f=html&lang={code}",
                "landing.geocode",
            ),
            (f"{base}/lookup?x=4.3445&y=50.8316&f=html&lang={code}", "landing.lookup"),
            (f"{base}/tiles?f=html&lang={code}", "landing.tiles"),
            (f"{base}/tileMatrixSets?f=html&lang={code}", "landing.tms"),
            (f"{base}/styles?f=html&lang={code}", "landing.styles"),
            (f"{base}/conformance?f=html&lang={code}", "landing.conformance"),
            (f"{base}/openapi.json", "landing.openapi"),
            (f"{base}/docs", "landing.docs"),
        ]
        return html.page(
            request,
            lang,
            title,
            f"<p>{html.esc(text(code, 'landing.description'))}</p>"
            + html.link_list([(href, text(code, key)) for href, key in pages]),
            f"{base}/?f=json",
        )
    return doc


@router.get(
    "/conformance",
    summary="Conformance classes",
    responses=answers(Conformance, also=ALSO_HTML),
)
async def conformance(request: Request, fmt: FormatDep, lang: LangDep) -> Any:
    doc = {"conformsTo": CONFORMANCE}
    if fmt == "html":
        items = "".join(f'<li><a href="{html.esc(c)}">{html.esc(c)}</a></li>' for c in CONFORMANCE)
        base = base_url(request)
        return html.page(
            request,
            lang,
            text(lang.code, "conformance.title"),
            f"<ul>{items}</ul>",
            f"{base}/conformance?f=json",
        )
    return doc


@router.get(
    "/healthz",
    summary="Liveness: the process answers",
    description="200 while the process lives, whatever the database's state (for a "
    "supervisor deciding whether to restart it); `database` says whether "
    "the last requests reached it; `read_replicas`, which streaming replicas reads go to "
    "(DATABASE_URL_READ). Readiness to answer queries: /readyz.",
    responses=answers(Health, errors_=()),
)
async def healthz(request: Request) -> JSONResponse:
    health: DatabaseHealth = request.app.state.db_health
    cache = request.app.state.tile_cache
    keeper = request.app.state.low_zoom_keeper
    return JSONResponse(
        {
            "status": "ok",
            "database": "reachable" if health.reachable else "unreachable",
            "database_error": health.last_error if not health.reachable else None,
            "tile_cache": dataclasses.asdict(cache.stats),
            "low_zoom_tiles": {"drawn_ahead": keeper.drawn, "drawing": not keeper.idle.is_set()},
            "read_replicas": request.app.state.reads.report(),
        }
    )


@router.get(
    "/readyz",
    summary="Readiness: the database answers, its catalog is read, its schema is current",
    description="200 with the number of layers and the schema's migration when the database "
    "answers a query now, its layer catalog can be read and its schema is at the migration "
    "this version of the service needs; 503 with Retry-After and the reason when not (for a "
    "load balancer deciding where to send requests).",
    responses={**answers(Ready, errors_=()), **errors(503)},
)
async def readyz(request: Request) -> JSONResponse:
    budgets: Budgets = request.app.state.budgets
    try:
        async with budgets.snapshot(request.app.state.engine, "catalog") as conn:
            current = await revisions(conn)
            if current != {HEAD}:
                at = ", ".join(sorted(current)) or "none (never migrated)"
                return problem(
                    503,
                    f"the database's schema is at migration {at}; this service needs {HEAD}: "
                    "run `urbis migrate`",
                )
            layers = await count_layers(conn)
    except (DBAPIError, OSError) as exc:
        return problem(503, f"the database does not answer: {first_line(exc)}")
    return JSONResponse({"status": "ready", "database": "ok", "layers": layers, "migration": HEAD})
