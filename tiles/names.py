"""The label points of polygon layers (MVT layer `<id>_labels`) and the fields they carry."""

from __future__ import annotations

from urbis_core.catalog import LayerEntry
from urbis_core.names import name_fields

LABELS_SUFFIX = "_labels"  # the MVT layer of a polygon layer's label points


def labelled_polygons(layer: LayerEntry) -> tuple[str, str] | None:
    """The name fields of a polygon layer, whose tiles then carry one label point each."""
    return name_fields(layer) if "Polygon" in layer.geometry_type else None
