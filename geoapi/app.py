"""The FastAPI application: `create_app(settings)`; the lifespan owns the database pool."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from geoapi import area_of_use
from geoapi.admin_auth import AdminEdge
from geoapi.admin_sync import SyncRuns
from geoapi.budgets import API_APPLICATION_NAME, DEFAULT_KIND, Budgets
from geoapi.compression import Compress
from geoapi.counting import MatchCounts
from geoapi.coverage_entries import CoverageEntries
from geoapi.cql2 import parse_filter
from geoapi.crs import SUPPORTED
from geoapi.db_health import DatabaseHealth
from geoapi.disconnect import CancelOnDisconnect
from geoapi.errors import install_error_handlers
from geoapi.jobs import JobRunner
from geoapi.metrics import PUBLISH_EVERY, Metrics
from geoapi.observing import ObserveRequests
from geoapi.offload import Workers
from geoapi.openapi import ApiDefinition
from geoapi.public_url import PublicUrl, VaryMiddleware, parse_networks, parse_public_url
from geoapi.rate_limit import RateLimits
from geoapi.read_replicas import CONNECT_TIMEOUT, ReadEngines
from geoapi.request_limits import RequestLimits
from geoapi.routes import (
    admin,
    archives,
    collections,
    coverage_jobs,
    coverage_tiles,
    coverages,
    geocode,
    landing,
    map_page,
    metrics,
    schemas,
    spatial,
    styles,
    tiles,
)
from geoapi.routes.docs import SWAGGER_STATIC, docs_router
from geoapi.routes.metrics import publish_figures
from geoapi.sibling_purges import SiblingPurges
from geoapi.street_index import StreetIndexes
from tiles.archive import open_archive
from tiles.cache import TileCache
from tiles.disk import DiskTier
from tiles.listener import follow_changes, reconcile_at_start
from tiles.lowzoom import DRAWING_AHEAD_TIMEOUT, LowZoomKeeper
from tiles.mvt import DrawingMemory
from tiles.raster_datasets import RasterDatasets
from urbis_core.catalog import STORAGE_SRID
from urbis_core.changes import is_coverage
from urbis_core.db import session_options, sqlalchemy_url
from urbis_core.errors import ConfigError
from urbis_core.settings import ApiSettings


def _warm_up() -> None:
    """What takes hundreds of milliseconds the first time: pyproj's database, CQL2 grammars."""
    area_of_use.warm(STORAGE_SRID, {crs.srid for crs in SUPPORTED.values()})
    parse_filter("1 = 1", "cql2-text")
    parse_filter('{"op": "=", "args": [1, 1]}', "cql2-json")


async def _publish_now_and_then(app: FastAPI) -> None:
    """With several API processes: this one's figures, for the scrapes the others answer."""
    while True:
        publish_figures(app.state)
        await asyncio.sleep(PUBLISH_EVERY)


