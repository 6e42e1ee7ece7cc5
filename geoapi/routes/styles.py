"""Map styles for web apps (MapLibre) and the fonts their labels use (the map page: map_page.py)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from geoapi.deps import ConnDep, FormatDep, LangDep, base_url
from geoapi.html import esc, link_list, page
from geoapi.i18n import text
from geoapi.links import link
from geoapi.media_types import STYLE
from geoapi.responses.documented import ALSO_HTML, answers, errors
from geoapi.responses.tiles import MapStyle, Styles
from tiles.glyphs import glyph_range
from tiles.style import default_style
from urbis_core.attribution import ATTRIBUTION
from urbis_core.catalog import list_layers
from urbis_core.errors import InvalidParameter

router = APIRouter(tags=["Styles"])
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
