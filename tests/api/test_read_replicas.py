"""Reads from a real streaming replica (issue 17, item 1), made with `pg_basebackup -R`.

The module runs a primary of its own (replication on), syncs one small point layer into it,
copies it into a standby that streams from it, and starts `urbis serve` with
`DATABASE_URL_READ` naming the standby (no user in the URL: the reader's is taken). Shown:
the reads are the standby's (a request held behind a replayed lock shows in the standby's
pg_stat_activity, as the reader, and not in the primary's); a sync on the primary is seen
through the API within seconds; with replay paused, the cached tile is not dropped while the
replica still shows the old data, and a tile drawn from it meanwhile is not kept past the
change; the standby's restart is survived (reads go to the primary, then come back); a replica
lagging past URBIS_READ_MAX_LAG_S stops serving, the reads then showing the primary's data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mapbox_vector_tile
import psycopg
import pytest

from tests.api.conftest import (
    URBIS,
    lambert_bounds,
    lambert_tile,
    server_log,
    start_server,
    sync_file_layer,
)
from tests.conftest import ROLES
from tests.support.layers import file_layer, geojson_feature, point
from urbis_core import migrate
from urbis_core.pgcluster import ClusterState, EmbeddedCluster, free_port
from urbis_core.settings import Settings

BARRIERE, UCCLE = (148384.0, 169116.0), (148000.0, 163000.0)
NEAR = "/collections/moving/tiles/BelgianLambert72/10/{}/{}".format(*lambert_tile(10, *BARRIERE))
FAR = "/collections/moving/tiles/BelgianLambert72/10/{}/{}".format(*lambert_tile(10, *UCCLE))


@dataclass
class Replication:
    primary: ClusterState
    standby: EmbeddedCluster
    standby_state: ClusterState
    folder: Path  # the layer's file and configuration

    def sync(self, a: tuple[float, float]) -> None:
        """Point `a` to there (b stays in Uccle), synced on the primary by the writer."""
        features = (
            geojson_feature({"PID": key, "NAME": f"point {key}"}, point(*xy))
            for key, xy in {"a": a, "b": UCCLE}.items()
        )
        sync_file_layer(
            self.primary.url, file_layer(self.folder, "moving", "PID", features), "moving"
        )

    def on_standby(self, query: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.standby_state.admin_url("urbis"), autocommit=True) as conn:
            return conn.execute(query).fetchall()


@pytest.fixture(scope="module")
def replication() -> Iterator[Replication]:
    homes = [Path(tempfile.mkdtemp(prefix=f"urbis-test-{n}-")) for n in ("primary", "standby")]
    for home in homes:
        home.chmod(0o755)  # the postgres user enters it
    primary = EmbeddedCluster(homes[0], durable=False, replication=True)
    standby = None
    try:
        state = primary.start()
        migrate.upgrade(state.url, roles=ROLES)
        folder = homes[0] / "layer"
        folder.mkdir()
        standby = EmbeddedCluster(homes[1], durable=False, standby_of=state)
        replication = Replication(state, standby, state, folder)
        replication.sync(BARRIERE)
        replication.standby_state = standby.start()
        yield replication
    finally:
        if standby is not None:
            standby.destroy()
        primary.destroy()
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)


def _serve(
    replication: Replication, max_lag: str, check_interval: str = "1"
) -> tuple[subprocess.Popen[bytes], str]:
    return start_server(
        replication.primary.url,
        DATABASE_URL_API=replication.primary.api_url,
        DATABASE_URL_READ=f"postgresql://127.0.0.1:{replication.standby_state.port}",
        URBIS_READ_MAX_LAG_S=max_lag,
        URBIS_READ_CHECK_INTERVAL_S=check_interval,
    )


@pytest.fixture(scope="module")
def served(replication: Replication) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    proc, base = _serve(replication, "20")
    with httpx.Client(base_url=base, timeout=30) as client:
        yield proc, client
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def client(served: tuple[subprocess.Popen[bytes], httpx.Client]) -> httpx.Client:
    return served[1]


def _wait(what: str, ready: Callable[[], Any], seconds: float = 15) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = ready()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}"
        time.sleep(0.05)


def _replica(client: httpx.Client) -> dict[str, Any]:
    (replica,) = client.get("/healthz").json()["read_replicas"]
    return replica


def _changes(client: httpx.Client) -> int:
    return int(client.get("/healthz").json()["tile_cache"]["changes"])


def _position(client: httpx.Client) -> list[float]:
    """Point a's coordinates as the API answers them (CRS84 in GeoJSON, so compared loosely)."""
    features = client.get("/collections/moving/items", params={"crs": _LAMBERT}).json()
    (a,) = [f for f in features["features"] if f["properties"]["PID"] == "a"]
    return [round(c, 3) for c in a["geometry"]["coordinates"]]


