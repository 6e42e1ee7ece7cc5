"""Following the sync's changes: LISTEN urbis_layer_changed, drop the tiles each one touches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from tiles.cache import TileCache
from urbis_core.changes import CHANNEL, LayerChanged, changes_since, layer_versions
from urbis_core.db import first_line

log = logging.getLogger(__name__)
MAX_RETRY_DELAY = 30.0
APPLICATION_NAME = "urbis-tiles"  # the listener's session in pg_stat_activity
# Awaited before tiles are dropped: with read replicas, until they show the change
# (geoapi.read_replicas.ReadEngines.settle), else a tile drawn from one would be the old one.
Settle = Callable[[], Awaitable[None]]


async def _connect(database_url: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, fallback_application_name=APPLICATION_NAME
    )


async def reconcile_disk(conn: psycopg.AsyncConnection[Any], cache: TileCache) -> None:
    """Drop the disk tiles that changes made while nobody listened have touched.

    The change log gives each change's bbox since the versions the disk tiles record.
    """
    disk = cache.disk
    if disk is None:
        return
    recorded = disk.versions()
    current = await layer_versions(conn)
    for layer, version in recorded.items():
        now = current.get(layer)
        if now == version:
            continue
        changes = await changes_since(conn, layer, version)
        if now is None or any(bbox is None for bbox in changes):
            disk.drop(layer, None)  # the layer is gone, or a change has no bbox: all of it
        else:
            for bbox in changes:
                disk.drop(layer, bbox)
        log.info(
            "layer %s went from version %s to %s while the API was away: %d changes "
            "dropped from the disk tile cache",
            layer,
            version,
            now,
            len(changes),
        )
    disk.record_versions({layer: current[layer] for layer in recorded if layer in current})


async def reconcile_at_start(database_url: str, cache: TileCache) -> None:
    """Before the API answers: the disk tier's tiles that changes made meanwhile touched go.

    When the database cannot tell what changed, the disk tier is emptied rather than trusted.
    """
    if cache.disk is None:
        return
    try:
        async with await _connect(database_url) as conn:
            await reconcile_disk(conn, cache)
    except (psycopg.Error, OSError) as exc:
        log.warning("cannot compare the disk tile cache with the change log (%s): emptied", exc)
        cache.disk.clear()


async def follow_changes(
    database_url: str,
    cache: TileCache,
    after: Callable[[], None] | None = None,
    settle: Settle | None = None,
    retry_now: asyncio.Event | None = None,
) -> None:
    """Runs for the app's life (cancelled at shutdown); reconnects after database outages.

    The cache is emptied each time listening (re)starts: a change may have been missed while
    nobody listened. While the database is away it is kept, and its tiles served: nothing can
    change them meanwhile. Once it is back, a sync may change a layer before the listener
    hears of it: `retry_now`, set when a request finds the database again, cuts the backoff
    short so that window lasts a moment, not up to MAX_RETRY_DELAY. `settle`, when given, is
    awaited before any tile is dropped. `after` is called once listening and after each change
    applied. An outage is logged when it starts and when it ends, not at each attempt.
    """
    delay = 1.0
    failing_since: float | None = None
    while True:
        try:
            async with await _connect(database_url) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                if retry_now is not None:
                    retry_now.clear()
                if settle is not None:
                    await settle()
                cache.clear()
                await reconcile_disk(conn, cache)
                if after is not None:
                    after()
                if failing_since is not None:
                    log.warning(
                        "tile cache follows changes again, after %.0f s; emptied",
                        time.monotonic() - failing_since,
                    )
                    failing_since = None
                delay = 1.0
                async for note in conn.notifies():
                    if settle is not None:
                        await settle()
                    try:
                        change = LayerChanged.parse(note.payload)
                    except ValueError:
                        log.warning(
                            "unreadable change notification %r: emptying the tile cache",
                            note.payload,
                        )
                        cache.clear()
                        continue
                    dropped = cache.invalidate(change.layer, change.bbox, change.version)
                    log.info("layer %s changed: %d cached tiles dropped", change.layer, dropped)
                    if after is not None:
                        after()
        except (psycopg.OperationalError, OSError) as exc:
            if failing_since is None:
                failing_since = time.monotonic()
                log.warning(
                    "tile cache cannot follow changes (%s); serving the cached tiles and retrying",
                    first_line(exc),
                )
            await _pause(delay, retry_now)
            delay = min(delay * 2, MAX_RETRY_DELAY)


async def _pause(seconds: float, retry_now: asyncio.Event | None) -> None:
    """Wait `seconds`, or less if `retry_now` is set meanwhile (or already).

    A set is used once (cleared here): one attempt at once, then the backoff again.
    """
    if retry_now is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await retry_now.wait()
    retry_now.clear()
