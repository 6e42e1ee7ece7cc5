"""What the CLI prints: a live progress line for people, JSON log lines for machines."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors (non-interactive runs)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("layer", "run", "status", "fetched", "inserted", "updated", "deleted",
                     "repaired", "quarantined", "version", "seconds", "error"):
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def interactive() -> bool:
    return sys.stderr.isatty()


def configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if interactive():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO if verbose or not interactive() else logging.WARNING,
                        handlers=[handler], force=True)
    # Alembic announces each of its plugins at INFO: noise in every structured log.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


class ProgressLine:
    """`layer: 120,000 features read (35,000/s)` rewritten in place on a terminal."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self.enabled = interactive()

    def __call__(self, layer_id: str, fetched: int) -> None:
        if not self.enabled:
            return
        started = self._started.setdefault(layer_id, time.monotonic())
        rate = fetched / max(time.monotonic() - started, 1e-6)
        sys.stderr.write(f"\r{layer_id}: {fetched:,} features read ({rate:,.0f}/s)   ")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self._started:
            sys.stderr.write("\r" + " " * 70 + "\r")
            sys.stderr.flush()
        self._started.clear()
