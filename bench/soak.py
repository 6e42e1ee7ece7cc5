"""Soak: many continuous-sync cycles with the API under light load; does anything grow?

    python -m bench.soak                                     # 200 unchanged + 50 changed runs
    python -m bench.soak --unchanged 20 --changed 5 --buildings 5000    # a quick look

What a deployment runs, as it runs it: `urbis sync` (the continuous worker, one long-lived
process, the layer on a `1s` schedule) as the writer role, and `urbis serve` as the reader,
on a throwaway cluster holding generated buildings (bench.generate). The source file is
replaced between runs (an atomic rename) by one with 1 % of the buildings changed
(bench.generate.mutate: inserted, updated, deleted), and back, on the changed cycles spread
evenly among the unchanged ones. Meanwhile a few clients ask tiles, items and lookups
(bench.soak_load), so tiles are drawn, cached and dropped by the changes' notifications.

Every `--sample-every` cycles, between runs: resident memory and open descriptors of the API
and of the sync worker (each with its children, from /proc), the database sessions per role
(pg_stat_activity), the API's tile cache (/metrics). Every run's duration and counts are kept
too. Both go to CSV files (`--csv`; the runs' next to it as `*-runs.csv`) for plotting.

At the end, per figure: start, end, max and the least-squares slope per 100 cycles over the
samples after the warm-up (bench.soak_trends). Exit 1 when a figure grows past its limit, a
run failed, a run's changes were not what its cycle planned (a change missed or invented), a
client saw an error, or either process logged one.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import make_url

from bench import soak_probes
from bench.soak_load import LightLoad, LoadFigures, requests_around
from bench.soak_trends import Trend, trend
from urbis_core.pgcluster import free_port

URBIS = Path(sys.executable).parent / "urbis"
# a log line at level error or above, in JSON (the worker's, lower case) or text (the API's)
LOGGED_ERROR = re.compile(r'"level": "(error|critical)"| (ERROR|CRITICAL) ', re.IGNORECASE)
LAYER = "buildings"


@dataclass(frozen=True)
class SoakPlan:
    unchanged: int = 200
    changed: int = 50
    sample_every: int = 5
    warm_up: int = 25  # cycles left out of the trends
    clients: int = 3
    pause: float = 0.05  # each client's pause between requests (s)
    accept_encoding: str | None = None  # the clients' Accept-Encoding (None: httpx's)
    schedule: str = "1s"  # the layer's schedule in the worker's configuration
    cycle_timeout: float = 300.0
    # limits: memory slope in MiB per 100 cycles; counts by how much the last third may pass
    # the first third's highest sample
    max_rss_slope: float = 10.0
    fd_tolerance: int = 2
    connection_tolerance: int = 0
    server_env: dict[str, str] = field(default_factory=dict)

    def kinds(self) -> list[str]:
        """What each cycle's source holds: the changed cycles spread evenly among the others."""
        total = self.unchanged + self.changed
        return [
            "changed" if (i + 1) * self.changed // total > i * self.changed // total else "same"
            for i in range(total)
        ]


@dataclass
class SoakResult:
    samples: list[dict[str, object]]
    runs: list[dict[str, object]]
    trends: list[Trend]
    load: LoadFigures
    off_plan: list[str]
    failed_runs: list[str]
    log_errors: list[str]
    seconds: float

    def problems(self) -> list[str]:
        out = [f"{t.name} grows: {t.why}" for t in self.trends if t.growing]
        out += [f"run failed: {r}" for r in self.failed_runs]
        out += [f"off plan: {r}" for r in self.off_plan]
        requests, errors = self.load.total()
        if errors:
            out.append(f"{errors} of {requests} requests failed: {self.load.first_errors[:3]}")
        out += [f"logged: {line}" for line in self.log_errors[:5]]
        return out


