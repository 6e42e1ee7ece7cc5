"""What a zonal statistics job does, in a process of its own (geoapi.jobs starts it).

It reads the collection's features (key and geometry in EPSG:31370) through a server-side
cursor, a batch at a time, in one REPEATABLE READ snapshot (the count and the features agree,
whatever a sync does meanwhile); computes each feature's statistics with
urbis_core.raster_values.zonal_stats on the coverage's COG; and appends them to the result
files (geoapi.zonal_results), committed at the end. It tells its parent how far it got over a
pipe: ("total", n), then ("done", k) now and then, then ("successful", n) or ("failed", why).

A process rather than a thread: the computation holds the interpreter for long stretches
(numpy between GDAL reads), and the API's threads draw tiles and pages meanwhile. It runs at a
lower priority (nice) than the API, so that on a busy machine requests go first.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import shapely
import sqlalchemy as sa
from rasterio.errors import RasterioError
from sqlalchemy import func
from sqlalchemy.pool import NullPool

from geoapi.coverage_areas import polygonal
from geoapi.json_schema import GEOMETRY_TYPES
from geoapi.zonal_results import ResultWriter
from urbis_core.catalog import LayerEntry
from urbis_core.db import create_sync_engine
from urbis_core.processes import die_with_parent
from urbis_core.raster_values import LAYER_SRID, ZONAL_BATCH, zonal_stats

NICENESS = 10
REPORT_EVERY = 0.25  # seconds between progress messages
WRITE_BATCH = 1024  # rows appended to the files at once
STATEMENT_TIMEOUT = 300.0  # seconds for one fetch of features (a lock held on the table)
INTEGER_TYPES = {"integer", "bigint", "smallint"}


@dataclass(frozen=True)
class ZonalSpec:
    """Everything the job's process needs; pickled to it, so plain values only."""

    job_id: str
    database_url: str
    layer: LayerEntry  # from the catalog: the only source of the table's identifiers
    coverage_id: str
    coverage_path: str
    coverage_version: int
    band: int
    percentiles: tuple[float, ...]
    folder: Path


def _features(conn: sa.Connection, layer: LayerEntry) -> Iterator[tuple[Any, bytes | None]]:
    """(key, geometry as WKB in EPSG:31370) of every feature, by key, a batch per fetch."""
    table = layer.table()
    key = table.c[layer.key_field]
    geom: sa.ColumnElement[Any] = table.c.geom
    if layer.srid != LAYER_SRID:
        geom = func.ST_Transform(geom, LAYER_SRID)
    query = sa.select(key, func.ST_AsBinary(geom)).order_by(key)
    streamed = conn.execution_options(stream_results=True, yield_per=ZONAL_BATCH)
    for row in streamed.execute(query):
        yield row[0], None if row[1] is None else bytes(row[1])


def _areas(
    rows: Iterator[tuple[Any, bytes | None]],
) -> Iterator[tuple[tuple[Any, bytes | None], shapely.Geometry]]:
    """Each feature as zonal_stats takes it: its polygons (points and lines hold no area)."""
    for key, wkb in rows:
        geometry = shapely.Polygon() if wkb is None else polygonal(shapely.from_wkb(wkb))
        yield (key, wkb), geometry


def run(spec: ZonalSpec, report: Connection) -> None:
    """The job, start to end; every outcome is reported, never raised."""
    # An API process killed (and started again by `urbis serve --workers`) takes its jobs along,
    # even one killed while this process was still starting.
    parent = multiprocessing.parent_process()
    die_with_parent(parent.pid if parent is not None else None)
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    writer: ResultWriter | None = None
    engine = create_sync_engine(
        spec.database_url,
        statement_timeout=STATEMENT_TIMEOUT,
        application_name="urbis-api-job",
        poolclass=NullPool,
    )
    try:
        layer = spec.layer
        geometry_type = layer.geometry_type if layer.geometry_type in GEOMETRY_TYPES else "Unknown"
        writer = ResultWriter(
            spec.folder,
            layer.id,
            layer.key_field,
            layer.key_column.sql_type in INTEGER_TYPES,
            geometry_type,
            spec.percentiles,
        )
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                table = layer.table()
                total = conn.execute(sa.select(func.count()).select_from(table)).scalar_one()
                report.send(("total", int(total)))
                done = _compute(spec, conn, writer, report)
        writer.commit()
        report.send(("successful", done))
    except RasterioError as e:
        report.send(
            (
                "failed",
                f"the raster of coverage '{spec.coverage_id}' (version "
                f"{spec.coverage_version}) could not be read: {e}. A newer sync may have "
                "replaced it: submit the job again",
            )
        )
    except sa.exc.DBAPIError as e:
        first = str(e.orig or e).strip().splitlines()[0]
        report.send(("failed", f"the features of '{spec.layer.id}' could not be read: {first}"))
    except Exception as e:  # anything else still ends the job with its reason
        report.send(("failed", f"{type(e).__name__}: {e}"))
    finally:
        if writer is not None:
            writer.close()
        engine.dispose()
        report.close()


def _compute(spec: ZonalSpec, conn: sa.Connection, writer: ResultWriter, report: Connection) -> int:
    results = zonal_stats(
        spec.coverage_path,
        _areas(_features(conn, spec.layer)),
        spec.percentiles,
        band=spec.band,
    )
    done = 0
    rows: list[tuple[Any, dict[str, Any], bytes | None]] = []
    last_report = time.monotonic()
    for (key, wkb), stats in results:
        rows.append((key, stats, wkb))
        done += 1
        if len(rows) == WRITE_BATCH:
            writer.append(rows)
            rows = []
        if time.monotonic() - last_report > REPORT_EVERY:
            report.send(("done", done))
            last_report = time.monotonic()
    if rows:
        writer.append(rows)
    report.send(("done", done))
    return done
