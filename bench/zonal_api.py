"""The zonal statistics job, timed end to end through the API, against rasterstats.

    python -m bench.zonal_bench --through-api --wait-quiet 600 --json out.json
    python -m bench.zonal_bench --through-api --buildings 2000 --size 1000   # a small run

What bench.zonal_bench times is the library function; what a user runs is the job. In one run:
1. writes the terrain model and the buildings of bench.zonal_bench (same seeds, same sizes: a
   float32 COG with nodata squares, --buildings rotated rectangles) into <workdir>/zonal-run:
   the terrain as a GeoTIFF, the buildings as a GeoPackage with an integer key `building_id`
   (their index in the list);
2. starts a throwaway PostgreSQL cluster and syncs both with `urbis sync --once`: `terrain` a
   raster layer (the sync writes its COG under URBIS_RASTER_DIR), `buildings` a vector layer;
   then VACUUM ANALYZE, the state autovacuum would leave;
3. starts `urbis serve` (not timed in the job: reported apart) and times the job as a client
   sees it: POST /coverages/terrain/zonal?collection=buildings&p=5,50,95 -> 202 -> GET
   /jobs/{id} every POLL seconds until `successful` (the job seconds: from before the POST to
   the answer saying successful; they hold the job process's start, the features' reading from
   PostGIS, the statistics, the CSV and GeoPackage writing and fsync, and up to one POLL of
   waiting); then downloads the CSV and the GeoPackage, each timed on its own; stops the server;
4. times the library function (urbis_core.raster_values.zonal_stats) and then rasterstats
   (its defaults, the statistics of bench.zonal_bench) on the COG the catalog names, the very
   file the job read, over the buildings as shapely polygons in memory: rasterstats reads no
   database and writes no file;
5. checks the job's CSV against rasterstats for every building (bench.zonal_bench.agrees: count
   and nodata equal, the rest within 1e-6), and that the GeoPackage has a row per building.

Prints (and with --json writes) the seconds, the ratios rasterstats / job, the CPU the server
(with its job process) and PostgreSQL used, and the cores other processes kept busy during each
timed part. Logs stay in <workdir>/zonal-run/.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import psycopg
import pyogrio
import rasterio
from shapely.geometry import Polygon

from bench import api_peers
from bench.api_bench import (
    HEADERS,
    CpuMeter,
    fresh_folder,
    machine_busy_seconds,
    our_code,
    scratch_cluster,
    wait_for_quiet,
    write_result,
)
from bench.raster_bench import cog_facts, ours_spec, synced_database
from bench.zonal_bench import PERCENTILES, agrees, buildings, time_rasterstats, write_dtm
from urbis_core.pgcluster import free_port
from urbis_core.raster_values import zonal_stats

COVERAGE = "terrain"
COLLECTION = "buildings"
KEY = "building_id"
CELL = 2.0  # metres, as bench.zonal_bench
POLL = 0.2  # seconds between two GETs of the job (each costs the server CPU the job could use)
JOB_TIMEOUT = 3600.0
TARGET = 3.0  # rasterstats / job, issue 15


# -- the data --------------------------------------------------------------------------------


def write_buildings(path: Path, shapes: list[Polygon]) -> None:
    frame = gpd.GeoDataFrame(
        {KEY: np.arange(len(shapes), dtype=np.int64)}, geometry=shapes, crs="EPSG:31370"
    )
    frame.to_file(path, layer=COLLECTION, driver="GPKG", engine="pyogrio")


def layer_config(rundir: Path, dtm: Path, gpkg: Path) -> Path:
    path = rundir / "zonal-bench.yaml"
    path.write_text(
        "layers:\n"
        f"  {COVERAGE}:\n"
        "    type: raster\n"
        "    title: {fr: Terrain (généré), nl: Terrein (gegenereerd), en: Terrain (generated)}\n"
        f"    source: {{kind: file, path: {dtm}}}\n"
        f"  {COLLECTION}:\n"
        f"    source: {{kind: file, path: {gpkg}, layer: {COLLECTION}}}\n"
        f"    key: {KEY}\n"
    )
    return path


def catalog_cog(url: str) -> tuple[str, int]:
    """The terrain's COG as the catalog names it (the file the job reads), and its version."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT path, version FROM urbis_meta.coverage_catalog WHERE id = %s", (COVERAGE,)
        ).fetchone()
        if row is None:
            raise SystemExit(f"the sync made no COG for '{COVERAGE}'")
    return str(row[0]), int(row[1])


