"""The part of a TileJSON 3.0 document every tileset shares, vector or raster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from geoapi.html import ATTRIBUTION


def tilejson(
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
