"""Timed sync runs inside one long-lived process, as the `urbis sync` worker makes them.

    python -m bench.worker_runs DATABASE_URL CONFIG [CONFIG ...]

Each CONFIG (one layer, `buildings`) is synced in turn; prints the seconds of each run as a
JSON list. Start-up (imports, engine, the source readers' modules) is paid before the first
timing, once, as a running worker has already paid it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import urbis_sync.sources.file  # noqa: F401 - loaded by a worker's first run, before timing
from urbis_core.config import load_config
from urbis_core.db import create_sync_engine
from urbis_sync.run import sync_layer


def main(argv: list[str]) -> int:
    url, *configs = argv
    engine = create_sync_engine(url)
    seconds = []
    try:
        for path in configs:
            config = load_config(Path(path))
            started = time.perf_counter()
            report = sync_layer(engine, config, "buildings")
            seconds.append(time.perf_counter() - started)
            if report.status != "success":
                raise SystemExit(f"{path}: {report.summary()}")
    finally:
        engine.dispose()
    print(json.dumps(seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