def feature_count(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE urbis.{COLLECTION}")
        return int(conn.execute(f"SELECT count(*) FROM urbis.{COLLECTION}").fetchone()[0])  # type: ignore[index]


# -- the job ---------------------------------------------------------------------------------


@dataclass
class JobRun:
    server_start_s: float
    job_s: float  # POST to the answer saying successful, as the client sees it
    job_doc: dict[str, Any]
    polls: int
    downloads: dict[str, dict[str, Any]]  # csv, gpkg: seconds, bytes, file
    cpu: dict[str, float]


def run_job(url: str, config: Path, raster_dir: Path, rundir: Path, postmaster: int) -> JobRun:
    port = free_port()
    spec = ours_spec(url, config, raster_dir, port)
    spec.env["URBIS_JOB_DIR"] = str(rundir / "jobs")
    started = time.perf_counter()
    with api_peers.running(spec, port, rundir / "ours.log") as server:
        server_start_s = time.perf_counter() - started
        meter = CpuMeter(server.group, postmaster)
        with httpx.Client(base_url=server.base, headers=HEADERS, timeout=600.0) as client:
            before = meter.sample()
            start = time.perf_counter()
            answer = client.post(
                f"/coverages/{COVERAGE}/zonal",
                params={"collection": COLLECTION, "p": ",".join(str(p) for p in PERCENTILES)},
            )
            if answer.status_code != 202:
                raise SystemExit(f"POST zonal answered {answer.status_code}: {answer.text}")
            location = answer.headers["location"]
            doc, polls = answer.json(), 0
            while doc["status"] not in ("successful", "failed"):
                if time.perf_counter() - start > JOB_TIMEOUT:
                    raise SystemExit(f"the job is still {doc['status']} after {JOB_TIMEOUT:g} s")
                time.sleep(POLL)
                doc, polls = client.get(location).json(), polls + 1
            job_s = time.perf_counter() - start
            after = meter.sample()
            if doc["status"] != "successful":
                raise SystemExit(f"the job failed: {doc['error']}")
            print(f"  job successful in {job_s:.2f} s", file=sys.stderr)
            downloads = {f: download(client, location, f, rundir) for f in ("csv", "gpkg")}
    server_cpu, postgres_cpu, client_cpu, machine = (
        b - a for a, b in zip(before, after, strict=True)
    )
    cpu = {
        "server_and_job_process_cpu_s": round(server_cpu, 2),
        "postgres_cpu_s": round(postgres_cpu, 2),
        "client_cpu_s": round(client_cpu, 2),
        "other_processes_cores": round(
            max(0.0, machine - server_cpu - postgres_cpu - client_cpu) / job_s, 2
        ),
    }
    return JobRun(server_start_s, job_s, doc, polls, downloads, cpu)


def download(client: httpx.Client, location: str, fmt: str, rundir: Path) -> dict[str, Any]:
    path = rundir / f"job-result.{fmt}"
    start = time.perf_counter()
    with client.stream("GET", f"{location}/results", params={"f": fmt}) as answer:
        if answer.status_code != 200:
            raise SystemExit(f"GET results?f={fmt} answered {answer.status_code}")
        with path.open("wb") as out:
            for chunk in answer.iter_bytes(1 << 20):
                out.write(chunk)
    seconds = time.perf_counter() - start
    print(f"  {fmt} downloaded in {seconds:.2f} s", file=sys.stderr)
    return {"seconds": round(seconds, 3), "bytes": path.stat().st_size, "file": str(path)}


def job_seconds_server_side(doc: dict[str, Any]) -> float | None:
    """started -> finished as the job's document says (its process's life, to a poll)."""
    if not doc.get("started") or not doc.get("finished"):
        return None
    started, finished = (datetime.fromisoformat(doc[k]) for k in ("started", "finished"))
    return round((finished - started).total_seconds(), 2)


# -- the numbers -----------------------------------------------------------------------------


def read_csv_stats(path: Path) -> dict[int, dict[str, Any]]:
    """The job's CSV as zonal_stats' dicts, by key (an empty cell: None)."""

    def number(text: str) -> float | None:
        return None if text == "" else float(text)

    out: dict[int, dict[str, Any]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out[int(row[KEY])] = {
                "count": int(row["count"]),
                "nodata_count": int(row["nodata_count"]),
                **{k: number(row[k]) for k in ("min", "max", "mean", "std")},
                "percentiles": {p: number(row[f"p{p}"]) for p in PERCENTILES},
            }
    return out


def compare(job: dict[int, dict[str, Any]], theirs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every building's job numbers against rasterstats'; the first few that differ."""
    missing = [i for i in range(len(theirs)) if i not in job]
    differing = [i for i, t in enumerate(theirs) if i in job and not agrees(job[i], t)]
    return {
        "buildings": len(theirs),
        "rows_in_csv": len(job),
        "missing_from_csv": len(missing),
        "extra_in_csv": len(set(job) - set(range(len(theirs)))),
        "differing": len(differing),
        "examples": [
            {"building": i, "job": job[i], "rasterstats": theirs[i]} for i in differing[:5]
        ],
        "empty_buildings": sum(1 for t in theirs if not t["count"]),
    }


def gpkg_rows(path: Path) -> int:
    return int(pyogrio.read_info(str(path), layer=COLLECTION)["features"])


def other_cores(seconds: float, own_cpu: float, machine: float) -> float:
    """Cores kept busy by other processes while this one alone computed for `seconds`."""
    return round(max(0.0, machine - own_cpu) / seconds, 2)


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_alone(fn: Any) -> tuple[Any, float, float]:
    """fn()'s result, its seconds, and the cores other processes used meanwhile."""
    cpu, machine = own_cpu(), machine_busy_seconds()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    return result, seconds, other_cores(seconds, own_cpu() - cpu, machine_busy_seconds() - machine)


# -- the run ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    busy_at_start = wait_for_quiet(args.wait_quiet)
    args.workdir.mkdir(parents=True, exist_ok=True)
    rundir = fresh_folder(args.workdir / "zonal-run")
    dtm, gpkg = rundir / "dtm.tif", rundir / "buildings.gpkg"
    bounds = write_dtm(dtm, args.size, CELL)
    shapes = buildings(args.buildings, bounds)
    write_buildings(gpkg, shapes)
    print(
        f"{args.buildings:,} buildings over a {args.size} x {args.size} float32 COG (2 m)",
        file=sys.stderr,
    )
    config = layer_config(rundir, dtm, gpkg)
    raster_dir = rundir / "cogs"
    code = our_code()
    with scratch_cluster("urbis-zonal-bench-cluster-") as (admin, postmaster):
        print("syncing the terrain and the buildings with urbis sync ...", file=sys.stderr)
        sync_start = time.perf_counter()
        url = synced_database(admin, config, raster_dir)
        sync_s = time.perf_counter() - sync_start
        cog, cog_version = catalog_cog(url)
        features = feature_count(url)
        print("the job through urbis serve ...", file=sys.stderr)
        job = run_job(url, config, raster_dir, rundir, postmaster)
    code = code if code == our_code() else f"CHANGED during the run: {code}"

    print("the library function, then rasterstats, on the same COG ...", file=sys.stderr)
    _, library_s, library_other = timed_alone(
        lambda: [r for _, r in zonal_stats(cog, enumerate(shapes), PERCENTILES)]
    )
    (theirs, _), rasterstats_s, rasterstats_other = timed_alone(
        lambda: time_rasterstats(cog, shapes)
    )
    checked = compare(read_csv_stats(Path(job.downloads["csv"]["file"])), theirs)
    checked["gpkg_rows"] = gpkg_rows(Path(job.downloads["gpkg"]["file"]))

    csv_s = job.downloads["csv"]["seconds"]
    result = {
        "command": "python -m bench.zonal_bench " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "busy_cores_before_start": busy_at_start,
        },
        "data": {
            "buildings": args.buildings,
            "features_in_table": features,
            "raster": {**cog_facts(cog), "version": cog_version},
            "source_raster": str(dtm),
        },
        "setup": {
            "job": f"POST /coverages/{COVERAGE}/zonal?collection={COLLECTION}&p="
            + ",".join(str(p) for p in PERCENTILES),
            "poll_s": POLL,
            "server": "urbis serve (uvicorn, one process), URBIS_JOB_WORKERS=1 (default); the "
            "job runs in a spawned process at nice 10",
            "rasterstats": "rasterstats.zonal_stats(shapes, cog, stats=...) with its defaults, "
            "shapes as shapely polygons in memory, in this process after the server stopped",
        },
        "seconds": {
            "sync (not timed against anything)": round(sync_s, 2),
            "server start (not in the job)": round(job.server_start_s, 2),
            "job: POST to successful": round(job.job_s, 2),
            "job: started to finished (its document)": job_seconds_server_side(job.job_doc),
            "download csv": csv_s,
            "download gpkg": job.downloads["gpkg"]["seconds"],
            "library zonal_stats (same buildings, in memory)": round(library_s, 2),
            "rasterstats": round(rasterstats_s, 2),
        },
        "ratios": {
            "rasterstats / job": round(rasterstats_s / job.job_s, 2),
            "rasterstats / (job + csv download)": round(rasterstats_s / (job.job_s + csv_s), 2),
            "rasterstats / library": round(rasterstats_s / library_s, 2),
            "job / library": round(job.job_s / library_s, 2),
        },
        "target >= 3 x rasterstats (job)": rasterstats_s / job.job_s >= TARGET,
        "job": {
            "polls": job.polls,
            "progress": job.job_doc["progress"],
            "cpu": job.cpu,
            "downloads": job.downloads,
        },
        "other_processes_cores": {
            "before start": busy_at_start,
            "job": job.cpu["other_processes_cores"],
            "library": library_other,
            "rasterstats": rasterstats_other,
        },
        "check": checked,
        "versions": {
            "ours code": code,
            "rasterstats": version("rasterstats"),
            "rasterio": rasterio.__version__,
            "GDAL": rasterio.__gdal_version__,
            "shapely": version("shapely"),
        },
        "total_seconds": round(time.perf_counter() - started),
    }
    write_result(result, args.json)
    return 0
