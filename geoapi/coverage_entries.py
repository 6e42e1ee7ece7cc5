"""The coverage catalog's rows, kept in memory for the raster tiles.

A cached raster tile is then answered without the database, as a cached vector tile is.
Kept fresh by the sync's change notifications: the tile cache's listener (tiles.listener)
calls `forget` after each change it applies and each time it (re)starts listening, when a
change may have been missed. A row read while a change arrived is not kept (its generation
is older), so a stale version cannot stay. The sync notifies a new file, and a title or style
changed without one (urbis_sync.raster.run); rows are read again after `MAX_AGE` seconds
besides, a bound should a change ever go unheard. A coverage's version is part of its tiles'
keys, so a row kept a moment too long serves the old version's tiles, never mixed ones.
"""

from __future__ import annotations

import time

from fastapi import Request

from geoapi.budgets import Budgets
from urbis_core.coverages import CoverageEntry, get_coverage

MAX_AGE = 30.0  # seconds


class CoverageEntries:
    def __init__(self, max_age: float = MAX_AGE) -> None:
        self.max_age = max_age
        self._rows: dict[str, tuple[CoverageEntry, float]] = {}
        self.generation = 0

    def get(self, coverage_id: str) -> CoverageEntry | None:
        kept = self._rows.get(coverage_id)
        if kept is None or time.monotonic() - kept[1] > self.max_age:
            return None
        return kept[0]

    def keep(self, entry: CoverageEntry, generation: int, read_at: float) -> None:
        """Keep a row read at `read_at`, unless a change came since its read began."""
        if generation == self.generation:
            self._rows[entry.id] = (entry, read_at)

    def forget(self) -> None:
        self.generation += 1
        self._rows.clear()


async def coverage_entry(request: Request, coverage_id: str) -> CoverageEntry:
    """The coverage's catalog row: kept, or read (a 404 naming the known ones if absent)."""
    entries: CoverageEntries = request.app.state.coverage_entries
    entry = entries.get(coverage_id)
    if entry is not None:
        return entry
    generation, read_at = entries.generation, time.monotonic()
    budgets: Budgets = request.app.state.budgets
    request.state.query_kind = "catalog"
    async with (
        budgets.turn("catalog"),
        request.app.state.reads.snapshot("catalog") as conn,
    ):
        entry = await get_coverage(conn, coverage_id)
    entries.keep(entry, generation, read_at)
    return entry
