"""The seeder's work file: the tiles rendered so far (sqlite), and what they were rendered for.

`<out>.seeding` next to the archive, committed every second, so that a run stopped by Ctrl-C,
a kill or an error loses at most that and the same command goes on from it. It is held
exclusively from the first write to close: a second seeder of the same output stops at once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tiles.archive import pmtiles_tile_id
from tiles.disk_space import out_of_space
from urbis_core.errors import UrbisError

COMMIT_EVERY = 1.0  # seconds of rendering a kill can lose

_WORK_SCHEMA = """
CREATE TABLE IF NOT EXISTS seeded_for (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tile (
    z INTEGER NOT NULL, x INTEGER NOT NULL, y INTEGER NOT NULL,
    tile_id INTEGER NOT NULL,  -- PMTiles' Hilbert id: the order its writer wants
    data BLOB,                 -- gzipped MVT; NULL: rendered empty
    PRIMARY KEY (z, x, y));
CREATE INDEX IF NOT EXISTS tile_by_id ON tile (tile_id);
"""


class WorkFile:
    """The tiles rendered so far (sqlite), and what they were rendered for."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # isolation_level=None: transactions are ours (BEGIN/COMMIT), batched by time.
            self._conn = sqlite3.connect(path, timeout=0, isolation_level=None)
        except sqlite3.OperationalError as exc:
            raise UrbisError(f"cannot create the work file {path}: {_why(exc, path)}") from None
        try:
            # Held from the first write to close: a second seeder of the same output stops at
            # once instead of interleaving with this one.
            self._conn.execute("PRAGMA locking_mode = EXCLUSIVE")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")  # WAL: a kill loses no commit
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executescript(_WORK_SCHEMA)  # its implicit COMMIT keeps the lock
        except sqlite3.OperationalError as exc:
            self._conn.close()
            if "locked" in str(exc):
                raise UrbisError(f"another `urbis tiles seed` is writing {path.name}") from None
            raise UrbisError(f"cannot use the work file {path}: {_why(exc, path)}") from None
        self._last_commit = time.monotonic()

    def seeded_for(self) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT value FROM seeded_for WHERE key = 'run'").fetchone()
        return json.loads(row[0]) if row else None

    def start_over(self, fingerprint: dict[str, Any]) -> None:
        self._conn.execute("DELETE FROM tile")
        self._conn.execute(
            "INSERT OR REPLACE INTO seeded_for VALUES ('run', ?)",
            (json.dumps(fingerprint, sort_keys=True),),
        )

    def rendered(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM tile").fetchone()[0])

    def done_at(self, z: int) -> set[tuple[int, int]]:
        return {(x, y) for x, y in self._conn.execute("SELECT x, y FROM tile WHERE z = ?", (z,))}

    def add(self, z: int, x: int, y: int, data: bytes | None) -> None:
        if not self._conn.in_transaction:
            self._conn.execute("BEGIN")
        self._conn.execute(
            "INSERT OR REPLACE INTO tile VALUES (?, ?, ?, ?, ?)",
            (z, x, y, pmtiles_tile_id(z, x, y), data),
        )
        if time.monotonic() - self._last_commit >= COMMIT_EVERY:
            self.commit()

    def commit(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")
        self._last_commit = time.monotonic()

    def zoom_range(self) -> tuple[int, int] | None:
        low, high = self._conn.execute(
            "SELECT min(z), max(z) FROM tile WHERE data IS NOT NULL"
        ).fetchone()
        return None if low is None else (int(low), int(high))

    def by_tile_id(self) -> Iterator[tuple[int, bytes]]:
        yield from self._conn.execute(
            "SELECT tile_id, data FROM tile WHERE data IS NOT NULL ORDER BY tile_id"
        )

    def by_zxy(self) -> Iterator[tuple[int, int, int, bytes]]:
        yield from self._conn.execute(
            "SELECT z, x, y, data FROM tile WHERE data IS NOT NULL ORDER BY z, x, y"
        )

    def close(self) -> None:
        self.commit()
        self._conn.close()


def _why(exc: sqlite3.Error, path: Path) -> str:
    if out_of_space(exc):
        return f"no space left on device in {path.parent}"
    return str(exc)
