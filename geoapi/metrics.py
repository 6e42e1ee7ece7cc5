"""The API process's Prometheus metrics: its own registry, made with the app.

Two kinds of figures. What happens in this process (requests and their time, tiles drawn and
their time) is observed as it happens, into `Metrics.registry`. What something else keeps
(the tile cache's counters, the pool, the sync's runs, which another process writes) is read
when Prometheus asks (`scraped`), so that it cannot drift from its source: the sync's figures
come from `urbis_meta.sync_run`, the record every API process and restart agrees on (a
listener of the change notifications would hear only committed changes, not failed or
unchanged runs, and would start again from nothing with each process).

Several API processes (`urbis serve --workers N`, urbis_cli.supervisor; `multiprocess_dir`
set): every process writes its figures into prometheus_client's multiprocess files, and a
scrape, whichever process answers it, reads them all. Requests, tiles drawn, the cache's hits,
misses and drops and the 429s are counted over every process (a dead process's counts stay
in the sums, so they never go back); the gauges are summed over the live processes (the
memory cache's tiles and bytes, the pools' connections, the clients being rate-counted: a
client counted by two processes is counted twice); `urbis_db_reachable` is the least of
them (0 when any process last found the database away); `urbis_api_processes` counts them.
A process copies its own figures into the files every PUBLISH_EVERY seconds and before it
answers a scrape, so the others' may be that old.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncConnection

from tiles.cache import CacheStats
from urbis_core.catalog import sync_run

# Requests: from a cached tile (~1 ms) to a download's or a slow query's end (tens of seconds).
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DRAW_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
UNMATCHED = "unmatched"  # the route of a request no route took: one label, whatever its path
PUBLISH_EVERY = 1.0  # seconds between two copies of a process's figures for the others


class Metrics:
    """What this process observes; one per app, so that two apps in a process never mix.

    With `multiprocess_dir` (several API processes), the figures go to prometheus_client's
    multiprocess files there: a process's own cache and pool figures are copied in by `publish`.
    """

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self._rate_limit_clients: Callable[[], int] = lambda: 0
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_seconds = Histogram(
            "urbis_http_request_duration_seconds",
            "Time from a request's arrival to its answer's last byte, by route template",
            ("method", "route", "status"),
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.draw_seconds = Histogram(
            "urbis_tile_draw_seconds",
            "Time to draw a tile not in the cache, its turn included (count: tiles drawn)",
            ("kind",),
            buckets=DRAW_BUCKETS,
            registry=self.registry,
        )

        self.rate_limited = Counter(
            "urbis_rate_limited",
            "Requests refused with a 429: their client had passed its rate (URBIS_RATE_LIMIT)",
            registry=self.registry,
        )
        self.rate_limit_clients = Gauge(
            "urbis_rate_limit_clients",
            "Clients whose rate is being counted now (at most the limiter's bound)",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        if multiprocess_dir is not None:
            self._process = _ProcessFigures(self.registry)

    def count_rate_limit_clients(self, count: Callable[[], int]) -> None:
        """How many clients the rate limiter counts now, read at each scrape (or publish)."""
        self._rate_limit_clients = count
        if self.multiprocess_dir is None:  # a function's value is not written to the files
            self.rate_limit_clients.set_function(count)

    def publish(self, cache: CacheStats, pool: PoolFigures, reachable: bool) -> None:
        """Copy this process's own figures into the multiprocess files (none: nothing to do)."""
        if self.multiprocess_dir is None:
            return
        self.rate_limit_clients.set(self._rate_limit_clients())
        self._process.publish(cache, pool, reachable)

    def tile_drawn(self, raster: bool, seconds: float) -> None:
        self.draw_seconds.labels("raster" if raster else "vector").observe(seconds)


@dataclass(frozen=True)
class PoolFigures:
    size: int
    in_use: int
    waiting: int  # requests waiting for a connection now


# The figures Scraped reads from a process's memory, as multiprocess families: name, words.
_CACHE_COUNTERS = {
    "hits": ("urbis_tile_cache_hits", "Tiles answered from the cache"),
    "misses": ("urbis_tile_cache_misses", "Tiles not in the cache"),
    "dropped": ("urbis_tile_cache_dropped", "Cached tiles dropped by the sync's changes"),
    "disk_write_errors": (
        "urbis_tile_cache_disk_write_errors",
        "Tiles the disk tier could not keep (a full disk); served all the same",
    ),
}
_LIVE_GAUGES = {
    "cache_bytes": ("urbis_tile_cache_bytes", "Bytes of tiles in the memory cache"),
    "cache_entries": ("urbis_tile_cache_entries", "Tiles in the memory cache"),
    "pool_size": ("urbis_db_pool_size", "Connections the pool may hold"),
    "pool_in_use": ("urbis_db_pool_in_use", "Pooled connections in use now"),
    "pool_waiting": ("urbis_db_pool_waiting", "Requests waiting for a pooled connection now"),
    "processes": ("urbis_api_processes", "API processes serving (urbis serve --workers)"),
}
_REACHABLE = (
    "urbis_db_reachable",
    "1 when the database answered the last request that asked it, else 0",
)


