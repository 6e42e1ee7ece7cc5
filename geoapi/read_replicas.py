"""Where the API's reads go: streaming replicas (`DATABASE_URL_READ`), else the primary.

Reads are spread over the replicas that may serve, one after the other; with none, they go to
the primary. A replica serves while a watcher, in the background every `read_check_interval`
seconds (never per request), finds it answering, in recovery, and no further behind the
primary than `read_max_lag` seconds. One that falls out comes back by itself once it is well
again; one that a request finds gone stops serving at once.

Lag is measured on the primary's clock, not the replica's: the watcher notes how far the
primary has flushed its WAL (what a replica can have) at each round, and a replica's lag is the
age of the oldest note it has not replayed yet. A primary that writes nothing leaves its
replicas at no lag, rightly: they hold all there is. (`now() - pg_last_xact_replay_timestamp()`
would grow on an idle primary.)

The tile cache must not keep a tile a replica drew before it replayed a change
(tiles.listener): before the listener drops a change's tiles, `settle` takes the position
where the primary's WAL ends, which is past the change's commit (the notification is sent
after it), and waits until every serving replica has replayed that far. A replica that has not
within `read_max_lag` stops serving first. And a replica coming back serves only once it has
replayed past every change settled, so it cannot draw an old tile again.

Why the change's position is not stored by the sync with the change: a transaction cannot know
where its own commit record will end; any position read inside it is before the commit, and a
replica that far along does not show the change yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from geoapi.budgets import Budgets
from urbis_core.db import first_line

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3  # seconds for the watcher (and a replica's pool) to reach a server
SETTLE_POLL = 0.02  # seconds between looks at the replicas while a change waits for them
WATCHER_NAME = "urbis-api-replicas"  # the watcher's sessions in pg_stat_activity

Lsn = int


def parse_lsn(text: str) -> Lsn:
    """PostgreSQL's `pg_lsn` text (`16/B374D848`) as a number that orders as the WAL does."""
    high, low = text.split("/")
    return int(high, 16) << 32 | int(low, 16)


def replica_name(url: str) -> str:
    """`host:port/dbname`: how logs and /healthz name a replica (never with its password)."""
    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


@dataclass
class Replica:
    name: str
    url: str = field(repr=False)
    engine: AsyncEngine = field(repr=False)
    serving: bool = False
    replayed: Lsn | None = None  # where its replay was at the last look
    lag: float | None = None  # seconds, at the last round
    problem: str | None = "not looked at yet"  # why it does not serve, when it does not
    _conn: psycopg.AsyncConnection[Any] | None = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def report(self) -> dict[str, Any]:
        """What /healthz says of it."""
        return {
            "name": self.name,
            "serving": self.serving,
            "lag_s": None if self.lag is None else round(self.lag, 3),
            "problem": None if self.serving else self.problem,
        }


# Where the primary's WAL ends (past every commit so far), and that much flushed, so that it
# reaches the replicas now: the tail of WAL past the last commit (a lock, a hint bit's page)
# may otherwise wait in the primary's buffers until some later commit, and the replicas with
# it. Committing a transaction id with synchronous_commit on (the watcher's session) flushes
# everything before its commit record; the reader may do that, and it writes nothing else.
_CHANGE_POSITION = "SELECT pg_current_wal_insert_lsn()::text, pg_current_xact_id()"
_FLUSHED_POSITION = "SELECT pg_current_wal_flush_lsn()::text"


async def _connect(url: str, options: str = "") -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(
        url,
        autocommit=True,
        connect_timeout=CONNECT_TIMEOUT,
        fallback_application_name=WATCHER_NAME,
        options=options,
    )


