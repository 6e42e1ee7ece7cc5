"""Load under continuous sync: many clients on a real `urbis serve` while `urbis sync` applies
real changes to a layer every few seconds.

    python -m bench.load_bench --wait-quiet 120 --json out.json   # 50 clients, 60 s, sync 10 s
    python -m bench.load_bench --clients 20 --seconds 15 --interval 3 --buildings 5000
    python -m bench.load_bench --whole --standby-feedback --json out.json  # issue 17's whole

`--whole` (or `--workers 2 --nginx --replica`) serves through bench.load_stack: a streaming
replica, `urbis serve --workers 2` reading from it, the shipped nginx in front; the clients
then ask nginx, its X-Cache-Status is counted per kind. With any stack, bench.load_fresh
probes how soon each change shows in items and tiles after its commit (`--probe`, 0: none),
and the run fails on an answer past its bound or gone back to the old state.

What it does, in order:
1. generates Buildings, StreetAxes and Addresses (bench.generate, seed 1, 500,000 buildings by
   default; cached under --workdir), copies the file (bench.load_source: the copy is the
   source that changes), starts a throwaway PostgreSQL cluster (fsync off), migrates it and
   loads the three layers with `urbis sync --once`, then VACUUM ANALYZE;
2. starts `urbis serve` (its defaults, but for the port; the API connects as the reader role,
   as deployed), asks one /geocode (the street index, read once per version of the addresses,
   which do not change here, as a server in service has long done), and starts `urbis sync` in
   continuous mode, the buildings on an --interval schedule, the other layers daily (already
   synced);
3. for --seconds, --clients clients each send one request after another (no pause: a closed
   loop, each waiting for its answer; `Accept-Encoding: gzip, br` as browsers send), drawn
   from bench.load_workload's mix: vector tiles on both grids (popular ones, cached, and any
   others, mostly drawn when asked), items pages, bbox queries, /lookup, /within, /nearest,
   /geocode and /reverse. Meanwhile, each time a buildings run finishes, the source is changed
   again (--changes buildings inserted, updated and deleted), so that every later run applies
   real changes, and the server's tile cache loses the buildings' tiles each time;
4. then waits for the run that applies the last change, and checks that the API serves it:
   every inserted and updated building through /items with its new geometry and AREA, every
   deleted one a 404, and the changed buildings in (or gone from) their vector tiles on both
   grids, decoded;
5. reports per kind of request: requests, errors (any answer but 2xx/304, any transport
   error; the first few printed), p50/p90/p99 latency and throughput; the tile cache's hits and
   misses; the sync runs during the load (statuses, features changed, durations) and the
   low-zoom tiles the server drew again after them (/healthz); the CPU per request of the
   server, PostgreSQL and this client, and the machine's load. It exits 1 on any error or
   failed check. `--set URBIS_NAME=VALUE` gives `urbis serve` a setting (default: none).

Server and sync logs of the last run stay in <workdir>/load-run/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from sqlalchemy import make_url

from bench import api_peers
from bench.api_bench import (
    CpuMeter,
    cpu_per_request,
    fresh_folder,
    generated,
    percentile,
    scratch_cluster,
    wait_for_quiet,
    write_result,
)
from bench.load_check import check_change
from bench.load_fresh import (
    TILE_SLACK,
    CommitWatcher,
    Probed,
    freshness_report,
    probe,
    wait_replayed,
)
from bench.load_source import ChangingSource
from bench.load_stack import Stack, replicated_cluster, serving
from bench.load_sync import CHANGED, ChangeFeeder, finished_runs, sync_worker, wait_applied
from bench.load_workload import KINDS, Places, Workload, read_places
from bench.rawhttp import RawClient
from urbis_core.pgcluster import ClusterState
from urbis_core.settings import ApiSettings, DatabaseRoles

LAYERS = {"buildings": "Buildings", "street_axes": "StreetAxes", "addresses": "Addresses"}
# What a browser sends: the server compresses JSON as it would in service.
HEADERS = {"Accept": "application/geo+json, application/json;q=0.9", "Accept-Encoding": "gzip, br"}
OK = range(200, 300)
FIRST_ERRORS = 10


@dataclass(frozen=True)
class Setup:
    clients: int = 50
    seconds: float = 60.0
    interval: int = 10  # seconds between the changed layer's runs (its schedule)
    changes: int = 30  # buildings changed a run: inserted, updated and deleted in thirds
    seed: int = 1
    think: float = 0.0  # mean seconds a client pauses after each answer (0: a closed loop)
    server_env: tuple[tuple[str, str], ...] = ()  # settings given to `urbis serve` (--set)
    stack: Stack = field(default_factory=Stack)  # what serves: one process, or the whole
    probed: int = 2  # buildings of each change per kind probed for freshness (0: none)


# -- the database and the layers -------------------------------------------------------------


def layer_config(path: Path, gpkg: Path, interval: int) -> Path:
    path.write_text(
        "layers:\n"
        + "".join(
            f"  {layer}:\n    source: {{kind: file, path: {gpkg}, layer: {name}}}\n"
            f"    key: INSPIRE_ID\n"
            f"    schedule: {f'{interval}s' if layer == CHANGED else '1d'}\n"
            for layer, name in LAYERS.items()
        )
    )
    return path


def urbis(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run([str(api_peers.URBIS), *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"urbis {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def fresh_database(admin: str, name: str) -> tuple[str, str]:
    """A new migrated database on a scratch cluster: its writer URL (the cluster's superuser,
    as the bench's other loads) and the reader role's, given a password of this run."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION postgis")
    urbis("migrate", env={**os.environ, "DATABASE_URL": url})
    password = secrets.token_urlsafe(18)
    reader = DatabaseRoles().reader
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(reader), sql.Literal(password)
            )
        )
    reader_url = make_url(url).set(username=reader, password=password)
    return url, reader_url.render_as_string(hide_password=False)


