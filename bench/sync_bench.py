"""Sync benchmark: our sync against ogr2ogr (COPY) on the same GeoPackage, in one run.

    python -m bench.sync_bench                      # 500,000 buildings (+ 100,000 for RSS)
    python -m bench.sync_bench --buildings 50000 --small 10000   # a quicker look

It generates the data (bench.generate, cached under --workdir), starts a throwaway PostgreSQL
cluster (fsync off for both contenders alike), then measures, each step in a fresh process:
1. ogr2ogr -f PostgreSQL ... --config PG_USE_COPY YES   (the reference load path)
2. urbis sync --once on an empty database                (full load: hash, validate, history)
3. urbis sync --once again, source unchanged             (no-change re-sync)
4. urbis sync --once on a copy with 1 % of buildings changed (bench.generate.mutate)
5. steps 2-4 again inside one process (bench.worker_runs), as the `urbis sync` worker runs them
6. the full load of a smaller file, for peak RSS at two sizes
Steps 1-5 are repeated (--repeat, 3) and the medians reported, as ratios; a checkpoint and a
warm read of the source file come before each timed step. Writes the figures as JSON (--json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy import make_url

from bench.generate import generate, mutate
from urbis_core.pgcluster import EmbeddedCluster

URBIS = Path(sys.executable).parent / "urbis"


def rss_of(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds and peak RSS (MiB) via /usr/bin/time, so each process is measured alone."""
    out = tempfile.NamedTemporaryFile(suffix=".time", delete=False)
    out.close()
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", "-o", out.name, *cmd], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{done.stdout}\n{done.stderr}")
    kib = int(Path(out.name).read_text().strip().splitlines()[-1])
    os.unlink(out.name)
    return seconds, kib // 1024


def database(admin: str, name: str) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION postgis")
    return url


def config_for(workdir: Path, gpkg: Path, name: str) -> Path:
    path = workdir / f"{name}.yaml"
    path.write_text(
        f"layers:\n  buildings:\n    source: {{kind: file, path: {gpkg}, "
        "layer: Buildings}\n    key: INSPIRE_ID\n"
    )
    return path


def sync_cmd(config: Path, url: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "DATABASE_URL": url, "URBIS_CONFIG": str(config)}
    return [str(URBIS), "sync", "--once", "--layer", "buildings"], env


def features(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=500_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/urbis-bench"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--repeat", type=int, default=3, help="times each measure is taken (the median is reported)"
    )
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    big = args.workdir / f"buildings-{args.buildings}.gpkg"
    small = args.workdir / f"buildings-{args.small}.gpkg"
    changed = args.workdir / f"buildings-{args.buildings}-1pct.gpkg"
    for path, size in ((big, args.buildings), (small, args.small)):
        if not path.exists():
            print(f"generating {path} ...", file=sys.stderr)
            generate(path, buildings=size, seed=1, layers=["buildings"])
    if not changed.exists():
        mutate(big, changed, fraction=0.01, seed=2)

    home = Path(tempfile.mkdtemp(prefix="urbis-bench-cluster-"))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home, durable=False)
    admin = cluster.start().admin_url()
    try:
        results = run_all(admin, args, big, small, changed)
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def migrated_database(admin: str, name: str) -> str:
    url = database(admin, name)
    subprocess.run(
        [str(URBIS), "migrate"],
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        capture_output=True,
    )
    return url


def figures(
    n: int, ogr_seconds: float, full: float, same: float, changed: float
) -> dict[str, float]:
    return {
        "full_load_seconds": round(full, 2),
        "full_load_features_per_s": round(n / full),
        "full_load_vs_ogr2ogr": round(ogr_seconds / full, 2),
        "no_change_seconds": round(same, 2),
        "no_change_fraction_of_full": round(same / full, 2),
        "one_percent_seconds": round(changed, 2),
        "one_percent_fraction_of_full": round(changed / full, 2),
    }


def settle(admin: str, *files: Path) -> None:
    """Before each timed step: the same starting point for every contender.

    A checkpoint, so no one pays for the WAL the step before wrote; the source files read
    once, so no one pays for reading them from disk while the others read them from memory.
    """
    for path in files:
        with path.open("rb") as source:
            while source.read(1 << 24):
                pass
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def ogr2ogr_load(admin: str, big: Path, n: int, attempt: int) -> tuple[float, int]:
    url = database(admin, f"ogr_{attempt}")
    pg = make_url(url)
    dsn = (
        f"PG:host={pg.host} port={pg.port} dbname={pg.database} user={pg.username} "
        f"password={pg.password}"
    )
    settle(admin, big)
    seconds, rss = rss_of(
        [
            "ogr2ogr",
            "-f",
            "PostgreSQL",
            dsn,
            str(big),
            "Buildings",
            "-nln",
            "buildings",
            "-overwrite",
            "-lco",
            "GEOMETRY_NAME=geom",
            "--config",
            "PG_USE_COPY",
            "YES",
        ],
        dict(os.environ),
    )
    assert features(url, "buildings") == n
    return seconds, rss


