"""Whether the database answers, as the requests find it; told in the log once per change.

An outage fails every request that needs the database: logging each would bury the one line
that matters (when it went, why, and when it came back) under thousands of tracebacks.
"""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger(__name__)


class DatabaseHealth:
    def __init__(self) -> None:
        self.reachable = True
        self.since = time.monotonic()
        self.last_error: str | None = None
        # Set when a request finds the database again after an outage: what waits to
        # reconnect (the tile cache's listener, backing off) tries at once rather than
        # serving tiles a change made meanwhile has made stale until its next attempt.
        self.back = asyncio.Event()

    def failed(self, reason: str) -> None:
        self.last_error = reason
        if self.reachable:
            self.reachable, self.since = False, time.monotonic()
            log.warning("the database is not reachable (%s); answering 503 until it is", reason)

    def answered(self) -> None:
        if not self.reachable:
            log.warning(
                "the database is reachable again after %.1f s", time.monotonic() - self.since
            )
            self.reachable, self.since = True, time.monotonic()
            self.back.set()