def load_layers(url: str, config: Path) -> None:
    urbis("sync", "--once", env={**os.environ, "DATABASE_URL": url, "URBIS_CONFIG": str(config)})
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE " + ", ".join(f"urbis.{t}" for t in LAYERS))


# -- the clients -----------------------------------------------------------------------------


@dataclass
class Tally:
    """What the clients saw, per kind of request."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    first_errors: list[str] = field(default_factory=list)
    tile_cache: dict[str, list[float]] = field(default_factory=lambda: {"hit": [], "miss": []})
    # what nginx did, per kind (its X-Cache-Status: HIT, REVALIDATED, EXPIRED, MISS, ...)
    proxy_cache: dict[str, dict[str, int]] = field(default_factory=lambda: {k: {} for k in KINDS})
    misses_by_zoom: dict[str, list[float]] = field(default_factory=dict)  # "<grid> z<zoom>"

    def error(self, kind: str, text: str) -> None:
        self.errors[kind] += 1
        if len(self.first_errors) < FIRST_ERRORS:
            self.first_errors.append(f"{kind}: {text}")
            print(f"  error: {kind}: {text}", file=sys.stderr)


async def client(
    base: str, workload: Workload, deadline: float, tally: Tally, think: float, seed: int
) -> None:
    pauses = random.Random(seed)  # apart from the workload's: the same requests for any --think
    async with RawClient(HEADERS) as http:
        while time.perf_counter() < deadline:
            if think:
                await asyncio.sleep(pauses.uniform(0, 2 * think))
            kind, path = workload.next()
            started = time.perf_counter()
            try:
                answer = await http.get(base + path)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                tally.error(kind, f"{type(exc).__name__} {exc} on {path}")
                await asyncio.sleep(0.05)  # a new connection next time
                continue
            took = time.perf_counter() - started
            if answer.status_code not in OK and answer.status_code != 304:
                tally.error(kind, f"HTTP {answer.status_code} {path}: {answer.text[:300]}")
                continue
            tally.latencies[kind].append(took)
            proxied = answer.headers.get("x-cache-status")
            if proxied:
                counts = tally.proxy_cache[kind]
                counts[proxied] = counts.get(proxied, 0) + 1
            cache = answer.headers.get("x-tile-cache")
            if kind.startswith("tile") and cache:
                tally.tile_cache["hit" if cache == "hit" else "miss"].append(took)
                if cache != "hit":
                    zoom = f"{kind.split()[1]} z{path.split('/')[5]}"
                    tally.misses_by_zoom.setdefault(zoom, []).append(took)


async def drive(
    base: str, places: Places, setup: Setup, freshness: Freshness | None = None
) -> tuple[Tally, float]:
    """The clients for --seconds, and beside them the freshness probe when given one."""
    popular = Workload.popular_tiles(places, setup.seed)
    tally = Tally()
    started = time.perf_counter()
    deadline = started + setup.seconds
    probing = []
    if freshness:
        fresh = freshness
        probing.append(
            probe(base, fresh.feeder, fresh.watcher, setup.probed, deadline, fresh.results)
        )
    await asyncio.gather(
        *probing,
        *(
            client(
                base,
                Workload(places, setup.seed * 1000 + i, popular),
                deadline,
                tally,
                setup.think,
                setup.seed * 1000 + i,
            )
            for i in range(setup.clients)
        ),
    )
    return tally, time.perf_counter() - started


def summary(latencies: list[float], errors: int, seconds: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "requests": len(latencies) + errors,
        "errors": errors,
        "per_s": round(len(latencies) / seconds, 1),
    }
    if latencies:
        row.update(
            {f"p{q}_ms": round(percentile(latencies, q) * 1000, 1) for q in (50, 90, 99)},
            max_ms=round(max(latencies) * 1000, 1),
        )
    return row


def low_zoom_tiles_drawn(base: str) -> int:
    """How many low-zoom tiles the server has drawn ahead so far (/healthz): after a change,
    it draws again those the change dropped, in the background."""
    answer = httpx.get(f"{base}/healthz", timeout=30)
    answer.raise_for_status()
    return int(answer.json()["low_zoom_tiles"]["drawn_ahead"])


def replica_scans(admin: str | None) -> int | None:
    """Scans of the layers' tables the replica has run (its own statistics): the API's reads
    served there. None without a replica."""
    if admin is None:
        return None
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) "
            "FROM pg_stat_user_tables WHERE schemaname = 'urbis'"
        ).fetchone()
    return int(row[0]) if row else 0


def wal_position(url: str) -> str:
    """The primary's WAL position now: two of them give the WAL written in between, which a
    replica replays."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    return str(row[0]) if row else "0/0"


