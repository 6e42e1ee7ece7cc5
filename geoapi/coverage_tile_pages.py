"""HTML views of a coverage's tilesets, with a small map of its raster tiles (MapLibre).

Each reads the document the JSON answer gives, so the page and the JSON say the same. The map
draws the Web Mercator tiles from the coverage's TileJSON over the service's default style;
`data-state` on #map says "idle" once every tile in view has arrived, or "error: ...".
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from geoapi import html
from geoapi.deps import base_url
from geoapi.html_map import BRUSSELS, map_embed
from geoapi.i18n import PageLanguage, text
from urbis_core.coverages import CoverageEntry

_SCRIPT = """
import { Map, NavigationControl } from %(module)s;
const config = JSON.parse(document.getElementById("map-config").textContent);
const container = document.getElementById("map");
const map = new Map({container: "map", style: config.style, center: config.centre, zoom: 12,
                     attributionControl: {compact: false}});
map.addControl(new NavigationControl({showCompass: false}));
window.urbisCoverageMap = map;
map.on("error", (event) => {
  container.dataset.state = "error: " + (event.error && event.error.message);
});
map.on("load", () => {
  map.addSource("coverage", {type: "raster", url: config.tilejson, tileSize: 256});
  map.addLayer({id: "coverage", type: "raster", source: "coverage"});
  map.fitBounds(config.bounds, {padding: 10, animate: false});
  map.once("idle", () => {
    if (!container.dataset.state) container.dataset.state = "idle";
  });
});
"""


def _map(request: Request, entry: CoverageEntry, lang: str, query: str) -> str:
    base = base_url(request)
    config = {
        "style": f"{base}/styles/default/style.json",
        "centre": list(BRUSSELS),
        "tilejson": f"{base}/coverages/{entry.id}/tiles/WebMercatorQuad/tilejson.json{query}",
        "bounds": list(entry.bbox_crs84),
    }
    label = text(lang, "covtiles.map")
    embedded = map_embed(request, label, _SCRIPT, config)
    return f"<h2>{html.esc(label)}</h2>{embedded}" if embedded else ""


def _json_href(request: Request) -> str:
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("f", "lang")]
    query = "&".join(f"{k}={v}" for k, v in [*kept, ("f", "json")])
    return f"{base_url(request)}{request.url.path}?{query}"


def _links(links: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The links by what they are: self, tiling-scheme, describedby, and each item's type."""
    named: dict[str, dict[str, Any]] = {}
    for lk in links:
        named[lk["type"] if lk["rel"] == "item" else lk["rel"].rsplit("/", 1)[-1]] = lk
    return named


def _title(entry: CoverageEntry, lang: str) -> str:
    return entry.title.get(lang) or entry.title.get("en") or entry.id


def coverage_tilesets_page(
    request: Request, lang: PageLanguage, entry: CoverageEntry, doc: dict[str, Any], query: str
) -> HTMLResponse:
    code = lang.code
    rows = []
    for tileset in doc["tilesets"]:
        links = _links(tileset["links"])
        rows.append(
            [
                html.anchor(html.page_href(links["self"]["href"], code), tileset["title"]),
                html.esc(tileset["crs"]),
                html.anchor(links["describedby"]["href"], "TileJSON"),
                html.esc(links["image/png"]["href"]),
            ]
        )
    headers = [
        text(code, "col.title"),
        text(code, "tileset.crs"),
        text(code, "tileset.tilejson"),
        text(code, "tileset.template"),
    ]
    title = text(code, "tilesets.title", what=_title(entry, code))
    body = html.table(headers, rows) + _map(request, entry, code, query)
    return html.page(request, lang, title, body, _json_href(request))


def coverage_tileset_page(
    request: Request, lang: PageLanguage, entry: CoverageEntry, doc: dict[str, Any], query: str
) -> HTMLResponse:
    code = lang.code
    links = _links(doc["links"])
    tms_id = request.path_params["tms_id"]
    layer = doc["layers"][0]
    facts = [
        (text(code, "tileset.tms"), doc["tileMatrixSetURI"]),
        (text(code, "tileset.crs"), doc["crs"]),
        (text(code, "tileset.zooms"), f"{layer['minTileMatrix']}-{layer['maxTileMatrix']}"),
        (text(code, "tileset.template"), links["image/png"]["href"]),
        (text(code, "covtiles.formats"), "png, webp, tif"),
        (text(code, "covtiles.style"), query.removeprefix("?") or "-"),
    ]
    limits = [
        [
            html.esc(limit["tileMatrix"]),
            html.esc(f"{limit['minTileRow']}-{limit['maxTileRow']}"),
            html.esc(f"{limit['minTileCol']}-{limit['maxTileCol']}"),
        ]
        for limit in doc["tileMatrixSetLimits"]
    ]
    limit_headers = ["tileset.matrix", "tileset.rows", "tileset.cols"]
    body = (
        html.facts(facts)
        + html.link_list([(links["describedby"]["href"], text(code, "tileset.tilejson"))])
        + f"<h2>{html.esc(text(code, 'tileset.limits'))}</h2>"
        + html.table([text(code, h) for h in limit_headers], limits)
        + (_map(request, entry, code, query) if tms_id == "WebMercatorQuad" else "")
    )
    title = text(code, "tileset.title", what=_title(entry, code), tms=tms_id)
    return html.page(request, lang, title, body, _json_href(request))
