"""The admin API: start and watch sync runs, purge cached tiles, the layers' status.

Offered only when URBIS_ADMIN_TOKEN is set (geoapi.app includes this router then), each
operation behind `Authorization: Bearer <token>` (geoapi.admin_auth). A run is started in a
process of its own with the writer's URL (geoapi.admin_sync); everything else only reads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pyproj import Transformer

from geoapi.admin_auth import require_token
from geoapi.admin_runs import (
    newest_run_id,
    read_run,
    read_runs,
    run_after,
    run_doc,
    syncing,
)
from geoapi.admin_sync import SyncRuns
from geoapi.area_of_use import bbox_shape, clip
from geoapi.budgets import Budgets
from geoapi.crs import parse_crs
from geoapi.deps import ConnDep, base_url
from geoapi.links import link
from geoapi.params import reject_unknown
from geoapi.responses.admin import Purged, Run, Runs, Status
from geoapi.responses.documented import accepted, answers, errors, started
from geoapi.sibling_purges import SiblingPurges
from tiles.cache import TileCache
from urbis_core.bbox import parse_bbox
from urbis_core.catalog import STORAGE_SRID, list_layers
from urbis_core.changes import coverage_layer
from urbis_core.config import ServiceConfig, load_config
from urbis_core.coverages import list_coverages
from urbis_core.errors import InvalidParameter, NotFound
from urbis_core.settings import AdminSettings, ApiSettings
from urbis_sync.schedule import statuses_on

router = APIRouter(prefix="/admin", tags=["Admin"], dependencies=[Depends(require_token)])

AUTH_ERRORS = (400, 401)  # every admin operation: a bad parameter, no or a wrong token
MAX_RUNS = 100
MAX_RUN_ID = 2**63 - 1  # a bigint: past it, PostgreSQL would refuse the value (a 500)

LayerId = Annotated[str, PathParam(description="A layer id of the configuration")]
RunId = Annotated[
    int, PathParam(ge=1, le=MAX_RUN_ID, description="A run's id, as /admin/runs lists them")
]


def _admin(request: Request) -> AdminSettings:
    admin: AdminSettings = request.app.state.settings.admin
    return admin


async def _config(request: Request) -> ServiceConfig:
    """The layer configuration as it is now (a run reads the file anew, so this does too)."""
    return await anyio.to_thread.run_sync(load_config, _admin(request).config)


@router.post(
    "/sync/{layer_id}",
    summary="Start a sync run of a layer now",
    status_code=202,
    responses={
        **accepted(
            Run,
            "The run started; `Location` names it. Poll it until its status is success or failed",
            "The run",
        ),
        **errors(*AUTH_ERRORS, 404, 409),
    },
    description=(
        "Runs `urbis sync --once --layer <id>` in a process of its own, with the sync's "
        "database URL (DATABASE_URL), and answers 202 as soon as the run's row exists, with "
        "the run. A 409 when a run of that layer is going (started here, by the continuous "
        "sync or by anyone), a 404 for a layer the configuration does not hold."
    ),
)
async def start_sync(layer_id: LayerId, request: Request) -> JSONResponse:
    reject_unknown(request.query_params.keys(), set())
    config = await _config(request)
    if layer_id not in config.all_ids():
        raise NotFound(
            f"no layer '{layer_id}' in {config.path.name}; its layers are: "
            f"{', '.join(config.all_ids()) or 'none'}"
        )
    budgets: Budgets = request.app.state.budgets
    engine = request.app.state.engine

    async def newest_if_idle() -> int | None:
        async with budgets.snapshot(engine, "catalog") as conn:
            if await syncing(conn, layer_id):
                return None
            return await newest_run_id(conn, layer_id)

    async def find_run(after: int) -> int | None:
        async with budgets.snapshot(engine, "catalog") as conn:
            return await run_after(conn, layer_id, after)

    runs: SyncRuns = request.app.state.sync_runs
    run_id = await runs.start(layer_id, newest_if_idle, find_run)
    async with budgets.snapshot(engine, "catalog") as conn:
        row = await read_run(conn, run_id)
    base = base_url(request)
    return started(run_doc(row, base), f"{base}/admin/runs/{run_id}")


@router.get(
    "/runs",
    summary="Recent sync runs, newest first",
    responses=answers(Runs, errors_=AUTH_ERRORS),
    description=(
        "Every run of every layer (or of `layer`), newest first, `limit` at a time; the "
        "`next` link gives older ones (`before`: the oldest run id of this page)."
    ),
)
async def runs(
    request: Request,
    conn: ConnDep,
    limit: Annotated[int, Query(ge=1, le=MAX_RUNS, description="Runs per page")] = 20,
    before: Annotated[
        int | None,
        Query(ge=1, le=MAX_RUN_ID, description="Only runs older than this run id (paging)"),
    ] = None,
    layer: Annotated[str | None, Query(description="Only this layer's runs")] = None,
) -> dict[str, Any]:
    reject_unknown(request.query_params.keys(), {"limit", "before", "layer"})
    rows = await read_runs(conn, limit, before, layer)
    base = base_url(request)
    query = f"limit={limit}" + (f"&layer={layer}" if layer else "")
    links = [link("self", f"{base}/admin/runs?{query}" + (f"&before={before}" if before else ""))]
    if len(rows) == limit:
        links.append(link("next", f"{base}/admin/runs?{query}&before={rows[-1].id}"))
    return {"runs": [run_doc(row, base) for row in rows], "links": links}


@router.get(
    "/runs/{run_id}",
    summary="One sync run: its status, counts and error",
    responses=answers(Run, errors_=(*AUTH_ERRORS, 404)),
)
async def run(run_id: RunId, request: Request, conn: ConnDep) -> dict[str, Any]:
    reject_unknown(request.query_params.keys(), set())
    return run_doc(await read_run(conn, run_id), base_url(request))


@router.get(
    "/status",
    summary="Each layer's status, as `urbis status` shows it",
    responses=answers(Status, errors_=AUTH_ERRORS),
    description=(
        "Per configured layer: version, features, last success, last failure and why, "
        "failures in a row, quarantined features, whether a run is going, the next run of "
        "the continuous sync (`urbis status --json` prints the same objects); and `limits`, "
        "what one request or client may cost as the service is set now."
    ),
)
async def status(request: Request, conn: ConnDep) -> dict[str, Any]:
    reject_unknown(request.query_params.keys(), set())
    config = await _config(request)
    now = datetime.now(UTC)
    layers = await conn.run_sync(lambda sync_conn: statuses_on(sync_conn, config, now))
    return {
        "layers": [layer.record() for layer in layers],
        "limits": limits_record(request.app.state.settings),
    }


def limits_record(settings: ApiSettings) -> dict[str, Any]:
    """Every limit on a request or a client, as the README's table lists them."""
    server = settings.limits
    return {
        "max_body_bytes": server.max_body_bytes,
        "body_timeout": server.body_timeout,
        "max_url_bytes": server.max_url_bytes,
        "max_header_bytes": server.max_header_bytes,
        "header_timeout": server.header_timeout,
        "keep_alive_timeout": server.keep_alive_timeout,
        "statement_timeouts": dict(settings.statement_timeouts),
        "concurrency": dict(settings.concurrency),
        "queue_timeout": settings.queue_timeout,
        "idle_in_transaction_timeout": settings.idle_in_transaction_timeout,
        "max_items_per_page": settings.max_limit,
        "download_max_features": settings.download_max_features,
        "max_stats_cells": settings.max_stats_cells,
        "max_query_vertices": settings.max_query_vertices,
        "job_queue": settings.job_queue,
        "rate_limit": {
            "requests_per_second": settings.rate_limit.rate,
            "burst": settings.rate_limit.burst,
            "loopback": settings.rate_limit.loopback,
            "max_clients": settings.rate_limit.max_clients,
        },
        "compression": {
            "enabled": settings.compression.enabled,
            "min_bytes": settings.compression.min_bytes,
        },
    }


