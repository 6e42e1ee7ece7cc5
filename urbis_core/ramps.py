"""The colour ramps raster tiles draw a single band with, by name.

Here rather than beside the drawing (tiles.raster) so that the configuration can check a
layer's `style.colormap` (urbis_core.config) without importing the tiles.

Each is (position 0-1, (r, g, b)) stops, interpolated linearly: a few to choose from without
matplotlib at run time. `viridis` is matplotlib's, sampled at nine stops.
"""

from __future__ import annotations

RAMPS: dict[str, tuple[tuple[float, tuple[int, int, int]], ...]] = {
    "greys": ((0.0, (0, 0, 0)), (1.0, (255, 255, 255))),
    "viridis": (
        (0.0, (68, 1, 84)),
        (0.125, (71, 44, 122)),
        (0.25, (59, 81, 139)),
        (0.375, (44, 113, 142)),
        (0.5, (33, 144, 141)),
        (0.625, (39, 173, 129)),
        (0.75, (92, 200, 99)),
        (0.875, (170, 220, 50)),
        (1.0, (253, 231, 37)),
    ),
    "terrain": (
        (0.0, (51, 102, 153)),
        (0.15, (0, 153, 102)),
        (0.35, (153, 204, 102)),
        (0.55, (230, 220, 140)),
        (0.75, (153, 119, 85)),
        (1.0, (255, 255, 255)),
    ),
}