def create_app(settings: ApiSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        budgets = Budgets(settings, app.state.db_health, API_APPLICATION_NAME)

        def pool(url: str) -> AsyncEngine:
            """The primary's pool, and each read replica's alike."""
            return create_async_engine(
                sqlalchemy_url(url),
                pool_size=settings.pool_size,
                max_overflow=0,
                pool_timeout=settings.queue_timeout,
                # No ping at checkout: geoapi.budgets finds a closed connection by its first
                # statement, and begins again on a new one.
                pool_pre_ping=False,
                # Plan each statement for its values: psycopg prepares repeated statements,
                # and a generic plan cannot see a LIKE prefix (so no index for it) nor a
                # filter's share.
                connect_args={
                    "options": session_options(
                        budgets.timeouts[DEFAULT_KIND],
                        settings.idle_in_transaction_timeout,
                        API_APPLICATION_NAME,
                        plan_cache_mode="force_custom_plan",
                    ),
                    "connect_timeout": CONNECT_TIMEOUT,
                },
            )

        # The primary's pool: the readiness check, the metrics, the admin API; and the reads
        # too, without replicas or when none may serve (geoapi.read_replicas).
        app.state.engine = engine = pool(settings.database_url)
        app.state.reads = reads = ReadEngines(
            engine,
            settings.database_url,
            settings.read_database_urls,
            pool,
            budgets,
            settings.read_max_lag,
            settings.read_check_interval,
        )
        await reads.start()
        app.state.settings = settings
        app.state.budgets = budgets
        app.state.workers = Workers(
            settings.cpu_threads, settings.cpu_processes, settings.queue_timeout
        )
        disk = DiskTier(settings.tile_cache_dir) if settings.tile_cache_dir else None
        observed: Metrics = app.state.metrics
        app.state.tile_cache = TileCache(
            settings.tile_cache_mb * 1024 * 1024,
            disk,
            lambda key, seconds: observed.tile_drawn(is_coverage(key.collections[0]), seconds),
        )
        app.state.raster_datasets = RasterDatasets()
        app.state.coverage_entries = entries = CoverageEntries()
        await reconcile_at_start(settings.database_url, app.state.tile_cache)
        missing = [str(p) for p in settings.tile_archives if not p.is_file()]
        if missing:
            raise ConfigError(f"URBIS_TILE_ARCHIVES: no such file: {', '.join(missing)}")
        app.state.tile_archives = {path.stem: open_archive(path) for path in settings.tile_archives}
        # in a thread, as the API starts, rather than on the loop in the first query's way
        warming = asyncio.create_task(anyio.to_thread.run_sync(_warm_up))
        # What drawing tiles learns (compiled statements, bytes per feature), for the API's life.
        app.state.drawing_memory = DrawingMemory()
        keeper = LowZoomKeeper(
            functools.partial(reads.snapshot, "tiles", DRAWING_AHEAD_TIMEOUT),
            app.state.drawing_memory,
            app.state.tile_cache,
            settings.tile_warm_zoom,
        )
        app.state.low_zoom_keeper = keeper

        def after_changes() -> None:
            keeper.poke()
            entries.forget()  # a coverage's row may have changed with it

        listener = asyncio.create_task(
            follow_changes(
                settings.database_url,
                app.state.tile_cache,
                after_changes,
                reads.settle if reads.replicas else None,
                app.state.db_health.back,
            )
        )
        app.state.jobs = jobs = JobRunner(
            settings.job_dir, settings.job_workers, settings.job_queue, settings.job_ttl
        )
        await jobs.start()
        siblings = settings.siblings_dir
        app.state.sibling_purges = purges = SiblingPurges(
            siblings / "purges" if siblings else None, app.state.tile_cache
        )
        # With several API processes: this one's figures for the others' scrapes, and the
        # purges they were asked for.
        helpers = (
            [
                asyncio.create_task(_publish_now_and_then(app)),
                asyncio.create_task(purges.follow()),
            ]
            if siblings
            else []
        )
        sync_runs = app.state.sync_runs = SyncRuns(settings.admin) if settings.admin else None
        try:
            yield
        finally:
            await jobs.close()  # first: its processes end with the app, none left behind
            if sync_runs is not None:
                await sync_runs.close()
            for archive in app.state.tile_archives.values():
                archive.close()
            await keeper.stop()
            listener.cancel()
            warming.cancel()
            for helper in helpers:
                helper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await reads.close()
            await engine.dispose()
            app.state.workers.close()
            app.state.raster_datasets.close()

    app = FastAPI(
        title="URBIS GeoService",
        description="OGC API Features over the Brussels URBIS layers kept in PostGIS. "
        "Data: Brussels UrbIS®© - Distribution & Copyright CIRB / Paradigm.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served as OpenAPI 3.0 by geoapi.routes.docs
        # operationId: the route's own name (`lookup`, `items`), which generated clients call
        # their functions, rather than FastAPI's name + path + method (`lookup_lookup_get`).
        generate_unique_id_function=lambda route: route.name,
    )
    install_error_handlers(app)
    # this app's own registry (two apps in a process never mix), or every sibling's files
    siblings = settings.siblings_dir
    app.state.metrics = Metrics(siblings / "metrics" if siblings else None)
    app.state.db_health = DatabaseHealth()
    app.state.public_url = PublicUrl(
        parse_public_url(settings.public_url, "URBIS_PUBLIC_URL") if settings.public_url else None,
        parse_networks(settings.trusted_proxies, "URBIS_TRUSTED_PROXIES"),
    )
    app.state.api_definition = ApiDefinition(app)
    # Innermost of the three, so that its refusals carry Vary and CORS headers as well.
    app.add_middleware(RequestLimits, limits=settings.limits)
    app.add_middleware(VaryMiddleware)
    app.add_middleware(CancelOnDisconnect)
    # Before any route's work; inside CORS, so that a page's script can read its 429.
    app.add_middleware(
        RateLimits,
        limit=settings.rate_limit,
        trusted_proxies=app.state.public_url.trusted_proxies,
        metrics=app.state.metrics,
    )
    app.add_middleware(Compress, settings=settings.compression)
    # Web apps on other origins embed tiles and call the API from the browser.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "DELETE", "HEAD", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=[
            "ETag",
            "Content-Crs",
            "Link",
            "X-Tile-Cache",
            "X-Request-Id",
            "Retry-After",
            "RateLimit-Limit",
            "RateLimit-Remaining",
            "RateLimit-Reset",
        ],
    )
    # Outside CORS: it refuses /admin's preflights before CORS could allow them.
    app.add_middleware(AdminEdge)
    # Outermost: it times the whole answer and gives every one, refusals too, the request id.
    app.add_middleware(ObserveRequests, metrics=app.state.metrics)
    for routes in (
        landing,
        collections,
        schemas,
        spatial,
        geocode,
        tiles,
        styles,
        map_page,
        metrics,
        archives,
        coverages,
        coverage_tiles,
        coverage_jobs,
    ):
        app.include_router(routes.router)
    if settings.admin is not None:  # without a token, no admin API at all (404s)
        app.include_router(admin.router)
    app.state.street_indexes = StreetIndexes()
    app.state.match_counts = MatchCounts()
    swagger_dir = settings.node_modules / "swagger-ui-dist"
    app.include_router(docs_router(swagger_dir.is_dir()))
    if swagger_dir.is_dir():
        app.mount(SWAGGER_STATIC, StaticFiles(directory=swagger_dir), name="swagger-ui")
    # Front-end from npm (MapLibre, proj4) and the map page's own scripts and styles.
    for path, folder, name in (
        (map_page.MAPLIBRE_STATIC, settings.node_modules / "maplibre-gl" / "dist", "maplibre"),
        (map_page.PROJ4_STATIC, settings.node_modules / "proj4" / "dist", "proj4"),
        (map_page.MAP_STATIC, map_page.MAP_FILES, "map"),
    ):
        if folder.is_dir():
            app.mount(path, StaticFiles(directory=folder), name=name)
    return app