@lru_cache(maxsize=4)
def _to_storage(srid: int) -> Transformer:
    return Transformer.from_crs(srid, STORAGE_SRID, always_xy=True)


def _storage_box(raw: str, crs_raw: str | None) -> tuple[float, float, float, float]:
    """The bbox in EPSG:31370, the cache's (its part where that CRS is used)."""
    crs = parse_crs(crs_raw, "bbox-crs")
    box = parse_bbox(raw, crs)
    assert box is not None
    part = clip(bbox_shape(box), crs.srid, STORAGE_SRID)
    if part is None:
        raise InvalidParameter(
            "bbox", "lies wholly outside Belgium (where EPSG:31370 is used): no tile meets it"
        )
    minx, miny, maxx, maxy = part.bounds
    if crs.srid != STORAGE_SRID:
        minx, miny, maxx, maxy = _to_storage(crs.srid).transform_bounds(
            minx, miny, maxx, maxy, densify_pts=21
        )
    return minx, miny, maxx, maxy


async def _cache_name(conn: ConnDep, layer: str) -> str:
    """The name a layer's tiles go by in the cache: its id, or a coverage's prefixed one."""
    layers = [entry.id for entry in await list_layers(conn)]
    if layer in layers:
        return layer
    coverages = [entry.id for entry in await list_coverages(conn)]
    if layer in coverages:
        return coverage_layer(layer)
    raise InvalidParameter(
        "layer",
        f"no layer '{layer}'; the layers with tiles are: {', '.join(layers + coverages)}",
    )


