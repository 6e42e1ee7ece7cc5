"""HTML views of the tiles' JSON documents: tilesets, a tileset, tile matrix sets.

Each reads the document the JSON answer gives, so the page and the JSON say the same.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from geoapi import html
from geoapi.i18n import PageLanguage, number, text


def tilesets_page(
    request: Request, lang: PageLanguage, what: str, doc: dict[str, Any], json_href: str
) -> HTMLResponse:
    code = lang.code
    rows = []
    for tileset in doc["tilesets"]:
        self_href = next(lk["href"] for lk in tileset["links"] if lk["rel"] == "self")
        tms_href = tileset["tileMatrixSetURI"]
        rows.append(
            [
                html.anchor(html.page_href(self_href, code), tileset["title"]),
                html.esc(tileset["crs"]),
                html.anchor(tms_href, tms_href),
            ]
        )
    headers = [text(code, "col.title"), text(code, "tileset.crs"), text(code, "tileset.tms")]
    title = text(code, "tilesets.title", what=what)
    return html.page(request, lang, title, html.table(headers, rows), json_href)


def tileset_page(
    request: Request, lang: PageLanguage, what: str, doc: dict[str, Any], json_href: str
) -> HTMLResponse:
    code = lang.code
    links = {lk["rel"]: lk["href"] for lk in doc["links"]}
    tms_id = doc["tileMatrixSetURI"].rstrip("/").rsplit("/", 1)[-1]
    zooms = [int(limit["tileMatrix"]) for limit in doc["tileMatrixSetLimits"]]
    facts = [
        (text(code, "tileset.tms"), doc["tileMatrixSetURI"]),
        (text(code, "tileset.crs"), doc["crs"]),
        (text(code, "tileset.zooms"), f"{min(zooms)}-{max(zooms)}" if zooms else ""),
        (text(code, "tileset.template"), links["item"]),
    ]
    layers = [
        [
            html.esc(layer["id"]),
            html.esc(layer["title"]),
            html.esc(f"{layer['minTileMatrix']}-{layer['maxTileMatrix']}"),
            html.esc(", ".join(layer["propertiesSchema"]["properties"])),
        ]
        for layer in doc["layers"]
    ]
    limits = [
        [
            html.esc(limit["tileMatrix"]),
            html.esc(f"{limit['minTileRow']}-{limit['maxTileRow']}"),
            html.esc(f"{limit['minTileCol']}-{limit['maxTileCol']}"),
        ]
        for limit in doc["tileMatrixSetLimits"]
    ]
    layer_headers = ["col.id", "col.title", "tileset.zooms", "col.fields"]
    limit_headers = ["tileset.matrix", "tileset.rows", "tileset.cols"]
    body = (
        html.facts(facts)
        + html.link_list([(links["describedby"], text(code, "tileset.tilejson"))])
        + f"<h2>{html.esc(text(code, 'tileset.layers'))}</h2>"
        + html.table([text(code, h) for h in layer_headers], layers)
        + f"<h2>{html.esc(text(code, 'tileset.limits'))}</h2>"
        + html.table([text(code, h) for h in limit_headers], limits)
    )
    title = text(code, "tileset.title", what=what, tms=tms_id)
    return html.page(request, lang, title, body, json_href)


def tile_matrix_sets_page(
    request: Request, lang: PageLanguage, doc: dict[str, Any], json_href: str
) -> HTMLResponse:
    code = lang.code
    rows = [
        [
            html.anchor(html.page_href(tms["links"][0]["href"], code), tms["id"]),
            html.esc(tms["title"]),
            html.esc(tms["crs"]),
        ]
        for tms in doc["tileMatrixSets"]
    ]
    headers = [text(code, k) for k in ("col.id", "col.title", "tileset.crs")]
    return html.page(request, lang, text(code, "tms.list"), html.table(headers, rows), json_href)


def tile_matrix_set_page(
    request: Request, lang: PageLanguage, doc: dict[str, Any], json_href: str
) -> HTMLResponse:
    code = lang.code
    facts = [
        (text(code, "col.id"), doc["id"]),
        (text(code, "col.title"), doc["title"]),
        (text(code, "tileset.crs"), doc["crs"]),
    ]
    rows = [
        [
            html.esc(m["id"]),
            html.esc(number(round(m["scaleDenominator"], 2), code)),
            html.esc(number(round(m["cellSize"], 4), code)),
            html.esc(f"{number(m['matrixWidth'], code)} × {number(m['matrixHeight'], code)}"),
        ]
        for m in doc["tileMatrices"]
    ]
    headers = [text(code, k) for k in ("tileset.matrix", "tms.scale", "tms.cell", "tms.size")]
    return html.page(
        request, lang, doc["title"], html.facts(facts) + html.table(headers, rows), json_href
    )
