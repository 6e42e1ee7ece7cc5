"""Fault: the database server stops while the API serves, then starts again.

The test owns a PostgreSQL cluster of its own and really stops it (`pg_ctl stop -m fast`, as
an operator or a crash would), so that every pooled connection and the tile listener's
session die and new ones are refused. Data requests must then answer 503 with Retry-After and
the JSON error model at once (not a 500, not a hang), /readyz 503 saying why, /healthz 200.
Once the cluster is back, the same `urbis serve` process recovers by itself: its pool
reconnects, and its tile listener listens again soon enough that a change the sync made
meanwhile is not served stale from the cache for long. The continuous sync (`urbis sync`)
waits the outage out as well, rather than exiting, and runs again once the database is back.

A database that does not stop but stops answering (its processes frozen with SIGSTOP, as a
paused VM or a host gone from the network: the sockets stay open, nothing comes back) must
give the same answers, within a bound, not hold each request as long as TCP keeps trying.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import mapbox_vector_tile
import psycopg
import pytest

from tests.api.conftest import (
    URBIS,
    assert_problem,
    lambert_tile,
    server_log,
    start_server,
    sync_file_layer,
)
from tests.support.layers import file_layer, geojson_feature, point
from tests.support.waiting import eventually
from urbis_core import migrate
from urbis_core.pgcluster import ClusterState, EmbeddedCluster
from urbis_core.settings import DatabaseRoles

pytestmark = pytest.mark.api

BARRIERE, UCCLE = (148384.0, 169116.0), (148000.0, 163000.0)
# Long enough for the listener's backoff (1, 2, 4 s...) to put its next attempt well after
# the cluster is back: recovering within RECOVERY_BOUND then shows the wake-up, not luck.
OUTAGE_SECONDS = 9.0
RECOVERY_BOUND = 3.0
ANSWER_BOUND = 5.0  # seconds a request may take to say the database is away


@pytest.fixture(scope="module")
def own_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[EmbeddedCluster, ClusterState]]:
    """A cluster for this module alone: stopping it disturbs no other test."""
    home = tmp_path_factory.mktemp("stoppable-cluster")
    home.chmod(0o755)
    cluster = EmbeddedCluster(home, durable=False, allow_apt=False)
    state = cluster.start()
    try:
        migrate.upgrade(state.url, roles=DatabaseRoles())
        yield cluster, state
    finally:
        cluster.destroy()


def tile_path(xy: tuple[float, float]) -> str:
    return "/collections/stored/tiles/BelgianLambert72/10/{}/{}".format(*lambert_tile(10, *xy))


def sync_points(url: str, folder: Path, points: dict[str, tuple[float, float]]) -> None:
    features = (geojson_feature({"SID": key}, point(*xy)) for key, xy in points.items())
    sync_file_layer(url, file_layer(folder, "stored", "SID", features), "stored")


def timed_get(client: httpx.Client, path: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - started


def test_the_api_answers_503_while_the_database_is_stopped_and_recovers_by_itself(
    own_cluster, tmp_path
):
    cluster, state = own_cluster
    sync_points(state.url, tmp_path, {"a": BARRIERE, "b": UCCLE})
    near, far = tile_path(BARRIERE), tile_path(UCCLE)
    proc, base = start_server(state.url, DATABASE_URL_API=state.api_url)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            cached = client.get(near)
            assert cached.status_code == 200 and cached.headers["x-tile-cache"] == "miss"
            assert client.get("/collections/stored/items").json()["numberReturned"] == 2

            cluster.stop()
            stopped = time.monotonic()
            for path in (
                "/collections/stored/items",
                "/collections/stored/items/a",
                "/collections/stored/items?f=csv",
                far,  # not cached: it needs the database
            ):
                response, seconds = timed_get(client, path)
                assert_problem(response, 503, "database is not reachable")
                assert response.headers["retry-after"].isdigit(), path
                assert seconds < ANSWER_BOUND, (path, seconds)
            ready, seconds = timed_get(client, "/readyz")
            assert_problem(ready, 503, "does not answer")
            assert ready.headers["retry-after"].isdigit() and seconds < ANSWER_BOUND
            health = client.get("/healthz")
            assert health.status_code == 200  # the process lives: no reason to restart it
            assert health.json()["database"] == "unreachable"
            assert health.json()["database_error"]
            hit = client.get(near)  # a cached tile needs no database
            assert hit.status_code == 200 and hit.headers["x-tile-cache"] == "hit"
            assert hit.content == cached.content

            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
            cluster.start()
            # the sync moves point a (inside its tile) before the API has heard of anything
            sync_points(state.url, tmp_path, {"a": (BARRIERE[0] + 30, BARRIERE[1]), "b": UCCLE})

            back = client.get("/collections/stored/items/a")  # the pool reconnects
            assert back.status_code == 200, back.text
            found = time.monotonic()
            while True:
                fresh = client.get(near)
                if fresh.content != cached.content:
                    break
                assert time.monotonic() - found < RECOVERY_BOUND, (
                    "the cached tile is still the one drawn before the change",
                    server_log(proc)[-2000:],
                )
                time.sleep(0.1)
            assert fresh.headers["x-tile-cache"] == "miss"
            assert mapbox_vector_tile.decode(fresh.content)  # a tile, drawn anew
            assert client.get(near).headers["x-tile-cache"] == "hit"  # and cached again
            assert client.get("/readyz").status_code == 200
            assert client.get("/healthz").json()["database"] == "reachable"
            assert client.get(far).status_code == 200
        log = server_log(proc)
        assert log.count("the database is not reachable") == 1, log
        assert log.count("the database is reachable again") == 1, log
        assert "tile cache follows changes again" in log
        assert "Traceback" not in log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_restart_between_two_requests_costs_no_request_an_error(own_cluster, tmp_path):
    """The pool does not ping what it hands out: the first statement finds a closed one.

    Every pooled connection dies with the restart; the first request after it meets one,
    which drops them all, and is answered on a new connection, not with a 503.
    """
    cluster, state = own_cluster
    sync_points(state.url, tmp_path, {"a": BARRIERE, "b": UCCLE})
    proc, base = start_server(state.url, DATABASE_URL_API=state.api_url)
    try:
        paths = ["/collections/stored/items/a", "/collections/stored/items?limit=1"] * 4
        with httpx.Client(base_url=base, timeout=30) as client:
            with ThreadPoolExecutor(8) as pool:  # several connections in the pool
                assert {r.status_code for r in pool.map(client.get, paths)} == {200}
            cluster.stop()
            cluster.start()
            for path in paths:
                response = client.get(path)
                assert response.status_code == 200, (path, response.text)
        assert "the database is not reachable" not in server_log(proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def successes(cluster_state: ClusterState) -> int:
    with psycopg.connect(cluster_state.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM urbis_meta.sync_run WHERE layer_id = 'stored' "
            "AND status = 'success'"
        ).fetchone()
    return int(row[0]) if row else 0


def wait_until(what: str, check, seconds: float = 30.0) -> None:
    eventually(what, check, seconds)


def test_the_continuous_sync_waits_the_outage_out(own_cluster, tmp_path):
    cluster, state = own_cluster
    features = [geojson_feature({"SID": "a"}, point(*BARRIERE))]
    config = file_layer(tmp_path, "stored", "SID", features)
    config.write_text(config.read_text() + "    schedule: 1s\n")
    log = tmp_path / "sync.log"
    with log.open("w") as out:
        sync = subprocess.Popen(
            [str(URBIS), "sync"],
            env={**os.environ, "DATABASE_URL": state.url, "URBIS_CONFIG": str(config)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        before = successes(state)
        wait_until("a run before the outage", lambda: successes(state) > before)
        cluster.stop()
        time.sleep(4)
        assert sync.poll() is None, log.read_text()  # it waits; it does not exit
        cluster.start()
        after = successes(state)
        wait_until("a run after the outage", lambda: successes(state) > after)
        assert sync.poll() is None
    finally:
        sync.send_signal(signal.SIGTERM)
        sync.wait(timeout=30)
    text = log.read_text()
    assert text.count("the database is not reachable") == 1, text
    assert text.count("the database is reachable again") == 1, text
    assert "Traceback" not in text


def cluster_processes(state: ClusterState) -> list[int]:
    """The postmaster and its children (backends, background workers), read from /proc."""
    postmaster = int((state.data_dir / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                children.append(int(stat.parent.name))
    return [postmaster, *children]


def test_a_database_that_stops_answering_is_an_outage_told_within_a_bound(own_cluster, tmp_path):
    cluster, state = own_cluster
    sync_points(state.url, tmp_path, {"a": BARRIERE})
    # a connection or its ping gets twice the queue's wait: 4 s here
    proc, base = start_server(state.url, DATABASE_URL_API=state.api_url, URBIS_QUEUE_TIMEOUT="2")
    frozen: list[int] = []
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/collections/stored/items").status_code == 200
            frozen = cluster_processes(state)
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            for path in ("/collections/stored/items", "/collections/stored/items/a", "/readyz"):
                response, seconds = timed_get(client, path)
                # a pooled connection's ping gets no answer within twice the queue's wait, a
                # new connection none within its connect timeout (3 s): an outage either way
                assert response.status_code == 503, response.text
                detail = response.json()["detail"]
                if path == "/readyz":
                    assert "does not answer" in detail or "not reachable" in detail, detail
                else:
                    assert_problem(response, 503, "database is not reachable right now")
                    assert response.headers["retry-after"].isdigit()
                assert 2.5 < seconds < ANSWER_BOUND + 1, (path, seconds)  # 3 s or 4 s
            health = client.get("/healthz").json()
            assert health["database"] == "unreachable"
            assert health["database_error"] == "no answer within 4 s" or (
                "timeout expired" in health["database_error"]
            ), health
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
            frozen = []
            back = client.get("/collections/stored/items")
            assert back.status_code == 200 and back.json()["numberReturned"] == 1
            assert client.get("/readyz").status_code == 200
            metrics = client.get("/metrics").text
            assert "urbis_db_pool_in_use 0.0" in metrics  # no connection left checked out
        log = server_log(proc)
        assert log.count("the database is not reachable") == 1, log
        assert "the database is reachable again" in log and "Traceback" not in log
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=10)
