"""The tile cache on its own: bounded by size (least recently used out first), single-flight."""

from __future__ import annotations

import asyncio

from tiles.cache import TileCache
from tiles.keys import CachedTile, TileKey


def key(x: int) -> TileKey:
    return TileKey(("buildings",), "WebMercatorQuad", 16, x, 0)


def tile(size: int) -> CachedTile:
    return CachedTile(b"x" * size, '"buildings.1"', (("buildings", 1),))


def test_the_least_recently_used_tiles_go_when_the_size_is_reached():
    async def scenario() -> list[bool]:
        cache = TileCache(max_bytes=1000)
        for x in range(3):  # 3 x 400 bytes: the first no longer fits
            await cache.get_or_render(key(x), lambda: _ready(tile(400)))
        first_gone = cache.get(key(0)) is None
        cache.get(key(1))  # used again: now the most recent
        await cache.get_or_render(key(3), lambda: _ready(tile(400)))
        return [
            first_gone,
            cache.get(key(1)) is not None,
            cache.get(key(2)) is None,
            cache.stats.bytes <= 1000,
            cache.stats.entries == 2,
        ]

    assert asyncio.run(scenario()) == [True] * 5


def test_a_tile_larger_than_the_whole_cache_is_served_but_not_kept():
    async def scenario() -> tuple[bytes, CachedTile | None]:
        cache = TileCache(max_bytes=1000)
        served, hit = await cache.get_or_render(key(0), lambda: _ready(tile(5000)))
        assert not hit
        return served.data, cache.get(key(0))

    data, kept = asyncio.run(scenario())
    assert len(data) == 5000 and kept is None


def test_concurrent_misses_for_one_tile_render_it_once():
    renders = 0

    async def render() -> CachedTile:
        nonlocal renders
        renders += 1
        await asyncio.sleep(0.05)  # a query in flight while the others ask
        return tile(100)

    async def scenario() -> list[tuple[CachedTile, bool]]:
        cache = TileCache(max_bytes=10_000)
        answers = await asyncio.gather(*(cache.get_or_render(key(7), render) for _ in range(8)))
        assert (cache.stats.misses, cache.stats.hits) == (1, 7)
        return answers

    answers = asyncio.run(scenario())
    assert renders == 1
    assert sum(not hit for _, hit in answers) == 1
    assert len({id(t) for t, _ in answers}) == 1  # the very same tile for all eight


def test_a_failed_render_fails_every_waiter_and_is_not_kept():
    async def render() -> CachedTile:
        await asyncio.sleep(0.01)
        raise RuntimeError("database gone")

    async def scenario() -> list[BaseException | tuple[CachedTile, bool]]:
        cache = TileCache(max_bytes=10_000)
        answers = await asyncio.gather(
            *(cache.get_or_render(key(9), render) for _ in range(3)), return_exceptions=True
        )
        assert cache.get(key(9)) is None
        return answers

    answers = asyncio.run(scenario())
    assert all(isinstance(a, RuntimeError) for a in answers)


async def _ready(value: CachedTile) -> CachedTile:
    return value
