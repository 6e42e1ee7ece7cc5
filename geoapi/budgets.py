"""What one request may spend: its turn among requests of its kind, a connection, a timeout.

Each kind of database work (`QUERY_KINDS`: catalog reads, items, spatial queries, stats,
geocoding, tiles) has a statement timeout, so that no query runs on after it stopped being
worth waiting for, and, but for the catalog's small reads, a bound on how many run at once. All
bounded kinds together hold at most the pool's size less two connections, which stay for the
cheap requests (the landing page, a collection's description, the health check): they keep
answering while expensive requests queue. A request that cannot get its turn, or a
connection, within `queue_timeout` is told to come back (503 with Retry-After) rather than left
waiting without end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from geoapi import request_ids
from geoapi.db_health import DatabaseHealth
from urbis_core.catalog import CATALOG_STAMPS_SQL, SNAPSHOT_CATALOG, CatalogMemo
from urbis_core.db import first_line
from urbis_core.errors import Unavailable
from urbis_core.settings import ApiSettings

# For this transaction only (set_config's `true`): its statement timeout, and the request it
# works for in `application_name`, so that pg_stat_activity and the server's log (`%a` in
# log_line_prefix) tie a slow statement to the request's id in the API's log. The name, not a
# comment in each statement: it reaches every statement of the request, the ones SQLAlchemy
# and psycopg compose as well, costs one round trip per checkout rather than per statement, and
# leaves the statements' text, and so psycopg's prepared statements, the same for every request.
# Both end with the transaction, before the pool hands the connection to another request.
# The same statement notes each catalog row's stamp in this snapshot (urbis_core.catalog's
# CatalogMemo), so that the request's layer entries need no statement of their own.
_SESSION_FOR_REQUEST = text(
    "SELECT set_config('statement_timeout', :t, true), set_config('application_name', :name, "
    f"true), {CATALOG_STAMPS_SQL} AS stamps"
)
API_APPLICATION_NAME = "urbis-api"  # how the API's sessions show in pg_stat_activity
RESERVED_CONNECTIONS = 2  # left to the catalog's cheap reads whatever else is running
DEFAULT_KIND = "catalog"  # its timeout is each pooled session's own, set when it connects
BUSY_RETRY_AFTER = 2
OUTAGE_RETRY_AFTER = 5  # as geoapi.errors answers a refused connection


@contextlib.asynccontextmanager
async def queued(
    places: tuple[asyncio.Semaphore, ...], timeout: float, busy: str
) -> AsyncIterator[None]:
    """Hold a place in each of `places`, taken within `timeout` seconds, else a 503.

    `busy` says what is full, for the answer: "… none freed its place within 5 s".
    """
    async with contextlib.AsyncExitStack() as held:
        try:
            async with asyncio.timeout(timeout):
                for place in places:
                    await held.enter_async_context(place)
        except TimeoutError:
            raise Unavailable(
                f"{busy}; none freed its place within {timeout:g} s. Try again shortly",
                BUSY_RETRY_AFTER,
            ) from None
        yield


class Budgets:
    def __init__(
        self,
        settings: ApiSettings,
        health: DatabaseHealth,
        application_name: str = API_APPLICATION_NAME,
    ) -> None:
        self.health = health
        self.application_name = application_name  # the pool's sessions' own
        self.waiting = 0  # requests waiting for a pooled connection now (for /metrics)
        self.timeouts = dict(settings.statement_timeouts)
        self.queue_timeout = settings.queue_timeout
        self._gates = {kind: asyncio.Semaphore(n) for kind, n in settings.concurrency.items()}
        self._expensive = asyncio.Semaphore(max(1, settings.pool_size - RESERVED_CONNECTIONS))
        self.catalog = CatalogMemo()  # the layer entries of this process's snapshots

    @contextlib.asynccontextmanager
    async def turn(self, kind: str) -> AsyncIterator[None]:
        """Wait (at most `queue_timeout`) until a request of `kind` may run."""
        gate = self._gates.get(kind)
        if gate is None:
            yield
            return
        async with queued(
            (gate, self._expensive), self.queue_timeout, f"too many {kind} requests are running"
        ):
            yield

    @contextlib.asynccontextmanager
    async def snapshot(
        self, engine: AsyncEngine, kind: str, timeout: float | None = None
    ) -> AsyncIterator[AsyncConnection]:
        """A pooled connection in one REPEATABLE READ transaction, under `kind`'s timeout.

        `timeout` (seconds) replaces it for work no request waits for (tiles drawn ahead).
        """
        seconds = self.timeouts[kind] if timeout is None else timeout
        session = {
            "t": f"{round(seconds * 1000)}ms",
            "name": request_ids.application_name(self.application_name, request_ids.current.get()),
        }
        self.waiting += 1
        try:
            conn = await self._begin(engine, session)
        except TimeoutError:
            reason = f"no answer within {2 * self.queue_timeout:g} s"
            self.health.failed(reason)
            raise Unavailable(
                f"the database is not reachable right now ({reason}); try again shortly",
                OUTAGE_RETRY_AFTER,
            ) from None
        except PoolTimeout:
            raise Unavailable(
                f"every database connection is in use; none came free within "
                f"{self.queue_timeout:g} s. Try again shortly",
                BUSY_RETRY_AFTER,
            ) from None
        except OperationalError as exc:
            self.health.failed(first_line(exc))
            raise
        finally:
            self.waiting -= 1
        self.health.answered()
        try:
            yield conn
        finally:
            conn.info.pop(SNAPSHOT_CATALOG, None)  # `info` stays with the pooled connection
            await self._end(conn)

    async def _begin(self, engine: AsyncEngine, session: dict[str, str]) -> AsyncConnection:
        """A pooled connection, its snapshot begun by the statement that sets its session.

        The pool does not ping a connection before handing it out (a round trip per
        request): one the database closed meanwhile (a restart) fails that first statement
        instead, which SQLAlchemy takes for a disconnect: it drops every pooled connection made
        before, and the snapshot is begun again on a new one, once.
        """
        try:
            return await self._opened(engine, session)
        except OperationalError as exc:
            if not exc.connection_invalidated:
                raise
        return await self._opened(engine, session)

    async def _opened(self, engine: AsyncEngine, session: dict[str, str]) -> AsyncConnection:
        conn = engine.connect()
        await self._bounded(conn, self._open(conn, session))
        return conn

    async def _open(self, conn: AsyncConnection, session: dict[str, str]) -> None:
        await conn.start()
        # One snapshot per request: the catalog row and the layer rows agree.
        await conn.execution_options(isolation_level="REPEATABLE READ")
        await conn.begin()
        started = await conn.execute(_SESSION_FOR_REQUEST, session)
        conn.info[SNAPSHOT_CATALOG] = (self.catalog, started.one().stamps or {})

    async def _bounded(self, conn: AsyncConnection, opening: Coroutine[Any, Any, None]) -> None:
        """Check a connection out and begin its snapshot (`opening`), within a bound.

        A database that stopped answering without closing its sockets (frozen, a host gone
        from the network) would hold the checkout or the first statement for as long as TCP
        keeps trying: past twice the queue's wait (so that a pool only busy says so itself
        first, PoolTimeout) it is an outage, TimeoutError. The opening is left to end in the
        background: cancelled, psycopg asks the server to cancel too, and that waits on the
        same silent server.
        """
        starting = asyncio.ensure_future(opening)
        try:
            done, _ = await asyncio.wait({starting}, timeout=2 * self.queue_timeout)
        except BaseException:  # the request itself was cancelled (its client left)
            _give_up(starting, conn)
            raise
        if not done:
            _give_up(starting, conn)
            raise TimeoutError
        try:
            starting.result()
        except BaseException:
            await _quietly_close(conn)  # its snapshot did not begin: nothing to roll back
            raise

    async def _end(self, conn: AsyncConnection) -> None:
        """Roll back (the API only reads) and give the connection back to the pool.

        By then the answer may be on its way: a database gone meanwhile must not turn it into
        an error. The connection is then dropped from the pool, and the outage noted.
        """
        try:
            await conn.rollback()
        except DBAPIError as exc:
            self.health.failed(first_line(exc))
        finally:
            await conn.close()


def _give_up(opening: asyncio.Future[None], conn: AsyncConnection) -> None:
    """Stop waiting for an opening; once it ends, its connection goes back (or is dropped).

    Its outcome is taken then, so that asyncio does not log it as lost.
    """
    opening.cancel()

    def give_back(task: asyncio.Future[None]) -> None:
        if not task.cancelled():
            task.exception()
        _closing.add(closing := asyncio.ensure_future(_quietly_close(conn)))
        closing.add_done_callback(_closing.discard)

    opening.add_done_callback(give_back)


async def _quietly_close(conn: AsyncConnection) -> None:
    """Give a connection back (or drop it) whatever state it is in; nothing to answer for."""
    with contextlib.suppress(Exception):
        await conn.close()


_closing: set[asyncio.Future[None]] = set()  # held until done: a task only weakly held may vanish
