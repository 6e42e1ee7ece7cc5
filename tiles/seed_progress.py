"""How far a seed run is: a progress record for the callback, a bar for terminals, log lines."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("tiles.seed")  # the run's records, under the seeder's name
LOG_EVERY = 10.0  # seconds between progress log records when no terminal shows a bar


@dataclass
class SeedProgress:
    """Where a run is; handed to the progress callback after each tile."""

    total: int  # tiles in the plan
    done: int  # rendered, by this run or by the interrupted ones before it
    rendered: int = 0  # by this run
    written: int = 0  # of those, tiles holding a feature
    bytes: int = 0  # their gzipped size
    zoom: int = 0
    tile: tuple[int, int, int] | None = None  # (z, x, y) of the tile just stored
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.rendered / max(self.seconds, 1e-6)


ProgressCallback = Callable[[SeedProgress], None]


def progress_bar(progress: SeedProgress, width: int = 30) -> str:
    """`[#########.....] 62% 1,234/2,000 tiles, z15, 142 tiles/s` for a terminal line."""
    share = progress.done / progress.total if progress.total else 1.0
    filled = int(share * width)
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {share:4.0%} {progress.done:,}/"
        f"{progress.total:,} tiles, z{progress.zoom}, {progress.rate:,.0f} tiles/s"
    )


class Tally:
    """Counts each tile stored, calls back, and logs now and then (for logs, not terminals)."""

    def __init__(self, progress: SeedProgress, on_progress: ProgressCallback | None) -> None:
        self.progress = progress
        self.on_progress = on_progress
        self._last_log = time.monotonic()

    def count(self, tile: tuple[int, int, int], data: bytes | None) -> None:
        p = self.progress
        p.tile = tile
        p.done += 1
        p.rendered += 1
        if data:
            p.written += 1
            p.bytes += len(data)
        if time.monotonic() - self._last_log >= LOG_EVERY:
            self._last_log = time.monotonic()
            log.info(
                "seeding: %d/%d tiles, zoom %d, %.0f tiles/s",
                p.done,
                p.total,
                p.zoom,
                p.rate,
                extra={"status": "running", "seconds": round(p.seconds, 1)},
            )
        if self.on_progress is not None:
            self.on_progress(p)