class _ProcessFigures:
    """One process's cache and pool figures, written to the multiprocess files."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counters = {
            field: Counter(name, words, registry=registry)
            for field, (name, words) in _CACHE_COUNTERS.items()
        }
        self.counted = dict.fromkeys(_CACHE_COUNTERS, 0)
        self.gauges = {
            field: Gauge(name, words, registry=registry, multiprocess_mode="livesum")
            for field, (name, words) in _LIVE_GAUGES.items()
        }
        self.reachable = Gauge(*_REACHABLE, registry=registry, multiprocess_mode="livemin")

    def publish(self, cache: CacheStats, pool: PoolFigures, reachable: bool) -> None:
        for field, counter in self.counters.items():
            now = getattr(cache, field)
            counter.inc(max(0, now - self.counted[field]))
            self.counted[field] = max(now, self.counted[field])
        for field, value in (
            ("cache_bytes", cache.bytes),
            ("cache_entries", cache.entries),
            ("pool_size", pool.size),
            ("pool_in_use", pool.in_use),
            ("pool_waiting", pool.waiting),
            ("processes", 1),
        ):
            self.gauges[field].set(value)
        self.reachable.set(int(reachable))


@dataclass(frozen=True)
class SyncFigures:
    layer: str
    status: str
    runs: int
    inserted: int
    updated: int
    deleted: int
    last_success: float | None  # seconds since the epoch


async def read_sync_figures(conn: AsyncConnection) -> list[SyncFigures]:
    """Runs and features changed per layer and outcome: one aggregate over the run table.

    Its cost grows with the runs recorded (one row a run: a scan of them); the caller's
    statement timeout bounds it.
    """
    success = sync_run.c.status == "success"
    rows = await conn.execute(
        sa.select(
            sync_run.c.layer_id,
            sync_run.c.status,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sync_run.c.inserted), 0),
            sa.func.coalesce(sa.func.sum(sync_run.c.updated), 0),
            sa.func.coalesce(sa.func.sum(sync_run.c.deleted), 0),
            sa.func.extract("epoch", sa.func.max(sync_run.c.finished_at).filter(success)),
        ).group_by(sync_run.c.layer_id, sync_run.c.status)
    )
    return [
        SyncFigures(
            layer, status, int(runs), int(ins), int(upd), int(dele), None if t is None else float(t)
        )
        for layer, status, runs, ins, upd, dele, t in rows
    ]


class Scraped(Collector):
    """The figures read for one scrape, as metric families.

    With `per_process` false (several processes), the cache and pool figures are left to the
    multiprocess files, and only the database's figures are given here.
    """

    def __init__(
        self,
        cache: CacheStats,
        pool: PoolFigures,
        database_reachable: bool,
        sync: list[SyncFigures] | None,
        per_process: bool = True,
    ) -> None:
        self.cache, self.pool, self.reachable, self.sync = cache, pool, database_reachable, sync
        self.per_process = per_process

    def collect(self) -> Iterator[Metric]:
        cache, pool = self.cache, self.pool
        gauge = GaugeMetricFamily
        if self.per_process:
            for field, (name, words) in _CACHE_COUNTERS.items():
                yield CounterMetricFamily(name, words, value=getattr(cache, field))
            for name, words, value in (
                (*_LIVE_GAUGES["cache_bytes"], cache.bytes),
                (*_LIVE_GAUGES["cache_entries"], cache.entries),
                (*_LIVE_GAUGES["pool_size"], pool.size),
                (*_LIVE_GAUGES["pool_in_use"], pool.in_use),
                (*_LIVE_GAUGES["pool_waiting"], pool.waiting),
                (*_REACHABLE, int(self.reachable)),
            ):
                yield gauge(name, words, value=value)
        yield gauge(
            "urbis_sync_figures_up",
            "1 when the sync's figures below could be read from the database for this scrape",
            value=int(self.sync is not None),
        )
        if self.sync is None:
            return
        runs = CounterMetricFamily(
            "urbis_sync_runs",
            "Sync runs recorded, by layer and outcome",
            labels=("layer", "status"),
        )
        changed = CounterMetricFamily(
            "urbis_sync_features_changed",
            "Features the sync's runs inserted, updated or deleted, by layer",
            labels=("layer", "change"),
        )
        last = GaugeMetricFamily(
            "urbis_sync_last_success_timestamp_seconds",
            "When the layer's last successful sync run ended (Unix time)",
            labels=("layer",),
        )
        totals: dict[tuple[str, str], int] = {}
        for figures in self.sync:
            runs.add_metric((figures.layer, figures.status), figures.runs)
            for change in ("inserted", "updated", "deleted"):
                key = (figures.layer, change)
                totals[key] = totals.get(key, 0) + getattr(figures, change)
            if figures.last_success is not None:
                last.add_metric((figures.layer,), figures.last_success)
        for (layer, change), count in sorted(totals.items()):
            changed.add_metric((layer, change), count)
        yield from (runs, changed, last)


def pool_figures(pool: object, waiting: int) -> PoolFigures:
    """The figures of a SQLAlchemy pool (a pool without a size reads as 0)."""
    size = getattr(pool, "size", lambda: 0)()
    in_use = getattr(pool, "checkedout", lambda: 0)()
    return PoolFigures(size=size, in_use=in_use, waiting=waiting)


def exposition(metrics: Metrics, scraped: Scraped) -> bytes:
    """The text format of the process's registry (or every process's files), then the scrape's."""
    now = CollectorRegistry(auto_describe=False)
    now.register(scraped)
    if metrics.multiprocess_dir is None:
        return generate_latest(metrics.registry) + generate_latest(now)
    every = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(every, path=str(metrics.multiprocess_dir))
    return generate_latest(every) + generate_latest(now)
