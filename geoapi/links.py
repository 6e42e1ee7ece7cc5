"""Link objects (OGC API Common, RFC 8288).

Every answer carries links; made here they keep one key order (rel, type, title, templated,
href) across resources.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from geoapi.media_types import JSON
from urbis_core.catalog import LayerEntry

OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0/"
EPOCH = "1970-01-01T00:00:00Z"  # a feature's whole history: its changes since the epoch


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


def history_href(base: str, layer: LayerEntry, key: Any) -> str:
    """A feature's changes (RFC 5829 `version-history`): inserted, updated, deleted, when."""
    return f"{base}/collections/{layer.id}/changes?{urlencode({'since': EPOCH, 'key': str(key)})}"
