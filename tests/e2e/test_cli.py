"""The `urbis` command as a user runs it: embedded database, bad configuration, `urbis up`."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import geopandas as gpd
import httpx
import psycopg
import pytest

from tests.api.conftest import URBIS
from tests.conftest import SAMPLE_CONFIG, SAMPLE_COUNTS, SAMPLE_DIR, SAMPLE_LAYERS
from tests.support.mapserver import write_sample_municipalities
from tests.support.processes import alive, spawned_children
from urbis_core.pgcluster import EmbeddedCluster, free_port


def run(*args: str, env: dict[str, str], check: bool = False) -> subprocess.CompletedProcess:
    done = subprocess.run([str(URBIS), *args], env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "URBIS_CONFIG")}
    env.update(extra)
    return env


@pytest.fixture
def urbis_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="urbis-home-"))
    home.chmod(0o755)
    yield home
    EmbeddedCluster(home).destroy()
    shutil.rmtree(home, ignore_errors=True)


def test_embedded_database_start_status_url_stop_and_reuse(urbis_home: Path):
    env = clean_env(URBIS_HOME=str(urbis_home))
    status = run("db", "status", env=env)
    assert status.returncode == 3 and "no embedded database yet" in status.stdout

    started = run("db", "start", env=env, check=True)
    assert "database running on 127.0.0.1:" in started.stdout
    assert run("db", "status", env=env, check=True).stdout.startswith("running")
    # The writer's URL (migrations, sync) and the reader's (the API), each with a password.
    url = run("db", "url", env=env, check=True).stdout.strip()
    assert url.startswith("postgresql://urbis_writer:") and url.endswith("/urbis")
    api_url = run("db", "url", "--api", env=env, check=True).stdout.strip()
    assert api_url.startswith("postgresql://urbis_reader:") and api_url.endswith("/urbis")
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT postgis_lib_version()").fetchone()
        assert conn.execute("SHOW fsync").fetchone() == ("on",)  # durable, unlike test clusters
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
        assert conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == (False,)
    with psycopg.connect(api_url, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("urbis_reader",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE not_mine (v text)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TEMP TABLE not_mine (v text)")

    assert "database stopped" in run("db", "stop", env=env, check=True).stdout
    stopped = run("db", "status", env=env)
    assert stopped.returncode == 3 and stopped.stdout.startswith("stopped")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)

    run("db", "start", env=env, check=True)
    assert run("db", "url", env=env, check=True).stdout.strip() == url
    assert run("db", "url", "--api", env=env, check=True).stdout.strip() == api_url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT v FROM kept").fetchone() == ("still here",)


def test_database_url_is_used_and_nothing_is_started(database_url: str, urbis_home: Path):
    env = clean_env(URBIS_HOME=str(urbis_home), DATABASE_URL=database_url)
    synced = run("sync", "--once", env=env, check=True)
    for layer_id, count in SAMPLE_COUNTS.items():
        assert f"{layer_id}: {count} features read, {count} inserted" in synced.stdout
    assert not (urbis_home / "cluster.json").exists()
    assert "DATABASE_URL is set" in run("db", "start", env=env).stderr
    assert run("db", "status", env=env, check=True).stdout.startswith("external")
    with psycopg.connect(database_url) as conn:
        counts = dict(
            conn.execute("SELECT id, feature_count FROM urbis_meta.layer_catalog").fetchall()
        )
    assert counts == SAMPLE_COUNTS


def test_database_url_without_postgis_gets_it(empty_database_url: str, urbis_home: Path):
    env = clean_env(URBIS_HOME=str(urbis_home), DATABASE_URL=empty_database_url)
    run("migrate", env=env, check=True)
    with psycopg.connect(empty_database_url) as conn:
        assert conn.execute(
            "SELECT extname FROM pg_extension WHERE extname = 'postgis'"
        ).fetchone() == ("postgis",)


BAD_CONFIGS = {
    "unknown kind": (
        "source: {kind: ftp, url: 'ftp://x'}\n    key: ID",
        "source.kind: unknown kind 'ftp'",
    ),
    "missing key": ("source: {kind: file, path: MUNI}", "key: missing"),
    "missing path": (
        "source: {kind: file, path: nowhere.gpkg}\n    key: ID",
        "nowhere.gpkg does not exist",
    ),
    "key not in source": (
        "source: {kind: file, path: MUNI, srid: 31370}\n    key: NIS",
        "key: field 'NIS' is not in the source",
    ),
    "index not in source": (
        "source: {kind: file, path: MUNI, srid: 31370}\n    key: NAT_CODE"
        "\n    indexes: [NAME_FRE, SURFACE]",
        "indexes: 'SURFACE' not in the source",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_configuration_stops_with_one_line_and_changes_nothing(
    case: str, database_url: str, tmp_path: Path
):
    env = clean_env(DATABASE_URL=database_url, URBIS_CONFIG=str(SAMPLE_CONFIG))
    run("sync", "--once", env=env, check=True)
    with psycopg.connect(database_url) as conn:
        before = conn.execute(
            "SELECT id, version, feature_count FROM urbis_meta.layer_catalog ORDER BY id"
        ).fetchall()
        runs_before = conn.execute("SELECT count(*) FROM urbis_meta.sync_run").fetchone()

    body, expected = BAD_CONFIGS[case]
    body = body.replace("MUNI", str(SAMPLE_DIR / "UrbAdm_MUNICIPALITY.shp"))
    config = tmp_path / "bad.yaml"
    config.write_text(f"layers:\n  communes:\n    {body}\n")
    env["URBIS_CONFIG"] = str(config)
    for command in (["config", "check"], ["sync", "--once"]):
        done = run(*command, env=env)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert "layer 'communes'" in lines[0] and expected in lines[0]
        assert str(config) in lines[0]

    with psycopg.connect(database_url) as conn:
        assert (
            conn.execute(
                "SELECT id, version, feature_count FROM urbis_meta.layer_catalog ORDER BY id"
            ).fetchall()
            == before
        )
        assert conn.execute("SELECT count(*) FROM urbis_meta.sync_run").fetchone() == runs_before


def test_config_check_accepts_the_sample():
    done = run("config", "check", env=clean_env(), check=True)
    assert f"OK ({len(SAMPLE_LAYERS)} layers: {', '.join(SAMPLE_LAYERS)})" in done.stdout


@pytest.mark.parametrize("api_processes", [1, 2], ids=["one-api-process", "urbis-workers-2"])
def test_up_serves_the_sample_from_a_fresh_embedded_database(urbis_home: Path, api_processes: int):
    port = free_port()
    # --config wins over URBIS_CONFIG, for `up` and for the sync worker it starts.
    env = clean_env(
        URBIS_HOME=str(urbis_home),
        URBIS_PORT=str(port),
        URBIS_CONFIG=str(urbis_home / "absent.yaml"),
        URBIS_WORKERS=str(api_processes),
    )
    proc = subprocess.Popen(
        [str(URBIS), "--config", str(SAMPLE_CONFIG), "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "urbis up did not serve within 120 s"
            time.sleep(0.3)
        collections = httpx.get(f"{base}/collections").json()["collections"]
        counts = {c["id"]: c["featureCount"] for c in collections}
        assert counts == SAMPLE_COUNTS
        items = httpx.get(f"{base}/collections/municipalities/items").json()
        assert items["numberMatched"] == 19
        workers = children_running(proc.pid, "urbis_cli sync")
        assert len(workers) == 1  # the continuous sync runs beside the API
        # with URBIS_WORKERS=2, two API processes (spawned) under `up`, which serves none itself
        api_workers = spawned_children(proc.pid) if api_processes > 1 else set()
        assert len(api_workers) == (api_processes if api_processes > 1 else 0)
        # The API reads as the reader; the layer tables the sync made as the writer are its.
        state = EmbeddedCluster(urbis_home).state()
        assert state is not None
        with psycopg.connect(state.admin_url("urbis"), autocommit=True) as conn:
            api_users = conn.execute(
                "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'urbis-api'"
            ).fetchall()
            owners = conn.execute(
                "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'urbis'"
            ).fetchall()
        assert api_users == [("urbis_reader",)]
        assert owners == [("urbis_writer",)]
        worker_env = Path(f"/proc/{workers[0]}/environ").read_bytes().split(b"\0")
        assert f"URBIS_CONFIG={SAMPLE_CONFIG}".encode() in worker_env
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    time.sleep(0.5)
    left = {
        pid: Path(f"/proc/{pid}/status").read_text().splitlines()[:3]
        for pid in [*workers, *api_workers]
        if alive(pid)
    }
    assert not left


def children_running(parent: int, words: str) -> list[int]:
    """Child processes of `parent` whose command line contains `words`."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
            cmdline = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(parent) and words in cmdline:
            found.append(int(status.parent.name))
    return found


