"""Zonal statistics jobs over HTTP: POST /coverages/{id}/zonal, /jobs, results, DELETE.

A real `urbis serve` over the synced sample plus the coverage fixtures' rasters and a layer of
generated polygons over the terrain (tests.support.rasters): inside it, across its edges, over
its nodata lake and strip, off it, with holes, in two parts, smaller than a cell. Every
feature's numbers in the CSV and the GeoPackage are compared with numpy over
rasterio.features.geometry_mask of the *source* file (cells whose centre is inside, nodata
left out), not with urbis_core.raster_values. The server runs one job at a time with one
waiting (URBIS_JOB_WORKERS=1, URBIS_JOB_QUEUE=1); a lock held on a layer's table keeps a job
running for as long as a test needs (its read of the features waits), so the queue, the 409,
the 503 and the dismissal of a running job are deterministic.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import httpx
import numpy as np
import psycopg
import pyogrio
import pytest
import rasterio
import schemathesis
import shapely
from openapi_schema_validator import OAS30Validator
from rasterio.features import geometry_mask
from schemathesis import GenerationMode

from tests.api.conftest import CoverageSources, assert_problem, start_server
from tests.api.test_property_run import FAST_EXAMPLES, Outcome, fuzz
from tests.support import rasters
from tests.support.processes import spawned_children
from urbis_core.config import load_config
from urbis_core.db import create_sync_engine
from urbis_core.errors import ConfigError
from urbis_core.settings import Settings, SyncSettings
from urbis_sync.run import sync_layer

pytestmark = pytest.mark.api

LAYER = "plots"  # the generated polygons
KEY = "bid"
PERCENTILES = (5.0, 50.0, 95.0)
JOB_DEADLINE = 90.0  # seconds a job of a few hundred features may take, spawn included

LAYERS_CONFIG = """\
layers:
  {layer}:
    title: {{fr: Parcelles, nl: Percelen, en: Plots}}
    source: {{kind: file, path: {path}}}
    key: {key}
  doomed:
    type: raster
    title: {{fr: Terrain perdu, nl: Verloren terrein, en: Lost terrain}}
    source: {{kind: file, path: {terrain}}}
