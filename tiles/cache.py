"""The tile cache: LRU in memory (and a disk tier), single-flight, invalidated by the sync.

A hit never touches the database. The sync's NOTIFY (layer, version, bbox of the change in
EPSG:31370) drops exactly the cached tiles of that layer whose area meets the bbox; the others
stay hits. A render that was running when its layer changed is served but not kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tiles.disk import DiskTier
from tiles.keys import EVERY_LAYER, CachedTile, TileKey, bbox_in, draws
from tiles.mvt import BUFFER, EXTENT
from tiles.tms import TILE_MATRIX_SETS, TileMatrixSet
from urbis_core.changes import is_coverage

Box = tuple[float, float, float, float]
log = logging.getLogger(__name__)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    dropped: int = 0
    entries: int = 0
    bytes: int = 0
    changes: int = 0  # the sync's change notifications applied
    disk_write_errors: int = 0  # tiles (or version records) the disk tier could not write


# Told of each tile drawn for the cache and the seconds it took (the API's metrics).
OnDrawn = Callable[[TileKey, float], None]


class TileCache:
    def __init__(
        self, max_bytes: int, disk: DiskTier | None = None, on_drawn: OnDrawn | None = None
    ) -> None:
        self.max_bytes = max_bytes
        self.disk = disk
        self.on_drawn = on_drawn
        self._entries: OrderedDict[TileKey, CachedTile] = OrderedDict()
        self._inflight: dict[TileKey, asyncio.Future[CachedTile]] = {}
        self._generation: dict[str, int] = {}  # per layer, bumped by each change
        self._purges = 0  # bumped by each purge of every layer's tiles
        self.stats = CacheStats()
        self._disk_failing = False  # told in the log when it starts and when it ends

    def holds(self, key: TileKey) -> bool:
        """Whether the tile is cached, in memory or on disk (not counted as a hit)."""
        return key in self._entries or (self.disk is not None and self.disk.holds(key))

    def get(self, key: TileKey) -> CachedTile | None:
        tile = self._entries.get(key)
        if tile is not None:
            self._entries.move_to_end(key)
            self.stats.hits += 1
            return tile
        tile = self.disk.read(key) if self.disk is not None else None
        if tile is not None:
            self._keep(key, tile)
            self.stats.hits += 1
        return tile

    async def get_or_render(
        self, key: TileKey, render: Callable[[], Awaitable[CachedTile]]
    ) -> tuple[CachedTile, bool]:
        """The tile and whether it was a hit; concurrent misses for one tile render once.

        The render is a task of its own: a client that leaves (its request cancelled) does
        not take the tile from the others waiting for it, and the tile is kept all the same.
        """
        hit = self.get(key)
        if hit is not None:
            return hit, True
        running = self._inflight.get(key)
        if running is not None:
            self.stats.hits += 1  # served by the render another request started
            return await asyncio.shield(running), True
        self.stats.misses += 1
        task = asyncio.ensure_future(self._render_and_keep(key, render))
        self._inflight[key] = task
        task.add_done_callback(_retrieve)
        return await asyncio.shield(task), False

    async def _render_and_keep(
        self, key: TileKey, render: Callable[[], Awaitable[CachedTile]]
    ) -> CachedTile:
        generations = self._generations(key)
        started = time.perf_counter()
        try:
            tile = await render()
        finally:
            self._inflight.pop(key, None)
        if self.on_drawn is not None:
            self.on_drawn(key, time.perf_counter() - started)
        if generations == self._generations(key):
            self._store(key, tile)
        return tile

    def _generations(self, key: TileKey) -> tuple[int, ...]:
        return (self._purges, *(self._generation.get(c, 0) for c in key.collections))

    def _store(self, key: TileKey, tile: CachedTile) -> None:
        if self.disk is not None:
            try:
                # The versions first (for layers not recorded yet): a tile on disk of a layer
                # whose version is not recorded would escape the reconciliation at the next
                # start. A tile drawn before a change another process recorded is not stored.
                self.disk.note_versions(dict(tile.versions), changed=False)
                self.disk.write(key, tile)
            except OSError as exc:
                self._disk_failed(exc)
            else:
                self._disk_wrote()
        self._keep(key, tile)

    def _disk_failed(self, exc: OSError) -> None:
        """A full (or broken) disk costs the disk tier its new tiles, never an answer."""
        self.stats.disk_write_errors += 1
        if not self._disk_failing:
            self._disk_failing = True
            log.warning(
                "the tile cache cannot write to %s (%s); tiles are served from memory and the "
                "database, not kept on disk, until it can",
                self.disk.root if self.disk is not None else "?",
                exc.strerror or exc,
            )

    def _disk_wrote(self) -> None:
        if self._disk_failing:
            self._disk_failing = False
            log.warning("the tile cache writes to its disk tier again")

    def _keep(self, key: TileKey, tile: CachedTile) -> None:
        """In memory, evicting the least recently used tiles beyond the size."""
        if len(tile.data) > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.stats.bytes -= len(old.data)
        self._entries[key] = tile
        self.stats.bytes += len(tile.data)
        while self.stats.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.stats.bytes -= len(evicted.data)
        self.stats.entries = len(self._entries)

    def invalidate(
        self,
        layer_id: str,
        bbox: Box | None,
        version: int | None = None,
    ) -> int:
        """Drop the layer's tiles that meet `bbox` (EPSG:31370; None: all of them)."""
        self._bump(layer_id)
        self.stats.changes += 1
        if self.disk is not None:
            # recorded before the drop: another process's older tile is not stored after it
            if version is not None:
                try:
                    self.disk.note_versions({layer_id: version}, changed=True)
                except OSError as exc:
                    # Safe: an older version recorded drops more at the next start, not less.
                    self._disk_failed(exc)
            self.stats.dropped += self.disk.drop(layer_id, bbox)
        return self._drop_in_memory(layer_id, bbox)

    def purge(self, layer_id: str | None, bbox: Box | None) -> tuple[int, int]:
        """Drop tiles as an operator asks: how many went from memory, and from disk.

        The tiles showing the layer (None: any) that meet `bbox` (EPSG:31370; None: anywhere).
        A tile being drawn meanwhile is served but not kept, as after a change.
        """
        if layer_id is None:
            self._purges += 1
        else:
            self._bump(layer_id)
        on_disk = self.disk.drop(layer_id, bbox) if self.disk is not None else 0
        self.stats.dropped += on_disk
        return self._drop_in_memory(layer_id, bbox), on_disk

    def _bump(self, layer_id: str) -> None:
        """A new generation of the layer's tiles: renders begun before are not kept."""
        for name in (layer_id, *(() if is_coverage(layer_id) else EVERY_LAYER)):
            self._generation[name] = self._generation.get(name, 0) + 1

    def _drop_in_memory(self, layer_id: str | None, bbox: Box | None) -> int:
        boxes: dict[str, Box] = {}
        doomed = []
        for key in self._entries:
            if layer_id is not None and not draws(key.collections, layer_id):
                continue
            if bbox is not None:
                tms = TILE_MATRIX_SETS[key.tms]
                if key.tms not in boxes:
                    boxes[key.tms] = bbox_in(tms, bbox)
                if not _meets(tms, key, boxes[key.tms]):
                    continue
            doomed.append(key)
        for key in doomed:
            self.stats.bytes -= len(self._entries.pop(key).data)
        self.stats.dropped += len(doomed)
        self.stats.entries = len(self._entries)
        return len(doomed)

    def clear(self) -> None:
        """Empty the memory tier (the disk tier is reconciled with the change log instead)."""
        for layer_id in {c for key in self._entries for c in key.collections}:
            self._generation[layer_id] = self._generation.get(layer_id, 0) + 1
        self.stats.dropped += len(self._entries)
        self._entries.clear()
        self.stats.bytes = self.stats.entries = 0


def _meets(tms: TileMatrixSet, key: TileKey, box: tuple[float, float, float, float]) -> bool:
    """Whether a tile (with its MVT buffer, which shows neighbours' features) meets a box."""
    minx, miny, maxx, maxy = tms.bounds(key.z, key.x, key.y)
    margin = tms.tile_span(key.z) * BUFFER / EXTENT
    return not (
        maxx + margin < box[0]
        or minx - margin > box[2]
        or maxy + margin < box[1]
        or miny - margin > box[3]
    )


def _retrieve(task: asyncio.Future[CachedTile]) -> None:
    """Mark a render's failure as seen: its requesters may all have gone before it ended."""
    if not task.cancelled():
        task.exception()
