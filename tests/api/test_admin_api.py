"""The admin API over HTTP against a real `urbis serve` with URBIS_ADMIN_TOKEN set.

Runs started by POST /admin/sync really sync (a process of their own, on the real database);
purges really drop cached tiles, in memory and on disk; without a token the API has no admin
routes at all; a token too short stops the server from starting.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from pyproj import Transformer

from tests.api.conftest import URBIS, assert_problem, lambert_tile, start_server
from tests.api.test_openapi_answers import _operation, _validator
from tests.conftest import SAMPLE_DIR, wait_for_blocked_update
from tests.support.layers import geojson_feature, point, write_geojson
from urbis_core.catalog import sync_lock_key

pytestmark = pytest.mark.api

TOKEN = "test-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
APP_ORIGIN = "https://app.example"
BARRIERE, UCCLE = (148384.0, 169116.0), (148000.0, 163000.0)  # both in `municipalities`
POINTS = {"a": (148384.0, 169116.0), "b": (148500.0, 169200.0), "c": (148600.0, 169300.0)}
RUN_TIMEOUT = 120.0


@dataclass(frozen=True)
class AdminServer:
    base: str
    database_url: str
    config: Path
    points: Path  # the `points` layer's source file
    cache_dir: Path


def write_points(path: Path, label: str) -> None:
    write_geojson(
        path,
        (geojson_feature({"SID": key, "LABEL": label}, point(*xy)) for key, xy in POINTS.items()),
    )


@pytest.fixture(scope="module")
def admin(
    synced_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AdminServer]:
    folder = tmp_path_factory.mktemp("admin")
    points = folder / "points.geojson"
    write_points(points, "first")
    # Two layers no run has synced yet: the sample's current municipalities under an id of
    # their own, and points the tests change.
    config = folder / "urbis.yaml"
    municipalities = SAMPLE_DIR / "geoserver" / "municipalities" / "*.geojson"
    config.write_text(
        "layers:\n"
        "  communes:\n"
        f"    source: {{kind: file, paths: {municipalities}, drop_fields: [id]}}\n"
        "    key: NISCODE\n"
        "  points:\n"
        f"    source: {{kind: file, path: {points}}}\n"
        "    key: SID\n"
    )
    cache_dir = folder / "tile-cache"
    proc, base = start_server(
        synced_database_url,
        URBIS_ADMIN_TOKEN=TOKEN,
        URBIS_CONFIG=str(config),
        URBIS_TILE_CACHE_DIR=str(cache_dir),
        URBIS_CORS_ORIGINS=APP_ORIGIN,
    )
    yield AdminServer(base, synced_database_url, config, points, cache_dir)
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def http(admin: AdminServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=admin.base, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def definition(http: httpx.Client) -> dict:
    return http.get("/openapi.json").json()


def assert_documented(definition: dict, method: str, path: str, response: httpx.Response) -> None:
    """The answer is one the admin server's /openapi.json lists, valid against its schema."""
    documented = _operation(definition, method, path.split("?")[0])["responses"]
    assert str(response.status_code) in documented, (path, response.status_code)
    media_type = response.headers["content-type"].split(";")[0]
    schema = documented[str(response.status_code)]["content"][media_type]["schema"]
    errors = list(_validator(definition, schema).iter_errors(response.json()))
    assert not errors, [e.message[:200] for e in errors[:3]]


def finished_run(http: httpx.Client, url: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        run = http.get(url, headers=AUTH).json()
        if run["status"] != "running":
            return run
        time.sleep(0.2)
    raise AssertionError(f"{url} still running after {RUN_TIMEOUT} s")


def wait_idle(database_url: str, layer_id: str) -> None:
    """Until no process holds the layer's sync lock (a run's process ends after its row does)."""
    key = sync_lock_key(layer_id)
    deadline = time.monotonic() + RUN_TIMEOUT
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            held = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
                (key & 0xFFFFFFFF,),
            ).fetchone()
            if held == (0,):
                return
            time.sleep(0.1)
    raise AssertionError(f"{layer_id} still locked after {RUN_TIMEOUT} s")


def count_rows(database_url: str, table: str) -> int:
    with psycopg.connect(database_url) as conn:
        return int(conn.execute(f"SELECT count(*) FROM urbis.{table}").fetchone()[0])


# -- without a token, or with a short one -----------------------------------------------------
def test_without_a_token_there_is_no_admin_api(client: httpx.Client):
    for method, path in (
        ("GET", "/admin/status"),
        ("GET", "/admin/runs"),
        ("GET", "/admin/runs/1"),
        ("POST", "/admin/sync/municipalities"),
        ("POST", "/admin/tiles/purge?layer=municipalities"),
    ):
        response = client.request(method, path, headers=AUTH)
        assert response.status_code == 404, (method, path, response.text)
        assert "www-authenticate" not in response.headers  # nothing hints at a lock
    document = client.get("/openapi.json").json()
    assert not [p for p in document["paths"] if p.startswith("/admin")]
    assert "securitySchemes" not in document.get("components", {})