"""


# -- the data -----------------------------------------------------------------------------------


def _rectangle(cx: float, cy: float, w: float, h: float, angle: float) -> shapely.Polygon:
    c, s = math.cos(angle), math.sin(angle)
    return shapely.Polygon(
        [
            (cx + x * c - y * s, cy + x * s + y * c)
            for x, y in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))
        ]
    )


def plots() -> list[shapely.Geometry]:
    """Polygons over the terrain (600 x 400 cells of 5 m from 148000, 171000), and beside it."""
    rng = np.random.default_rng(15)
    left, top = rasters.ORIGIN
    right = left + rasters.SHAPE[1] * rasters.PIXEL
    bottom = top - rasters.SHAPE[0] * rasters.PIXEL
    shapes: list[shapely.Geometry] = []
    for _ in range(240):  # buildings, some across the raster's edges
        shapes.append(
            _rectangle(
                rng.uniform(left - 40, right + 40),
                rng.uniform(bottom - 40, top + 40),
                rng.uniform(4, 60),
                rng.uniform(4, 40),
                rng.uniform(0, math.pi),
            )
        )
    lake = shapely.Point(left + 420.5 * rasters.PIXEL, top - 120.5 * rasters.PIXEL)
    shapes.append(lake.buffer(260).difference(lake.buffer(60)))  # a ring round the lake
    shapes.append(lake.buffer(100))  # the lake and its shore
    shapes.append(lake.buffer(30))  # inside the lake: nodata only
    strip = shapely.box(left + 40 * 5, top - 320 * 5, left + 270 * 5, top - 290 * 5)
    shapes.append(strip)  # over the missing strip
    shapes.append(  # two parts far apart
        shapely.MultiPolygon(
            [shapely.box(148100, 170800, 148160, 170870), _rectangle(150500, 169300, 50, 30, 0.3)]
        )
    )
    shapes.append(shapely.box(152000, 172000, 152100, 172100))  # off the raster
    shapes.append(shapely.box(148001, 170996, 148004, 170999))  # on it, but holding no centre
    return shapes


def reference(source: Path, geometry: shapely.Geometry, band: int = 1) -> dict:
    """numpy over geometry_mask of the source file: cells whose centre is inside, nodata apart."""
    with rasterio.open(source) as src:
        data = src.read(band)
        inside = ~geometry_mask(
            [geometry], out_shape=data.shape, transform=src.transform, all_touched=False
        )
        hole = data == src.nodata if src.nodata is not None else np.zeros(data.shape, bool)
    values = data[inside & ~hole].astype(np.float64)
    out: dict = {"count": int(values.size), "nodata_count": int((inside & hole).sum())}
    if values.size:
        out |= {
            "min": values.min(),
            "max": values.max(),
            "mean": values.mean(),
            "std": values.std(),
        }
        out |= {f"p{p:g}": float(np.percentile(values, p)) for p in PERCENTILES}
    else:
        out |= dict.fromkeys(["min", "max", "mean", "std", *(f"p{p:g}" for p in PERCENTILES)])
    return out


def assert_same_numbers(row: dict, expected: dict, where: str) -> None:
    """A result row (CSV text, or GeoPackage values) against the reference."""
    assert int(row["count"]) == expected["count"], where
    assert int(row["nodata_count"]) == expected["nodata_count"], where
    for name in ["min", "max", "mean", "std", *(f"p{p:g}" for p in PERCENTILES)]:
        got = row[name]
        if expected[name] is None:
            assert got in ("", None) or (isinstance(got, float) and math.isnan(got)), (where, name)
        else:
            assert float(got) == pytest.approx(expected[name], rel=1e-9, abs=1e-9), (where, name)


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plot_shapes() -> list[shapely.Geometry]:
    return plots()


@pytest.fixture(scope="module")
def zonal_database_url(
    coverage_database_url: str,
    coverage_sources: CoverageSources,
    plot_shapes: list[shapely.Geometry],
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The coverage fixtures' database, plus the plots and a raster whose COG then vanishes."""
    folder = tmp_path_factory.mktemp("zonal")
    path = folder / "plots.gpkg"
    gpd.GeoDataFrame(
        {KEY: list(range(1, len(plot_shapes) + 1))}, geometry=plot_shapes, crs="EPSG:31370"
    ).to_file(path, driver="GPKG")
    config = folder / "urbis.yaml"
    config.write_text(
        LAYERS_CONFIG.format(layer=LAYER, path=path, key=KEY, terrain=coverage_sources.terrain)
    )
    engine = create_sync_engine(coverage_database_url)
    try:
        settings = SyncSettings(raster_dir=folder / "cogs")
        for layer_id in (LAYER, "doomed"):
            report = sync_layer(engine, load_config(config), layer_id, settings)
            assert report.status == "success", report.error
    finally:
        engine.dispose()
    shutil.rmtree(folder / "cogs" / "doomed")  # the catalog still points at it
    return coverage_database_url


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jobs")


