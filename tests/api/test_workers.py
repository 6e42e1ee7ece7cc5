"""`urbis serve --workers 2`: two API processes on one port, kept coherent (issue 17, item 2).

A real `urbis serve --workers 2` over the zonal tests' database (the sample, the coverages, the
generated plots) plus a layer of two points the tests move. Which process answered a request
is read from the kernel: the test's connection stays open after its answer (keep-alive), and
the API process holding the other end of it is found among the supervisor's children
(psutil), so no header of the API's says it. Shown: both processes answer; a change synced
drops the tile each of them had cached (each draws it again); a zonal job submitted to one is
seen, downloaded and dismissed through the other; /metrics counts the requests of both,
whichever answers; a worker killed is started again while the other answers; SIGTERM stops
every process, and a killed supervisor leaves no process behind.
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from tests.api.conftest import URBIS, lambert_tile, start_server, sync_file_layer
from tests.api.test_zonal_jobs import (  # noqa: F401
    LAYER,
    locked,
    plot_shapes,
    zonal_database_url,
)
from tests.conftest import reader_url
from tests.support.layers import file_layer, geojson_feature, point
from tests.support.processes import alive, spawned_children
from tests.support.waiting import eventually
from urbis_core.errors import ConfigError
from urbis_core.pgcluster import free_port
from urbis_core.settings import Settings

pytestmark = pytest.mark.api

WORKERS = 2
TOKEN = "test-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BARRIERE, UCCLE = (148384.0, 169116.0), (148000.0, 163000.0)
DEADLINE = 30.0  # seconds for what should take one or two: a restart, a job, a notification
TRIES = 400  # fresh connections made to reach one given process before giving up


@dataclass(frozen=True)
class Answer:
    pid: int  # the API process that answered
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class Served:
    """Requests to the server, each over a connection whose API process is known."""

    def __init__(self, base: str, supervisor: int) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "", parts.port or 80
        self.supervisor = supervisor

    def workers(self) -> set[int]:
        return spawned_children(self.supervisor)

    def connect(self) -> tuple[http.client.HTTPConnection, int]:
        """A new connection, and the process that took it (asked with a GET /healthz)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=DEADLINE)
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        assert conn.sock is not None
        local = conn.sock.getsockname()[:2]
        for pid in self.workers():
            with contextlib.suppress(psutil.Error):
                for c in psutil.Process(pid).net_connections(kind="tcp"):
                    if c.raddr and (c.raddr.ip, c.raddr.port) == local:
                        return conn, pid
        conn.close()
        raise AssertionError(f"no API process of {self.workers()} holds the connection {local}")

    @contextlib.contextmanager
    def to(self, pid: int | None = None, avoid: int | None = None) -> Iterator[tuple]:
        """A connection to that process (None: any), or to any but `avoid`."""
        for _ in range(TRIES):
            conn, owner = self.connect()
            if (pid is None or owner == pid) and owner != avoid:
                try:
                    yield conn, owner
                finally:
                    conn.close()
                return
            conn.close()
        raise AssertionError(f"{TRIES} connections, none to process {pid} (avoiding {avoid})")

    def ask(
        self,
        method: str,
        path: str,
        pid: int | None = None,
        avoid: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        with self.to(pid, avoid) as (conn, owner):
            return over(conn, owner, method, path, headers)

    def get(
        self,
        path: str,
        pid: int | None = None,
        avoid: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        return self.ask("GET", path, pid, avoid, headers)

    def from_each(self, path: str) -> dict[int, Answer]:
        """One answer from each API process."""
        return {pid: self.get(path, pid) for pid in sorted(self.workers())}


def over(
    conn: http.client.HTTPConnection,
    owner: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request over a connection whose process is known."""
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    return Answer(owner, response.status, {k.lower(): v for k, v in response.getheaders()}, body)


def wait_until(check, what: str, seconds: float = DEADLINE):
    return eventually(what, check, seconds)


def sync_points(
    database_url: str, folder: Path, points: dict[str, tuple[float, float]], layer: str = "stored"
) -> Path:
    """Sync the points as the layer; the configuration file naming it."""
    features = (geojson_feature({"SID": key}, point(*xy)) for key, xy in points.items())
    config = file_layer(folder, layer, "SID", features)
    sync_file_layer(database_url, config, layer)
    return config


def tile_path(xy: tuple[float, float], layer: str = "stored") -> str:
    z, (x, y) = 10, lambert_tile(10, *xy)  # 278 m tiles
    return f"/collections/{layer}/tiles/BelgianLambert72/{z}/{x}/{y}"


@pytest.fixture(scope="module")
def points_config(zonal_database_url: str, tmp_path_factory) -> Path:  # noqa: F811
    folder = tmp_path_factory.mktemp("points")
    return sync_points(zonal_database_url, folder, {"a": BARRIERE, "b": UCCLE})


@pytest.fixture(scope="module")
def workers_database_url(zonal_database_url: str, points_config: Path) -> str:  # noqa: F811
    return zonal_database_url


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jobs")


@pytest.fixture(scope="module")
def server(
    workers_database_url: str, job_dir: Path, points_config: Path
) -> Iterator[tuple[subprocess.Popen, Served]]:
    proc, base = start_server(
        workers_database_url,
        "--workers",
        str(WORKERS),
        URBIS_JOB_DIR=str(job_dir),
        URBIS_ADMIN_TOKEN=TOKEN,
        URBIS_CONFIG=str(points_config),
    )
    served = Served(base, proc.pid)
    try:
        wait_until(lambda: len(served.workers()) == WORKERS, f"{WORKERS} API processes")
        # both ready: each answers /readyz over a connection it took
        for pid in served.workers():
            assert served.get("/readyz", pid).status == 200
        yield proc, served
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_both_processes_answer_and_the_supervisor_serves_nothing_itself(server):
    proc, served = server
    workers = served.workers()
    assert len(workers) == WORKERS and proc.pid not in workers
    seen = set()
    for _ in range(TRIES):  # the kernel hands each new connection to one of them
        seen.add(served.get("/collections").pid)
        if seen == workers:
            break
    assert seen == workers
    for answer in served.from_each("/collections").values():
        assert answer.status == 200 and answer.json()["collections"]


def test_a_change_synced_drops_the_tile_each_process_had_cached(
    server, workers_database_url, tmp_path
):
    _, served = server
    near, far = tile_path(BARRIERE), tile_path(UCCLE)
    first = served.get(near)
    assert first.status == 200
    cached = {}  # each process's answer once it serves the tile from its own cache
    for pid in served.workers():
        answer = wait_until(
            lambda pid=pid: (a := served.get(near, pid)).headers["x-tile-cache"] == "hit" and a,
            f"process {pid} serving the tile from its cache",
        )
        assert answer.body == first.body and answer.headers["etag"] == first.headers["etag"]
        cached[pid] = answer
        assert served.get(far, pid).status == 200
    assert set(cached) == served.workers()

    # point a moves inside its tile; b does not move (the far tile stays cached)
    sync_points(workers_database_url, tmp_path, {"a": (BARRIERE[0] + 30, BARRIERE[1]), "b": UCCLE})
    for pid in served.workers():
        fresh = wait_until(
            lambda pid=pid: (a := served.get(near, pid)).body != first.body and a,
            f"process {pid} serving the changed tile",
            seconds=10,
        )
        assert fresh.status == 200 and fresh.headers["etag"] != first.headers["etag"]
        # it drew the tile again: the change dropped the one in its own memory
        assert fresh.headers["x-tile-cache"] == "miss"
    answers = [served.get(near) for _ in range(30)]
    assert {a.pid for a in answers} == served.workers()
    assert all(a.body == fresh.body and a.headers["etag"] == fresh.headers["etag"] for a in answers)
    for pid in served.workers():
        assert served.get(far, pid).headers["x-tile-cache"] == "hit"  # untouched: still cached


def test_a_purge_asked_of_one_process_drops_the_tile_in_the_other_too(server):
    _, served = server
    far = tile_path(UCCLE)
    for pid in served.workers():
        wait_until(
            lambda pid=pid: served.get(far, pid).headers["x-tile-cache"] == "hit",
            f"process {pid} serving the tile from its cache",
        )
    asker, other = sorted(served.workers())
    purged = served.ask("POST", "/admin/tiles/purge?layer=stored", asker, headers=AUTH)
    assert purged.status == 200, purged.body
    assert purged.json()["memory"] >= 1  # the asker's own count
    assert served.get(far, asker).headers["x-tile-cache"] == "miss"
    wait_until(
        lambda: served.get(far, other).headers["x-tile-cache"] == "miss",
        "the other process dropping the tile",
        seconds=5,
    )
    assert served.get(far, other).headers["x-tile-cache"] == "hit"  # kept again, once


def test_two_processes_asked_at_once_start_one_sync_run_which_both_show(server):
    _, served = server
    first, second = sorted(served.workers())
    runs = "/admin/runs?layer=stored&limit=100"
    before = served.get(runs, first, headers=AUTH).json()["runs"]
    with served.to(first) as (one, _), served.to(second) as (two, _):
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(
                    lambda c: over(*c, "POST", "/admin/sync/stored", AUTH),
                    [(one, first), (two, second)],
                )
            )
    statuses = sorted(a.status for a in answers)
    assert statuses in ([202, 202], [202, 409]), [a.body for a in answers]
    started = {a.json()["id"] for a in answers if a.status == 202}
    assert len(started) == 1  # two 202s name the one run
    for refused in (a for a in answers if a.status == 409):
        assert "stored" in refused.json()["detail"]
    (run_id,) = started
    done = wait_until(
        lambda: (
            (a := served.get(f"/admin/runs/{run_id}", second, headers=AUTH)).json()["status"]
            != "running"
            and a
        ),
        "the run's end",
    )
    assert done.json()["status"] == "success", done.body
    assert served.get(f"/admin/runs/{run_id}", first, headers=AUTH).json() == done.json()

    # Each process started its own `urbis sync`; the one that took the layer's lock second
    # found this run newer than the newest it was given and did not run again: once both
    # processes have ended, this run is the only new one.
    def sync_processes() -> list[psutil.Process]:
        found = []
        for worker in (first, second):
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in psutil.Process(worker).children():
                    with contextlib.suppress(psutil.NoSuchProcess):
                        if "--unless-run-after" in child.cmdline():
                            found.append(child)
        return found

    wait_until(lambda: not sync_processes(), "both sync processes' end")
    known = {run["id"] for run in before}
    listed = served.get(runs, second, headers=AUTH).json()["runs"]
    assert [run["id"] for run in listed if run["id"] not in known] == [run_id], listed


def test_a_job_submitted_to_one_process_is_seen_downloaded_and_dismissed_through_the_other(
    server,
    job_dir,
    plot_shapes,  # noqa: F811
):
    _, served = server
    accepted = served.ask("POST", f"/coverages/terrain/zonal?collection={LAYER}&p=50")
    assert accepted.status == 202, accepted.body
    job_id, owner = accepted.json()["id"], accepted.pid
    other = next(pid for pid in served.workers() if pid != owner)

    seen = served.get(f"/jobs/{job_id}", other)
    assert seen.status == 200 and seen.json()["id"] == job_id
    assert seen.json()["status"] in ("accepted", "running", "successful")
    done = wait_until(
        lambda: (
            (a := served.get(f"/jobs/{job_id}", other)).json()["status"] in ("successful", "failed")
            and a
        ),
        "the job's end, seen from the other process",
        seconds=90,
    ).json()
    assert done["status"] == "successful", done["error"]
    assert done["progress"] == {"done": len(plot_shapes), "total": len(plot_shapes)}
    assert done == served.get(f"/jobs/{job_id}", owner).json()  # one record, two readers

    listed = served.get("/jobs", other)
    assert [job["id"] for job in listed.json()["jobs"]] == [job_id]
    results = served.get(f"/jobs/{job_id}/results?f=csv", other)
    assert results.status == 200, results.body
    rows = list(csv.DictReader(io.StringIO(results.body.decode())))
    assert len(rows) == len(plot_shapes)
    assert results.body == served.get(f"/jobs/{job_id}/results?f=csv", owner).body
    gpkg = served.get(f"/jobs/{job_id}/results?f=gpkg", other)
    assert gpkg.status == 200 and gpkg.body.startswith(b"SQLite format 3")

    # the absent and malformed, from the process that does not own the job
    for path in ("/jobs/" + "0" * 32, "/jobs/" + "0" * 32 + "/results", "/jobs/not-a-job-id"):
        missing = served.get(path, other)
        assert missing.status == 404, path
        assert missing.json()["status"] == 404 and "no job" in missing.json()["detail"]
    assert served.ask("DELETE", "/jobs/" + "0" * 32, other).status == 404

    dismissed = served.ask("DELETE", f"/jobs/{job_id}", other)
    assert dismissed.status == 200, dismissed.body
    assert dismissed.json()["status"] == "dismissed" and dismissed.json()["id"] == job_id
    assert not list(job_dir.glob(f"*/{job_id}"))  # the owner removed its folder
    for pid in (owner, other):
        assert served.get(f"/jobs/{job_id}", pid).status == 404
        assert served.get("/jobs", pid).json()["jobs"] == []


def _sample(text: str, name: str, labels: str = "") -> float:
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", re.M)
    for found in pattern.finditer(text):
        if labels in (found.group(1) or ""):
            total += float(found.group(2))
    return total


def test_metrics_count_the_requests_of_both_processes_whichever_answers(server):
    _, served = server
    workers = sorted(served.workers())
    count = "urbis_http_request_duration_seconds_count"
    route = 'route="/conformance"'
    before = _sample(served.get("/metrics", workers[0]).body.decode(), count, route)
    for pid in workers:
        for _ in range(3):
            assert served.get("/conformance", pid).status == 200
    for pid in workers:  # every scrape, from either process, counts the six
        text = served.get("/metrics", pid).body.decode()
        assert _sample(text, count, route) == before + 3 * WORKERS
    wait_until(
        lambda: _sample(served.get("/metrics").body.decode(), "urbis_api_processes") == WORKERS,
        "both processes counted in urbis_api_processes",
    )
    text = served.get("/metrics").body.decode()
    assert _sample(text, "urbis_db_pool_size") > 0
    assert _sample(text, "urbis_db_reachable") == 1
    assert "urbis_tile_cache_hits_total" in text and "urbis_sync_runs_total" in text


def test_a_killed_process_is_started_again_while_the_other_answers(server, workers_database_url):
    _, served = server
    victim, survivor = sorted(served.workers())
    # a job of the victim's, held running by a lock on its collection's table
    with locked(workers_database_url, LAYER):
        before = spawned_children(victim)
        accepted = served.ask("POST", f"/coverages/terrain/zonal?collection={LAYER}", victim)
        assert accepted.status == 202, accepted.body
        job_id = accepted.json()["id"]
        wait_until(
            lambda: served.get(f"/jobs/{job_id}", survivor).json()["status"] == "running",
            "the job running",
        )
        (job_process,) = spawned_children(victim) - before
        os.kill(victim, signal.SIGKILL)
        # the kernel ends the job's process with its API process
        wait_until(lambda: not alive(job_process), "the job's process gone", 10)
    answered = []
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        answer = served.get("/collections")
        answered.append(answer.status)
        workers = served.workers()
        if len(workers) == WORKERS and victim not in workers:
            break
    workers = served.workers()
    assert victim not in workers and survivor in workers and len(workers) == WORKERS
    assert answered and set(answered) == {200}
    (newcomer,) = workers - {survivor}
    assert wait_until(
        lambda: served.get("/readyz", newcomer).status == 200, "the new process ready"
    )
    # the dead process's jobs went with it: no process shows them, nor their files
    for pid in workers:
        assert served.get(f"/jobs/{job_id}", pid).status == 404
        assert job_id not in {job["id"] for job in served.get("/jobs", pid).json()["jobs"]}


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_sigterm_stops_every_process_and_a_killed_supervisor_leaves_none(synced_database_url, how):
    proc, base = start_server(synced_database_url, "--workers", str(WORKERS))
    served = Served(base, proc.pid)
    workers = wait_until(
        lambda: len(w := served.workers()) == WORKERS and w, f"{WORKERS} API processes"
    )
    (shared,) = Path(tempfile.gettempdir()).glob(f"urbis-serve-{proc.pid}-*")
    assert list(shared.glob("metrics/*.db"))  # the processes' figures
    proc.send_signal(how)
    code = proc.wait(timeout=60)
    # SIGTERM: the supervisor stops the processes and ends well; SIGKILL: the kernel tells them
    assert code == (0 if how == signal.SIGTERM else -signal.SIGKILL)
    wait_until(lambda: not any(alive(pid) for pid in workers), "every API process gone", 15)
    if how == signal.SIGTERM:
        assert not shared.exists()
    else:  # left behind by the killed supervisor, removed by the next one to start
        assert shared.exists()
        again, _ = start_server(synced_database_url, "--workers", str(WORKERS))
        again.terminate()
        again.wait(timeout=60)
        assert not shared.exists()


def test_the_number_of_processes_is_read_and_checked(tmp_path):
    assert Settings.from_env({}).workers == 1
    assert Settings.from_env({"URBIS_WORKERS": "4"}).workers == 4
    for value, words in [("0", "greater than or equal to 1"), ("65", "less than or equal to 64")]:
        with pytest.raises(ConfigError, match=words) as raised:
            Settings.from_env({"URBIS_WORKERS": value})
        assert "URBIS_WORKERS" in str(raised.value)
    with pytest.raises(ConfigError, match="URBIS_WORKERS='two'"):
        Settings.from_env({"URBIS_WORKERS": "two"})
    env = {**os.environ, "URBIS_HOME": str(tmp_path)}
    wrong = subprocess.run(
        [str(URBIS), "serve", "--workers", "0"], env=env, capture_output=True, text=True
    )
    assert wrong.returncode == 2 and "--workers" in wrong.stderr and "0" in wrong.stderr
    unreadable = subprocess.run(
        [str(URBIS), "serve"], env={**env, "URBIS_WORKERS": "two"}, capture_output=True, text=True
    )
    assert unreadable.returncode == 2
    assert "URBIS_WORKERS='two' is not an integer" in unreadable.stderr


def _serve_env(database_url: str, port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DATABASE_URL_API": reader_url(database_url),
        "URBIS_PORT": str(port),
        **extra,
    }


def test_a_port_taken_and_an_app_that_cannot_start_end_the_command_with_the_reason(
    synced_database_url, tmp_path
):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(URBIS), "serve", "--workers", str(WORKERS)],
            env=_serve_env(synced_database_url, port),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"urbis: error: cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr

    # the app refuses a setting at start: every process would, so the command ends
    absent = tmp_path / "absent.pmtiles"
    started = time.monotonic()
    done = subprocess.run(
        [str(URBIS), "serve", "--workers", str(WORKERS)],
        env=_serve_env(synced_database_url, free_port(), URBIS_TILE_ARCHIVES=str(absent)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"URBIS_TILE_ARCHIVES: no such file: {absent}" in done.stderr
    assert "urbis: error: the API could not start" in done.stderr
    assert "another starts in" not in done.stderr  # not started again and again
    assert time.monotonic() - started < 60


def test_with_a_shared_disk_tier_a_change_reaches_both_and_no_stale_tile_is_left_on_disk(
    synced_database_url, tmp_path
):
    (tmp_path / "one").mkdir(), (tmp_path / "two").mkdir()
    sync_points(synced_database_url, tmp_path / "one", {"a": BARRIERE, "b": UCCLE}, "ondisk")
    near = tile_path(BARRIERE, "ondisk")
    cache_dir = tmp_path / "tile-cache"
    proc, base = start_server(
        synced_database_url, "--workers", str(WORKERS), URBIS_TILE_CACHE_DIR=str(cache_dir)
    )
    served = Served(base, proc.pid)
    try:
        wait_until(lambda: len(served.workers()) == WORKERS, f"{WORKERS} API processes")
        first = {pid: served.get(near, pid) for pid in sorted(served.workers())}
        # one drew it, the other read it from the shared disk tier
        assert sorted(a.headers["x-tile-cache"] for a in first.values()) == ["hit", "miss"]
        assert len({a.body for a in first.values()}) == 1
        old = next(iter(first.values()))
        moved = {"a": (BARRIERE[0] + 30, BARRIERE[1]), "b": UCCLE}
        sync_points(synced_database_url, tmp_path / "two", moved, "ondisk")
        for pid in served.workers():
            wait_until(
                lambda pid=pid: served.get(near, pid).body != old.body,
                f"process {pid} serving the changed tile",
                seconds=10,
            )
        answers = [served.get(near) for _ in range(20)]
        assert {a.body for a in answers} == {answers[0].body} != {old.body}
        (stored,) = cache_dir.rglob("ondisk/**/*.mvt")
        assert stored.read_bytes() == answers[0].body  # the disk holds the new tile only
        etag, _, _ = stored.with_suffix(".etag").read_text().partition("\n")
        assert etag == answers[0].headers["etag"]
        assert not list(cache_dir.rglob(".tmp-*"))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