@pytest.mark.parametrize("token", ["short", "fifteen-chars-x", "sixteen chars no"])
def test_a_short_or_unsendable_token_stops_the_server_from_starting(synced_database_url, token):
    done = subprocess.run(
        [str(URBIS), "serve", "--port", "0"],
        env={**os.environ, "DATABASE_URL": synced_database_url, "URBIS_ADMIN_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "URBIS_ADMIN_TOKEN" in done.stderr
    assert ("at least 16" if len(token) < 16 else "no spaces") in done.stderr
    assert token not in done.stderr  # a secret is never echoed


# -- the lock -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, None),
        ({"Authorization": f"Bearer {TOKEN[:-1]}x"}, "invalid_token"),
        ({"Authorization": f"Bearer {TOKEN}{TOKEN}"}, "invalid_token"),
        ({"Authorization": "Bearer"}, "invalid_request"),
        ({"Authorization": f"Basic {TOKEN}"}, "invalid_request"),
        ({"Authorization": TOKEN}, "invalid_request"),
    ],
)
def test_no_token_or_a_wrong_one_is_a_401_with_a_challenge(http, definition, headers, error):
    for method, path in (
        ("GET", "/admin/status"),
        ("GET", "/admin/runs"),
        ("GET", "/admin/runs/1"),
        ("POST", "/admin/sync/points"),
        ("POST", "/admin/tiles/purge?layer=municipalities"),
    ):
        response = http.request(method, path, headers=headers)
        assert_problem(response, 401, "Bearer")
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="urbis-admin"')
        assert (f'error="{error}"' in challenge) if error else ("error=" not in challenge)
        assert response.headers["cache-control"] == "no-store"
        assert_documented(definition, method, path, response)


