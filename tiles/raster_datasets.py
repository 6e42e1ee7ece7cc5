"""The raster files the API draws tiles from, kept open between tiles.

Opening a COG, and working out where it lies on each grid, costs more than reading a tile's
few blocks from it; so each opened file (tiles.raster.RasterSource) is kept, idle, for the next
tile. A rasterio dataset must not be used by two threads at once: a render borrows one that no
other render holds, or opens another, and gives it back after. So there are at most as many
open per coverage as tiles drawn at once (the app's worker threads).

A coverage's new version is a new file: the first render that names the newer path closes the
idle datasets of the older one, and those still lent are closed as they come back. A render of
an older version (its catalog entry read just before the swap) gets a dataset of its own,
closed after it. Owned by the app's lifespan: `close` shuts every idle one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from tiles.raster import RasterSource, RasterStyle, TileFormat, render_tile
from tiles.tms import TileMatrixSet


@dataclass
class _Kept:
    version: int
    path: str
    idle: list[RasterSource] = field(default_factory=list)


class RasterDatasets:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[str, _Kept] = {}  # by coverage id: its current file's idle datasets
        self._closed = False
        self.opened = 0  # files opened so far

    def render(
        self,
        coverage_id: str,
        version: int,
        path: str,
        tms: TileMatrixSet,
        z: int,
        x: int,
        y: int,
        *,
        fmt: TileFormat,
        style: RasterStyle,
    ) -> bytes | None:
        """One tile of the coverage's file at `path` (its `version`), as tiles.raster draws it."""
        source = self._borrow(coverage_id, version, path)
        try:
            tile = render_tile(source, tms, z, x, y, fmt=fmt, style=style)
        except BaseException:
            source.close()  # in whatever state the failure left it: not lent again
            raise
        self._give_back(coverage_id, version, source)
        return tile

    def _borrow(self, coverage_id: str, version: int, path: str) -> RasterSource:
        stale: list[RasterSource] = []
        with self._lock:
            kept = self._kept.get(coverage_id)
            if kept is None or (version, path) != (kept.version, kept.path):
                if kept is None or version > kept.version:
                    if kept is not None:
                        stale = kept.idle
                    kept = self._kept[coverage_id] = _Kept(version, path)
                else:
                    kept = None  # an older version than the one kept: not pooled
            source = kept.idle.pop() if kept is not None and kept.idle else None
            if source is None:
                self.opened += 1
        for old in stale:
            old.close()
        return source if source is not None else RasterSource(path)

    def _give_back(self, coverage_id: str, version: int, source: RasterSource) -> None:
        with self._lock:
            kept = self._kept.get(coverage_id)
            if (
                not self._closed
                and kept is not None
                and (kept.version, kept.path) == (version, source.path)
            ):
                kept.idle.append(source)
                return
        source.close()

    def close(self) -> None:
        """Close every idle dataset; those lent out close as they come back."""
        with self._lock:
            self._closed = True
            idle = [source for kept in self._kept.values() for source in kept.idle]
            self._kept.clear()
        for source in idle:
            source.close()