@pytest.fixture(scope="module")
def zonal_server(zonal_database_url: str, job_dir: Path) -> Iterator[tuple[int, str]]:
    proc, base = start_server(
        zonal_database_url, URBIS_JOB_DIR=str(job_dir), URBIS_JOB_WORKERS="1", URBIS_JOB_QUEUE="1"
    )
    yield proc.pid, base
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def zc(zonal_server: tuple[int, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=zonal_server[1], timeout=30) as c:
        yield c


@contextlib.contextmanager
def locked(url: str, table: str) -> Iterator[None]:
    """Every statement reading urbis.<table> waits until the block ends."""
    with psycopg.connect(url) as conn:
        conn.execute(f"LOCK TABLE urbis.{table} IN ACCESS EXCLUSIVE MODE")
        yield
        conn.rollback()


def files_of(job_dir: Path, job_id: str) -> list[Path]:
    """The job's folder, under the API process's own folder of jobs (none when removed)."""
    return list(job_dir.glob(f"*/{job_id}"))


def submit(client: httpx.Client, coverage: str, **params: str) -> dict:
    response = client.post(f"/coverages/{coverage}/zonal", params=params)
    assert response.status_code == 202, response.text
    doc = response.json()
    assert response.headers["location"] == f"{client.base_url}/jobs/{doc['id']}"
    return doc


def wait_for(client: httpx.Client, job_id: str, *statuses: str) -> dict:
    deadline = time.monotonic() + JOB_DEADLINE
    while time.monotonic() < deadline:
        doc = client.get(f"/jobs/{job_id}").json()
        if doc["status"] in statuses:
            return doc
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {doc['status']} after {JOB_DEADLINE} s")


def csv_rows(client: httpx.Client, job_id: str) -> list[dict]:
    response = client.get(f"/jobs/{job_id}/results?f=csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def gpkg_frame(client: httpx.Client, job_id: str, tmp_path: Path) -> gpd.GeoDataFrame:
    response = client.get(f"/jobs/{job_id}/results?f=gpkg")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/geopackage+sqlite3"
    path = tmp_path / "result.gpkg"
    path.write_bytes(response.content)
    return pyogrio.read_dataframe(path)


# -- the lifecycle ------------------------------------------------------------------------------


def test_a_job_goes_from_202_to_results_equal_to_numpy_on_the_source_for_every_feature(
    zc, coverage_sources, plot_shapes, tmp_path
):
    accepted = submit(zc, "terrain", collection=LAYER, p="5,50,95")
    assert accepted["status"] in ("accepted", "running")
    assert accepted["coverage"] == "terrain" and accepted["collection"] == LAYER
    assert accepted["band"] == 1 and accepted["percentiles"] == [5, 50, 95]
    assert not [link for link in accepted["links"] if link["rel"] == "results"]
    done = wait_for(zc, accepted["id"], "successful", "failed")
    assert done["status"] == "successful", done["error"]
    assert done["progress"] == {"done": len(plot_shapes), "total": len(plot_shapes)}
    assert done["started"] and done["finished"] and done["error"] is None
    results = {link["type"]: link["href"] for link in done["links"] if link["rel"] == "results"}
    assert results["text/csv"].endswith(f"/jobs/{done['id']}/results?f=csv")

    rows = csv_rows(zc, done["id"])
    assert list(rows[0]) == [
        KEY,
        "count",
        "nodata_count",
        "min",
        "max",
        "mean",
        "std",
        "p5",
        "p50",
        "p95",
    ]
    assert [int(r[KEY]) for r in rows] == list(range(1, len(plot_shapes) + 1))
    expected = [reference(coverage_sources.terrain, shape) for shape in plot_shapes]
    for row, want in zip(rows, expected, strict=True):
        assert_same_numbers(row, want, f"CSV feature {row[KEY]}")
    # the data can tell: features with values, with nodata, with none at all
    assert sum(e["count"] > 0 for e in expected) > 100
    assert sum(e["nodata_count"] > 0 for e in expected) >= 3
    assert sum(e["count"] == 0 and e["nodata_count"] == 0 for e in expected) >= 10

    frame = gpkg_frame(zc, done["id"], tmp_path)
    assert frame.crs.to_epsg() == 31370
    assert list(frame[KEY]) == list(range(1, len(plot_shapes) + 1))
    for (_, row), want, shape in zip(frame.iterrows(), expected, plot_shapes, strict=True):
        assert_same_numbers(row.to_dict(), want, f"GeoPackage feature {row[KEY]}")
        assert row.geometry.symmetric_difference(shape).area < 1e-3


def test_a_feature_off_the_raster_counts_no_cell_and_has_null_statistics(zc):
    """The sample's buildings lie in Anderlecht and Auderghem, far off the terrain."""
    done = wait_for(zc, submit(zc, "terrain", collection="buildings")["id"], "successful", "failed")
    assert done["status"] == "successful", done["error"]
    rows = csv_rows(zc, done["id"])
    assert len(rows) == done["progress"]["total"] == 65
    assert list(rows[0]) == ["INSPIRE_ID", "count", "nodata_count", "min", "max", "mean", "std"]
    for row in rows:
        assert row["count"] == "0" and row["nodata_count"] == "0"
        assert row["min"] == row["max"] == row["mean"] == row["std"] == ""


def test_another_band_and_a_stored_collection_equal_numpy_on_the_source(
    zc, coverage_sources, zonal_database_url
):
    """The imagery's green band per municipality, the geometries read from PostGIS."""
    done = wait_for(
        zc,
        submit(zc, "imagery", collection="municipalities", band="2", p="5,50,95")["id"],
        "successful",
        "failed",
    )
    assert done["status"] == "successful", done["error"]
    with psycopg.connect(zonal_database_url) as conn:
        stored = dict(
            conn.execute('SELECT "NAT_CODE"::text, ST_AsBinary(geom) FROM urbis.municipalities')
        )
    rows = csv_rows(zc, done["id"])
    assert sorted(r["NAT_CODE"] for r in rows) == sorted(stored)
    counted = 0
    for row in rows:
        want = reference(
            coverage_sources.imagery, shapely.from_wkb(stored[row["NAT_CODE"]]), band=2
        )
        assert_same_numbers(row, want, f"municipality {row['NAT_CODE']}")
        counted += want["count"] > 0
    assert counted >= 2  # the raster lies across municipalities


def test_a_job_whose_raster_vanished_fails_with_the_reason(zc):
    done = wait_for(zc, submit(zc, "doomed", collection=LAYER)["id"], "successful", "failed")
    assert done["status"] == "failed"
    assert "doomed" in done["error"] and "could not be read" in done["error"]
    assert_problem(zc.get(f"/jobs/{done['id']}/results"), 409, "failed")


# -- the queue, the 409, the 503, DELETE, the API meanwhile -------------------------------------


def test_queue_409_503_and_dismissal_while_a_job_waits_on_a_lock(
    zc, zonal_server, zonal_database_url, job_dir
):
    server_pid = zonal_server[0]
    before = spawned_children(server_pid)
    with locked(zonal_database_url, LAYER):
        running = submit(zc, "terrain", collection=LAYER)
        assert running["status"] == "running"  # a worker was free
        new = spawned_children(server_pid) - before
        assert len(new) == 1, new
        blocked = zc.get(f"/jobs/{running['id']}/results?f=csv")
        assert_problem(blocked, 409, "running")
        assert "successful" in blocked.json()["detail"]

        waiting = submit(zc, "terrain", collection=LAYER)
        assert waiting["status"] == "accepted"
        full = zc.post("/coverages/terrain/zonal", params={"collection": LAYER})
        assert_problem(full, 503, "URBIS_JOB_QUEUE=1")
        assert int(full.headers["retry-after"]) > 0

        listed = {j["id"]: j["status"] for j in zc.get("/jobs").json()["jobs"]}
        assert listed[running["id"]] == "running" and listed[waiting["id"]] == "accepted"

        # the API answers meanwhile: a page, a tile, a point
        for target in (
            "/conformance",
            "/coverages/terrain/tiles/WebMercatorQuad/15/16782/10992.png",
            "/coverages/terrain/point?x=149000&y=170000&crs=EPSG:31370",
        ):
            start = time.monotonic()
            assert zc.get(target).status_code in (200, 204)
            assert time.monotonic() - start < 1.0, target

        # a waiting job leaves the queue; its place is free again
        gone = zc.delete(f"/jobs/{waiting['id']}")
        assert gone.status_code == 200 and gone.json()["status"] == "dismissed"
        assert_problem(zc.get(f"/jobs/{waiting['id']}"), 404, waiting["id"])
        queued = submit(zc, "terrain", collection=LAYER)
        assert queued["status"] == "accepted"

        # a running job is stopped, its process ended; the waiting one starts
        stopped = zc.delete(f"/jobs/{running['id']}")
        assert stopped.status_code == 200 and stopped.json()["status"] == "dismissed"
        assert not (new & spawned_children(server_pid))
        assert not files_of(job_dir, running["id"])
        assert_problem(zc.get(f"/jobs/{running['id']}"), 404, "no job")
        assert zc.get(f"/jobs/{queued['id']}").json()["status"] == "running"
    done = wait_for(zc, queued["id"], "successful", "failed")
    assert done["status"] == "successful", done["error"]
    assert [folder / "zonal.csv" for folder in files_of(job_dir, done["id"])][0].is_file()

    # a finished job dismissed: its files go
    assert zc.delete(f"/jobs/{done['id']}").status_code == 200
    assert not files_of(job_dir, done["id"])
    assert_problem(zc.get(f"/jobs/{done['id']}/results"), 404, "no job")


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("coverage", "params", "status", "words"),
    [
        ("nope", {"collection": LAYER}, 404, "no coverage 'nope'"),
        ("terrain", {"collection": "nope"}, 404, "no collection 'nope'"),
        ("terrain", {}, 400, "collection"),
        ("terrain", {"collection": "addresses"}, 400, "'addresses' holds Point"),
        ("terrain", {"collection": "street_axes"}, 400, "no area"),
        ("terrain", {"collection": LAYER, "band": "2"}, 400, "band 2 is not in 'terrain'"),
        ("terrain", {"collection": LAYER, "band": "0"}, 400, "band"),
        ("terrain", {"collection": LAYER, "band": "x"}, 400, "band"),
        ("terrain", {"collection": LAYER, "p": "101"}, 400, "'p'"),
        ("terrain", {"collection": LAYER, "p": "5,x"}, 400, "'x' is not a number"),
        ("terrain", {"collection": LAYER, "percentiles": "5"}, 400, "'percentiles'"),
    ],
)
def test_a_bad_submission_is_refused_naming_what_is_wrong(zc, coverage, params, status, words):
    before = len(zc.get("/jobs").json()["jobs"])
    assert_problem(zc.post(f"/coverages/{coverage}/zonal", params=params), status, words)
    assert len(zc.get("/jobs").json()["jobs"]) == before  # nothing was queued


def test_unknown_jobs_and_bad_parameters_are_4xx(zc):
    for method, target, status, words in [
        ("GET", "/jobs/0123456789abcdef0123456789abcdef", 404, "no job"),
        ("GET", "/jobs/nope?f=html", 404, "no job"),
        ("GET", "/jobs/nope/results?f=csv", 404, "no job"),
        ("DELETE", "/jobs/nope", 404, "no job"),
        ("GET", "/jobs?x=1", 400, "'x'"),
        ("GET", "/jobs/nope/results?f=xlsx", 400, "f"),
    ]:
        response = zc.request(method, target, headers={"Accept": "application/json"})
        if target.endswith("f=html"):
            assert (
                response.status_code == status and "text/html" in response.headers["content-type"]
            )
        else:
            assert_problem(response, status, words)


# -- the pages and the definition ---------------------------------------------------------------


def test_the_job_page_in_three_languages(zc):
    done = wait_for(zc, submit(zc, "terrain", collection=LAYER)["id"], "successful", "failed")
    for lang, words in (
        ("fr", ("Statistiques de terrain par objet de plots", "terminée", "en CSV")),
        ("nl", ("Statistieken van terrain per object van plots", "klaar", "als CSV")),
        ("en", ("Statistics of terrain per feature of plots", "done", "as CSV")),
    ):
        page = zc.get(f"/jobs/{done['id']}", params={"f": "html", "lang": lang})
        assert page.status_code == 200 and page.headers["content-language"] == lang
        for word in words:
            assert word in page.text, (lang, word)
        assert f"/jobs/{done['id']}/results?f=gpkg" in page.text
        assert "<progress" in page.text and "location.reload" not in page.text
        listing = zc.get("/jobs", params={"f": "html", "lang": lang})
        assert listing.status_code == 200 and done["id"] in listing.text


def test_answers_are_what_the_definition_says(zc):
    definition = zc.get("/openapi.json").json()
    paths = definition["paths"]
    done = wait_for(zc, submit(zc, "terrain", collection=LAYER)["id"], "successful", "failed")
    for path, method, status, answer in [
        (
            "/coverages/{coverage_id}/zonal",
            "post",
            "202",
            zc.post(f"/coverages/terrain/zonal?collection={LAYER}"),
        ),
        ("/jobs", "get", "200", zc.get("/jobs")),
        ("/jobs/{job_id}", "get", "200", zc.get(f"/jobs/{done['id']}")),
        ("/jobs/{job_id}", "delete", "200", zc.delete(f"/jobs/{done['id']}")),
        ("/jobs/{job_id}", "get", "404", zc.get(f"/jobs/{done['id']}")),
    ]:
        assert answer.status_code == int(status), answer.text
        media = answer.headers["content-type"].split(";")[0]
        schema = paths[path][method]["responses"][status]["content"][media]["schema"]
        validator = OAS30Validator({**schema, "components": definition["components"]})
        assert not list(validator.iter_errors(answer.json())), (path, method, status)
    for path, method, statuses in [
        ("/coverages/{coverage_id}/zonal", "post", {"202", "400", "404", "503"}),
        ("/jobs/{job_id}/results", "get", {"200", "400", "404", "409"}),
        ("/jobs/{job_id}", "delete", {"200", "404"}),
    ]:
        assert statuses <= set(paths[path][method]["responses"]), (path, method)
    # the last POST's job: let it end, so that the module leaves no job running
    for job in zc.get("/jobs").json()["jobs"]:
        wait_for(zc, job["id"], "successful", "failed")


# -- the lifespan, the TTL, the settings --------------------------------------------------------


def test_jobs_expire_after_their_ttl_and_stopping_the_server_stops_a_running_job(
    zonal_database_url, tmp_path
):
    dead, alive = tmp_path / ("d" * 32), tmp_path / ("a" * 32)
    for folder in (dead, alive):
        (folder / "0123456789abcdef0123456789abcdef").mkdir(parents=True)
        (folder / ".owner.lock").touch()
    other = (alive / ".owner.lock").open("a")  # another API process, still alive
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    proc, base = start_server(zonal_database_url, URBIS_JOB_DIR=str(tmp_path), URBIS_JOB_TTL="1")
    assert not dead.exists() and alive.is_dir()  # what a process gone left, and only that
    other.close()
    shutil.rmtree(alive)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            done = wait_for(
                client, submit(client, "terrain", collection=LAYER)["id"], "successful", "failed"
            )
            assert done["status"] == "successful"
            time.sleep(1.5)
            assert_problem(client.get(f"/jobs/{done['id']}"), 404, "URBIS_JOB_TTL")
            assert not files_of(tmp_path, done["id"])
            with locked(zonal_database_url, LAYER):
                running = submit(client, "terrain", collection=LAYER)
                children = spawned_children(proc.pid)
                assert children
                proc.terminate()
                proc.wait(timeout=20)
                for pid in children:
                    assert (
                        not Path(f"/proc/{pid}").exists()
                        or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
                    )
                assert not files_of(tmp_path, running["id"])
                assert not list(tmp_path.iterdir())  # the process's own folder went too
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=20)