_LAMBERT = "http://www.opengis.net/def/crs/EPSG/0/31370"


def _position_on_primary(replication: Replication) -> list[float]:
    with psycopg.connect(replication.primary.admin_url("urbis")) as conn:
        row = conn.execute("SELECT ST_X(geom), ST_Y(geom) FROM urbis.moving WHERE \"PID\" = 'a'")
        x, y = row.fetchone()  # type: ignore[misc]
    return [round(x, 3), round(y, 3)]


def _tile_point(response: httpx.Response, path: str) -> tuple[float, float]:
    """Where the tile draws point a, in EPSG:31370 (to within one of its 4096 units)."""
    assert response.status_code == 200, response.text
    minx, miny, maxx, maxy = lambert_bounds(*map(int, path.rsplit("/", 3)[1:]))
    features = mapbox_vector_tile.decode(response.content)["moving"]["features"]
    (a,) = [f for f in features if f["properties"]["PID"] == "a"]
    x, y = a["geometry"]["coordinates"]
    return minx + x / 4096 * (maxx - minx), miny + y / 4096 * (maxy - miny)


def _near(found: tuple[float, float], expected: tuple[float, float], path: str) -> bool:
    z = int(path.rsplit("/", 3)[1])
    minx, _, maxx, _ = lambert_bounds(z, 0, 0)
    unit = (maxx - minx) / 4096
    return abs(found[0] - expected[0]) <= unit and abs(found[1] - expected[1]) <= unit


def _moved_within(old: tuple[float, float], zooms: tuple[int, ...]) -> tuple[float, float]:
    """A spot 5 m from `old`, in the same BelgianLambert72 tiles at these zooms."""
    return next(
        (old[0] + dx, old[1] + dy)
        for dx, dy in ((5, 5), (-5, 5), (5, -5), (-5, -5))
        if all(lambert_tile(z, old[0] + dx, old[1] + dy) == lambert_tile(z, *old) for z in zooms)
    )