class ReadEngines:
    """The primary's pool and each replica's; `snapshot` gives a request its connection."""

    def __init__(
        self,
        primary: AsyncEngine,
        primary_url: str,
        replica_urls: tuple[str, ...],
        pool: Callable[[str], AsyncEngine],
        budgets: Budgets,
        max_lag: float,
        check_interval: float,
    ) -> None:
        """`pool(url)` makes a replica's pool, as the primary's is made."""
        self.primary = primary
        self.primary_url = primary_url
        self.budgets = budgets
        self.max_lag = max_lag
        self.check_interval = check_interval
        self.replicas = [Replica(replica_name(url), url, pool(url)) for url in replica_urls]
        self.settled: Lsn = 0  # a replica serves again only once it has replayed this far
        self._marks: deque[tuple[float, Lsn]] = deque()  # (when, the primary's WAL end)
        self._primary: psycopg.AsyncConnection[Any] | None = None
        self._primary_lock = asyncio.Lock()
        self._turn = 0
        self._watcher: asyncio.Task[None] | None = None

    # -- choosing --------------------------------------------------------------------------

    def _next(self) -> Replica | None:
        """The replica the next read goes to, in turn; None: the primary."""
        serving = [replica for replica in self.replicas if replica.serving]
        if not serving:
            return None
        self._turn += 1
        return serving[self._turn % len(serving)]

    @contextlib.asynccontextmanager
    async def snapshot(
        self, kind: str, timeout: float | None = None
    ) -> AsyncIterator[AsyncConnection]:
        """A read's connection (geoapi.budgets.Budgets.snapshot) from a replica or the primary.

        A replica that cannot give one stops serving at once (the watcher brings it back),
        and the read goes to the primary rather than failing.
        """
        replica = self._next()
        async with contextlib.AsyncExitStack() as stack:
            try:
                engine = self.primary if replica is None else replica.engine
                conn = await stack.enter_async_context(self.budgets.snapshot(engine, kind, timeout))
            except OperationalError as exc:
                if replica is None:
                    raise
                self._stop_serving(replica, f"does not answer: {first_line(exc)}")
                conn = await stack.enter_async_context(
                    self.budgets.snapshot(self.primary, kind, timeout)
                )
            yield conn

    def report(self) -> list[dict[str, Any]]:
        return [replica.report() for replica in self.replicas]

    # -- the watcher -----------------------------------------------------------------------

    async def start(self) -> None:
        """Look at every replica once, then keep looking in the background.

        The API so starts reading from the replicas fit to serve.
        """
        if not self.replicas:
            return
        with contextlib.suppress(psycopg.Error, OSError):
            self.settled = await self._primary_position(_CHANGE_POSITION)
        await self._round()
        for replica in self.replicas:
            if not replica.serving:  # said now: it may never serve (a wrong URL or password)
                log.warning(
                    "read replica %s does not serve reads yet: %s", replica.name, replica.problem
                )
        self._watcher = asyncio.create_task(self._watch())

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for conn in [self._primary, *(replica._conn for replica in self.replicas)]:
            if conn is not None:
                with contextlib.suppress(psycopg.Error, OSError):
                    await conn.close()
        for replica in self.replicas:
            await replica.engine.dispose()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            try:
                await self._round()
            except Exception:  # the watcher must outlive any surprise; the next round retries
                log.exception("looking at the read replicas failed")

    async def _round(self) -> None:
        """Note the primary's WAL end, look at each replica, let it serve or not."""
        now = time.monotonic()
        try:
            self._marks.append((now, await self._primary_position(_FLUSHED_POSITION)))
        except (psycopg.Error, OSError):
            pass  # the primary away: the replicas' lag cannot be told; they go on as they are
        while len(self._marks) > 1 and self._marks[1][0] < now - 2 * self.max_lag:
            self._marks.popleft()
        await asyncio.gather(*(self._look(replica) for replica in self.replicas))
        for replica in self.replicas:
            self._judge(replica, now)

    async def _primary_position(self, query: str) -> Lsn:
        """A position in the primary's WAL (`_CHANGE_POSITION`, `_FLUSHED_POSITION`)."""
        async with self._primary_lock:
            try:
                if self._primary is None or self._primary.closed:
                    self._primary = await _connect(self.primary_url, "-c synchronous_commit=on")
                cursor = await self._primary.execute(query)
                row = await cursor.fetchone()
            except (psycopg.Error, OSError):
                if self._primary is not None:
                    await self._primary.close()
                self._primary = None
                raise
        assert row is not None
        return parse_lsn(row[0])

    async def _look(self, replica: Replica) -> bool:
        """Read how far the replica has replayed; False (and why, in `problem`) if it cannot."""
        async with replica._lock:
            try:
                if replica._conn is None or replica._conn.closed:
                    replica._conn = await _connect(replica.url)
                cursor = await replica._conn.execute(
                    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"
                )
                row = await cursor.fetchone()
            except (psycopg.Error, OSError) as exc:
                if replica._conn is not None:
                    await replica._conn.close()
                replica._conn, replica.replayed = None, None
                replica.problem = f"does not answer: {first_line(exc)}"
                return False
        assert row is not None
        in_recovery, replayed = row
        if not in_recovery or replayed is None:
            replica.replayed = None
            replica.problem = "is not a standby (promoted, or not a replica): not read from"
            return False
        replica.replayed = parse_lsn(replayed)
        return True

    def _lag(self, replayed: Lsn, now: float) -> float:
        """Seconds since the primary was first seen past what the replica has replayed."""
        for when, position in self._marks:
            if position > replayed:
                return max(0.0, now - when)
        return 0.0

    def _judge(self, replica: Replica, now: float) -> None:
        if replica.replayed is None:  # `_look` said why
            replica.lag = None
            self._stop_serving(replica, replica.problem or "unknown")
            return
        replica.lag = self._lag(replica.replayed, now)
        if replica.lag > self.max_lag:
            self._stop_serving(
                replica,
                f"lags {replica.lag:.0f} s behind the primary (URBIS_READ_MAX_LAG_S "
                f"{self.max_lag:g})",
            )
        elif not replica.serving:
            if replica.replayed < self.settled:
                replica.problem = "has not replayed the last change yet"
            else:
                replica.serving, replica.problem = True, None
                log.warning("read replica %s serves reads", replica.name)

    def _stop_serving(self, replica: Replica, why: str) -> None:
        replica.problem = why
        if replica.serving:
            replica.serving = False
            others = sum(r.serving for r in self.replicas)
            log.warning(
                "read replica %s %s: reads go to %s until it is back",
                replica.name,
                why,
                f"the {others} other replica(s)" if others else "the primary",
            )

    # -- changes ---------------------------------------------------------------------------

    async def settle(self) -> None:
        """Return once every serving replica shows what the primary holds now.

        Called by the tile listener when it has heard a change and before it drops the
        change's tiles. Waits at most `max_lag`; a replica not there by then stops serving.
        Raises psycopg.OperationalError when the primary cannot be asked (the listener then
        reconnects, and settles again before it empties its cache).
        """
        try:
            target = await self._primary_position(_CHANGE_POSITION)
        except psycopg.Error as exc:
            raise psycopg.OperationalError(f"the primary's WAL position: {exc}") from exc
        self.settled = max(self.settled, target)
        deadline = time.monotonic() + self.max_lag
        while True:
            behind = [
                replica
                for replica in self.replicas
                if replica.serving and (replica.replayed is None or replica.replayed < target)
            ]
            if not behind:
                return
            if time.monotonic() > deadline:
                for replica in behind:
                    self._stop_serving(
                        replica, f"did not replay a change within {self.max_lag:g} s"
                    )
                return
            await asyncio.sleep(SETTLE_POLL)
            for replica, answered in zip(
                behind, await asyncio.gather(*(self._look(r) for r in behind)), strict=True
            ):
                if not answered:
                    self._stop_serving(replica, replica.problem or "unknown")
