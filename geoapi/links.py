"""Link objects (OGC API Common, RFC 8288).

Every answer carries links; made here they keep one key order (rel, type, title, templated,
href) across resources.
"""

from __future__ import annotations

from typing import Any

from geoapi.media_types import JSON
from urbis_core.catalog import LayerEntry

OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0/"


def link(
    rel: str, href: str, type_: str = JSON, title: str | None = None, templated: bool = False
) -> dict[str, Any]:
    """One link; `templated` for a URI template such as a tile's `{z}/{x}/{y}`."""
    doc: dict[str, Any] = {"rel": rel, "type": type_}
    if title is not None:
        doc["title"] = title
    if templated:
        doc["templated"] = True
    doc["href"] = href
    return doc


def collection_link(base: str, layer: LayerEntry) -> dict[str, Any]:
    """The `collection` link from a layer's items, changes or query answers to its description."""
    return link("collection", f"{base}/collections/{layer.id}")
