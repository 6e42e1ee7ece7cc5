"""What a TileJSON (and a tile archive's metadata) says of the layers in the tiles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tiles.mvt import MERGED, merges_small
from tiles.names import LABELS_SUFFIX, labelled_polygons
from urbis_core.attribution import ATTRIBUTION
from urbis_core.catalog import LayerEntry

Box = tuple[float, float, float, float]


def union_of(boxes: Sequence[Sequence[float]]) -> Box:
    """The box covering all of them (min x, min y, max x, max y)."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def crs84_extent(layers: Sequence[LayerEntry]) -> Box | None:
    """The layers' extent in CRS84 (from the catalog); None when none has one."""
    boxes = [layer.bbox_crs84 for layer in layers if layer.bbox_crs84]
    return union_of(boxes) if boxes else None


def field_type(sql_type: str) -> str:
    """A column's type as TileJSON names it."""
    if sql_type in ("integer", "bigint", "smallint"):
        return "Integer"
    if sql_type in ("double precision", "real", "numeric"):
        return "Number"
    return "Boolean" if sql_type == "boolean" else "String"


def vector_layers(
    layers: list[LayerEntry], minzoom: int = 0, maxzoom: int = 24
) -> list[dict[str, Any]]:
    """Each layer's MVT layers, their zooms within [minzoom, maxzoom] (an archive's).

    A layer's features, and for named polygons their label points (`<id>_labels`).
    """
    described = []
    for layer in layers:
        settings = layer.tiles
        zooms = {
            "minzoom": max(settings.minzoom, minzoom),
            "maxzoom": min(settings.maxzoom, maxzoom),
        }
        fields = {c.name: field_type(c.sql_type) for c in layer.columns}
        if merges_small(layer, settings):  # squares standing for small polygons
            fields[MERGED] = "Integer"
        described.append(
            {"id": layer.id, "description": layer.display_title("en"), **zooms, "fields": fields}
        )
        pair = labelled_polygons(layer)
        if pair is not None:
            described.append(
                {
                    "id": layer.id + LABELS_SUFFIX,
                    **zooms,
                    "description": f"{layer.display_title('en')}: one label point each",
                    "fields": {n: fields[n] for n in (layer.key_field, *pair)},
                }
            )
    return described


def tilejson_document(
    name: str,
    tile_url: str,
    zooms: tuple[int, int],
    bounds: Sequence[float],
    opening_zoom: int,
) -> dict[str, Any]:
    """TileJSON for `tile_url` (an XYZ template), centred on `bounds` (CRS84).

    The centre's zoom is `opening_zoom` kept within `zooms`, so a client that opens there
    asks for tiles that exist.
    """
    minzoom, maxzoom = zooms
    return {
        "tilejson": "3.0.0",
        "name": name,
        "scheme": "xyz",
        "tiles": [tile_url],
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "bounds": list(bounds),
        "center": [
            (bounds[0] + bounds[2]) / 2,
            (bounds[1] + bounds[3]) / 2,
            max(minzoom, min(maxzoom, opening_zoom)),
        ],
        "attribution": ATTRIBUTION,
    }
