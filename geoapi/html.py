"""Plain HTML views of the JSON resources, for people opening the API in a browser."""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi.responses import HTMLResponse

ATTRIBUTION = "Brussels UrbIS®© - Distribution & Copyright CIRB / Paradigm"
LEAFLET_STATIC = "/static/leaflet"  # node_modules/leaflet/dist, installed by `npm ci`
BRUSSELS = (50.846, 4.352)  # where an empty map opens (lat, lon)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - URBIS GeoService</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; padding: 0 1rem;
       color: #1b1b1b; }}
table {{ border-collapse: collapse; width: 100%; font-size: .9rem; }}
th, td {{ border: 1px solid #ccc; padding: .3rem .5rem; text-align: left; vertical-align: top; }}
th {{ background: #f0f0f0; }}
nav a {{ margin-right: 1rem; }}
.scroll {{ overflow-x: auto; }}
footer {{ margin-top: 2rem; color: #555; font-size: .85rem; }}
.map {{ height: 24rem; margin: 1rem 0; background: #eef1f4; border: 1px solid #ccc; }}
</style></head>
<body><nav><a href="{base}/?f=html">Home</a><a href="{base}/collections?f=html">Collections</a>
<a href="{base}/map">Map</a><a href="{base}/docs">API documentation</a></nav>
<h1>{title}</h1>
{body}
<footer>Data: {attribution}. <a href="{json_href}">This page as JSON</a>.</footer>
</body></html>"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def page(title: str, body: str, json_href: str, base: str) -> HTMLResponse:
    """A page of the service; `base` is its public URL (links work behind a proxy's prefix)."""
    return HTMLResponse(
        _PAGE.format(
            title=esc(title),
            body=body,
            attribution=esc(ATTRIBUTION),
            json_href=esc(json_href),
            base=esc(base),
        )
    )


def link_list(links: list[dict[str, Any]]) -> str:
    items = "".join(
        f'<li><a href="{esc(link["href"])}">{esc(link.get("title") or link["rel"])}</a></li>'
        for link in links
    )
    return f"<ul>{items}</ul>"


def table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def features_table(features: list[dict[str, Any]], collection_href: str) -> str:
    if not features:
        return "<p>No features.</p>"
    names = list(features[0]["properties"])
    rows = []
    for feature in features:
        href = f"{collection_href}/items/{feature['id']}?f=html"
        cells = [f'<a href="{esc(href)}">{esc(feature["id"])}</a>']
        cells += [esc(feature["properties"].get(n)) for n in names]
        rows.append(cells)
    return table(["id", *names], rows)


def feature_body(feature: dict[str, Any]) -> str:
    rows = [[esc(k), esc(v)] for k, v in feature["properties"].items()]
    rows.append(["geometry type", esc(feature["geometry"]["type"])])
    geometry = json.dumps(feature["geometry"])
    preview = geometry if len(geometry) < 2000 else geometry[:2000] + " ..."
    return (
        table(["property", "value"], rows) + f"<h2>Geometry (CRS84)</h2><pre>{esc(preview)}</pre>"
    )


# Drawn by Leaflet from the features embedded in the page (CRS84). Values reach the page as
# text nodes only (textContent), never as markup, whatever a feature's properties hold.
_MAP_SCRIPT = """
(function () {
  const data = JSON.parse(document.getElementById("map-features").textContent);
  const map = L.map("map");
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution(%(attribution)s);
  const layer = L.geoJSON(data, {
    style: {color: "#1d4ed8", weight: 2, fillOpacity: 0.2},
    pointToLayer: (feature, latlng) => L.circleMarker(latlng, {radius: 5}),
    onEachFeature: (feature, shape) => {
      const link = document.createElement("a");
      link.href = %(items)s + "/" + encodeURIComponent(feature.id) + "?f=html";
      link.textContent = String(feature.id);
      shape.bindPopup(link);
    },
  }).addTo(map);
  if (layer.getLayers().length) {
    map.fitBounds(layer.getBounds(), {maxZoom: 18, padding: [10, 10]});
  } else {
    map.setView(%(centre)s, 12);
  }
  document.getElementById("map").dataset.features = String(layer.getLayers().length);
})();
"""


def feature_map(features: list[dict[str, Any]], items_href: str, base: str) -> str:
    """A small map of the features (GeoJSON in CRS84) with a popup link to each.

    Offline, so there is no background map: the features are drawn on a plain ground.
    """
    collection = json.dumps({"type": "FeatureCollection", "features": features})
    script = _MAP_SCRIPT % {
        "attribution": json.dumps(esc(ATTRIBUTION)),
        "items": json.dumps(items_href),
        "centre": json.dumps(BRUSSELS),
    }
    static = esc(f"{base}{LEAFLET_STATIC}")
    return (
        f'<link rel="stylesheet" href="{static}/leaflet.css">'
        '<div id="map" class="map" role="img" aria-label="Map of the features"></div>'
        f'<script src="{static}/leaflet.js"></script>'
        f'<script type="application/json" id="map-features">{_json_in_script(collection)}'
        f"</script><script>{script}</script>"
    )


def _json_in_script(text: str) -> str:
    """JSON inside a <script> element: a '<' (only ever inside a string) could end it early."""
    return text.replace("<", "\\u003c")
