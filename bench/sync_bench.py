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
and prints the figures as ratios, and writes them as JSON (--json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
    done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name, *cmd], env=env,
                          capture_output=True, text=True)
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
    path.write_text(f"layers:\n  buildings:\n    source: {{kind: file, path: {gpkg}, "
                    "layer: Buildings}\n    key: INSPIRE_ID\n")
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
    subprocess.run([str(URBIS), "migrate"], env={**os.environ, "DATABASE_URL": url}, check=True,
                   capture_output=True)
    return url


def figures(n: int, ogr_seconds: float, full: float, same: float, changed: float
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


def run_all(admin: str, args: argparse.Namespace, big: Path, small: Path,
            changed: Path) -> dict[str, object]:
    n = args.buildings
    ogr_url = database(admin, "ogr")
    pg = make_url(ogr_url)
    ogr_dsn = (f"PG:host={pg.host} port={pg.port} dbname={pg.database} user={pg.username} "
               f"password={pg.password}")
    ogr_seconds, ogr_rss = rss_of(
        ["ogr2ogr", "-f", "PostgreSQL", ogr_dsn, str(big), "Buildings", "-nln", "buildings",
         "-overwrite", "-lco", "GEOMETRY_NAME=geom", "--config", "PG_USE_COPY", "YES"],
        dict(os.environ))
    assert features(ogr_url, "buildings") == n
    big_config = config_for(args.workdir, big, "big")
    changed_config = config_for(args.workdir, changed, "changed")

    # 1. `urbis sync --once`, a fresh process per run (start-up included, as for ogr2ogr)
    url = migrated_database(admin, "urbis")
    full_seconds, full_rss = rss_of(*sync_cmd(big_config, url))
    assert features(url, "urbis.buildings") == n
    same_seconds, _ = rss_of(*sync_cmd(big_config, url))
    changed_seconds, _ = rss_of(*sync_cmd(changed_config, url))
    with psycopg.connect(url) as conn:
        runs = conn.execute("SELECT inserted, updated, deleted FROM urbis_meta.sync_run "
                            "ORDER BY id").fetchall()

    # 2. the same three runs inside one worker process (what `urbis sync` does on schedule)
    worker_url = migrated_database(admin, "urbis_worker")
    done = subprocess.run(
        [sys.executable, "-m", "bench.worker_runs", worker_url, str(big_config),
         str(big_config), str(changed_config)], capture_output=True, text=True, check=True)
    worker = json.loads(done.stdout)
    assert features(worker_url, "urbis.buildings") == n

    # 3. peak memory at a fifth of the size
    small_url = migrated_database(admin, "urbis_small")
    small_seconds, small_rss = rss_of(*sync_cmd(config_for(args.workdir, small, "small"),
                                                small_url))
    return {
        "buildings": n,
        "ogr2ogr_seconds": round(ogr_seconds, 2),
        "ogr2ogr_features_per_s": round(n / ogr_seconds),
        "cli": figures(n, ogr_seconds, full_seconds, same_seconds, changed_seconds),
        "worker": figures(n, ogr_seconds, *worker),
        "one_percent_counts": {"inserted": runs[-1][0], "updated": runs[-1][1],
                               "deleted": runs[-1][2]},
        "peak_rss_mib": {str(args.small): small_rss, str(n): full_rss},
        "ogr2ogr_peak_rss_mib": ogr_rss,
        "small_load_seconds": round(small_seconds, 2),
        "note": "cli: each run its own `urbis sync --once` process, as ogr2ogr is; worker: "
                "the three runs in one process, start-up paid before; same cluster, fsync "
                "off for all",
    }


if __name__ == "__main__":
    raise SystemExit(main())