@router.post(
    "/tiles/purge",
    summary="Drop cached tiles: a layer's, or those of an area, or both",
    responses=answers(Purged, errors_=AUTH_ERRORS),
    description=(
        "Drops from the tile cache, in memory and on disk, the tiles that show `layer` (a "
        "collection or a coverage; the dataset tiles of every layer too) and meet `bbox` "
        "(in `bbox-crs`, default CRS84; a tile's buffer counts). Give `layer`, `bbox` or both. "
        "The next request of a dropped tile draws it again (`X-Tile-Cache: miss`). The counts "
        "are this API process's; the other processes of one `urbis serve --workers N` drop "
        "theirs within a second. Behind a balancer over separate services, ask each."
    ),
)
async def purge_tiles(
    request: Request,
    conn: ConnDep,
    layer: Annotated[
        str | None, Query(description="A collection or coverage id: only its tiles")
    ] = None,
    bbox: Annotated[
        str | None,
        Query(description="minx,miny,maxx,maxy in bbox-crs: only the tiles meeting it"),
    ] = None,
    bbox_crs: Annotated[
        str | None, Query(alias="bbox-crs", description="The CRS of bbox (URI); CRS84 if absent")
    ] = None,
) -> dict[str, Any]:
    reject_unknown(request.query_params.keys(), {"layer", "bbox", "bbox-crs"})
    if bbox_crs and not bbox:
        raise InvalidParameter("bbox-crs", "is the CRS of bbox, which is not given")
    if not layer and not bbox:
        raise InvalidParameter(
            "layer", "give a layer, a bbox or both: which tiles to drop (none is given)"
        )
    name = await _cache_name(conn, layer) if layer else None
    box = _storage_box(bbox, bbox_crs) if bbox else None
    cache: TileCache = request.app.state.tile_cache
    memory, disk = cache.purge(name, box)
    purges: SiblingPurges = request.app.state.sibling_purges
    purges.tell(name, box)  # the other API processes of `urbis serve --workers`, if any
    return {
        "layer": layer or None,
        "bbox": [round(v, 3) for v in box] if box else None,
        "memory": memory,
        "disk": disk,
    }
