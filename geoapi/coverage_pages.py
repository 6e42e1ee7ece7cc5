"""HTML views of the coverages' JSON documents: the list, and one coverage with its map.

Each reads the document the JSON answer gives, so the page and the JSON say the same. The
single coverage's page draws its tiles (WebMercatorQuad) over the service's default style with
MapLibre, and its legend from the style's ramp: the stops the tiles are drawn with.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from geoapi import html
from geoapi.deps import base_url
from geoapi.html_map import map_embed
from geoapi.i18n import PageLanguage, number, text
from geoapi.spatial_pages import _point_form
from tiles.tms import TILE_MATRIX_SETS

MAP_TMS = "WebMercatorQuad"  # MapLibre's grid

_SCRIPT = """
import { Map, NavigationControl } from %(module)s;
const config = JSON.parse(document.getElementById("map-config").textContent);
const map = new Map({container: "map", style: config.style, bounds: config.bounds,
                     fitBoundsOptions: {padding: 20}, attributionControl: {compact: false}});
map.addControl(new NavigationControl({showCompass: false}));
window.urbisCoverageMap = map;
map.on("load", () => {
  map.addSource("coverage", {type: "raster", tiles: [config.tiles], tileSize: 256,
                             bounds: config.bounds});
  map.addLayer({id: "coverage", type: "raster", source: "coverage",
                paint: {"raster-opacity": config.imagery ? 1 : 0.8}});
});
"""


def _title(doc: dict[str, Any], lang: str) -> str:
    return str(doc["titles"].get(lang) or doc["title"])


def _value(value: Any, lang: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return number(round(value, 3), lang)
    return number(value, lang) if isinstance(value, int) else str(value)


def _page_href(base: str, coverage_id: str, lang: str) -> str:
    return f"{base}/coverages/{coverage_id}?f=html&lang={lang}"


def coverages_page(request: Request, lang: PageLanguage, doc: dict[str, Any]) -> HTMLResponse:
    code = lang.code
    base = base_url(request)
    rows = [
        [
            html.anchor(_page_href(base, c["id"], code), _title(c, code)),
            html.esc(c["id"]),
            html.esc(number(len(c["bands"]), code)),
            html.esc(" × ".join(_value(r, code) for r in c["resolution"])),
            html.esc(c["version"]),
        ]
        for c in doc["coverages"]
    ]
    headers = ["col.title", "col.id", "coverage.bands", "coverage.resolution", "col.version"]
    body = html.table([text(code, h) for h in headers], rows, none=text(code, "coverages.none"))
    return html.page(request, lang, text(code, "coverages.title"), body, f"{base}/coverages?f=json")


def _legend(style: dict[str, Any], lang: str) -> str:
    if style["ramp"] is None:
        return f"<p>{html.esc(text(lang, 'coverage.own_colours'))}</p>"
    stops = ", ".join(f"{colour} {where * 100:g}%" for where, colour in style["ramp"])
    low, high = style["rescale"]
    unit = f" {style['units']}" if style.get("units") else ""
    shade = f" {text(lang, 'coverage.hillshade')}" if style["hillshade"] else ""
    return (
        f'<div class="legend" role="img" aria-label="{html.esc(style["colormap"])}" '
        f'style="height: 1rem; max-width: 24rem; border: 1px solid #ccc; '
        f'background: linear-gradient(to right, {html.esc(stops)})"></div>'
        '<div style="display: flex; justify-content: space-between; max-width: 24rem">'
        f'<span class="low">{html.esc(_value(low, lang) + unit)}</span>'
        f'<span class="high">{html.esc(_value(high, lang) + unit)}</span></div>'
        f"<p>{html.esc(text(lang, 'coverage.ramp', ramp=style['colormap']) + shade)}</p>"
    )


def _map(request: Request, doc: dict[str, Any], lang: str) -> str:
    base = base_url(request)
    config = {
        "style": f"{base}/styles/default/style.json",
        "bounds": doc["extent"]["crs84"],
        "tiles": f"{base}/coverages/{doc['id']}/tiles/{MAP_TMS}/{{z}}/{{x}}/{{y}}.png",
        "imagery": doc["imagery"],
    }
    return map_embed(request, text(lang, "coverage.map"), _SCRIPT, config)


def coverage_page(request: Request, lang: PageLanguage, doc: dict[str, Any]) -> HTMLResponse:
    code = lang.code
    base = base_url(request)
    href = f"{base}/coverages/{doc['id']}"
    west, south, east, north = doc["extent"]["crs84"]
    kind = "coverage.imagery" if doc["imagery"] else "coverage.data"
    facts = [
        (text(code, "col.id"), doc["id"]),
        (text(code, "coverage.kind"), text(code, kind)),
        (text(code, "col.version"), doc["version"]),
        (text(code, "coverage.synced"), doc["lastSuccess"]),
        (
            text(code, "coverage.size"),
            f"{number(doc['width'], code)} × {number(doc['height'], code)}",
        ),
        (
            text(code, "coverage.resolution"),
            " × ".join(_value(r, code) for r in doc["resolution"]),
        ),
        (text(code, "col.extent"), ", ".join(f"{v:.5f}" for v in doc["extent"]["crs84"])),
        (
            text(code, "coverage.extent_native"),
            ", ".join(f"{v:.1f}" for v in doc["extent"]["native"]["bbox"]),
        ),
    ]
    band_rows = [
        [html.esc(n)]
        + [html.esc(band["name"]), html.esc(band["dtype"])]
        + [html.esc(_value(band[k], code)) for k in ("nodata", "min", "max", "mean", "std")]
        for n, band in enumerate(doc["bands"], start=1)
    ]
    band_headers = ["coverage.band", "col.name", "coverage.dtype", "coverage.nodata"] + [
        f"coverage.{k}" for k in ("min", "max", "mean", "std")
    ]
    centre = f"x={(west + east) / 2:.6f}&y={(south + north) / 2:.6f}"
    links = [
        *(
            (f"{href}/tiles/{tms}/tilejson.json", text(code, "coverage.tiles", tms=tms))
            for tms in TILE_MATRIX_SETS
        ),
        (f"{href}/point?{centre}&f=html&lang={code}", text(code, "coverage.point")),
        (f"{href}?f=json", text(code, "footer.json")),
    ]
    description = f"<p>{html.esc(doc['description'])}</p>" if doc["description"] else ""
    body = (
        description
        + _map(request, doc, code)
        + html.facts(facts)
        + f"<h2>{html.esc(text(code, 'coverage.bands'))}</h2>"
        + html.table([text(code, h) for h in band_headers], band_rows)
        + f"<h2>{html.esc(text(code, 'coverage.legend'))}</h2>"
        + _legend(doc["style"], code)
        + f"<h2>{html.esc(text(code, 'col.links'))}</h2>"
        + html.link_list(links)
    )
    return html.page(request, lang, _title(doc, code), body, f"{href}?f=json")


def point_page(
    request: Request, lang: PageLanguage, doc: dict[str, Any], coverage_title: str
) -> HTMLResponse:
    """The values at a point, with a form to ask another (the request's `crs` kept)."""
    code = lang.code
    base = base_url(request)
    href = f"{base}/coverages/{doc['coverage']}"
    where = doc["point"]
    intro = text(code, "lookup.point", x=where["x"], y=where["y"], crs=where["crs"])
    if all(v["outside"] for v in doc["values"]):
        found = f"<p>{html.esc(text(code, 'point.outside'))}</p>"
    else:
        rows = [
            [
                html.esc(v["band"]),
                html.esc(v["name"]),
                html.esc(text(code, "point.nodata") if v["nodata"] else _value(v["value"], code)),
            ]
            for v in doc["values"]
        ]
        headers = [text(code, k) for k in ("coverage.band", "col.name", "point.value")]
        found = html.table(headers, rows)
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in ("f", "lang")]
    json_href = f"{href}/point?{urlencode([*query, ('f', 'json')])}"
    body = (
        f"<p>{html.esc(intro)}</p>"
        + found
        + _point_form(request, code, f"{href}/point", [])
        + html.link_list([(f"{href}?f=html&lang={code}", coverage_title)])
    )
    title = text(code, "point.title", coverage=coverage_title)
    return html.page(request, lang, title, body, json_href)