@dataclass
class Sources:
    """The generated source and its changed copies; the worker reads `current`."""

    base: Path
    variants: tuple[Path, ...]
    current: Path
    on_base: bool = True  # `current` holds `base` (else a changed copy)
    turns: int = 0  # changed copies put in place so far: the next is the one after

    def prepare(self, kind: str) -> float | None:
        """The source the next run should read; when it is replaced, the time it was."""
        if kind != "changed":
            return None
        # to a changed copy and back: each replacement changes 1 % of the buildings
        if self.on_base:
            self.put(self.variants[self.turns % len(self.variants)])
            self.turns += 1
        else:
            self.put(self.base)
        self.on_base = not self.on_base
        return time.time()

    def put(self, path: Path) -> None:
        """Replace the file the worker reads, atomically (a run that opened it keeps its own)."""
        staged = self.current.with_name(f".{self.current.name}.next")
        staged.unlink(missing_ok=True)
        os.link(path, staged)
        os.replace(staged, self.current)


def generated_sources(workdir: Path, buildings: int, variants: int) -> Sources:
    """The buildings and `variants` copies with 1 % changed each, generated once per size."""
    from bench.generate import generate, mutate

    workdir.mkdir(parents=True, exist_ok=True)
    base = workdir / f"buildings-{buildings}.gpkg"
    if not base.exists():
        generate(base, buildings=buildings, seed=1, layers=["buildings"])
    copies = []
    for seed in range(2, 2 + variants):
        copy = workdir / f"buildings-{buildings}-1pct-{seed}.gpkg"
        if not copy.exists():
            mutate(base, copy, fraction=0.01, seed=seed)
        copies.append(copy)
    return Sources(base, tuple(copies), workdir / "current.gpkg")


def write_config(path: Path, source: Path, schedule: str) -> Path:
    path.write_text(
        f"layers:\n  {LAYER}:\n    source: {{kind: file, path: {source}, layer: Buildings}}\n"
        f"    key: INSPIRE_ID\n    schedule: {schedule}\n"
    )
    return path


class Processes:
    """The worker and the server, started and stopped here, their logs in files."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [str(URBIS), *args], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.running[name] = proc
        return proc

    def check(self) -> None:
        for name, proc in self.running.items():
            if proc.poll() is not None:
                raise RuntimeError(f"urbis {name} exited ({proc.returncode}): {self.tail(name)}")

    def tail(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for proc in self.running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.running.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logged_errors(self) -> list[str]:
        """Lines of either log at level ERROR or above, or a traceback."""
        found = []
        for log in sorted(self.logs.glob("*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if LOGGED_ERROR.search(line) or line.startswith("Traceback"):
                    found.append(f"{log.stem}: {line[:300]}")
        return found


def base_env(**settings: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "DATABASE_URL_API") and not k.startswith("URBIS_")
    }
    env.update(settings)
    return env


def finished_runs(watcher: psycopg.Connection, after: int) -> list[dict[str, object]]:
    rows = watcher.execute(
        "SELECT id, status, extract(epoch FROM finished_at - started_at), inserted, updated, "
        "deleted, error, extract(epoch FROM started_at) FROM urbis_meta.sync_run "
        "WHERE layer_id = %s AND id > %s "
        "AND status <> 'running' ORDER BY id",
        (LAYER, after),
    ).fetchall()
    return [
        {
            "run": int(r[0]),
            "status": r[1],
            "seconds": round(float(r[2] or 0), 3),
            "inserted": int(r[3]),
            "updated": int(r[4]),
            "deleted": int(r[5]),
            "error": r[6],
            "started": float(r[7]),  # Unix time, to compare with the source's replacement
        }
        for r in rows
    ]


def next_run(
    watcher: psycopg.Connection, after: int, procs: Processes, timeout: float
) -> dict[str, object]:
    """The worker's first run to finish after run `after`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = finished_runs(watcher, after)
        if runs:
            return runs[0]
        procs.check()
        time.sleep(0.05)
    raise RuntimeError(f"no run finished within {timeout:.0f} s: {procs.tail('sync')}")


def wait_ready(base: str, procs: Processes, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.check()
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"urbis serve not ready within {timeout:.0f} s: {procs.tail('serve')}")