def wal_bytes(url: str, since: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (since,)
        ).fetchone()
    return int(row[0]) if row else 0


def replica_conflicts(admin: str | None) -> dict[str, int] | None:
    """Queries the replica cancelled because replaying the primary's WAL needed what they held
    (pg_stat_database_conflicts), by cause. None without a replica."""
    if admin is None:
        return None
    with psycopg.connect(admin, autocommit=True) as conn:
        cursor = conn.cursor(row_factory=dict_row)
        row = cursor.execute(
            "SELECT confl_tablespace, confl_lock, confl_snapshot, confl_bufferpin, "
            "confl_deadlock FROM pg_stat_database_conflicts WHERE datname = current_database()"
        ).fetchone()
    return {k.removeprefix("confl_"): int(v) for k, v in (row or {}).items()}


def read_street_index(base: str, places: Places, processes: int = 1) -> float:
    """Seconds of the server's first /geocode, which reads the streets once per version of
    the addresses (a few seconds at Brussels' size): done before the load, as a server in
    service has long done it. The addresses do not change during the run.

    Each API process reads its own: with several, rounds of as many /geocode at once, each on
    a new connection (the kernel hands each to one process), until a round is all quick."""
    first = None
    for _ in range(20):
        with ThreadPoolExecutor(2 * processes) as pool:
            queries = places.geocode[: 2 * processes]
            took = list(pool.map(lambda q: _geocode_seconds(base, q), queries))
        first = max(took) if first is None else first
        if processes == 1 or max(took) < 1.0:
            break
    return round(first or 0.0, 2)


def _geocode_seconds(base: str, query: str) -> float:
    started = time.perf_counter()
    answer = httpx.get(f"{base}/geocode", params={"q": query}, timeout=120)
    answer.raise_for_status()
    return time.perf_counter() - started


@dataclass
class Freshness:
    """The freshness probe's parts (bench.load_fresh) and what it found."""

    feeder: ChangeFeeder
    watcher: CommitWatcher
    results: list[Probed] = field(default_factory=list)


# -- the run ---------------------------------------------------------------------------------


