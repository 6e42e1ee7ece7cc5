"""A real `urbis serve` process over a database holding the synced sample, shared by a module."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.conftest import ARTIFACTS, drop_database, reader_url, synced_sample_database
from tests.support import rasters
from urbis_core.config import load_config
from urbis_core.db import create_sync_engine
from urbis_core.pgcluster import free_port
from urbis_core.settings import SyncSettings
from urbis_sync.run import sync_layer

URBIS = Path(sys.executable).parent / "urbis"
SERVER_LOGS: dict[int, Path] = {}  # the log file of each server started, by process id


def rss_mib(pid: int) -> float:
    """A process's resident memory, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def server_log(proc: subprocess.Popen[bytes]) -> str:
    """What a server started by `start_server` has written to its log so far."""
    return SERVER_LOGS[proc.pid].read_text()


@pytest.fixture(scope="module")
def synced_database_url(admin_url: str, synced_template_url: str) -> Iterator[str]:
    name = f"api_{uuid.uuid4().hex[:10]}"
    yield synced_sample_database(admin_url, synced_template_url, name)
    drop_database(admin_url, name)


def start_server(
    database_url: str, *args: str, **settings: str
) -> tuple[subprocess.Popen[bytes], str]:
    """`urbis serve` on a free port; `args` are its flags, `settings` extra environment
    variables.

    The API connects as the reader role (DATABASE_URL_API), as it does when deployed: every
    API test shows it works with SELECT alone.
    """
    port = free_port()
    # Low zooms are not drawn ahead unless a test asks: first requests are then cache misses.
    env = {
        **os.environ,
        "URBIS_TILE_WARM_ZOOM": "-1",
        "DATABASE_URL": database_url,
        "DATABASE_URL_API": reader_url(database_url),
        "URBIS_PORT": str(port),
        **settings,
    }
    # The server's log goes to a file: a pipe nobody reads would block it once full.
    log = tempfile.NamedTemporaryFile(prefix="urbis-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [str(URBIS), "serve", *args], env=env, stdout=subprocess.DEVNULL, stderr=log
    )
    SERVER_LOGS[proc.pid] = Path(log.name)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"urbis serve exited: {Path(log.name).read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("urbis serve was not ready within 30 s")


@pytest.fixture(scope="module")
def api(synced_database_url: str) -> Iterator[str]:
    proc, base = start_server(synced_database_url)
    yield base
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def client(api: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api, timeout=30) as c:
        yield c


# BelgianLambert72 is URBIS' own WMTS grid (GeoWebCache "EPSG:31370"): its top-left corner and
# the span of its one zoom-0 tile, as CIRB's map code gives them (not read from tiles.tms).
LAMBERT_ORIGIN = (16_478.795, 304_073.871)
LAMBERT_SPAN_Z0 = 284_828.943


def lambert_span(z: int) -> float:
    return LAMBERT_SPAN_Z0 / 2**z


def lambert_tile(z: int, x: float, y: float) -> tuple[int, int]:
    """The column and row of the BelgianLambert72 tile holding the point (x, y)."""
    return (
        int((x - LAMBERT_ORIGIN[0]) // lambert_span(z)),
        int((LAMBERT_ORIGIN[1] - y) // lambert_span(z)),
    )


def lambert_bounds(z: int, col: int, row: int) -> tuple[float, float, float, float]:
    span = lambert_span(z)
    minx, maxy = LAMBERT_ORIGIN[0] + col * span, LAMBERT_ORIGIN[1] - row * span
    return minx, maxy - span, minx + span, maxy


def assert_problem(response: httpx.Response, status: int, words: str) -> None:
    """The one error model: {status, title, detail}, with a detail that says why."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "title", "detail"} and body["status"] == status
    assert words in body["detail"], body["detail"]


def chromium(
    *flags: str, window: str = "1280,1000", languages: str | None = None
) -> webdriver.Chrome:
    """Debian's headless Chromium through its WebDriver, with the console log kept."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", *flags):
        options.add_argument(flag)
    options.add_argument(f"--window-size={window}")
    if languages is not None:
        options.add_experimental_option("prefs", {"intl.accept_languages": languages})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def offline_browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium resolving no host but 127.0.0.1 (the map must work offline), English
    first, console kept; screenshots go to test-artifacts/map/."""
    driver = chromium(
        "--lang=en-GB",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        window="1280,900",
        languages="en-GB,en",
    )
    (ARTIFACTS / "map").mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def sync_file_layer(database_url: str, config: Path, layer_id: str) -> None:
    """One sync run of a layer the test configured, which must succeed."""
    engine = create_sync_engine(database_url)
    try:
        report = sync_layer(engine, load_config(config), layer_id)
        assert report.status == "success", report.error
    finally:
        engine.dispose()


@dataclass(frozen=True)
class CoverageSources:
    """The source files of the coverage tests' raster layers, and where the sync put the COGs."""

    terrain: Path  # EPSG:31370, float32, nodata holes (tests.support.rasters)
    imagery: Path  # RGB uint8, nodata 0
    terrain_l08: Path  # the same terrain on a Lambert 2008 grid: reprojected by the sync
    raster_dir: Path
    config: Path


COVERAGE_CONFIG = """\
layers:
  terrain:
    type: raster
    title: {{fr: Modèle de terrain, nl: Terreinmodel, en: Terrain model}}
    source: {{kind: file, path: {terrain}}}
    style: {{colormap: terrain, hillshade: true, units: m}}
  imagery:
    type: raster
    title: {{fr: Orthophoto, nl: Orthofoto, en: Orthophoto}}
    source: {{kind: file, path: {imagery}}}
  terrain_l08:
    type: raster
    title: {{fr: Terrain (Lambert 2008), nl: Terrein (Lambert 2008), en: Terrain (Lambert 2008)}}
    source: {{kind: file, path: {terrain_l08}}}
"""


@pytest.fixture(scope="module")
def coverage_sources(tmp_path_factory: pytest.TempPathFactory) -> CoverageSources:
    folder = tmp_path_factory.mktemp("coverages")
    sources = CoverageSources(
        terrain=rasters.write_terrain(folder / "dtm.tif"),
        imagery=rasters.write_rgb(folder / "ortho.tif"),
        terrain_l08=rasters.write_terrain_lambert2008(folder / "dtm_l08.tif"),
        raster_dir=folder / "cogs",
        config=folder / "urbis.yaml",
    )
    sources.config.write_text(
        COVERAGE_CONFIG.format(
            terrain=sources.terrain, imagery=sources.imagery, terrain_l08=sources.terrain_l08
        )
    )
    return sources


@pytest.fixture(scope="module")
def coverage_database_url(
    admin_url: str, synced_template_url: str, coverage_sources: CoverageSources
) -> Iterator[str]:
    """The synced sample plus the three raster layers of `coverage_sources`, synced."""
    name = f"cov_{uuid.uuid4().hex[:10]}"
    url = synced_sample_database(admin_url, synced_template_url, name)
    config = load_config(coverage_sources.config)
    settings = SyncSettings(raster_dir=coverage_sources.raster_dir)
    engine = create_sync_engine(url)
    try:
        for layer_id in config.rasters:
            report = sync_layer(engine, config, layer_id, settings)
            assert report.status == "success", report.error
    finally:
        engine.dispose()
    yield url
    drop_database(admin_url, name)


@pytest.fixture(scope="module")
def coverage_api(coverage_database_url: str) -> Iterator[str]:
    proc, base = start_server(coverage_database_url)
    yield base
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def coverage_client(coverage_api: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=coverage_api, timeout=30) as c:
        yield c
