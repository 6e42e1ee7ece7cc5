"""Fault: the source goes away while the continuous sync runs, then comes back.

A real MapServer WFS (tests.support.mapserver) feeds `urbis sync` (the continuous loop, a real
process) and a real `urbis serve` shows the layer. The WFS first answers 503 to every
GetFeature, then stops altogether (connection refused). Meanwhile the API still serves the
data of the last success, and both `urbis status` (the CLI, run as a user runs it) and
`GET /admin/status` say since when the layer fails, why (the server's own words, then the
refused connection) and when it last succeeded. When the WFS is back at its address, the next
run succeeds, takes the change made at the source meanwhile, and the failure clears.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import pytest

from tests.api.conftest import URBIS, start_server
from tests.support.mapserver import MapServerWfs, WfsLayer, write_sample_municipalities
from tests.support.waiting import eventually
from urbis_cli.output import local_time

pytestmark = pytest.mark.api

TOKEN = "fault-test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
# Fast retries: a run against a dead source fails in well under a second, and the schedule
# of 1 s makes the loop try again each second (the backoff never exceeds the schedule).
SYNC_ENV = {"URBIS_HTTP_ATTEMPTS": "2", "URBIS_HTTP_BACKOFF": "0.05", "URBIS_HTTP_TIMEOUT": "5"}
WAIT = 60.0  # seconds any state of the loop may take to show


def wait_for(what: str, check: Callable[[], Any], seconds: float = WAIT) -> Any:
    return eventually(what, check, seconds)


@pytest.fixture
def wfs(tmp_path: Path) -> Iterator[MapServerWfs]:
    gpkg = write_sample_municipalities(tmp_path / "municipalities.gpkg")
    server = MapServerWfs([WfsLayer("Municipalities", gpkg, key="NAT_CODE")], tmp_path / "ms", 10)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def continuous_sync(
    database_url: str, wfs: MapServerWfs, tmp_path: Path
) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    config = tmp_path / "urbis.yaml"
    config.write_text(
        f"layers:\n  muni:\n    source: {{kind: wfs, url: '{wfs.url}', "
        "typename: 'urbis:Municipalities'}\n    key: NAT_CODE\n    schedule: 1s\n"
    )
    log = (tmp_path / "sync.log").open("w")
    proc = subprocess.Popen(
        [str(URBIS), "sync"],
        env={**os.environ, **SYNC_ENV, "DATABASE_URL": database_url, "URBIS_CONFIG": str(config)},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield config, proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    log.close()


def urbis_status(database_url: str, config: Path, *flags: str) -> str:
    done = subprocess.run(
        [str(URBIS), "status", *flags],
        env={**os.environ, "DATABASE_URL": database_url, "URBIS_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def renamed(source: Path, dest: Path) -> Path:
    """The municipalities with Evere (21006) renamed, as a new file for the WFS to serve."""
    frame = gpd.read_file(source)
    frame.loc[frame["NAT_CODE"] == "21006", "NAME_FRE"] = "Evere-renommée"
    frame.to_file(dest, layer="Municipalities", driver="GPKG")
    return dest


def test_the_old_data_is_served_and_the_status_says_since_when_and_why(
    database_url, wfs, continuous_sync, tmp_path
):
    config, sync = continuous_sync
    proc, base = start_server(database_url, URBIS_CONFIG=str(config), URBIS_ADMIN_TOKEN=TOKEN)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:

            def muni() -> dict[str, Any]:
                answer = client.get("/admin/status", headers=ADMIN)
                assert answer.status_code == 200, answer.text
                (layer,) = [x for x in answer.json()["layers"] if x["layer_id"] == "muni"]
                return dict(layer)

            ok = wait_for("a first successful run", lambda: muni()["last_success"] and muni())
            assert ok["failing_since"] is None and ok["failures_in_a_row"] == 0
            served = client.get("/collections/muni/items/21006")
            assert served.status_code == 200 and served.json()["properties"]["NAME_FRE"] == "Evere"
            last_success = ok["last_success"]

            # 1. the WFS answers 503 to every GetFeature: the server's words are kept
            wfs.inject(*["http:503"] * 400)
            failing = wait_for(
                "failures in a row", lambda: muni()["failures_in_a_row"] >= 2 and muni()
            )
            assert failing["last_success"] == last_success
            since = failing["failing_since"]
            assert since is not None and since > last_success
            assert since <= failing["last_failure"]
            assert "HTTP 503: 503 injected fault" in failing["failure_reason"], failing

            # 2. the WFS is gone: connection refused, the same failure since the same time
            wfs.clear_faults()
            wfs.stop()
            refused = wait_for(
                "a run meeting a refused connection",
                lambda: "ConnectError" in (muni()["failure_reason"] or "") and muni(),
            )
            assert refused["failing_since"] == since and refused["last_success"] == last_success
            assert refused["failures_in_a_row"] > failing["failures_in_a_row"]
            assert "Connection refused" in refused["failure_reason"], refused

            # the API serves the last good data all along
            items = client.get("/collections/muni/items", params={"limit": 100}).json()
            assert items["numberMatched"] == 19
            assert client.get("/collections/muni/items/21006").json() == served.json()

            # `urbis status`, as a person reads it, and --json, as /admin/status gives it
            text = urbis_status(database_url, config)
            line = next(x for x in text.splitlines() if x.startswith("muni: failing since"))
            assert local_time(datetime.fromisoformat(since)) in line, line
            assert f"last success {local_time(datetime.fromisoformat(last_success))}" in line
            assert "Connection refused" in line
            (as_json,) = json.loads(urbis_status(database_url, config, "--json"))
            assert as_json["failing_since"] == since
            assert as_json["last_success"] == last_success
            assert as_json["failures_in_a_row"] >= refused["failures_in_a_row"]

            # 3. the WFS comes back at its address, with a change made meanwhile
            wfs.set_path("Municipalities", renamed(wfs.layers[0].path, tmp_path / "new.gpkg"))
            wfs.start()
            back = wait_for(
                "a successful run after the outage",
                lambda: muni()["last_success"] != last_success and muni(),
            )
            assert back["failing_since"] is None and back["failures_in_a_row"] == 0
            assert back["last_failure"] is not None  # the past failure is still told
            now = client.get("/collections/muni/items/21006").json()
            assert now["properties"]["NAME_FRE"] == "Evere-renommée"
            assert "failing since" not in urbis_status(database_url, config)
        assert sync.poll() is None  # the loop went on through it all
    finally:
        proc.terminate()
        proc.wait(timeout=10)
