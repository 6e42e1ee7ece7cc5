"""An operator's tile purge reaches every API process of one `urbis serve --workers N`.

POST /admin/tiles/purge reaches one process, which drops the tiles from its memory and from
the shared disk tier; the others' memory tiers must drop them too. The process writes the
purge (layer and bbox) as a small file into the processes' shared folder
(`<siblings dir>/purges/`, made by urbis_cli.supervisor), written under a temporary name and
renamed; every other process looks there every POLL seconds and applies the purges it has not
applied yet. Purge files are removed after KEEP seconds, by whichever process sees them.
With one process (no shared folder) there is nothing to tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from tiles.cache import TileCache

log = logging.getLogger(__name__)

POLL = 0.25  # seconds between two looks at the folder
KEEP = 60.0  # seconds a purge file is kept: far longer than any process takes to see it
SUFFIX = ".purge.json"

Box = tuple[float, float, float, float]


class SiblingPurges:
    """Purges this process tells its siblings, and those they tell it."""

    def __init__(self, folder: Path | None, cache: TileCache) -> None:
        self.folder = folder
        self.cache = cache
        self._me = f"-{os.getpid()}{SUFFIX}"
        # Those already there when this process starts are older than its empty cache.
        self._seen: set[str] = set(self._names())

    def _names(self) -> list[str]:
        if self.folder is None:
            return []
        with contextlib.suppress(FileNotFoundError):
            return sorted(n for n in os.listdir(self.folder) if n.endswith(SUFFIX))
        return []

    def tell(self, layer: str | None, bbox: Box | None) -> None:
        """Ask the other processes to drop these tiles (this one has dropped its own)."""
        if self.folder is None:
            return
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
        with os.fdopen(handle, "w") as out:
            json.dump({"layer": layer, "bbox": bbox}, out)
        # by name, in the order they were told: nanoseconds, then the teller
        name = f"{time.time_ns():020d}{self._me}"
        os.replace(temporary, self.folder / name)
        self._seen.add(name)

    def apply_new(self) -> int:
        """Apply the purges the others told since the last look; how many."""
        assert self.folder is not None
        names = self._names()
        applied = 0
        for name in names:
            if name in self._seen:
                continue
            self._seen.add(name)
            try:
                told = json.loads((self.folder / name).read_text())
            except (FileNotFoundError, ValueError):
                continue  # removed after KEEP meanwhile: older than any tile it could hold
            bbox = tuple(told["bbox"]) if told["bbox"] is not None else None
            memory, _ = self.cache.purge(told["layer"], bbox)
            log.info("tile purge told by another API process: %d tiles dropped", memory)
            applied += 1
        self._seen &= set(names)
        self._remove_old(names)
        return applied

    def _remove_old(self, names: list[str]) -> None:
        assert self.folder is not None
        oldest = time.time_ns() - int(KEEP * 1e9)
        for name in names:
            told_at = name.split("-", 1)[0]
            if told_at.isdigit() and int(told_at) < oldest:
                (self.folder / name).unlink(missing_ok=True)

    async def follow(self) -> None:
        """Runs for the app's life (cancelled at shutdown) when there are siblings."""
        while True:
            try:
                self.apply_new()
            except OSError as exc:  # the folder went (the supervisor is stopping)
                log.warning("cannot read the purges of the other API processes: %s", exc)
            await asyncio.sleep(POLL)
