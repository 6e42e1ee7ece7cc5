"""What the CLI prints: a live progress line for people, JSON log lines for machines.

Every time it prints is ISO 8601 with its UTC offset (local time for people, UTC in JSON), so
that a line read elsewhere, or after a change of daylight saving time, is never ambiguous.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime


def local_time(value: datetime | None, empty: str = "-") -> str:
    """`2026-12-06T21:10:33+01:00`: the local time with its offset (naive values are UTC)."""
    if value is None:
        return empty
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone().isoformat(timespec="seconds")


class PeopleFormatter(logging.Formatter):
    """Log lines for a terminal, stamped with the local time and its offset."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return (
            datetime.fromtimestamp(record.created, UTC)
            .astimezone()
            .isoformat(timespec="milliseconds")
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors (non-interactive runs)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (
            "layer",
            "run",
            "status",
            "fetched",
            "inserted",
            "updated",
            "deleted",
            "repaired",
            "quarantined",
            "version",
            "seconds",
            "error",
        ):
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
        handler.setFormatter(PeopleFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    logging.basicConfig(
        level=logging.INFO if verbose or not interactive() else logging.WARNING,
        handlers=[handler],
        force=True,
    )
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
