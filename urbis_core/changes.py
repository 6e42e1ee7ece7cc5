"""The sync's word to the servers: a layer changed (its new version, and where).

On commit, a sync run that changed a layer sends one notification on `CHANNEL`; every API
process listens (tiles.listener) and drops the cached tiles the change touched. Both sides
build and read the message here, so they cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func

CHANNEL = "urbis_layer_changed"

Box = tuple[float, float, float, float]  # EPSG:31370


@dataclass(frozen=True)
class LayerChanged:
    layer: str
    version: int | None
    bbox: Box | None  # where the change lies; None: anywhere (drop all the layer's tiles)

    def payload(self) -> str:
        return json.dumps(
            {
                "layer": self.layer,
                "version": self.version,
                "bbox": list(self.bbox) if self.bbox else None,
            }
        )

    @classmethod
    def parse(cls, payload: str) -> LayerChanged:
        """The message of a notification; a ValueError when it is garbled."""
        try:
            change = json.loads(payload)
            bbox, version = change.get("bbox"), change.get("version")
            box: Box | None = (
                (float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])) if bbox else None
            )
            return cls(str(change["layer"]), int(version) if version is not None else None, box)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ValueError(f"unreadable change message {payload!r}: {exc!r}") from None

    def notification(self) -> ColumnElement[Any]:
        """`SELECT` it in the run's transaction: PostgreSQL sends it when that commits."""
        return func.pg_notify(CHANNEL, self.payload())