def sample_points(watcher: psycopg.Connection, n: int) -> list[tuple[float, float]]:
    """`n` buildings' points in CRS84, the same ones for the same data."""
    rows = watcher.execute(
        "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_PointOnSurface(geom), 4326) AS p "
        f"FROM urbis.{LAYER} ORDER BY md5(ST_AsBinary(geom)::text) LIMIT %s) s",
        (n,),
    ).fetchall()
    return [(float(x), float(y)) for x, y in rows]


def take_sample(
    cycle: int,
    kind: str,
    started: float,
    procs: Processes,
    watcher: psycopg.Connection,
    dbname: str,
    roles: tuple[str, str],
    base: str,
    load: LightLoad,
) -> dict[str, object]:
    api = soak_probes.process_figures(procs.running["serve"].pid)
    sync = soak_probes.process_figures(procs.running["sync"].pid)
    sessions = soak_probes.connections(watcher, dbname)
    reader, writer = roles
    metrics = soak_probes.server_metrics(base)
    requests, errors = load.snapshot()
    return {
        "cycle": cycle,
        "kind": kind,
        "elapsed_s": round(time.monotonic() - started, 1),
        "api_rss_mib": round(api.rss_mib, 1),
        "api_fds": api.fds,
        "api_processes": api.processes,
        "sync_rss_mib": round(sync.rss_mib, 1),
        "sync_fds": sync.fds,
        "sync_processes": sync.processes,
        "api_connections": sessions.pop(reader, 0),
        "sync_connections": sessions.pop(writer, 0),
        "other_connections": sum(sessions.values()),
        "tile_cache_mib": round(metrics.get("urbis_tile_cache_bytes", 0) / 2**20, 2),
        "tile_cache_entries": int(metrics.get("urbis_tile_cache_entries", 0)),
        "tile_cache_dropped": int(metrics.get("urbis_tile_cache_dropped_total", 0)),
        "pool_in_use": int(metrics.get("urbis_db_pool_in_use", 0)),
        "requests": requests,
        "request_errors": errors,
        "load1": soak_probes.load_average(),
    }


def trends_of(samples: list[dict[str, object]], plan: SoakPlan) -> list[Trend]:
    cycles = [int(s["cycle"]) for s in samples]  # type: ignore[call-overload]

    def series(name: str) -> list[float]:
        return [float(s[name]) for s in samples]  # type: ignore[arg-type]

    out = []
    for name in ("api_rss_mib", "sync_rss_mib"):
        out.append(
            trend(
                name,
                cycles,
                series(name),
                warm_up=plan.warm_up,
                max_slope_per_100=plan.max_rss_slope,
            )
        )
    counted = {
        **dict.fromkeys(("api_fds", "sync_fds"), plan.fd_tolerance),
        **dict.fromkeys(
            ("api_connections", "sync_connections", "other_connections"),
            plan.connection_tolerance,
        ),
    }
    for name, tolerance in counted.items():
        out.append(trend(name, cycles, series(name), warm_up=plan.warm_up, tolerance=tolerance))
    # bounded by URBIS_TILE_CACHE_MB by design: reported, not judged
    out.append(trend("tile_cache_mib", cycles, series("tile_cache_mib"), warm_up=plan.warm_up))
    return out


def off_plan(
    cycle: int, kind: str, run: Mapping[str, object], swapped_at: float | None = None
) -> str | None:
    """Why a run's changes are not what its cycle planned; None when they are."""
    if swapped_at is not None and float(run["started"]) < swapped_at:  # type: ignore[arg-type]
        late = swapped_at - float(run["started"])  # type: ignore[arg-type]
        return f"cycle {cycle} (run {run['run']}): the soak replaced the source {late:.2f} s late"
    changes = int(run["inserted"]) + int(run["updated"]) + int(run["deleted"])  # type: ignore[call-overload]
    if kind == "same" and changes:
        return f"cycle {cycle} (run {run['run']}): source unchanged, yet {changes} changes"
    if kind == "changed" and not changes:
        return f"cycle {cycle} (run {run['run']}): source changed, yet no change applied"
    return None


