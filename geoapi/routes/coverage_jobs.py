"""Zonal statistics of a coverage over a whole vector collection, run as a job.

POST submits (a 202 pointing at the job); the job runs in a process of its own (geoapi.jobs,
geoapi.zonal_job) while the API answers; GET shows it, its results come as CSV or GeoPackage
once it succeeded, DELETE dismisses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any, Literal, cast

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, StreamingResponse

from geoapi.coverage_areas import parse_percentiles
from geoapi.deps import CatalogCoverage, ConnDep, FormatDep, LangDep, base_url, chosen_format
from geoapi.job_pages import job_doc, job_page, jobs_doc, jobs_page
from geoapi.jobs import FAILED, SUCCESSFUL, JobRunner
from geoapi.media_types import CSV, GPKG
from geoapi.params import reject_unknown
from geoapi.responses.documented import (
    ALSO_HTML,
    CATALOG_ERRORS,
    accepted,
    answers,
    errors,
    started,
)
from geoapi.responses.jobs import Job, Jobs
from geoapi.zonal_job import ZonalSpec
from geoapi.zonal_results import CSV_NAME, GPKG_NAME
from urbis_core.catalog import get_layer
from urbis_core.errors import Conflict, InvalidParameter, NotFound
from urbis_core.settings import ApiSettings

router = APIRouter(tags=["Coverages"])

# Layers of one geometry family (urbis_sync.reconcile.shape); "Geometry": a layer still empty.
AREAL = {"Polygon", "MultiPolygon", "Geometry"}

JobId = Annotated[str, PathParam(description="The job's id, as POST .../zonal gave it")]
CHUNK = 1 << 20


def _runner(request: Request) -> JobRunner:
    return cast(JobRunner, request.app.state.jobs)


@router.post(
    "/coverages/{coverage_id}/zonal",
    summary="Statistics of a band for each feature of a collection (a job)",
    status_code=202,
    responses={
        **accepted(
            Job,
            (
                "The job is accepted; `Location` names it. Poll it until `status` is "
                "successful, then fetch its results"
            ),
            "The job",
        ),
        **errors(*CATALOG_ERRORS),
    },
    description=(
        "Starts a job computing, for every feature of `collection` (polygons), the count, "
        "nodata count, min, max, mean, std (population) and percentiles (`p`) of one band of "
        "the coverage over the cells whose centre lies inside it: the numbers of POST "
        "/coverages/{id}/stats, per feature. Answers 202 at once with the job's document. At "
        "most URBIS_JOB_WORKERS jobs run at once and URBIS_JOB_QUEUE wait: past that a 503 "
        "with Retry-After. A collection of points or lines is a 400 (they hold no area)."
    ),
)
async def zonal(
    entry: CatalogCoverage,
    request: Request,
    conn: ConnDep,
    collection: Annotated[
        str, Query(description="The collection (layer) whose features the statistics are for")
    ],
    p: Annotated[
        str | None,
        Query(description="Percentiles to compute, comma-separated numbers from 0 to 100"),
    ] = None,
    band: Annotated[
        int, Query(ge=1, description="The band, 1-based (default 1; see the coverage's bands)")
    ] = 1,
) -> JSONResponse:
    reject_unknown(request.query_params.keys(), {"collection", "p", "band"})
    percentiles = tuple(parse_percentiles(p))
    if band > len(entry.bands):
        raise InvalidParameter(
            "band", f"band {band} is not in '{entry.id}' (bands 1 to {len(entry.bands)})"
        )
    layer = await get_layer(conn, collection)
    if layer.geometry_type not in AREAL:
        raise InvalidParameter(
            "collection",
            f"'{layer.id}' holds {layer.geometry_type} features, which have no area: zonal "
            "statistics count the cells whose centre lies inside each feature; choose a "
            f"collection of polygons, or ask /coverages/{entry.id}/point for a point's values",
        )
    settings: ApiSettings = request.app.state.settings

    def spec(job_id: str, folder: Path) -> ZonalSpec:
        return ZonalSpec(
            job_id=job_id,
            database_url=settings.database_url,
            layer=layer,
            coverage_id=entry.id,
            coverage_path=entry.path,
            coverage_version=entry.version,
            band=band,
            percentiles=percentiles,
            folder=folder,
        )

    job = _runner(request).submit(spec)
    base = base_url(request)
    return started(job_doc(job, base), f"{base}/jobs/{job.id}")


@router.get(
    "/jobs",
    summary="The jobs",
    responses=answers(Jobs, also=ALSO_HTML, errors_=(400,)),
    description=(
        "Every job kept: waiting, running, and those finished less than URBIS_JOB_TTL seconds "
        "ago, oldest first, whichever API process runs them. Jobs live in the API processes: "
        "a restart forgets them."
    ),
)
async def jobs(request: Request, fmt: FormatDep, lang: LangDep) -> Any:
    reject_unknown(request.query_params.keys(), {"f", "lang"})
    doc = jobs_doc(_runner(request).list(), base_url(request))
    if fmt == "html":
        return jobs_page(request, lang, doc)
    return doc


@router.get(
    "/jobs/{job_id}",
    summary="One job: its status, progress and links to its results",
    responses=answers(Job, also=ALSO_HTML, errors_=(400, 404)),
    description=(
        "`status` is accepted, running, successful or failed (with `error`); `progress` counts "
        "the features done of the collection's total. When successful, `results` links give the "
        "statistics as CSV and GeoPackage."
    ),
)
async def job(job_id: JobId, request: Request, fmt: FormatDep, lang: LangDep) -> Any:
    reject_unknown(request.query_params.keys(), {"f", "lang"})
    doc = job_doc(_runner(request).get(job_id), base_url(request))
    if fmt == "html":
        return job_page(request, lang, doc)
    return doc


@router.get(
    "/jobs/{job_id}/results",
    summary="A successful job's results, as CSV or GeoPackage",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": (
                "One row per feature, by key: the key (named as the collection's key field), "
                "count, nodata_count, min, max, mean, std, then p<q> per percentile; the "
                "GeoPackage adds each feature's geometry in EPSG:31370"
            ),
            "content": {
                CSV: {"schema": {"type": "string"}},
                GPKG: {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **errors(400, 404, 409),
    },
)
async def job_results(
    job_id: JobId,
    request: Request,
    f: Annotated[
        Literal["csv", "gpkg"] | None,
        Query(description="csv or gpkg; without it the Accept header decides (CSV by default)"),
    ] = None,
) -> StreamingResponse:
    reject_unknown(request.query_params.keys(), {"f"})
    found = _runner(request).get(job_id)
    if found.status == FAILED:
        raise Conflict(f"job '{job_id}' failed, so it has no results: {found.error}")
    if found.status != SUCCESSFUL:
        done = f"{found.done:,} of {found.total:,}" if found.total is not None else "none yet"
        raise Conflict(
            f"job '{job_id}' is {found.status} ({done} features done): its results exist once "
            f"its status is successful; GET /jobs/{job_id} tells"
        )
    fmt = chosen_format(request, f, ("csv", "gpkg"))
    name, media_type = (CSV_NAME, CSV) if fmt == "csv" else (GPKG_NAME, GPKG)
    download = f"{found.collection}-{found.coverage_id}-zonal.{fmt}"
    # Opened now: a DELETE or the TTL removing the file meanwhile leaves this answer whole.
    try:
        opened = (found.folder / name).open("rb")
    except FileNotFoundError:  # another process's job, dismissed or expired since its record
        raise NotFound(f"no job '{job_id}' any more: it was dismissed or expired") from None
    return StreamingResponse(
        _chunks(opened),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{download}"'},
    )


def _chunks(opened: IO[bytes]) -> Iterator[bytes]:
    with opened:
        while chunk := opened.read(CHUNK):
            yield chunk


@router.delete(
    "/jobs/{job_id}",
    summary="Dismiss a job: stop it if it runs, remove its results",
    responses=answers(Job, errors_=(400, 404)),
    description=(
        "A waiting job leaves the queue, a running one is stopped, a finished one's files are "
        "removed. Answers the job with status `dismissed`; afterwards the job is a 404."
    ),
)
async def dismiss_job(job_id: JobId, request: Request) -> dict[str, Any]:
    reject_unknown(request.query_params.keys(), set())
    dismissed = await _runner(request).dismiss(job_id)
    return job_doc(dismissed, base_url(request))