def test_job_settings_are_read_and_checked(tmp_path):
    defaults = Settings.from_env({"URBIS_HOME": str(tmp_path)})
    api = defaults.api("postgresql://x@y/z")
    assert (api.job_workers, api.job_queue, api.job_ttl) == (1, 8, 86_400.0)
    assert api.job_dir == (tmp_path / "jobs").resolve()
    chosen = Settings.from_env(
        {
            "URBIS_JOB_WORKERS": "3",
            "URBIS_JOB_QUEUE": "0",
            "URBIS_JOB_TTL": "600",
            "URBIS_JOB_DIR": str(tmp_path / "j"),
        }
    ).api("postgresql://x@y/z")
    assert (chosen.job_workers, chosen.job_queue, chosen.job_ttl) == (3, 0, 600.0)
    assert chosen.job_dir == (tmp_path / "j").resolve()
    for name, value, words in [
        ("URBIS_JOB_WORKERS", "0", "at least 1"),
        ("URBIS_JOB_QUEUE", "-1", "at least 0"),
        ("URBIS_JOB_TTL", "0", "more than 0"),
        ("URBIS_JOB_TTL", "1e9", "30 days"),
        ("URBIS_JOB_WORKERS", "many", "not an integer"),
    ]:
        with pytest.raises(ConfigError, match=words) as raised:
            Settings.from_env({name: value})
        assert name in str(raised.value)


