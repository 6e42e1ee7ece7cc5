"""Which fields name a layer's features, in French and in Dutch (for labels)."""

from __future__ import annotations

import re

from urbis_core.catalog import LayerEntry

_FRENCH = re.compile(r"^(?P<stem>.*?)(FRE|_FR|FR)$", re.IGNORECASE)
_DUTCH_ENDINGS = ("DUT", "_DU", "_NL", "NL", "DU")
LABELS_SUFFIX = "_labels"  # the MVT layer of a polygon layer's label points


def name_fields(layer: LayerEntry) -> tuple[str, str] | None:
    """The (French, Dutch) name fields of a layer, those with NAME in them first.

    NAME_FRE/NAME_DUT, NAMEFRE/NAMEDUT, STRNAMEFRE/STRNAMEDUT, PW_NAME_FR/PW_NAME_DU...
    """
    text = {c.name for c in layer.columns if c.sql_type == "text"}
    pairs = []
    for name in sorted(text):
        match = _FRENCH.match(name)
        if not match or not match.group("stem"):
            continue
        stem = match.group("stem")
        dutch = next((stem + end for end in _DUTCH_ENDINGS if stem + end in text), None)
        if dutch:
            pairs.append((name, dutch))
    pairs.sort(key=lambda pair: "NAME" not in pair[0].upper())
    return pairs[0] if pairs else None


def labelled_polygons(layer: LayerEntry) -> tuple[str, str] | None:
    """The name fields of a polygon layer, whose tiles then carry one label point each."""
    return name_fields(layer) if "Polygon" in layer.geometry_type else None
