"""Low zooms kept drawn: the few tiles that show a whole layer, rendered before anyone asks.

A tile that covers most of the region (Web Mercator zoom 11 and below: a handful per layer)
reads every feature of the layer to draw the few big enough to see, which takes hundreds of
milliseconds where other tiles take a few. They are few, and every map opens on them, so the
API draws them into its tile cache when it starts and again after each change the sync
announces (only those the change dropped are drawn again: the others are still cached). They
are the tiles a request without `filter` or `properties` gets, per collection, and of every
collection together; in each tile matrix set, the zooms whose pixel is at least as coarse as
Web Mercator's at `max_zoom` (URBIS_TILE_WARM_ZOOM; -1: none).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tiles.cache import TileCache
from tiles.draw import Snapshot, draw_tile, layers_of
from tiles.keys import EVERY_LAYER, CachedTile, TileKey
from tiles.mvt import DrawingMemory
from tiles.plan import plan_for
from tiles.tms import MAX_ZOOM, TILE_MATRIX_SETS, WEB_MERCATOR_QUAD, TileMatrixSet
from urbis_core.catalog import LayerEntry, list_layers

log = logging.getLogger(__name__)

# Seconds a low-zoom tile's statements may take: no request waits on them (unless one asks
# for the same tile meanwhile), and they read whole layers.
DRAWING_AHEAD_TIMEOUT = 120.0


def low_zooms(tms: TileMatrixSet, max_zoom: int) -> list[int]:
    """The zooms of `tms` whose pixel is at least Web Mercator's at `max_zoom`."""
    if max_zoom < 0:
        return []
    finest = WEB_MERCATOR_QUAD.ground_pixel(max_zoom) * (1 - 1e-9)  # rounding aside
    return [z for z in range(MAX_ZOOM + 1) if tms.ground_pixel(z) >= finest]


Drawn = tuple[TileKey, tuple[str, ...]]  # a tile, and the collections it draws (none: all)


def low_zoom_tiles(layers: list[LayerEntry], max_zoom: int) -> list[Drawn]:
    """Each low-zoom tile to keep drawn, with the collections it draws."""
    out: list[Drawn] = []
    for tms in TILE_MATRIX_SETS.values():
        zooms = low_zooms(tms, max_zoom)
        groups = [(EVERY_LAYER, (), layers)] + [
            ((layer.id,), (layer.id,), [layer]) for layer in layers
        ]
        for collections, ids, drawn in groups:
            plan = plan_for(tms, zooms, drawn)
            out += [
                (TileKey(collections, tms.id, z, x, y), ids)
                for z in plan.zooms
                for x, y in plan.tiles(z)
            ]
    return out


class LowZoomKeeper:
    """Draws the low-zoom tiles missing from the cache, in the background, when poked."""

    def __init__(
        self, snapshot: Snapshot, memory: DrawingMemory, cache: TileCache, max_zoom: int
    ) -> None:
        """`snapshot` gives the connections to draw with (under DRAWING_AHEAD_TIMEOUT)."""
        self.snapshot = snapshot
        self.memory = memory
        self.cache = cache
        self.max_zoom = max_zoom
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self.drawn = 0  # tiles drawn so far (for /healthz and the tests)
        self.idle = asyncio.Event()
        self.idle.set()

    def poke(self) -> None:
        """Draw what is missing now, or right after the round under way."""
        if self.max_zoom < 0:
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self.idle.clear()
        self._task = asyncio.create_task(self._rounds())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _rounds(self) -> None:
        try:
            while True:
                self._again = False
                try:
                    await self._draw_missing()
                except Exception as exc:  # noqa: BLE001 - a request will draw them instead
                    log.warning("low-zoom tiles not drawn ahead: %s", exc)
                if not self._again:
                    return
        finally:
            self.idle.set()

    async def _draw_missing(self) -> None:
        async with self.snapshot() as conn:
            layers = await list_layers(conn)
        for key, ids in low_zoom_tiles(layers, self.max_zoom):
            if self.cache.holds(key):  # looked at, not asked for: no hit in the counters
                continue
            _, cached = await self.cache.get_or_render(key, self._drawing(key, ids))
            self.drawn += not cached

    def _drawing(self, key: TileKey, ids: tuple[str, ...]) -> Callable[[], Awaitable[CachedTile]]:
        return lambda: draw_tile(self.snapshot, self.memory, key, layers_of(ids))