def run_load(
    url: str,
    reader_url: str,
    gpkg: Path,
    rundir: Path,
    setup: Setup,
    postmaster: int | None = None,
    primary: ClusterState | None = None,
) -> tuple[dict[str, Any], ChangingSource]:
    """The load on a migrated database (empty of layers): the report (`ok`: no error, the
    last change served, every probed answer fresh), and the source with every change written
    to it. `primary` is the database's cluster, needed for a replica (`setup.stack`)."""
    source = ChangingSource.copied_from(gpkg, rundir / "source.gpkg", setup.changes, setup.seed)
    config = layer_config(rundir / "load.yaml", source.path, setup.interval)
    print("loading the layers with urbis sync --once ...", file=sys.stderr)
    load_layers(url, config)
    places = read_places(url, setup.seed)
    stack = setup.stack
    with serving(stack, url, reader_url, config, rundir, primary, setup.server_env) as server:
        street_index = read_street_index(server.api, places, stack.workers)
        low_zoom_before = low_zoom_tiles_drawn(server.api)
        scans_before = replica_scans(server.replica_admin)
        wal_before = wal_position(url)
        before_runs = max((r["id"] for r in finished_runs(url)), default=0)
        feeder = ChangeFeeder(url, source, before_runs)
        with (
            sync_worker(url, config, rundir / "sync.log"),
            CommitWatcher(url, server.replica_admin) as watcher,
        ):
            freshness = Freshness(feeder, watcher) if setup.probed else None
            thread = threading.Thread(target=feeder.run, daemon=True)
            thread.start()
            meter = CpuMeter(server.group, postmaster) if postmaster else None
            cpu_before = meter.sample() if meter else None
            load_started = time.time()
            print(
                f"{setup.clients} clients for {setup.seconds:g} s on {stack.name} ...",
                file=sys.stderr,
            )
            tally, seconds = asyncio.run(drive(server.base, places, setup, freshness))
            load_ended = time.time()
            # /healthz is the answering process's: with several, before and after may differ
            low_zoom_during = (
                low_zoom_tiles_drawn(server.api) - low_zoom_before if stack.workers == 1 else None
            )
            scans_after = replica_scans(server.replica_admin)
            conflicts = replica_conflicts(server.replica_admin)
            wal_during = wal_bytes(url, wal_before)
            cpu_after = meter.sample() if meter else None
            feeder.stop.set()
            thread.join()
            last_change, written_at = feeder.written[-1]
            print(f"waiting for the run applying change {last_change.cycle} ...", file=sys.stderr)
            applied = wait_applied(url, written_at, before_runs, 3 * setup.interval + 120)
        problems = []
        if applied:
            # asked once the answers must show it: the read side replayed it, tiles' bound after
            read_side = server.replica_admin or url
            max_lag = dict(setup.server_env).get("URBIS_READ_MAX_LAG_S", ApiSettings.read_max_lag)
            if not wait_replayed(read_side, applied["id"], float(max_lag)):
                problems.append(f"the read side never replayed run {applied['id']}")
            time.sleep(TILE_SLACK)
            problems += check_change(server.base, last_change)
    runs = finished_runs(url, before_runs)
    during = [r for r in runs if r["started_at"].timestamp() < load_ended]
    answered = sum(len(v) for v in tally.latencies.values())
    errors = sum(tally.errors.values())
    cpu = (
        cpu_per_request(cpu_before, cpu_after, answered, seconds)
        if cpu_before and cpu_after
        else None
    )
    fresh = freshness_report(freshness.results) if freshness else None
    if fresh is not None and watcher.failure:
        fresh.update(ok=False, watcher_failure=watcher.failure)
    report: dict[str, Any] = {
        "setup": {
            **setup.__dict__,
            "stack": stack.name,
            "features": places.counts,
            "kinds": KINDS,
            "headers": HEADERS,
            "first_geocode_seconds_before_load": street_index,
        },
        **requests_report(tally, seconds),
        "freshness": fresh,
        "replica_table_scans_during_load": None
        if scans_before is None or scans_after is None
        else scans_after - scans_before,
        "replica_queries_cancelled_by_replay": conflicts,
        "wal_mb_written_during_load": round(wal_during / 2**20, 1),
        "sync": {
            **sync_report(during, feeder),
            "low_zoom_tiles_drawn_again_by_the_server": low_zoom_during,
        },
        "last_change": {
            "cycle": last_change.cycle,
            "features": last_change.features,
            "applied_by_run": applied["id"] if applied else None,
            "applied_seconds_after_written": round(
                applied["finished_at"].timestamp() - written_at, 1
            )
            if applied
            else None,
            "problems": problems if applied else ["never applied"],
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
            **({"cpu": cpu} if cpu else {}),
        },
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(load_started)),
    }
    report["ok"] = (
        not errors
        and applied is not None
        and not problems
        and not feeder.failure
        and (fresh is None or fresh["ok"])
    )
    return report, source


