"""The API process's Prometheus metrics: its own registry, made with the app.

Two kinds of figures. What happens in this process (requests and their time, tiles drawn and
their time) is observed as it happens, into `Metrics.registry`. What something else keeps
(the tile cache's counters, the pool, the sync's runs, which another process writes) is read
when Prometheus asks (`scraped`), so that it cannot drift from its source: the sync's figures
come from `urbis_meta.sync_run`, the record every API process and restart agrees on (a
listener of the change notifications would hear only committed changes, not failed or
unchanged runs, and would start again from nothing with each process).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncConnection

from tiles.cache import CacheStats
from urbis_core.catalog import sync_run

# Requests: from a cached tile (~1 ms) to a download's or a slow query's end (tens of seconds).
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DRAW_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
UNMATCHED = "unmatched"  # the route of a request no route took: one label, whatever its path


class Metrics:
    """What this process observes; one per app, so that two apps in a process never mix."""

    def __init__(self) -> None:
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
        )

    def tile_drawn(self, raster: bool, seconds: float) -> None:
        self.draw_seconds.labels("raster" if raster else "vector").observe(seconds)


@dataclass(frozen=True)
class PoolFigures:
    size: int
    in_use: int
    waiting: int  # requests waiting for a connection now


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
    """The figures read for one scrape, as metric families."""

    def __init__(
        self,
        cache: CacheStats,
        pool: PoolFigures,
        database_reachable: bool,
        sync: list[SyncFigures] | None,
    ) -> None:
        self.cache, self.pool, self.reachable, self.sync = cache, pool, database_reachable, sync

    def collect(self) -> Iterator[Metric]:
        cache, pool = self.cache, self.pool
        counter, gauge = CounterMetricFamily, GaugeMetricFamily
        for family, name, words, value in (
            (counter, "urbis_tile_cache_hits", "Tiles answered from the cache", cache.hits),
            (counter, "urbis_tile_cache_misses", "Tiles not in the cache", cache.misses),
            (
                counter,
                "urbis_tile_cache_dropped",
                "Cached tiles dropped by the sync's changes",
                cache.dropped,
            ),
            (
                counter,
                "urbis_tile_cache_disk_write_errors",
                "Tiles the disk tier could not keep (a full disk); served all the same",
                cache.disk_write_errors,
            ),
            (gauge, "urbis_tile_cache_bytes", "Bytes of tiles in the memory cache", cache.bytes),
            (gauge, "urbis_tile_cache_entries", "Tiles in the memory cache", cache.entries),
            (gauge, "urbis_db_pool_size", "Connections the pool may hold", pool.size),
            (gauge, "urbis_db_pool_in_use", "Pooled connections in use now", pool.in_use),
            (
                gauge,
                "urbis_db_pool_waiting",
                "Requests waiting for a pooled connection now",
                pool.waiting,
            ),
            (
                gauge,
                "urbis_db_reachable",
                "1 when the database answered the last request that asked it, else 0",
                int(self.reachable),
            ),
            (
                gauge,
                "urbis_sync_figures_up",
                "1 when the sync's figures below could be read from the database for this scrape",
                int(self.sync is not None),
            ),
        ):
            yield family(name, words, value=value)
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


def exposition(metrics: Metrics, scraped: Scraped) -> bytes:
    """The text format of both: the process's registry and this scrape's figures."""
    now = CollectorRegistry(auto_describe=False)
    now.register(scraped)
    return generate_latest(metrics.registry) + generate_latest(now)
