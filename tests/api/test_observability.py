"""What an operator watches: /metrics, /readyz, the JSON log and the request id.

Over HTTP on a real `urbis serve` logging JSON. /metrics is read with prometheus_client's own
parser, before and after requests, and its counters must move by what the requests did. The
request id is followed from the header into the log line and into pg_stat_activity, where a
request held behind a lock shows it as its session's application_name.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import assert_problem, server_log, start_server
from tests.support.outages import database_away
from urbis_core import migrate

pytestmark = pytest.mark.api

ITEM_TEMPLATE = "/collections/{collection_id}/items/{feature_id}"
TILE = "/collections/municipalities/tiles/WebMercatorQuad/12/2097/1373"
Sample = tuple[str, frozenset[tuple[str, str]]]


@pytest.fixture(scope="module")
def served(synced_database_url: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    proc, base = start_server(synced_database_url, URBIS_LOG_FORMAT="json")
    yield base, proc
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def client(served: tuple[str, subprocess.Popen[bytes]]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[0], timeout=30) as c:
        yield c


def scrape(client: httpx.Client) -> dict[Sample, float]:
    """Every sample of /metrics by name and labels, parsed as Prometheus parses it."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: dict[Sample, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?")[0]


def log_lines(proc: subprocess.Popen[bytes]) -> list[dict[str, object]]:
    """The server's JSON log lines (lines before logging is set up are not JSON)."""
    lines = []
    for line in server_log(proc).splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def lines_of(proc: subprocess.Popen[bytes], request_id: str) -> list[dict[str, object]]:
    """The log lines of a request, waited for: its access line follows its answer's last byte."""
    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in log_lines(proc) if line.get("request_id") == request_id]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


# --- /metrics -------------------------------------------------------------------------------


def test_a_tile_miss_then_hit_moves_the_cache_counters_and_the_tiles_drawn(client):
    before = scrape(client)
    first, second = client.get(TILE), client.get(TILE)
    assert (first.headers["x-tile-cache"], second.headers["x-tile-cache"]) == ("miss", "hit")
    after = scrape(client)
    assert value(after, "urbis_tile_cache_misses_total") == (
        value(before, "urbis_tile_cache_misses_total") + 1
    )
    assert value(after, "urbis_tile_cache_hits_total") == (
        value(before, "urbis_tile_cache_hits_total") + 1
    )
    assert value(after, "urbis_tile_cache_entries") == value(before, "urbis_tile_cache_entries") + 1
    assert value(after, "urbis_tile_cache_bytes") == (
        value(before, "urbis_tile_cache_bytes") + len(first.content)
    )
    drawn = "urbis_tile_draw_seconds_count"
    assert value(after, drawn, kind="vector") == value(before, drawn, kind="vector") + 1
    assert value(after, "urbis_tile_draw_seconds_sum", kind="vector") > 0
    assert value(after, drawn, kind="raster") == value(before, drawn, kind="raster")


def test_requests_are_counted_under_their_route_template_never_their_path(client):
    count = "urbis_http_request_duration_seconds_count"
    found = {"method": "GET", "route": ITEM_TEMPLATE, "status": "200"}
    missing = {**found, "status": "404"}
    before = scrape(client)
    assert client.get("/collections/municipalities/items/21015").status_code == 200
    assert client.get("/collections/municipalities/items/21004").status_code == 200
    assert_problem(client.get("/collections/municipalities/items/nope"), 404, "nope")
    assert client.get(f"/no/such/{uuid.uuid4().hex}").status_code == 404
    # a method the API has no route for is counted as "other" (WebDAV's, which HTTP parsers
    # know); one no parser knows is refused before the app (400), never counted
    assert client.request("PROPFIND", "/collections").status_code == 405
    invented = client.request(f"X{uuid.uuid4().hex[:8].upper()}", "/collections")
    assert_problem(invented, 400, "not a valid HTTP/1.1 request")
    after = scrape(client)
    assert value(after, count, **found) == value(before, count, **found) + 2
    assert value(after, count, **missing) == value(before, count, **missing) + 1
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(after, count, **unmatched) == value(before, count, **unmatched) + 1
    routes = {dict(labels).get("route") for name, labels in after if name == count}
    assert not [r for r in routes if r and ("21015" in r or "/no/such" in r)], routes
    methods = {dict(labels).get("method") for name, labels in after if name == count}
    assert "other" in methods and methods <= {"GET", "HEAD", "POST", "OPTIONS", "other"}
    # the histogram's buckets are cumulative and end with every request
    bucket = "urbis_http_request_duration_seconds_bucket"
    assert value(after, bucket, **found, le="+Inf") == value(after, count, **found)
    assert value(after, bucket, **found, le="0.001") <= value(after, bucket, **found, le="1.0")


def test_the_sync_figures_are_the_run_tables(client, synced_database_url):
    with psycopg.connect(synced_database_url) as conn:
        runs = conn.execute(
            "SELECT layer_id, status, count(*), sum(inserted), "
            "extract(epoch FROM max(finished_at)) FROM urbis_meta.sync_run "
            "GROUP BY layer_id, status"
        ).fetchall()
    assert runs
    samples = scrape(client)
    assert value(samples, "urbis_sync_figures_up") == 1
    for layer, status, n, inserted, finished in runs:
        assert value(samples, "urbis_sync_runs_total", layer=layer, status=status) == n
        changed = "urbis_sync_features_changed_total"
        assert value(samples, changed, layer=layer, change="inserted") == inserted
        if status == "success":
            last = value(samples, "urbis_sync_last_success_timestamp_seconds", layer=layer)
            assert last == pytest.approx(float(finished))
    assert value(samples, "urbis_sync_runs_total", layer="municipalities", status="success") >= 1
    assert value(
        samples, "urbis_sync_features_changed_total", layer="municipalities", change="inserted"
    ) == pytest.approx(19)


