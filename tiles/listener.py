"""Following the sync's changes: LISTEN urbis_layer_changed, drop the tiles each one touches."""

from __future__ import annotations

import asyncio
import json
import logging

import psycopg

from tiles.cache import TileCache

log = logging.getLogger(__name__)
CHANNEL = "urbis_layer_changed"  # urbis_sync.run.NOTIFY_CHANNEL
MAX_RETRY_DELAY = 30.0


def parse_change(payload: str) -> tuple[str, tuple[float, float, float, float] | None]:
    """(layer, bbox in EPSG:31370 or None for 'anywhere') from a notification's payload."""
    change = json.loads(payload)
    bbox = change.get("bbox")
    return str(change["layer"]), (tuple(float(v) for v in bbox)  # type: ignore[return-value]
                                  if bbox else None)


async def follow_changes(database_url: str, cache: TileCache) -> None:
    """Runs for the app's life (cancelled at shutdown); reconnects after database outages.

    The cache is emptied each time listening (re)starts: a change may have been missed while
    nobody listened.
    """
    delay = 1.0
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(database_url,
                                                             autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                cache.clear()
                delay = 1.0
                async for note in conn.notifies():
                    try:
                        layer, bbox = parse_change(note.payload)
                    except (ValueError, KeyError, TypeError):
                        log.warning("unreadable change notification %r: emptying the tile "
                                    "cache", note.payload)
                        cache.clear()
                        continue
                    dropped = cache.invalidate(layer, bbox)
                    log.info("layer %s changed: %d cached tiles dropped", layer, dropped)
        except (psycopg.OperationalError, OSError) as exc:
            log.warning("tile cache cannot follow changes (%s); retrying in %.0f s", exc,
                        delay)
            cache.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)