def test_continuous_sync_and_status(database_url: str, tmp_path: Path):
    config = tmp_path / "urbis.yaml"
    config.write_text(
        "layers:\n"
        f"  addresses:\n    source: {{kind: file, path: {SAMPLE_DIR / 'UrbAdm_AdPt_sample.zip'}}}\n"
        "    key: ID\n    schedule: 1s\n"
        f"  hourly:\n    source: {{kind: file, path: {SAMPLE_DIR / 'UrbAdm_AdPt_sample.zip'}, "
        "layer: UrbAdm_AdPt}\n    key: ID\n    schedule: 1h\n"
    )
    env = clean_env(DATABASE_URL=database_url, URBIS_CONFIG=str(config))
    worker = subprocess.Popen(
        [str(URBIS), "sync"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    runs = 0
    while time.monotonic() < deadline and runs < 3:
        time.sleep(0.5)
        with psycopg.connect(database_url) as conn:
            runs = conn.execute(
                "SELECT count(*) FROM urbis_meta.sync_run WHERE layer_id = "
                "'addresses' AND status = 'success'"
            ).fetchone()[0]
    worker.terminate()
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert runs >= 3
    assert "addresses: 666 features read" in out
    # Structured logs when not on a terminal: one JSON object per line.
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(r.get("layer") == "addresses" and r.get("status") == "success" for r in records)

    status = run("status", env=env, check=True).stdout.splitlines()
    assert status[0].split() == [
        "layer",
        "version",
        "features",
        "last",
        "success",
        "last",
        "failure",
        "next",
        "run",
        "quarantined",
    ]
    addresses = next(line for line in status if line.startswith("addresses"))
    assert " 666 " in addresses
    assert next(line for line in status if line.startswith("hourly")).split()[1] == "1"


# -- the CLI's polish: version, --config, one option for layers, every problem, times -----------

ISO_WITH_OFFSET = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")


def test_version_is_the_package_version():
    done = run("--version", env=clean_env(), check=True)
    assert done.stdout.strip() == f"urbis {importlib.metadata.version('urbis-geoservice')}"


def test_config_option_wins_over_urbis_config(tmp_path: Path):
    env = clean_env(URBIS_CONFIG=str(tmp_path / "absent.yaml"))
    from_env = run("config", "check", env=env)
    assert (
        from_env.returncode == 2 and "absent.yaml: configuration file not found" in from_env.stderr
    )
    chosen = run("--config", str(SAMPLE_CONFIG), "config", "check", env=env, check=True)
    assert chosen.stdout.strip() == (
        f"{SAMPLE_CONFIG}: OK ({len(SAMPLE_LAYERS)} layers: {', '.join(SAMPLE_LAYERS)})"
    )
    missing = run("--config", str(tmp_path / "nope.yaml"), "sources", "check", env=env)
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"urbis: configuration error: {tmp_path / 'nope.yaml'}: configuration file not found"
    )


def lon_lat_shapefile_without_prj(folder: Path) -> Path:
    """The sample municipalities in degrees (EPSG:4326), as a shapefile with no .prj."""
    gpkg = write_sample_municipalities(folder / "municipalities.gpkg")
    frame = gpd.read_file(gpkg).to_crs(4326)
    path = folder / "degrees.shp"
    with warnings.catch_warnings():  # shapefiles keep dates as text: not what is tested here
        warnings.simplefilter("ignore", RuntimeWarning)
        frame.to_file(path)
    path.with_suffix(".prj").unlink()
    return path


def test_config_check_reports_every_problem_in_one_pass(tmp_path: Path):
    degrees = lon_lat_shapefile_without_prj(tmp_path)
    muni = SAMPLE_DIR / "UrbAdm_MUNICIPALITY.shp"
    config = tmp_path / "urbis.yaml"
    config.write_text(
        "layers:\n"
        "  wrong_kind:\n    source: {kind: ftp, url: 'ftp://x'}\n    key: ID\n"
        f"  declared_degrees:\n    source: {{kind: file, path: {muni}, srid: 4326}}\n"
        "    key: NAT_CODE\n"
        f"  declared_lambert:\n    source: {{kind: file, path: {degrees}, srid: 31370}}\n"
        "    key: NAT_CODE\n"
        f"  missing_fields:\n    source: {{kind: file, path: {muni}, srid: 31370}}\n"
        "    key: NIS\n    indexes: [NAME_FRE, SURFACE]\n"
        f"  fine:\n    source: {{kind: file, path: {degrees}, srid: 4326}}\n    key: NAT_CODE\n"
        "  no_file:\n    source: {kind: file, path: nowhere.gpkg}\n    key: ID\n"
    )
    done = run("--config", str(config), "config", "check", env=clean_env())
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    prefix = f"urbis: configuration error: {config}: layer "
    assert all(line.startswith(prefix) for line in lines), lines
    problems = sorted(line.removeprefix(prefix) for line in lines)
    assert len(problems) == 6, problems
    assert problems[0].startswith(
        "'declared_degrees': source.srid: EPSG:4326 (WGS 84) does not fit the data: its extent (141"
    )
    assert "outside that CRS's area of use (World: -180, -90, 180, 90)" in problems[0]
    assert problems[1].startswith(
        "'declared_lambert': source.srid: EPSG:31370 (BD72 / Belgian Lambert 72) does not fit "
        "the data: its extent (4.2"
    )
    assert (
        "outside that CRS's area of use (Belgium - onshore: 2.5, 49.5, 6.4, 51.51)" in problems[1]
    )
    assert problems[2].startswith("'missing_fields': indexes: 'SURFACE' not in the source")
    assert problems[3].startswith("'missing_fields': key: field 'NIS' is not in the source")
    assert problems[4].startswith("'no_file': source.path ") and "does not exist" in problems[4]
    assert problems[5].startswith("'wrong_kind': source.kind: unknown kind 'ftp'")

    # The same file with the srids fixed is accepted: the sample data are plausible.
    config.write_text(
        "layers:\n"
        f"  lambert:\n    source: {{kind: file, path: {muni}, srid: 31370}}\n    key: NAT_CODE\n"
        f"  degrees:\n    source: {{kind: file, path: {degrees}, srid: 4326}}\n"
        "    key: NAT_CODE\n"
        f"  addresses:\n    source: {{kind: file, path: {SAMPLE_DIR / 'UrbAdm_AdPt_sample.zip'}}}"
        "\n    key: ID\n"
    )
    run("--config", str(config), "config", "check", env=clean_env(), check=True)


def test_layers_by_layer_or_collections_and_times_with_their_offset(
    database_url: str, tmp_path: Path
):
    env = clean_env(DATABASE_URL=database_url)
    unknown = run("sync", "--once", "--layer", "municipalities,nope", env=env)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        f"urbis: configuration error: {SAMPLE_CONFIG}: no layer 'nope' (configured layers: "
        f"{', '.join(sorted(SAMPLE_LAYERS))})"
    )
    empty = run("sync", "--once", "--collections", "municipalities,", env=env)
    assert empty.returncode == 2 and "an empty layer id" in empty.stderr
    alone = run("sync", "--unless-run-after", "3", "--layer", "municipalities", env=env)
    assert alone.returncode == 2 and "--unless-run-after goes with --once" in alone.stderr

    synced = run("sync", "--once", "--collections", "municipalities", env=env, check=True)
    assert ISO_WITH_OFFSET.match(synced.stdout)  # the summary line starts with its time
    assert "municipalities: 19 features read, 19 inserted" in synced.stdout
    assert "addresses:" not in synced.stdout
    logs = [json.loads(line) for line in synced.stderr.splitlines() if line.startswith("{")]
    assert logs and all(datetime.fromisoformat(r["time"]).utcoffset() is not None for r in logs)
    again = run(
        "sync", "--once", "--layer", "addresses", "--layer", "municipalities", env=env, check=True
    )
    assert "addresses: 666 features read, 666 inserted" in again.stdout
    assert "municipalities: 19 features read, 0 inserted" in again.stdout

    status = run("status", "--collections", "addresses", env=env, check=True).stdout
    rows = status.splitlines()
    assert len(rows) == 2 and rows[1].startswith("addresses ")
    stamps = ISO_WITH_OFFSET.findall(rows[1])
    assert len(stamps) == 2  # last success, next run (no failure)
    assert all(datetime.fromisoformat(s).utcoffset() is not None for s in stamps)

    out = tmp_path / "two.mbtiles"
    seeded = run(
        "tiles",
        "seed",
        "--layer",
        "municipalities",
        "--collections",
        "addresses",
        "--zooms",
        "11",
        "--out",
        str(out),
        env=env,
        check=True,
    )
    assert "tiles" in seeded.stdout and out.exists()
    with sqlite3.connect(out) as archive:
        meta = dict(archive.execute("SELECT name, value FROM metadata").fetchall())
    layers = [layer["id"] for layer in json.loads(meta["json"])["vector_layers"]]
    assert layers == ["municipalities", "municipalities_labels", "addresses"]
    refused = run(
        "tiles",
        "seed",
        "--layer",
        "nope",
        "--zooms",
        "11",
        "--out",
        str(tmp_path / "n.mbtiles"),
        env=env,
    )
    assert refused.returncode == 2
    assert "no collection 'nope'; the collections are: addresses, municipalities" in refused.stderr
