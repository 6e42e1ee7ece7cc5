"""How a coverage is drawn when a request says nothing: its layer's style, else its statistics.

The tiles (geoapi.routes.coverage_tiles), the coverage's metadata and the map's legend all take
the style from here, so a legend always says what the tiles show: a request's `colormap`,
`rescale` and `hillshade` override the layer's configured ones, which override the defaults
(greys; the first band's min and max from the catalog, the same for every tile so that tiles
join; no hillshade). Imagery (three bands or more) is drawn as it is and has no ramp.
"""

from __future__ import annotations

from tiles.raster import RAMPS, RasterStyle
from urbis_core.coverages import CoverageEntry

DEFAULT_RAMP = "greys"


def is_imagery(entry: CoverageEntry) -> bool:
    """Three bands or more: drawn as RGB(A), a background rather than a ramped overlay."""
    return len(entry.bands) >= 3


def default_rescale(entry: CoverageEntry) -> tuple[float, float]:
    """The first band's (min, max) over its valid cells; (0, 1) when it has none."""
    band = entry.bands[0]
    if band.min is None or band.max is None:
        return 0.0, 1.0
    return (band.min, band.max) if band.min < band.max else (band.min, band.min + 1.0)


def coverage_style(
    entry: CoverageEntry,
    *,
    colormap: str | None = None,
    rescale: tuple[float, float] | None = None,
    hillshade: bool | None = None,
) -> RasterStyle:
    """The style a tile of `entry` is drawn with (InvalidParameter for a bad override)."""
    layer = entry.style
    configured = layer.get("rescale")
    return RasterStyle(
        colormap=colormap or layer.get("colormap") or DEFAULT_RAMP,
        rescale=rescale
        or ((float(configured[0]), float(configured[1])) if configured else None)
        or default_rescale(entry),
        hillshade=bool(layer.get("hillshade", False)) if hillshade is None else hillshade,
    )


def ramp_stops(name: str) -> list[tuple[float, str]]:
    """A colour ramp as (position 0-1, "#rrggbb") stops: a legend's gradient."""
    return [(where, "#{:02x}{:02x}{:02x}".format(*rgb)) for where, rgb in RAMPS[name]]