# -- generated requests -------------------------------------------------------------------------

JOB_OPERATIONS = [
    ("POST", "/coverages/{coverage_id}/zonal"),
    ("GET", "/jobs"),
    ("GET", "/jobs/{job_id}"),
    ("GET", "/jobs/{job_id}/results"),
    ("DELETE", "/jobs/{job_id}"),
]


def test_generated_requests_get_no_server_error_and_what_is_documented(zc, zonal_server):
    """schemathesis over the job operations (tests/api/test_property_run.py's checks).

    POST is fuzzed too, on a real coverage: what it generates for `collection` is nearly never
    a collection (a 404), and the few jobs it could start are bounded by the queue (past it a
    503, which the checks accept); DELETE of generated ids is a 404. Jobs left are awaited.
    """
    schema = schemathesis.openapi.from_url(f"{zonal_server[1]}/openapi.json")
    schema.config.update(base_url=zonal_server[1])
    outcome = Outcome()
    failures = []
    for method, path in JOB_OPERATIONS:
        operation = schema[path][method]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            names = {p.name for p in operation.path_parameters}
            paths = {"coverage_id": "terrain"} if "coverage_id" in names else None
            failure = fuzz(operation, mode, paths, FAST_EXAMPLES * 2, outcome)
            if failure:
                failures.append(f"{method} {path} ({mode.value}): {failure}")
    assert not failures, "\n".join(failures)
    assert outcome.statuses[200] > 0 and outcome.statuses[404] > 0, outcome.statuses
    for job in zc.get("/jobs").json()["jobs"]:
        wait_for(zc, job["id"], "successful", "failed")
