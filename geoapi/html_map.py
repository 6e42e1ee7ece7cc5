"""The small map of the items and feature pages: the features over our own layers (MapLibre).

The background is the service's default style (its vector tiles, labels and glyphs), so the map
works offline; the page's features are drawn on top from GeoJSON embedded in the page, each
opening a popup that links to its page, named in the reader's language. The features reach the
script as JSON text, read with JSON.parse and shown with textContent: markup in a value stays
text.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.routing import NoMatchFound

from geoapi.deps import base_url
from geoapi.html import esc, feature_href, json_in_script
from geoapi.i18n import text
from urbis_core.catalog import LayerEntry
from urbis_core.names import namer

BRUSSELS = (4.352, 50.846)  # where a map without features opens (lon, lat)

# `data-features` on #map says how many features the map holds, once it has drawn them.
_SCRIPT = """
import { Map, Popup, NavigationControl } from %(module)s;
const config = JSON.parse(document.getElementById("map-config").textContent);
const data = JSON.parse(document.getElementById("map-features").textContent);
const container = document.getElementById("map");
const map = new Map({container: "map", style: config.style, center: config.centre, zoom: 11,
                     attributionControl: {compact: false}});
map.addControl(new NavigationControl({showCompass: false}));
window.urbisItemsMap = map;
function extent(geometry, box) {
  const walk = (c) => {
    if (typeof c[0] === "number") {
      box[0] = Math.min(box[0], c[0]); box[1] = Math.min(box[1], c[1]);
      box[2] = Math.max(box[2], c[0]); box[3] = Math.max(box[3], c[1]);
    } else c.forEach(walk);
  };
  if (geometry) walk(geometry.coordinates);
  return box;
}
map.on("load", () => {
  map.addSource("page-features", {type: "geojson", data});
  const kind = (types) => ["in", ["geometry-type"], ["literal", types]];
  map.addLayer({id: "page-fill", type: "fill", source: "page-features",
                filter: kind(["Polygon", "MultiPolygon"]),
                paint: {"fill-color": "#c2410c", "fill-opacity": 0.2}});
  map.addLayer({id: "page-line", type: "line", source: "page-features",
                filter: kind(["Polygon", "MultiPolygon", "LineString", "MultiLineString"]),
                paint: {"line-color": "#c2410c", "line-width": 2}});
  map.addLayer({id: "page-point", type: "circle", source: "page-features",
                filter: kind(["Point", "MultiPoint"]),
                // the point a query was asked at is drawn dark, the features found orange
                paint: {"circle-color": ["case", ["==", ["get", "kind"], "here"], "#111827",
                                         "#c2410c"], "circle-radius": 7,
                        "circle-stroke-color": "#fff", "circle-stroke-width": 2}});
  const box = data.features.reduce((b, f) => extent(f.geometry, b),
                                   [Infinity, Infinity, -Infinity, -Infinity]);
  if (config.view) {
    map.fitBounds(config.view, {animate: false});
  } else if (box[0] <= box[2]) {
    map.fitBounds(box, {padding: 20, maxZoom: 18, animate: false});
  }
  // on a lookup's map a click asks about that point; elsewhere it names the feature
  for (const id of config.lookup ? [] : ["page-fill", "page-line", "page-point"]) {
    map.on("click", id, (event) => {
      const properties = event.features[0].properties;
      const link = document.createElement(properties.href ? "a" : "span");
      if (properties.href) link.href = properties.href;
      link.textContent = properties.name;
      new Popup().setLngLat(event.lngLat).setDOMContent(link).addTo(map);
    });
    map.on("mouseenter", id, () => { map.getCanvas().style.cursor = "pointer"; });
    map.on("mouseleave", id, () => { map.getCanvas().style.cursor = ""; });
  }
  if (config.lookup) {
    map.on("click", (event) => {
      const {lng, lat} = event.lngLat;
      window.location.href = `${config.lookup}&x=${lng.toFixed(6)}&y=${lat.toFixed(6)}`;
    });
  }
  map.once("idle", () => { container.dataset.features = String(data.features.length); });
});
"""


def maplibre_module(request: Request) -> str | None:
    """Where MapLibre's module is served (under the public URL), or None when not installed."""
    try:
        path = request.app.url_path_for("maplibre", path="/maplibre-gl.mjs")
    except NoMatchFound:
        return None
    return f"{base_url(request)}{path}"


def map_embed(
    request: Request,
    label: str,
    script: str,
    config: dict[str, Any],
    data: dict[str, Any] | None = None,
) -> str:
    """A page's map: MapLibre's stylesheet, the #map region, its settings and its script.

    `script` (an ES module, `%(module)s` standing for MapLibre's) reads `config` from the JSON
    element #map-config, and each of `data` from the element with that id. Empty when MapLibre
    is not installed: the page stays whole without its map.
    """
    module = maplibre_module(request)
    if module is None:
        return ""
    css = module.removesuffix(".mjs") + ".css"
    elements = "".join(
        f'<script type="application/json" id="{esc(name)}">{json_in_script(value)}</script>'
        for name, value in {"map-config": config, **(data or {})}.items()
    )
    return (
        f'<link rel="stylesheet" href="{esc(css)}">'
        f'<div id="map" class="map" role="region" aria-label="{esc(label)}"></div>'
        + elements
        + f'<script type="module">{script % {"module": json_in_script(module)}}</script>'
    )


def named_features(
    request: Request, layer: LayerEntry, features: list[dict[str, Any]], lang: str
) -> list[dict[str, Any]]:
    """The features as the map draws them: their geometry, their name and their page."""
    base = base_url(request)
    name_of = namer(layer, lang)
    return [
        {
            "type": "Feature",
            "geometry": f["geometry"],
            "properties": {
                "name": name_of(f["properties"]),
                # a place the geocoder names (a street, a municipality) has no page
                "href": None if f.get("id") is None else feature_href(base, layer, f["id"], lang),
            },
        }
        for f in features
    ]


def feature_map(
    request: Request,
    features: list[dict[str, Any]],
    layer: LayerEntry,
    lang: str,
    view: tuple[float, float, float, float] | None = None,
) -> str:
    """The map of `features` (GeoJSON in CRS84); `view` (a CRS84 box) opens it there."""
    return map_of(request, named_features(request, layer, features, lang), lang, view)


def query_point(x: float, y: float) -> dict[str, Any]:
    """The point a query was asked at, drawn apart from the features it found."""
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [x, y]},
        "properties": {"name": f"{x}, {y}", "href": None, "kind": "here"},
    }


def map_of(
    request: Request,
    drawn: list[dict[str, Any]],
    lang: str,
    view: tuple[float, float, float, float] | None = None,
    lookup: bool = False,
) -> str:
    """The map of features already named (`named_features`).

    With `lookup`, a click asks /lookup what is at that point (rather than naming a feature).
    """
    base = base_url(request)
    config = {
        "style": f"{base}/styles/default/style.json",
        "centre": list(BRUSSELS),
        "view": list(view) if view else None,
        "lookup": f"{base}/lookup?f=html&lang={lang}" if lookup else None,
    }
    collection = {"type": "FeatureCollection", "features": drawn}
    return map_embed(
        request, text(lang, "items.map"), _SCRIPT, config, {"map-features": collection}
    )