def test_the_pool_is_told(client):
    samples = scrape(client)
    assert value(samples, "urbis_db_pool_size") == 10  # URBIS_DB_POOL_SIZE's default
    assert 0 <= value(samples, "urbis_db_pool_in_use") <= 10
    assert value(samples, "urbis_db_pool_waiting") == 0
    assert value(samples, "urbis_db_reachable") == 1


# --- the request id ---------------------------------------------------------------------------


def test_a_sane_request_id_is_echoed_and_logged_with_the_route(client, served):
    given = f"trace-{uuid.uuid4().hex[:12]}.1"
    response = client.get(
        "/collections/municipalities/items/21015", headers={"X-Request-Id": given}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == given
    # an answer the edge refuses before any route carries it as well
    refused = client.get("/collections?" + "a" * 9000, headers={"X-Request-Id": given + "b"})
    assert refused.status_code == 414 and refused.headers["x-request-id"] == given + "b"
    lines = lines_of(served[1], given)
    assert len(lines) == 1, lines
    line = lines[0]
    assert {k: line[k] for k in ("level", "method", "route", "path", "status")} == {
        "level": "INFO",
        "method": "GET",
        "route": ITEM_TEMPLATE,
        "path": "/collections/municipalities/items/21015",
        "status": 200,
    }
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    assert str(line["time"]).endswith("+00:00") and "21015" in str(line["message"])


@pytest.mark.parametrize(
    "given", ["x" * 49, "two words", "a'quote", "é".encode(), "", "<script>", "semi;colon"]
)
def test_an_insane_request_id_is_replaced_by_a_new_one(client, given):
    response = client.get("/conformance", headers={"X-Request-Id": given})
    made = response.headers["x-request-id"]
    assert made != given and len(made) == 32 and int(made, 16) >= 0
    assert response.status_code == 200  # a bad id is no reason to refuse the request


def test_each_request_without_an_id_gets_its_own(client):
    ids = {client.get("/conformance").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_the_request_id_is_the_sessions_application_name_while_it_queries(
    client, synced_database_url
):
    """A request held behind a lock shows its id in pg_stat_activity; its session, back in
    the pool, is plain `urbis-api` again."""
    given = f"slow-{uuid.uuid4().hex[:12]}"
    answers: list[httpx.Response] = []
    with psycopg.connect(synced_database_url) as holder:
        holder.execute("LOCK TABLE urbis.addresses IN ACCESS EXCLUSIVE MODE")
        asking = threading.Thread(
            target=lambda: answers.append(
                client.get(
                    "/collections/addresses/items?limit=1&sortby=-ADRN",
                    headers={"X-Request-Id": given},
                )
            )
        )
        asking.start()
        try:
            waiting = _wait_for_session(synced_database_url, f"urbis-api/{given}")
        finally:
            holder.rollback()
            asking.join(timeout=20)
    assert "addresses" in waiting and "ADRN" in waiting, waiting
    assert answers and answers[0].status_code == 200
    with psycopg.connect(synced_database_url, autocommit=True) as conn:
        names = {
            row[0]
            for row in conn.execute(
                "SELECT application_name FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name LIKE 'urbis-api%'"
            )
        }
    assert names == {"urbis-api"}, names


def _wait_for_session(url: str, application_name: str) -> str:
    """The query of the session with this application_name, once it waits on a lock."""
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(100):
            row = conn.execute(
                "SELECT query FROM pg_stat_activity WHERE application_name = %s "
                "AND wait_event_type = 'Lock'",
                (application_name,),
            ).fetchone()
            if row is not None:
                return str(row[0])
            conn.execute("SELECT pg_sleep(0.05)")
    raise AssertionError(f"no session named {application_name} waited on the lock")


# --- /readyz ----------------------------------------------------------------------------------


def test_readyz_is_503_while_the_database_is_away_and_200_once_back(
    client, admin_url, synced_database_url
):
    name = database_name(synced_database_url)
    assert client.get("/readyz").status_code == 200
    database_away(admin_url, name, True)
    try:
        ready = client.get("/readyz")
        assert_problem(ready, 503, "does not answer")
        assert ready.headers["retry-after"].isdigit()
        # the metrics still answer, saying what they could not read
        samples = scrape(client)
        assert value(samples, "urbis_sync_figures_up") == 0
        assert value(samples, "urbis_db_reachable") == 0
        assert not [key for key in samples if key[0] == "urbis_sync_runs_total"]
    finally:
        database_away(admin_url, name, False)
    back = client.get("/readyz")
    assert back.status_code == 200, back.text
    assert back.json()["migration"] == migrate.HEAD
    assert value(scrape(client), "urbis_sync_figures_up") == 1


def test_readyz_is_503_while_the_schema_is_a_migration_behind(database_url):
    """A database one migration behind (an upgrade not run yet) is not ready; once it is
    upgraded, it is."""
    proc, base = start_server(database_url)
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            assert c.get("/readyz").json()["layers"] == 0
            previous = f"{int(migrate.HEAD) - 1:04d}"
            migrate.downgrade(database_url, previous)
            behind = c.get("/readyz")
            assert_problem(behind, 503, f"migration {previous}; this service needs {migrate.HEAD}")
            assert "urbis migrate" in behind.json()["detail"]
            migrate.upgrade(database_url)
            assert c.get("/readyz").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