def requests_report(tally: Tally, seconds: float) -> dict[str, Any]:
    """Requests, errors, latency and throughput: all, per kind, tiles by cache and zoom."""
    answered = sum(len(v) for v in tally.latencies.values())
    errors = sum(tally.errors.values())
    return {
        "seconds": round(seconds, 2),
        "requests": answered + errors,
        "errors": errors,
        "requests_per_s": round(answered / seconds, 1),
        "kinds": {
            kind: summary(tally.latencies[kind], tally.errors[kind], seconds) for kind in KINDS
        },
        "all": summary([v for values in tally.latencies.values() for v in values], errors, seconds),
        "tile_cache": {
            state: summary(values, 0, seconds) for state, values in tally.tile_cache.items()
        },
        "proxy_cache": {kind: dict(sorted(c.items())) for kind, c in tally.proxy_cache.items()},
        "tile_misses_by_zoom": {
            zoom: summary(values, 0, seconds)
            for zoom, values in sorted(tally.misses_by_zoom.items())
        },
        "first_errors": tally.first_errors,
    }


def sync_report(during: list[dict[str, Any]], feeder: ChangeFeeder) -> dict[str, Any]:
    """The changed layer's runs during the load: how they went and what they changed."""
    return {
        "runs_during_load": len(during),
        "statuses": {
            s: sum(r["status"] == s for r in during) for s in {r["status"] for r in during}
        },
        "runs_with_changes": sum(r["inserted"] + r["updated"] + r["deleted"] > 0 for r in during),
        "features_changed": {
            k: sum(int(r[k]) for r in during) for k in ("inserted", "updated", "deleted")
        },
        "run_seconds_max": round(max((float(r["seconds"]) for r in during), default=0), 2),
        "changes_written": len(feeder.written),
        "feeder_failure": feeder.failure,
        "errors": [r["error"] for r in during if r["error"]][:3],
    }


def print_table(report: dict[str, Any]) -> None:
    out = sys.stderr
    print(
        f"\n{'kind':24} {'requests':>9} {'errors':>6} {'req/s':>7} "
        f"{'p50':>7} {'p90':>7} {'p99':>7}",
        file=out,
    )
    rows = {**report["kinds"], "all": report["all"]}
    rows.update({f"tiles, cache {k}": v for k, v in report["tile_cache"].items()})
    for kind, row in rows.items():
        print(
            f"{kind:24} {row['requests']:9} {row['errors']:6} {row['per_s']:7} "
            + " ".join(f"{row.get(f'p{q}_ms', '-'):>7}" for q in (50, 90, 99)),
            file=out,
        )
    for kind, counts in report["proxy_cache"].items():
        if counts:
            print(f"nginx {kind}: {counts}", file=out)
    fresh = report["freshness"]
    if fresh is not None:
        print_freshness(fresh)
    if report["replica_table_scans_during_load"] is not None:
        scans = report["replica_table_scans_during_load"]
        print(
            f"replica: {scans} scans of the layers' tables during the load; queries "
            f"cancelled by its replay: {report['replica_queries_cancelled_by_replay']}; "
            f"WAL written during the load {report['wal_mb_written_during_load']} MiB",
            file=out,
        )
    sync = report["sync"]
    print(
        f"sync: {sync['runs_during_load']} runs during the load ({sync['statuses']}), "
        f"{sync['runs_with_changes']} with changes, features {sync['features_changed']}; "
        f"low-zoom tiles drawn again {sync['low_zoom_tiles_drawn_again_by_the_server']}",
        file=out,
    )
    last = report["last_change"]
    print(
        f"last change {last['cycle']}: run {last['applied_by_run']}, problems {last['problems']}",
        file=out,
    )
    print("OK" if report["ok"] else "FAILED", file=out)


