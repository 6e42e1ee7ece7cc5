"""`/map`, the planners' map: one HTML page; its scripts and styles are static files of ours.

The page is a skeleton of labelled controls and the map's settings (where the API, the style
and the optional URBIS background are, and which collection holds the addresses); the raster
layers' controls are filled from GET /coverages by the page's script, and stay hidden when
the catalog has none. What it does
lives in geoapi/static/map/ (ES modules) on MapLibre GL and proj4, both installed from npm and
served by the app, so it works offline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from geoapi.address_layers import address_fields
from geoapi.deps import ConnDep, SettingsDep, base_url
from geoapi.html import esc
from geoapi.html_map import BRUSSELS
from urbis_core.attribution import ATTRIBUTION
from urbis_core.catalog import list_layers

router = APIRouter(tags=["Styles"])

MAPLIBRE_STATIC = "/static/maplibre"  # node_modules/maplibre-gl/dist, installed by `npm ci`
PROJ4_STATIC = "/static/proj4"  # node_modules/proj4/dist
MAP_STATIC = "/static/map"  # the page's own scripts and styles
MAP_FILES = Path(__file__).resolve().parent.parent / "static" / "map"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Map - URBIS GeoService</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{maplibre}/maplibre-gl.css">
<link rel="stylesheet" href="{own}/map.css">
<script id="map-settings" type="application/json">{settings}</script>
<script src="{proj4}/proj4.js"></script>
<script type="module" src="{own}/main.js"></script>
</head>
<body>
<aside id="sidebar" aria-labelledby="app-title">
  <header>
    <h1 id="app-title" data-t="title">URBIS map</h1>
    <label class="inline"><span data-t="language">Language</span>
      <select id="language">
        <option value="fr" lang="fr">Français</option>
        <option value="nl" lang="nl">Nederlands</option>
        <option value="en" lang="en">English</option>
      </select></label>
  </header>
  <form id="search-form" role="search" autocomplete="off">
    <label for="search" data-t="searchLabel">Search an address</label>
    <div class="combo">
      <input id="search" type="search" role="combobox" aria-autocomplete="list"
             aria-expanded="false" aria-controls="suggestions" spellcheck="false"
             data-t-placeholder="searchPlaceholder">
      <ul id="suggestions" role="listbox" hidden></ul>
    </div>
    <p id="search-status" class="status" role="status" aria-live="polite"></p>
  </form>
  <section aria-labelledby="layers-title">
    <h2 id="layers-title" data-t="layers">Layers</h2>
    <ul id="layer-list" class="layers"></ul>
    <label class="inline"><input id="bilingual" type="checkbox">
      <span data-t="bilingual">Bilingual labels (FR/NL)</span></label>
    <label id="background-choice" class="block" hidden><span data-t="background">Background</span>
      <select id="background"></select></label>
    <div id="overlays" hidden>
      <h3 id="overlays-title" data-t="overlays">Raster overlays</h3>
      <ul id="overlay-list" class="overlays" aria-labelledby="overlays-title"></ul>
    </div>
  </section>
  <section aria-labelledby="tools-title">
    <h2 id="tools-title" data-t="tools">Tools</h2>
    <fieldset>
      <legend data-t="radiusTool">Within a distance</legend>
      <label class="block"><span data-t="radiusLayer">Layer</span>
        <select id="radius-layer"></select></label>
      <label class="block"><span data-t="radiusDistance">Distance (m)</span>
        <input id="radius-distance" type="number" min="1" max="10000" step="1" value="100"></label>
      <button id="radius-pick" type="button" aria-pressed="false" data-t="radiusPick">
        Pick a point on the map</button>
      <p id="radius-status" class="status" role="status" aria-live="polite"></p>
      <div id="radius-result"></div>
    </fieldset>
    <fieldset>
      <legend data-t="measureTool">Measure</legend>
      <button id="measure-distance" type="button" aria-pressed="false"
              data-t="measureDistance">Distance</button>
      <button id="measure-area" type="button" aria-pressed="false"
              data-t="measureArea">Area</button>
      <button id="measure-clear" type="button" data-t="measureClear">Clear</button>
      <p id="measure-status" class="status" role="status" aria-live="polite"></p>
      <p class="note" data-t="measureNote">Planar, in Belgian Lambert 72 (EPSG:31370).</p>
    </fieldset>
  </section>
  <p id="share"><a id="share-link" href="#" data-t="share">Link to this view</a></p>
</aside>
<main id="map" aria-label="Map of the URBIS layers"></main>
<section id="panel" class="panel" aria-labelledby="panel-title" tabindex="-1" hidden>
  <header><h2 id="panel-title" data-t="whatIsHere">What is here</h2>
    <button id="panel-close" type="button" class="close" data-t-label="close"
            aria-label="Close">&times;</button></header>
  <div id="panel-body"></div>
</section>
</body></html>"""


def _json_in_html(value: Any) -> str:
    """JSON safe inside a <script> element (no `</script>` can end it early)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")


@router.get(
    "/map",
    summary=(
        "A planner's map: search, what is here, layers and legend, raster backgrounds and "
        "overlays, radius and measure (HTML)"
    ),
    response_class=HTMLResponse,
)
async def map_page(request: Request, conn: ConnDep, settings: SettingsDep) -> HTMLResponse:
    base = base_url(request)
    layers = await list_layers(conn)
    addresses = next((layer.id for layer in layers if address_fields(layer) is not None), None)
    page_settings = {
        "api": base,
        "style": f"{base}/styles/default/style.json",
        "addressCollection": addresses,
        "basemap": settings.basemap_wmts_url,
        "attribution": ATTRIBUTION,
        "home": {"lon": BRUSSELS[0], "lat": BRUSSELS[1], "zoom": 12},
    }
    return HTMLResponse(
        _PAGE.format(
            maplibre=esc(f"{base}{MAPLIBRE_STATIC}"),
            proj4=esc(f"{base}{PROJ4_STATIC}"),
            own=esc(f"{base}{MAP_STATIC}"),
            settings=_json_in_html(page_settings),
        )
    )
