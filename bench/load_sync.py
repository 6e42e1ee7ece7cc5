"""The sync side of the load benchmark (bench.load_bench): `urbis sync` in continuous mode, and
the source changed after each of its runs of the changed layer, so the next run has work.

The runs are read from the catalog (`urbis_meta.sync_run`), as `urbis status` reads them.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench import api_peers
from bench.load_source import Change, ChangingSource

CHANGED = "buildings"  # the layer whose source changes (bench.load_source's Buildings)


@contextmanager
def sync_worker(url: str, config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`urbis sync` in continuous mode, in its own process group, stopped by that group."""
    env = {**os.environ, "DATABASE_URL": url, "URBIS_CONFIG": str(config)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(api_peers.URBIS), "sync"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        api_peers.stop(proc)


def finished_runs(url: str, after_id: int = 0) -> list[dict[str, Any]]:
    """The changed layer's finished runs after `after_id`, oldest first."""
    with psycopg.connect(url) as conn:
        cursor = conn.cursor(row_factory=dict_row)
        return cursor.execute(
            "SELECT id, status, started_at, finished_at, inserted, updated, deleted, error, "
            "extract(epoch FROM finished_at - started_at) AS seconds "
            "FROM urbis_meta.sync_run WHERE layer_id = %s AND id > %s "
            "AND finished_at IS NOT NULL ORDER BY id",
            (CHANGED, after_id),
        ).fetchall()


@dataclass
class ChangeFeeder:
    """Changes the source each time a run of the changed layer finishes, so the next run (one
    schedule later) has real changes to apply."""

    url: str
    source: ChangingSource
    first_run: int  # the last run before the load: later ones are the load's
    written: list[tuple[Change, float]] = field(default_factory=list)  # and time.time()
    # the last run finished when each change was written: a later run with changes applied it
    after_run: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    failure: str | None = None

    def run(self) -> None:
        seen = self.first_run
        try:
            self._write(seen)
            while not self.stop.wait(0.3):
                runs = finished_runs(self.url, seen)
                if runs:
                    seen = runs[-1]["id"]
                    self._write(seen)
        except Exception as exc:  # reported, the load goes on and the run fails
            self.failure = f"{type(exc).__name__}: {exc}"

    def _write(self, after_run: int) -> None:
        change = self.source.change()
        self.after_run.append(after_run)  # first: a reader of `written` finds it there
        self.written.append((change, time.time()))


def wait_applied(url: str, since: float, after_id: int, timeout: float) -> dict[str, Any] | None:
    """The first successful run of the changed layer started after `since` (time.time())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in finished_runs(url, after_id):
            if run["started_at"].timestamp() > since and run["status"] == "success":
                return run
        time.sleep(0.3)
    return None