def print_freshness(fresh: dict[str, Any]) -> None:
    out = sys.stderr
    print(
        f"freshness: {fresh['changes_probed']} changes probed, {fresh['targets_per_change']} "
        f"answers each a round, {fresh['answers']} answers; the replica replayed a commit "
        f"p50 {fresh['replica_replayed_after_commit_p50_s']} s, "
        f"max {fresh['replica_replayed_after_commit_max_s']} s after it",
        file=out,
    )
    for kind, row in fresh["kinds"].items():
        print(
            f"  {kind:22} new from (s after commit) p50 {row['first_new_p50_s']} "
            f"p99 {row['first_new_p99_s']} max {row['first_new_max_s']}; "
            f"last old {row['last_old_max_s']}; bound: replay + {row['bound_after_replay_s']} s",
            file=out,
        )
    for what in ("late", "back", "never_new", "errors", "indistinct"):
        for text in fresh[what]:
            print(f"  {what}: {text}", file=out)
    print(f"freshness {'OK' if fresh['ok'] else 'FAILED'}", file=out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=Setup.clients)
    parser.add_argument("--seconds", type=float, default=Setup.seconds)
    parser.add_argument(
        "--interval", type=int, default=Setup.interval, help="the buildings' schedule, seconds"
    )
    parser.add_argument(
        "--changes", type=int, default=Setup.changes, help="buildings changed before each run"
    )
    parser.add_argument(
        "--buildings",
        type=int,
        default=500_000,
        help="buildings generated, Brussels' size by default (addresses: 1.2 x)",
    )
    parser.add_argument("--seed", type=int, default=Setup.seed)
    parser.add_argument(
        "--think",
        type=float,
        default=Setup.think,
        help="mean seconds each client pauses before each request (uniform 0-2x; "
        "default 0: each sends its next request as soon as it has the answer)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for other processes to leave the CPU idle",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="URBIS_NAME=VALUE",
        help="a setting for `urbis serve` (repeatable; default: its own defaults)",
    )
    parser.add_argument(
        "--whole",
        action="store_true",
        help="the whole deployment: --workers 2 --nginx --replica",
    )
    parser.add_argument("--workers", type=int, default=1, help="urbis serve --workers N")
    parser.add_argument(
        "--nginx", action="store_true", help="deploy/nginx/urbis.conf in front; clients ask it"
    )
    parser.add_argument(
        "--replica",
        action="store_true",
        help="one streaming replica serving the API's reads (DATABASE_URL_READ)",
    )
    parser.add_argument(
        "--standby-feedback",
        action="store_true",
        help="the replica with hot_standby_feedback = on (PostgreSQL's default: off)",
    )
    parser.add_argument(
        "--probe",
        type=int,
        default=Setup.probed,
        metavar="N",
        help="buildings of each change, per kind (inserted, updated, deleted), whose items "
        "and tiles are probed for freshness (0: none)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/urbis-bench"))
    parser.add_argument("--json", type=Path, default=None, help="write the result here too")
    return parser.parse_args(argv)


def server_setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("URBIS_"):
        raise SystemExit(f"--set {text!r}: expected URBIS_NAME=VALUE")
    return name, value


@contextmanager
def cluster_for(stack: Stack) -> Iterator[tuple[str, int, ClusterState | None]]:
    """A throwaway cluster: one standbys may stream from when the stack has a replica."""
    if stack.replica:
        with replicated_cluster("urbis-load-bench-cluster-") as found:
            yield found
    else:
        with scratch_cluster("urbis-load-bench-cluster-") as (admin, postmaster):
            yield admin, postmaster, None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    busy = wait_for_quiet(args.wait_quiet)
    load_before = [round(v, 2) for v in os.getloadavg()]
    gpkg = generated(args.workdir, "brussels-load", args.buildings, list(LAYERS))
    rundir = fresh_folder(args.workdir / "load-run")
    stack = Stack(
        workers=2 if args.whole else args.workers,
        nginx=args.whole or args.nginx,
        replica=args.whole or args.replica,
        feedback=args.standby_feedback,
    )
    setup = Setup(
        args.clients,
        args.seconds,
        args.interval,
        args.changes,
        args.seed,
        args.think,
        tuple(server_setting(text) for text in args.set),
        stack,
        args.probe,
    )
    with cluster_for(stack) as (admin, postmaster, primary):
        url, reader_url = fresh_database(admin, "load_bench")
        report, _ = run_load(url, reader_url, gpkg, rundir, setup, postmaster, primary)
    report["command"] = "python -m bench.load_bench " + " ".join(argv or sys.argv[1:])
    report["machine"].update(busy_cores_before_start=busy, load_average_before=load_before)
    write_result(report, args.json)
    print_table(report)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
