"""Timed sync runs inside one long-lived process, as the `urbis sync` worker makes them.

    python -m bench.worker_runs DATABASE_URL CONFIG [CONFIG ...]

Each CONFIG (one layer, `buildings`) is synced in turn; prints, as JSON, the seconds each run
took until its changes were live (`until_live`) and then to make the rows it wrote ready for
tiles (`tile_ready`, urbis_sync.tile_geometry; 0 when it wrote none). Start-up (imports, engine,
the source readers' modules) is paid before the first timing, once, as a running worker has
already paid it.
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
    until_live, tile_ready = [], []
    try:
        for path in configs:
            config = load_config(Path(path))
            started = time.perf_counter()
            report = sync_layer(engine, config, "buildings")
            took = time.perf_counter() - started
            if report.status != "success":
                raise SystemExit(f"{path}: {report.summary()}")
            ready = report.tile_ready.seconds if report.tile_ready else 0.0
            until_live.append(took - ready)
            tile_ready.append(ready)
    finally:
        engine.dispose()
    print(json.dumps({"until_live": until_live, "tile_ready": tile_ready}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