def cli_runs(
    admin: str, configs: list[Path], files: list[Path], n: int, attempt: int
) -> tuple[list[float], int, list[tuple[int, int, int]]]:
    """Full load, no change, 1 % changed: each `urbis sync --once` in a fresh process."""
    url = migrated_database(admin, f"urbis_cli_{attempt}")
    seconds, peak = [], 0
    for config, source in zip(configs, files, strict=True):
        settle(admin, source)
        took, rss = rss_of(*sync_cmd(config, url))
        seconds.append(took)
        peak = max(peak, rss)
    assert features(url, "urbis.buildings") == n
    with psycopg.connect(url) as conn:
        counts = conn.execute(
            "SELECT inserted, updated, deleted FROM urbis_meta.sync_run ORDER BY id"
        ).fetchall()
    return seconds, peak, counts


def worker_runs(
    admin: str, configs: list[Path], files: list[Path], n: int, attempt: int
) -> dict[str, list[float]]:
    """The same three runs inside one process, as the `urbis sync` worker makes them: the
    seconds until each run's changes are live, and then to make its rows ready for tiles."""
    url = migrated_database(admin, f"urbis_worker_{attempt}")
    settle(admin, *files)
    done = subprocess.run(
        [sys.executable, "-m", "bench.worker_runs", url, *(str(c) for c in configs)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench.worker_runs failed:\n{done.stdout}\n{done.stderr}")
    assert features(url, "urbis.buildings") == n
    timed: dict[str, list[float]] = json.loads(done.stdout)
    return timed


def middle(repeats: list[list[float]]) -> list[float]:
    """The median of each step over the repeats."""
    return [statistics.median(step) for step in zip(*repeats, strict=True)]


def run_all(
    admin: str, args: argparse.Namespace, big: Path, small: Path, changed: Path
) -> dict[str, object]:
    n = args.buildings
    configs = [
        config_for(args.workdir, big, "big"),
        config_for(args.workdir, big, "big"),
        config_for(args.workdir, changed, "changed"),
    ]
    files = [big, big, changed]
    ogr: list[float] = []
    cli: list[list[float]] = []
    worker: list[list[float]] = []
    worker_tile_ready: list[list[float]] = []
    for attempt in range(args.repeat):
        ogr_seconds, ogr_rss = ogr2ogr_load(admin, big, n, attempt)
        ogr.append(ogr_seconds)
        cli_seconds, full_rss, counts = cli_runs(admin, configs, files, n, attempt)
        cli.append(cli_seconds)
        timed = worker_runs(admin, configs, files, n, attempt)
        worker.append(timed["until_live"])
        worker_tile_ready.append(timed["tile_ready"])

    # peak memory at a fifth of the size
    small_url = migrated_database(admin, "urbis_small")
    settle(admin, small)
    small_seconds, small_rss = rss_of(
        *sync_cmd(config_for(args.workdir, small, "small"), small_url)
    )
    reference = statistics.median(ogr)
    return {
        "buildings": n,
        "repeats": args.repeat,
        "ogr2ogr_seconds": round(reference, 2),
        "ogr2ogr_features_per_s": round(n / reference),
        "cli": figures(n, reference, *middle(cli)),
        "worker": figures(n, reference, *middle(worker)),
        # after each run, apart from the figures above (which end when the run's changes are
        # live): making the rows it wrote ready for tiles; `cli` includes it
        "worker_tile_ready_seconds": dict(
            zip(
                ("full_load", "no_change", "one_percent"),
                (round(x, 2) for x in middle(worker_tile_ready)),
                strict=True,
            )
        ),
        "all_seconds": {
            "ogr2ogr": [round(x, 2) for x in ogr],
            "cli": [[round(x, 2) for x in r] for r in cli],
            "worker": [[round(x, 2) for x in r] for r in worker],
        },
        "one_percent_counts": {
            "inserted": counts[-1][0],
            "updated": counts[-1][1],
            "deleted": counts[-1][2],
        },
        "peak_rss_mib": {str(args.small): small_rss, str(n): full_rss},
        "ogr2ogr_peak_rss_mib": ogr_rss,
        "small_load_seconds": round(small_seconds, 2),
        "note": "medians of the repeats; cli: each run its own `urbis sync --once` process, "
        "as ogr2ogr is; worker: the three runs in one process, start-up paid before; "
        "same cluster, fsync off for all, a checkpoint and warm source files before "
        "each timed step",
    }


if __name__ == "__main__":
    raise SystemExit(main())