def soak(
    writer_url: str,
    reader_url: str,
    watch_url: str,
    sources: Sources,
    workdir: Path,
    plan: SoakPlan,
    roles: tuple[str, str] = ("urbis_reader", "urbis_writer"),
    progress: bool = False,
) -> SoakResult:
    """Run the plan's cycles against the database at `writer_url` (empty of the layer).

    `watch_url`: a session that sees every other (a superuser's) on the same database.
    """
    logs = workdir / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    sources.put(sources.base)
    sources.on_base = True
    config = write_config(workdir / "soak.yaml", sources.current, plan.schedule)
    dbname = make_url(writer_url).database or ""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs = Processes(logs)
    started = time.monotonic()
    samples: list[dict[str, object]] = []
    runs: list[dict[str, object]] = []
    problems: list[str] = []
    failed: list[str] = []
    load: LightLoad | None = None
    with psycopg.connect(
        watch_url, autocommit=True, application_name=soak_probes.SOAK_APPLICATION
    ) as watcher:
        try:
            before = watcher.execute("SELECT max(id) FROM urbis_meta.sync_run").fetchone()
            last = int(before[0] or 0) if before else 0
            procs.start(
                "sync", ["sync"], base_env(DATABASE_URL=writer_url, URBIS_CONFIG=str(config))
            )
            first = next_run(watcher, last, procs, plan.cycle_timeout)
            if first["status"] != "success":
                raise RuntimeError(f"the first load failed: {first}")
            runs.append({"cycle": 0, "kind": "first load", **first})
            last = int(first["run"])  # type: ignore[call-overload]
            procs.start(
                "serve",
                ["serve"],
                base_env(
                    DATABASE_URL=writer_url,
                    DATABASE_URL_API=reader_url,
                    URBIS_CONFIG=str(config),
                    URBIS_PORT=str(port),
                    **plan.server_env,
                ),
            )
            wait_ready(base, procs)
            load = LightLoad(
                base,
                requests_around(sample_points(watcher, 60), LAYER),
                clients=plan.clients,
                pause=plan.pause,
                accept_encoding=plan.accept_encoding,
            )
            load.start()
            # Runs made while the server started belong to no cycle: the first cycle's is the
            # first to start from now on.
            latest = watcher.execute("SELECT max(id) FROM urbis_meta.sync_run").fetchone()
            last = int(latest[0] or 0) if latest else last
            kinds = plan.kinds()
            swapped_at = sources.prepare(kinds[0])
            for cycle, kind in enumerate(kinds, start=1):
                run = next_run(watcher, last, procs, plan.cycle_timeout)
                # The next cycle's source at once: the worker starts its next run a second
                # after this one ended, and a sample can take longer than that.
                next_swap = sources.prepare(kinds[cycle]) if cycle < len(kinds) else None
                last = int(run["run"])  # type: ignore[call-overload]
                runs.append({"cycle": cycle, "kind": kind, **run})
                if run["status"] != "success":
                    failed.append(f"cycle {cycle}: {run}")
                elif (wrong := off_plan(cycle, kind, run, swapped_at)) is not None:
                    problems.append(wrong)
                swapped_at = next_swap
                if cycle % plan.sample_every == 0 or cycle == 1:
                    samples.append(
                        take_sample(cycle, kind, started, procs, watcher, dbname, roles, base, load)
                    )
                    if progress:
                        print(json.dumps(samples[-1]), file=sys.stderr, flush=True)
        finally:
            if load is not None:
                load.stop()
            procs.stop()
    return SoakResult(
        samples=samples,
        runs=runs,
        trends=trends_of(samples, plan),
        load=load.figures if load is not None else LoadFigures(),
        off_plan=problems,
        failed_runs=failed,
        log_errors=procs.logged_errors(),
        seconds=time.monotonic() - started,
    )


