"""Prometheus metrics (`/metrics`), in the text exposition format."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from geoapi.budgets import Budgets
from geoapi.db_health import DatabaseHealth
from geoapi.metrics import (
    Metrics,
    PoolFigures,
    Scraped,
    SyncFigures,
    exposition,
    pool_figures,
    read_sync_figures,
)
from urbis_core.db import first_line
from urbis_core.errors import Unavailable

router = APIRouter(tags=["Operations"])
log = logging.getLogger(__name__)
PROMETHEUS_TEXT = "text/plain"


def _pool(engine: AsyncEngine, budgets: Budgets) -> PoolFigures:
    return pool_figures(engine.sync_engine.pool, budgets.waiting)


def publish_figures(state: Any) -> None:
    """Copy the process's cache and pool figures for the scrapes other processes answer."""
    metrics: Metrics = state.metrics
    metrics.publish(
        state.tile_cache.stats, _pool(state.engine, state.budgets), state.db_health.reachable
    )


async def _sync_figures(request: Request, budgets: Budgets) -> list[SyncFigures] | None:
    """The sync's figures now; None (and the scrape still answered) when the database is away."""
    try:
        async with budgets.snapshot(request.app.state.engine, "catalog") as conn:
            return await read_sync_figures(conn)
    except (DBAPIError, OSError, Unavailable) as exc:
        log.info("the sync's figures are left out of this scrape: %s", first_line(exc))
        return None


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    description="The process's metrics in Prometheus' text format: request latency per route "
    "template and status, the tile cache, tiles drawn and their time, the database pool, "
    "and the sync's runs, changes and last success per layer (read from the database at "
    "each scrape). With several API processes (urbis serve --workers), whichever answers "
    "gives the figures of all of them, summed.",
    responses={
        200: {
            "description": "The metrics (Prometheus text exposition format)",
            "content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(request: Request) -> Response:
    state = request.app.state
    budgets: Budgets = state.budgets
    health: DatabaseHealth = state.db_health
    figures: Metrics = state.metrics
    sync = await _sync_figures(request, budgets)
    publish_figures(state)
    scraped = Scraped(
        state.tile_cache.stats,
        _pool(state.engine, budgets),
        health.reachable,
        sync,
        per_process=figures.multiprocess_dir is None,
    )
    return Response(
        exposition(figures, scraped),
        media_type=CONTENT_TYPE_LATEST,
        headers={"Cache-Control": "no-store"},
    )
