"""Map styles for web apps (MapLibre), the fonts their labels use, and a map page."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from geoapi.deps import ConnDep, FormatDep, LangDep, base_url
from geoapi.html import ATTRIBUTION, esc, link_list, page
from geoapi.i18n import text
from geoapi.links import link
from geoapi.media_types import STYLE
from geoapi.responses.documented import ALSO_HTML, answers, errors
from geoapi.responses.tiles import MapStyle, Styles
from tiles.glyphs import glyph_range
from tiles.style import default_style
from urbis_core.catalog import list_layers
from urbis_core.errors import InvalidParameter

router = APIRouter(tags=["Styles"])
MAPLIBRE_STATIC = "/static/maplibre"  # node_modules/maplibre-gl/dist, installed by `npm ci`
_RANGE = re.compile(r"^(\d+)-(\d+)\.pbf$")


@router.get(
    "/styles",
    summary="The map styles offered",
    responses=answers(Styles, also=ALSO_HTML, errors_=()),
)
async def styles(request: Request, fmt: FormatDep, lang: LangDep) -> Any:
    base = base_url(request)
    doc = {
        "styles": [
            {
                "id": "default",
                "title": "URBIS layers, FR/NL labels",
                "links": [link("stylesheet", f"{base}/styles/default/style.json", STYLE)],
            }
        ]
    }
    if fmt == "html":
        code = lang.code
        links = [
            (f"{base}/styles/default/style.json", text(code, "styles.stylesheet")),
            (f"{base}/map", text(code, "landing.map")),
        ]
        body = f"<h2>{esc(text(code, 'styles.default'))}</h2>" + link_list(links)
        return page(request, lang, text(code, "styles.title"), body, f"{base}/styles?f=json")
    return doc


@router.get(
    "/styles/default/style.json",
    summary="The default MapLibre style (all layers)",
    responses=answers(MapStyle, errors_=(503,)),
)
async def default_style_json(request: Request, conn: ConnDep) -> dict[str, Any]:
    return default_style(base_url(request), await list_layers(conn), ATTRIBUTION)


@router.get(
    "/fonts/{fontstack}/{glyphs}",
    summary="Label glyphs (SDF, 256 codepoints)",
    response_class=Response,
    responses={200: {"content": {"application/x-protobuf": {}}}, **errors(400, 404)},
)
async def font_glyphs(
    fontstack: Annotated[str, Path(description="Font names, comma-separated")],
    glyphs: Annotated[str, Path(description="The range, e.g. 0-255.pbf")],
) -> Response:
    match = _RANGE.match(glyphs)
    if not match or int(match.group(2)) != int(match.group(1)) + 255:
        raise InvalidParameter("range", f"'{glyphs}' is not a range such as 0-255.pbf")
    data = await run_in_threadpool(glyph_range, fontstack, int(match.group(1)))
    return Response(
        data,
        media_type="application/x-protobuf",
        headers={"Cache-Control": "public, max-age=86400"},
    )


_MAP_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Map - URBIS GeoService</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{static}/maplibre-gl.css">
<style>html, body, #map {{ margin: 0; height: 100%; }}</style></head>
<body><div id="map" role="region" aria-label="Map of the URBIS layers"></div>
<script type="module">
import {{ Map, NavigationControl }} from "{static}/maplibre-gl.mjs";
const map = new Map({{container: "map", style: {style}, hash: true}});
map.addControl(new NavigationControl());
window.urbisMap = map;
</script></body></html>"""


@router.get(
    "/map", summary="A map of all layers in the default style (HTML)", response_class=HTMLResponse
)
async def map_page(request: Request) -> HTMLResponse:
    base = base_url(request)
    style = json.dumps(f"{base}/styles/default/style.json")
    return HTMLResponse(_MAP_PAGE.format(static=esc(f"{base}{MAPLIBRE_STATIC}"), style=style))