def _flush_wal(primary: ClusterState) -> None:
    """Have the primary flush (and so stream) its WAL: a commit with synchronous_commit on."""
    with psycopg.connect(primary.admin_url("urbis"), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = on")
        conn.execute("SELECT pg_current_xact_id()")


def _sessions(url: str, application_name: str) -> list[tuple[Any, ...]]:
    """The sessions of that name on a server ([] when the server is down)."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
            return conn.execute(
                "SELECT usename, wait_event_type FROM pg_stat_activity WHERE application_name = %s",
                (application_name,),
            ).fetchall()
    except psycopg.OperationalError:
        return []


def _read_where(replication: Replication, client: httpx.Client, replaying: bool = True) -> str:
    """Which server answered a read: "standby" or "primary".

    The primary takes an ACCESS EXCLUSIVE lock on the layer's table; the standby replays it
    (unless down or paused: `replaying`) and holds it too. A read of the layer then waits on
    either, and its session, named after the request's id, shows in that server's
    pg_stat_activity.
    """
    request_id = f"replica-{uuid.uuid4().hex[:12]}"
    name = f"urbis-api/{request_id}"
    with psycopg.connect(replication.primary.admin_url("urbis")) as holder:
        holder.execute("LOCK TABLE urbis.moving IN ACCESS EXCLUSIVE MODE")
        _flush_wal(replication.primary)
        if replaying:
            _wait(
                "the standby replays the lock",
                lambda: replication.on_standby(
                    "SELECT 1 FROM pg_locks WHERE mode = 'AccessExclusiveLock' "
                    "AND relation = 'urbis.moving'::regclass"
                ),
            )
        with ThreadPoolExecutor(max_workers=1) as pool:
            answer = pool.submit(
                client.get, "/collections/moving/items", headers={"X-Request-Id": request_id}
            )
            standby_url = replication.standby_state.admin_url("urbis")
            primary_url = replication.primary.admin_url("urbis")
            where = _wait(
                "the request's session waits on the lock",
                lambda: (
                    ("standby", _sessions(standby_url, name))
                    if _sessions(standby_url, name)
                    else ("primary", _sessions(primary_url, name))
                    if _sessions(primary_url, name)
                    else None
                ),
                seconds=4,
            )
            holder.rollback()
            assert answer.result().status_code == 200
    server, sessions = where
    assert sessions == [("urbis_reader", "Lock")], sessions  # as the reader, on the lock
    return str(server)


def test_read_urls_are_checked_and_take_the_readers_credentials():
    from urbis_core.db import resolve_read_database_urls

    urls = Settings.from_env(
        {"DATABASE_URL_READ": "postgresql://r1:5433,r2/urbis, postgresql://me:pw@r3:6432"}
    ).read_database_urls
    assert urls == (
        "postgresql://r1:5433/urbis",
        "postgresql://r2/urbis",
        "postgresql://me:pw@r3:6432",
    )
    assert resolve_read_database_urls(urls, "postgresql://urbis_reader:s%40cret@primary/urbis") == (
        "postgresql://urbis_reader:s%40cret@r1:5433/urbis",
        "postgresql://urbis_reader:s%40cret@r2/urbis",
        "postgresql://me:pw@r3:6432/urbis",
    )
    assert Settings.from_env({}).read_database_urls == ()
    assert Settings.from_env({}).read_max_lag == 30
    assert Settings.from_env({}).read_check_interval == 1
    assert Settings.from_env({"URBIS_READ_CHECK_INTERVAL_S": "0.25"}).read_check_interval == 0.25
    for bad, words in (
        ("host=r1 port=5433", "item 1 ('host=r1 port=5433') is not a postgresql:// URL"),
        ("postgresql://r1,postgresql://me:pw@r2:70000/x", "item 2 ('postgresql://me:***@r2"),
        ("postgresql://me:pw@:5432/x", "has a host ':5432' that is not host or host:port"),
    ):
        with pytest.raises(Exception, match="DATABASE_URL_READ") as raised:
            Settings.from_env({"DATABASE_URL_READ": bad})
        assert words in str(raised.value) and "pw" not in str(raised.value)
    with pytest.raises(Exception, match="URBIS_READ_MAX_LAG_S='0' must be more than 0"):
        Settings.from_env({"URBIS_READ_MAX_LAG_S": "0"})


def test_reads_are_served_by_the_replica_as_the_reader(replication, client):
    _wait("the replica serves", lambda: _replica(client)["serving"])
    assert _replica(client)["problem"] is None and _replica(client)["lag_s"] < 20
    assert _read_where(replication, client) == "standby"
    # Each part's sessions carry its name: the API's pool and its listener on the primary.
    with psycopg.connect(replication.primary.admin_url("urbis"), autocommit=True) as conn:
        names = {row[0] for row in conn.execute("SELECT application_name FROM pg_stat_activity")}
    assert {"urbis-tiles", "urbis-api-replicas"} <= names, names
    on_standby = {
        row[0] for row in replication.on_standby("SELECT application_name FROM pg_stat_activity")
    }
    assert {"urbis-api", "urbis-api-replicas"} <= on_standby, on_standby


def test_a_sync_on_the_primary_is_seen_through_the_api_within_seconds(replication, client):
    for path in (NEAR, FAR, NEAR, FAR):
        assert client.get(path).status_code == 200
    assert client.get(NEAR).headers["x-tile-cache"] == "hit"
    far_before = client.get(FAR).content
    moved = (BARRIERE[0] + 30, BARRIERE[1] + 20)
    seen = _changes(client)
    started = time.monotonic()
    replication.sync(moved)
    _wait("the moved point in the items", lambda: _position(client) == [moved[0], moved[1]], 10)
    _wait("the change applied to the tile cache", lambda: _changes(client) > seen, 10)
    assert time.monotonic() - started < 5
    fresh = client.get(NEAR)
    assert fresh.headers["x-tile-cache"] == "miss"
    assert _near(_tile_point(fresh, NEAR), moved, NEAR)
    untouched = client.get(FAR)
    assert untouched.headers["x-tile-cache"] == "hit" and untouched.content == far_before


def test_no_stale_tile_is_kept_while_the_replica_lags(replication, client):
    before = _position(client)
    old = (before[0], before[1])
    assert client.get(NEAR).status_code == 200
    cached = client.get(NEAR)
    assert cached.headers["x-tile-cache"] == "hit"
    seen = _changes(client)
    replication.on_standby("SELECT pg_wal_replay_pause()")
    try:
        _wait(
            "replay paused",
            lambda: (
                replication.on_standby("SELECT pg_get_wal_replay_pause_state()")[0][0] == "paused"
            ),
        )
        # A tile over the same spot at another zoom, first asked while the replica lags, and
        # a move that keeps the point in it and in NEAR.
        near_z12 = "/collections/moving/tiles/BelgianLambert72/12/{}/{}".format(
            *lambert_tile(12, *old)
        )
        moved = _moved_within(old, (10, 12))
        replication.sync(moved)
        # The replica still shows the old point, and so does every answer: the change waits.
        deadline = time.monotonic() + 3
        drawn_meanwhile = None
        while time.monotonic() < deadline:
            assert _position(client) == before
            again = client.get(NEAR)
            assert again.headers["x-tile-cache"] == "hit" and again.content == cached.content
            assert _changes(client) == seen
            if drawn_meanwhile is None:
                drawn_meanwhile = client.get(near_z12)  # first asked now: drawn from the replica
                assert drawn_meanwhile.headers["x-tile-cache"] == "miss"
                assert _near(_tile_point(drawn_meanwhile, near_z12), old, near_z12)
            time.sleep(0.2)
        assert client.get(near_z12).headers["x-tile-cache"] == "hit"
        assert _replica(client)["serving"]
    finally:
        replication.on_standby("SELECT pg_wal_replay_resume()")
    _wait("the change applied once replayed", lambda: _changes(client) > seen, 10)
    for path in (NEAR, near_z12):
        fresh = client.get(path)
        assert fresh.headers["x-tile-cache"] == "miss", path  # the old one was not kept
        assert _near(_tile_point(fresh, path), moved, path), path
    assert _position(client) == [moved[0], moved[1]]


def test_reads_go_to_the_primary_while_the_replica_restarts(replication, served):
    proc, client = served
    replication.standby.stop()
    try:
        # Every read answers: the first to find the replica gone moves the reads to the primary.
        for path in ("/collections/moving/items", FAR, "/collections", NEAR):
            assert client.get(path).status_code == 200, path
        gone = _wait("the replica out", lambda: not _replica(client)["serving"], 5)
        assert gone
        assert "does not answer" in _replica(client)["problem"]
        assert _read_where(replication, client, replaying=False) == "primary"
    finally:
        replication.standby.start()
    _wait("the replica serves again", lambda: _replica(client)["serving"], 20)
    assert _read_where(replication, client) == "standby"
    log = server_log(proc)
    assert log.count("serves reads") >= 2 and "reads go to the primary until it is back" in log


def test_the_read_that_finds_the_replica_gone_is_answered_by_the_primary(replication):
    """The watcher looks only once a minute here: the request itself finds the replica gone."""
    proc, base = _serve(replication, "20", check_interval="60")
    try:
        with httpx.Client(base_url=base, timeout=30) as slow_watch:
            assert _replica(slow_watch)["serving"]  # looked at once, as the API started
            assert slow_watch.get(FAR).status_code == 200  # a pooled connection to the replica
            replication.standby.stop()
            try:
                assert _position(slow_watch) == _position_on_primary(replication)
                replica = _replica(slow_watch)
                assert not replica["serving"] and "does not answer" in replica["problem"]
                assert _read_where(replication, slow_watch, replaying=False) == "primary"
            finally:
                replication.standby.start()
        assert "reads go to the primary until it is back" in server_log(proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_replica_lagging_past_the_bound_stops_serving_until_it_caught_up(replication, client):
    proc, impatient = _serve(replication, "2")
    try:
        with httpx.Client(base_url=impatient, timeout=30) as quick:
            _wait("the replica serves", lambda: _replica(quick)["serving"])
            before = _position(quick)
            replication.on_standby("SELECT pg_wal_replay_pause()")
            try:
                moved = _moved_within((before[0], before[1]), (10,))
                seen = _changes(quick)
                replication.sync(moved)
                # Within the bound (and a watcher's round): out, and reads from the primary.
                _wait("the replica out", lambda: not _replica(quick)["serving"], 6)
                _wait("the change applied", lambda: _changes(quick) > seen, 4)
                assert _position(quick) == [moved[0], moved[1]]
                assert _near(_tile_point(quick.get(NEAR), NEAR), moved, NEAR)
                assert _read_where(replication, quick, replaying=False) == "primary"
                # The patient server (20 s) still reads the replica, old point and all.
                assert _position(client) == before
            finally:
                replication.on_standby("SELECT pg_wal_replay_resume()")
            _wait("the replica serves again", lambda: _replica(quick)["serving"], 10)
            assert _read_where(replication, quick) == "standby"
            assert _position(quick) == [moved[0], moved[1]]
            _wait("the patient server sees it", lambda: _position(client) == [moved[0], moved[1]])
        assert "behind the primary" in server_log(proc) or "did not replay" in server_log(proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_replica_that_never_answers_leaves_the_reads_on_the_primary(replication):
    nobody = free_port()  # nothing listens there
    proc, base = start_server(
        replication.primary.url,
        DATABASE_URL_API=replication.primary.api_url,
        DATABASE_URL_READ=f"postgresql://127.0.0.1:{nobody}/urbis",
    )
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/readyz").status_code == 200
            (replica,) = client.get("/healthz").json()["read_replicas"]
            assert replica["name"] == f"127.0.0.1:{nobody}/urbis"
            assert not replica["serving"] and "does not answer" in replica["problem"]
            assert _position(client) == _position_on_primary(replication)
            assert client.get(FAR).status_code == 200
        assert f"read replica 127.0.0.1:{nobody}/urbis does not serve reads yet" in server_log(proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_malformed_read_url_stops_serve_naming_the_variable(replication):
    done = subprocess.run(
        [str(URBIS), "serve"],
        env={
            **os.environ,
            "DATABASE_URL": replication.primary.url,
            "DATABASE_URL_READ": "postgresql://urbis_reader:hunter2@replica:5432x/urbis",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "DATABASE_URL_READ" in done.stderr and "'replica:5432x'" in done.stderr
    assert "hunter2" not in done.stderr


def test_the_sync_shows_as_urbis_sync_on_the_primary(replication):
    """`urbis sync` held behind a lock on its layer: its session is named after it."""
    with psycopg.connect(replication.primary.admin_url("urbis")) as holder:
        holder.execute("LOCK TABLE urbis.moving IN ACCESS EXCLUSIVE MODE")
        sync = subprocess.Popen(
            [str(URBIS), "sync", "--once", "--layer", "moving"],
            env={
                **os.environ,
                "DATABASE_URL": replication.primary.url,
                "URBIS_CONFIG": str(replication.folder / "moving.yaml"),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            sessions = _wait(
                "the sync's session waits on the lock",
                lambda: [
                    session
                    for session in _sessions(replication.primary.admin_url("urbis"), "urbis-sync")
                    if session[1] == "Lock"
                ],
                seconds=20,
            )
        finally:
            holder.rollback()
            output = sync.communicate(timeout=60)[0].decode()
    assert sessions == [("urbis_writer", "Lock")]
    assert sync.returncode == 0, output
