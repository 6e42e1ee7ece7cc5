"""The default MapLibre style of the synced layers: a look per geometry type, FR/NL labels.

Labels are bilingual, as Brussels writes its names: the French name over the Dutch one,
from the layer's pair of name fields (NAME_FRE/NAME_DUT, NAMEFRE/NAMEDUT, STRNAMEFRE/STRNAMEDUT,
PW_NAME_FR/PW_NAME_DU...). Address points are labelled with their house number up close.
"""

from __future__ import annotations

from typing import Any

from tiles.glyphs import DEFAULT_FONT
from tiles.names import LABELS_SUFFIX
from tiles.tilejson import crs84_extent
from urbis_core.catalog import LayerEntry
from urbis_core.names import name_fields

BACKGROUND = "#f3f1ec"
# fill or line, outline (colour-blind safe hues, light enough for labels to stay readable)
PALETTE = [
    ("#8da0cb", "#4c5f8f"),
    ("#fc8d62", "#b85a33"),
    ("#66c2a5", "#2f7d64"),
    ("#e78ac3", "#a34d84"),
    ("#a6d854", "#6a9024"),
    ("#ffd92f", "#b8960b"),
]
HOUSE_NUMBER_FIELDS = ("POLICENUM", "ADRN")
NUMBER_MINZOOM = 17
# Polygon layers whose features each have more than this to themselves (m², see
# `_typical_area`) are areas such as municipalities: a tint, so that two of them, or what
# lies under them, still read.
AREA_LAYER_M2 = 1_000_000
AREA_FILL_OPACITY = 0.1
FILL_OPACITY = 0.35


def _label(pair: tuple[str, str]) -> list[Any]:
    french, dutch = pair
    return [
        "case",
        ["all", ["has", french], ["has", dutch], ["!=", ["get", french], ["get", dutch]]],
        ["format", ["get", french], {}, "\n", {}, ["get", dutch], {"font-scale": 0.85}],
        ["coalesce", ["get", french], ["get", dutch], ""],
    ]


def _kind(layer: LayerEntry) -> str:
    if "Polygon" in layer.geometry_type:
        return "polygon"
    return "line" if "LineString" in layer.geometry_type else "point"


def _typical_area(layer: LayerEntry) -> float | None:
    """The area of the layer's extent per feature (m²): how much room each feature has.

    Read from the catalog (no query): municipalities have square kilometres each, street
    surfaces a few thousand square metres, buildings a few hundred.
    """
    if not layer.bbox_native or layer.feature_count <= 0:
        return None
    minx, miny, maxx, maxy = layer.bbox_native[:4]
    return (maxx - minx) * (maxy - miny) / layer.feature_count


def _drawing_order(layer: LayerEntry) -> tuple[int, float]:
    """Where a layer is drawn: polygons under lines under points.

    Among polygons, those whose features have the most room come first (municipalities under
    street surfaces under buildings), whatever the layers' names.
    """
    kind = {"polygon": 0, "line": 1, "point": 2}[_kind(layer)]
    room = _typical_area(layer) if kind == 0 else None
    return kind, -(room or 0.0)


def _zooms(layer: LayerEntry) -> dict[str, Any]:
    settings = layer.tiles
    return {"minzoom": settings.minzoom, "maxzoom": settings.maxzoom + 1}


def _shapes(layer: LayerEntry, fill: str, outline: str) -> list[dict[str, Any]]:
    base = {"source": "urbis", "source-layer": layer.id, **_zooms(layer)}
    kind = _kind(layer)
    if kind == "polygon":
        room = _typical_area(layer)
        opacity = AREA_FILL_OPACITY if room and room > AREA_LAYER_M2 else FILL_OPACITY
        return [
            {
                "id": f"{layer.id}-fill",
                "type": "fill",
                **base,
                "paint": {"fill-color": fill, "fill-opacity": opacity},
            },
            {
                "id": f"{layer.id}-outline",
                "type": "line",
                **base,
                "paint": {"line-color": outline, "line-width": 1.2},
            },
        ]
    if kind == "line":
        return [
            {
                "id": f"{layer.id}-line",
                "type": "line",
                **base,
                "paint": {
                    "line-color": outline,
                    "line-width": ["interpolate", ["linear"], ["zoom"], 12, 1, 18, 4],
                },
            }
        ]
    return [
        {
            "id": f"{layer.id}-point",
            "type": "circle",
            **base,
            "paint": {
                "circle-color": fill,
                "circle-stroke-color": outline,
                "circle-stroke-width": 1,
                "circle-radius": ["interpolate", ["linear"], ["zoom"], 12, 2, 18, 6],
            },
        }
    ]


def _labels(layer: LayerEntry, outline: str) -> list[dict[str, Any]]:
    base = {"source": "urbis", "source-layer": layer.id, **_zooms(layer)}
    kind = _kind(layer)
    paint = {"text-color": "#222222", "text-halo-color": "#ffffff", "text-halo-width": 1.5}
    layout: dict[str, Any] = {"text-font": [DEFAULT_FONT], "text-size": 13, "text-max-width": 10}
    pair = name_fields(layer)
    names = {c.name for c in layer.columns}
    number = next((f for f in HOUSE_NUMBER_FIELDS if f in names), None)
    if pair is not None and not (kind == "point" and number):
        layout["text-field"] = _label(pair)
        if kind == "line":
            layout["symbol-placement"] = "line"
        elif kind == "point":
            layout["text-offset"] = [0, 1.2]
        else:  # one label point per polygon, in the one tile it falls in
            base["source-layer"] = layer.id + LABELS_SUFFIX
        return [
            {"id": f"{layer.id}-label", "type": "symbol", **base, "layout": layout, "paint": paint}
        ]
    if number is not None:
        layout.update(
            {"text-field": ["to-string", ["get", number]], "text-size": 11, "text-offset": [0, 1.0]}
        )
        zooms = base | {"minzoom": max(int(base["minzoom"]), NUMBER_MINZOOM)}
        return [
            {
                "id": f"{layer.id}-number",
                "type": "symbol",
                **zooms,
                "layout": layout,
                "paint": paint | {"text-color": outline},
            }
        ]
    return []


def default_style(base: str, layers: list[LayerEntry], attribution: str) -> dict[str, Any]:
    """The style: polygons (larger under smaller) under lines under points, labels on top."""
    ordered = sorted(layers, key=_drawing_order)
    colours = {layer.id: PALETTE[i % len(PALETTE)] for i, layer in enumerate(layers)}
    shapes = [s for layer in ordered for s in _shapes(layer, *colours[layer.id])]
    labels = [s for layer in ordered for s in _labels(layer, colours[layer.id][1])]
    extent = crs84_extent(layers)
    centre = (
        [(extent[0] + extent[2]) / 2, (extent[1] + extent[3]) / 2] if extent else [4.352, 50.846]
    )
    return {
        "version": 8,
        "name": "URBIS default",
        "metadata": {"urbis:collections": [layer.id for layer in layers]},
        "center": centre,
        "zoom": 12,
        "glyphs": f"{base}/fonts/{{fontstack}}/{{range}}.pbf",
        "sources": {
            "urbis": {
                "type": "vector",
                "url": f"{base}/tiles/WebMercatorQuad/tilejson.json",
                "attribution": attribution,
            }
        },
        "layers": [
            {"id": "background", "type": "background", "paint": {"background-color": BACKGROUND}},
            *shapes,
            *labels,
        ],
    }