def write_csv(path: Path, rows: Sequence[dict[str, object]]) -> None:
    if not rows:
        return
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def run_figures(runs: list[dict[str, object]]) -> dict[str, dict[str, float]]:
    """Per kind of cycle: how many runs, and their seconds (median, p95, max)."""
    out = {}
    for kind in ("same", "changed"):
        seconds = sorted(float(r["seconds"]) for r in runs if r["kind"] == kind)  # type: ignore[arg-type]
        if seconds:
            out[kind] = {
                "runs": len(seconds),
                "median_s": seconds[len(seconds) // 2],
                "p95_s": seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))],
                "max_s": seconds[-1],
            }
    return out


def summary(result: SoakResult, plan: SoakPlan) -> dict[str, object]:
    requests, errors = result.load.total()
    return {
        "plan": {k: v for k, v in asdict(plan).items() if k != "server_env"},
        "seconds": round(result.seconds, 1),
        "cycles": len(result.runs) - 1,
        "runs": run_figures(result.runs),
        "first_load_s": result.runs[0]["seconds"] if result.runs else None,
        "changes_per_changed_run": [
            {k: r[k] for k in ("inserted", "updated", "deleted")}
            for r in result.runs
            if r["kind"] == "changed"
        ][:2],
        "trends": [t.row() for t in result.trends],
        "requests": dict(result.load.requests),
        "request_errors": errors,
        "requests_total": requests,
        "problems": result.problems(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=100_000)
    parser.add_argument("--unchanged", type=int, default=SoakPlan.unchanged)
    parser.add_argument("--changed", type=int, default=SoakPlan.changed)
    parser.add_argument("--sample-every", type=int, default=SoakPlan.sample_every)
    parser.add_argument("--warm-up", type=int, default=SoakPlan.warm_up)
    parser.add_argument("--clients", type=int, default=SoakPlan.clients)
    parser.add_argument("--max-rss-slope", type=float, default=SoakPlan.max_rss_slope)
    parser.add_argument(
        "--accept-encoding", default=None, help="the clients' (default: httpx's, br included)"
    )
    parser.add_argument(
        "--warm-zoom",
        default=None,
        help="URBIS_TILE_WARM_ZOOM for the server (default: the server's own, as deployed)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for `urbis serve` alone (repeatable)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/urbis-bench/soak"))
    parser.add_argument("--csv", type=Path, default=None, help="the samples (runs: *-runs.csv)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--progress", action="store_true", help="each sample on stderr")
    args = parser.parse_args(argv)
    plan = SoakPlan(
        unchanged=args.unchanged,
        changed=args.changed,
        sample_every=args.sample_every,
        warm_up=args.warm_up,
        clients=args.clients,
        max_rss_slope=args.max_rss_slope,
        accept_encoding=args.accept_encoding,
        server_env={
            **({"URBIS_TILE_WARM_ZOOM": args.warm_zoom} if args.warm_zoom else {}),
            **dict(item.split("=", 1) for item in args.server_env),
        },
    )
    # A background job ignores SIGINT: SIGTERM too must stop the processes and the cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sources = generated_sources(args.workdir, args.buildings, variants=3)

    from urbis_core.pgcluster import EmbeddedCluster

    home = Path(tempfile.mkdtemp(prefix="urbis-soak-cluster-"))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home, durable=False)
    try:
        state = cluster.start()
        subprocess.run(
            [str(URBIS), "migrate"],
            env=base_env(DATABASE_URL=state.url),
            check=True,
            capture_output=True,
        )
        result = soak(
            state.url,
            state.api_url,
            state.admin_url(make_url(state.url).database or ""),
            sources,
            args.workdir,
            plan,
            roles=(state.roles.reader, state.roles.writer),
            progress=args.progress,
        )
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)
    figures = summary(result, plan)
    print(json.dumps(figures, indent=2))
    if args.csv:
        write_csv(args.csv, result.samples)
        write_csv(args.csv.with_name(f"{args.csv.stem}-runs.csv"), result.runs)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    for problem in result.problems():
        print(f"soak: {problem}", file=sys.stderr)
    return 1 if result.problems() else 0


if __name__ == "__main__":
    raise SystemExit(main())