def test_the_token_is_accepted_case_insensitive_scheme(http):
    response = http.get("/admin/status", headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200, response.text


def test_openapi_documents_the_admin_api_with_its_bearer_scheme(definition):
    schemes = definition["components"]["securitySchemes"]
    assert schemes["adminToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["adminToken"]["description"],
    }
    admin_operations = [
        (path, method, operation)
        for path, item in definition["paths"].items()
        if path.startswith("/admin")
        for method, operation in item.items()
    ]
    assert {(path, method) for path, method, _ in admin_operations} == {
        ("/admin/sync/{layer_id}", "post"),
        ("/admin/runs", "get"),
        ("/admin/runs/{run_id}", "get"),
        ("/admin/status", "get"),
        ("/admin/tiles/purge", "post"),
    }
    for path, _, operation in admin_operations:
        assert operation["security"] == [{"adminToken": []}], path
        assert {"400", "401"} <= set(operation["responses"]), path
        assert "text/html" not in operation["responses"]["401"]["content"]
    # the other operations stay open
    assert "security" not in definition["paths"]["/collections"]["get"]


# -- never cached, never cross-origin --------------------------------------------------------
def test_admin_answers_are_not_stored_and_carry_no_cors(http):
    answer = http.get("/admin/status", headers={**AUTH, "Origin": APP_ORIGIN})
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    assert not [h for h in answer.headers if h.lower().startswith("access-control-")]
    # while the public API does answer that origin
    public = http.get("/collections", headers={"Origin": APP_ORIGIN})
    assert public.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "access-control-allow-credentials" not in public.headers


def test_a_preflight_for_the_admin_api_is_refused(http):
    preflight = {
        "Origin": APP_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    refused = http.options("/admin/sync/points", headers=preflight)
    assert_problem(refused, 403, "not offered to web pages of other origins")
    assert not [h for h in refused.headers if h.lower().startswith("access-control-")]
    allowed = http.options("/collections", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == APP_ORIGIN


# -- sync runs -------------------------------------------------------------------------------
def test_a_sync_started_over_http_runs_for_real(http, admin, definition):
    started = http.post("/admin/sync/communes", headers=AUTH)
    assert started.status_code == 202, started.text
    assert_documented(definition, "POST", "/admin/sync/communes", started)
    run = started.json()
    assert started.headers["location"] == f"{admin.base}/admin/runs/{run['id']}"
    assert run["layer"] == "communes" and run["status"] in ("running", "success")
    assert started.headers["cache-control"] == "no-store"

    done = finished_run(http, started.headers["location"])
    assert done["status"] == "success", done["error"]
    assert (done["fetched"], done["inserted"], done["updated"], done["deleted"]) == (12, 12, 0, 0)
    assert done["version"] == 1 and done["error"] is None and done["seconds"] > 0
    assert count_rows(admin.database_url, "communes") == 12  # live, in the database

    listed = http.get("/admin/runs", headers=AUTH)
    assert_documented(definition, "GET", "/admin/runs", listed)
    assert listed.json()["runs"][0] == done  # newest first
    one = http.get(f"/admin/runs/{run['id']}", headers=AUTH)
    assert_documented(definition, "GET", f"/admin/runs/{run['id']}", one)


def test_a_second_run_while_one_is_going_is_a_409(http, admin, definition):
    first = http.post("/admin/sync/points", headers=AUTH)
    assert first.status_code == 202, first.text
    assert finished_run(http, first.headers["location"])["inserted"] == 3
    wait_idle(admin.database_url, "points")

    # a change to apply, held up by a row lock until the test lets it go
    write_points(admin.points, "second")
    blocker = psycopg.connect(admin.database_url)
    try:
        blocker.execute("""SELECT 1 FROM urbis.points WHERE "SID" = 'a' FOR UPDATE""")
        going = http.post("/admin/sync/points", headers=AUTH)
        assert going.status_code == 202, going.text
        wait_for_blocked_update(admin.database_url)
        again = http.post("/admin/sync/points", headers=AUTH)
        assert_problem(again, 409, "a sync of 'points' is going")
        assert_documented(definition, "POST", "/admin/sync/points", again)
        assert http.get(going.headers["location"], headers=AUTH).json()["status"] == "running"
        # other layers are not held up by it
        assert http.get("/admin/status", headers=AUTH).status_code == 200
    finally:
        blocker.close()
    done = finished_run(http, going.headers["location"])
    assert done["status"] == "success", done["error"]
    assert (done["updated"], done["version"]) == (3, 2)
    points_runs = http.get("/admin/runs?layer=points", headers=AUTH).json()["runs"]
    assert [r["id"] for r in points_runs] == [done["id"], first.json()["id"]]  # no third run


def test_two_posts_at_once_start_one_run(http, admin):
    wait_idle(admin.database_url, "points")
    write_points(admin.points, "third")
    answers: list[httpx.Response] = []

    def post() -> None:
        answers.append(httpx.post(f"{admin.base}/admin/sync/points", headers=AUTH, timeout=60))

    blocker = psycopg.connect(admin.database_url)  # the run that starts stays going meanwhile
    try:
        blocker.execute("""SELECT 1 FROM urbis.points WHERE "SID" = 'a' FOR UPDATE""")
        threads = [threading.Thread(target=post) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        blocker.close()
    assert sorted(r.status_code for r in answers) == [202, 409], [r.text for r in answers]
    accepted = next(r for r in answers if r.status_code == 202)
    done = finished_run(http, accepted.headers["location"])
    assert (done["status"], done["updated"]) == ("success", 3)


def test_unknown_layers_and_runs(http, definition):
    unknown = http.post("/admin/sync/nowhere", headers=AUTH)
    assert_problem(unknown, 404, "no layer 'nowhere'")
    assert "communes, points" in unknown.json()["detail"]
    assert_documented(definition, "POST", "/admin/sync/nowhere", unknown)
    missing = http.get("/admin/runs/987654", headers=AUTH)
    assert_problem(missing, 404, "no sync run 987654")
    assert_documented(definition, "GET", "/admin/runs/987654", missing)
    assert_problem(http.get("/admin/runs/abc", headers=AUTH), 400, "run_id")
    # Past a bigint the database would refuse the value: a 400, not a 500 (found by fuzzing).
    for huge in (2**63, 10**30):
        assert_problem(http.get(f"/admin/runs/{huge}", headers=AUTH), 400, "run_id")
        assert_problem(http.get(f"/admin/runs?before={huge}", headers=AUTH), 400, "before")
    assert_problem(http.get(f"/admin/runs/{2**63 - 1}", headers=AUTH), 404, "no sync run")
    assert http.get(f"/admin/runs?before={2**63 - 1}", headers=AUTH).status_code == 200
    assert_problem(http.get("/admin/runs?limit=0", headers=AUTH), 400, "limit")
    assert_problem(http.get("/admin/runs?limit=101", headers=AUTH), 400, "limit")
    assert_problem(http.get("/admin/runs?page=2", headers=AUTH), 400, "page")
    assert_problem(http.post("/admin/sync/points?now=1", headers=AUTH), 400, "now")


def test_runs_are_paged_newest_first(http):
    every = http.get("/admin/runs?limit=100", headers=AUTH).json()["runs"]
    assert len(every) >= 3
    ids = [run["id"] for run in every]
    assert ids == sorted(ids, reverse=True)
    seen, url = [], "/admin/runs?limit=2"
    while url:
        page = http.get(url, headers=AUTH).json()
        seen += [run["id"] for run in page["runs"]]
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    assert seen == ids


# -- status ----------------------------------------------------------------------------------
def test_status_is_what_urbis_status_json_shows(http, admin, definition):
    answer = http.get("/admin/status", headers=AUTH)
    assert_documented(definition, "GET", "/admin/status", answer)
    printed = subprocess.run(
        [str(URBIS), "status", "--json"],
        env={**os.environ, "DATABASE_URL": admin.database_url, "URBIS_CONFIG": str(admin.config)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert answer.json()["layers"] == json.loads(printed.stdout)
    communes = answer.json()["layers"][0]
    assert (communes["layer_id"], communes["feature_count"], communes["version"]) == (
        "communes",
        12,
        1,
    )
    assert communes["running"] is False and communes["failures_in_a_row"] == 0


# -- the tile cache -------------------------------------------------------------------------
def tile(z: int, xy: tuple[float, float]) -> str:
    return "/collections/municipalities/tiles/BelgianLambert72/{}/{}/{}".format(
        z, *lambert_tile(z, *xy)
    )


NEAR, FAR = tile(10, BARRIERE), tile(10, UCCLE)


def cache_state(http: httpx.Client, *paths: str) -> list[str]:
    states = []
    for path in paths:
        response = http.get(path)
        assert response.status_code == 200, response.text
        states.append(response.headers["x-tile-cache"])
    return states


def dropped(http: httpx.Client) -> int:
    return int(http.get("/healthz").json()["tile_cache"]["dropped"])


def purge(http: httpx.Client, definition: dict, query: str) -> dict:
    response = http.post(f"/admin/tiles/purge?{query}", headers=AUTH)
    assert response.status_code == 200, response.text
    assert_documented(definition, "POST", "/admin/tiles/purge", response)
    return response.json()


def test_purging_a_layer_drops_its_tiles_from_memory_and_disk(http, admin, definition):
    cache_state(http, NEAR, FAR)
    assert cache_state(http, NEAR, FAR) == ["hit", "hit"]
    before = dropped(http)
    on_disk = len(list(admin.cache_dir.rglob("*.mvt")))
    assert on_disk >= 2

    answer = purge(http, definition, "layer=municipalities")
    assert answer == {"layer": "municipalities", "bbox": None, "memory": 2, "disk": on_disk}
    assert not list(admin.cache_dir.rglob("municipalities/**/*.mvt"))
    assert dropped(http) == before + 2 + on_disk
    assert cache_state(http, NEAR, FAR) == ["miss", "miss"]
    assert cache_state(http, NEAR, FAR) == ["hit", "hit"]
    # another layer's purge leaves them be
    assert purge(http, definition, "layer=addresses")["memory"] == 0
    assert cache_state(http, NEAR, FAR) == ["hit", "hit"]


def test_purging_an_area_drops_only_the_tiles_meeting_it(http, admin, definition):
    cache_state(http, NEAR, FAR)
    x, y = BARRIERE
    answer = purge(
        http,
        definition,
        f"bbox={x - 5},{y - 5},{x + 5},{y + 5}&bbox-crs=http://www.opengis.net/def/crs/EPSG/0/31370",
    )
    assert (answer["memory"], answer["disk"]) == (1, 1)
    assert answer["bbox"] == [x - 5, y - 5, x + 5, y + 5] and answer["layer"] is None
    assert cache_state(http, NEAR, FAR) == ["miss", "hit"]

    # the same in CRS84 (the default), with the layer as well
    lon, lat = Transformer.from_crs(31370, 4326, always_xy=True).transform(x, y)
    query = f"layer=municipalities&bbox={lon - 1e-5},{lat - 1e-5},{lon + 1e-5},{lat + 1e-5}"
    answer = purge(http, definition, query)
    assert (answer["memory"], answer["disk"]) == (1, 1)
    assert abs(answer["bbox"][0] - (x - 0.7)) < 0.5  # 1e-5 degree of longitude is ~0.7 m here
    assert cache_state(http, NEAR, FAR) == ["miss", "hit"]


def test_purge_parameters_that_cannot_be_used(http, definition):
    for query, status, words in (
        ("", 400, "give a layer, a bbox or both"),
        ("layer=nowhere", 400, "no layer 'nowhere'"),
        ("bbox=1,2,3", 400, "expected 4 or 6"),
        ("bbox=120,10,121,11", 400, "outside Belgium"),
        ("bbox=4.3,50.8,4.4,50.9&bbox-crs=EPSG:9999", 400, "bbox-crs"),
        ("bbox-crs=EPSG:31370", 400, "bbox-crs"),
        ("layers=municipalities", 400, "layers"),
    ):
        response = http.post(f"/admin/tiles/purge?{query}", headers=AUTH)
        assert_problem(response, status, words)
        assert_documented(definition, "POST", "/admin/tiles/purge", response)
