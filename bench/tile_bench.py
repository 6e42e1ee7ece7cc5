"""Tile benchmark: our vector tiles against tipg's on the same PostGIS tables, in one run.

    python -m bench.tile_bench --json out.json     # 500,000 buildings and their street axes
    python -m bench.tile_bench --quick             # 50,000 buildings

What it does, in order:
1. generates Buildings and StreetAxes (bench.generate, seed 1; cached under --workdir),
   starts a throwaway PostgreSQL cluster (fsync off), loads both with `urbis sync --once`,
   then VACUUM ANALYZE: both servers read these same tables;
2. draws the tiles once (--seed): Web Mercator tiles at z12-z18, each around a building drawn
   at random (ZOOM_WEIGHTS), distinct, plus every z10 and z11 tile that meets the data. Each
   tile is asked for each of the two layers, `/collections/{id}/tiles/WebMercatorQuad/{z}/{x}/{y}`
   on both servers, the (layer, tile) requests in one shuffled order;
3. for each server in turn (one process, the same pool size, never two at once):
   - low zoom: a fresh process answers the z10-z11 requests one at a time (time and bytes);
     ours twice: drawing every tile when asked, and as it runs by default, having drawn its
     low zooms ahead after starting (how long that took is reported);
   - cold: a fresh process answers the whole list once, --concurrency requests in flight
     (ours with an empty cache and nothing drawn ahead; tipg has no cache);
   - warm: the same process answers the same list again, round and round for --warm-seconds
     (ours from its cache; tipg draws every tile again);
4. compares both servers' tiles at z16 and above: features per layer, decoded;
5. seeds the same two layers into a PMTiles archive (tiles.seed, in this process) over
   --seed-zooms and reports tiles/s.

The client is bench.rawhttp (keep-alive GETs on asyncio streams): httpx would cost more CPU per
cached tile than our server does. It prints (and with --json writes) tiles/s per server and
pass, the ratios ours/tipg, the low-zoom sizes and times, CPU per tile of each server and of
PostgreSQL, and the seeding rate. Server logs of the last run stay in <workdir>/tile-run/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mapbox_vector_tile
import psycopg

from bench import api_peers
from bench.api_bench import (
    HEADERS,
    INTERNAL_COLUMNS,
    CpuMeter,
    cpu_per_request,
    drive,
    fresh_folder,
    generated,
    latency_summary,
    loaded_database,
    our_code,
    ratio,
    run_options,
    scratch_cluster,
    wait_for_quiet,
    warm_option,
    with_defaults,
    write_result,
)
from tests.support.nginx import ShippedNginx
from tiles.seed import run_seed
from tiles.seed_request import seed_request
from tiles.tms import get_tms
from urbis_core.pgcluster import free_port
from urbis_core.settings import ApiSettings

LAYERS = ("buildings", "street_axes")
SOURCE_LAYERS = {"buildings": "Buildings", "street_axes": "StreetAxes"}
ZOOM_WEIGHTS = {12: 1, 13: 1, 14: 2, 15: 2, 16: 2, 17: 1, 18: 1}  # how often each is drawn
LOW_ZOOMS = (10, 11)
COMPARED_FROM_ZOOM = 16  # below, ours leaves out features smaller than half a pixel
TMS = "WebMercatorQuad"
TARGETS = {"cold": 1.5, "warm": 20.0, "low_zoom_speed": 5.0, "low_zoom_max_bytes": 500_000}
SERVERS = ("ours", "tipg")
TILE_WARM_ZOOM = ApiSettings.tile_warm_zoom  # the default


@dataclass(frozen=True)
class TileAsk:
    layer: str
    z: int
    x: int
    y: int

    def path(self, collection: str) -> str:
        return f"/collections/{collection}/tiles/{TMS}/{self.z}/{self.x}/{self.y}"


# -- the tile list ---------------------------------------------------------------------------


def data_extent_3857(url: str) -> tuple[float, float, float, float]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Transform(ST_SetSRID(ST_Extent(geom), 31370), 3857) e "
            "FROM urbis.buildings) s"
        ).fetchone()
    assert row is not None
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


def building_points_3857(url: str, count: int, seed: int) -> list[tuple[float, float]]:
    """`count` points on buildings drawn at random (in key order first, so runs agree)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_PointOnSurface(geom), 3857) "
            'AS p FROM urbis.buildings ORDER BY "INSPIRE_ID") s'
        ).fetchall()
    rng = random.Random(seed)
    return [(float(x), float(y)) for x, y in rng.sample(rows, min(count, len(rows)))]


def draw_tiles(url: str, count: int, seed: int) -> list[tuple[int, int, int]]:
    """Distinct z12-z18 tiles around random buildings, then every low-zoom tile of the data."""
    tms = get_tms(TMS)
    rng = random.Random(seed)
    zooms = [z for z, w in ZOOM_WEIGHTS.items() for _ in range(w)]
    tiles: dict[tuple[int, int, int], None] = {}
    for x, y in building_points_3857(url, count * 3, seed):
        if len(tiles) >= count:
            break
        z = rng.choice(zooms)
        columns, rows = tms.tiles_covering(z, (x, y, x, y))
        tiles[(z, columns[0], rows[0])] = None
    extent = data_extent_3857(url)
    for z in LOW_ZOOMS:
        columns, rows = tms.tiles_covering(z, extent)
        tiles.update({(z, cx, cy): None for cx in columns for cy in rows})
    return list(tiles)


def requests_for(tiles: list[tuple[int, int, int]], seed: int) -> list[TileAsk]:
    asks = [TileAsk(layer, z, x, y) for z, x, y in tiles for layer in LAYERS]
    random.Random(seed).shuffle(asks)
    return asks


# -- servers ---------------------------------------------------------------------------------


def columns_of(url: str, table: str) -> list[str]:
    """The source's fields: what ours puts in tiles, and what tipg is told to."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'urbis' "
            "AND table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
    return [r[0] for r in rows if r[0] not in INTERNAL_COLUMNS]


def ours_tile_spec(
    url: str, config: Path, port: int, pool: int, ahead: bool
) -> api_peers.ServerSpec:
    spec = api_peers.ours_spec(url, config, port, pool)
    # ahead: as `urbis serve` runs by default; else every tile is drawn when asked (the cold
    # pass measures drawing)
    spec.env["URBIS_TILE_WARM_ZOOM"] = str(TILE_WARM_ZOOM) if ahead else "-1"
    return spec


def tipg_tile_spec(venv: Path, url: str, port: int, pool: int) -> api_peers.ServerSpec:
    spec = api_peers.tipg_spec(venv, url, port, pool, columns_of(url, "buildings"))
    spec.env["TIPG_TABLE_CONFIG__urbis_street_axes__properties"] = json.dumps(
        columns_of(url, "street_axes")
    )
    return spec


def collection_id(server: str, layer: str) -> str:
    return layer if server == "ours" else f"urbis.{layer}"


@dataclass
class ServerTiles:
    low_zoom: dict[str, Any]  # "cold" (and, ours, "drawn ahead"): rows, one per request
    passes: dict[str, dict[str, Any]]
    decoded: dict[TileAsk, dict[str, int]]


def measure_server(
    name: str,
    spec_for: Callable[[int, bool], api_peers.ServerSpec],
    asks: list[TileAsk],
    rundir: Path,
    postmaster: int,
    args: argparse.Namespace,
) -> ServerTiles:
    """`spec_for(port, ahead)`: the server, drawing low zooms ahead or not (ours only)."""
    low = [a for a in asks if a.z in LOW_ZOOMS]
    compared = [a for a in asks if a.z >= COMPARED_FROM_ZOOM][: args.compare]

    def urls(base: str, chosen: list[TileAsk]) -> list[str]:
        return [base + a.path(collection_id(name, a.layer)) for a in chosen]

    low_zoom: dict[str, Any] = {}
    for ahead in (False, True) if name == "ours" else (False,):
        port = free_port()
        label = "drawn ahead" if ahead else "cold"
        log = rundir / f"{name}-low-zoom-{label.replace(' ', '-')}.log"
        with api_peers.running(spec_for(port, ahead), port, log) as server:
            waited = wait_drawn_ahead(server.base) if ahead else None
            low_zoom[label] = {
                "rows": one_at_a_time(low, urls(server.base, low)),
                **({"seconds_drawing_ahead_after_start": waited} if waited is not None else {}),
            }
    port = free_port()
    passes: dict[str, dict[str, Any]] = {}
    with api_peers.running(spec_for(port, False), port, rundir / f"{name}.log") as server:
        meter = CpuMeter(server.group, postmaster)
        for pass_name, seconds in (("cold", 0.0), ("warm", args.warm_seconds)):
            before = meter.sample()
            load = asyncio.run(
                drive(
                    urls(server.base, asks),
                    args.concurrency,
                    seconds,
                    ok_statuses=(200, 204),
                    raw=True,
                )
            )
            after = meter.sample()
            figures = load.figures()
            passes[pass_name] = {
                "tiles_per_s": figures.pop("requests_per_s"),
                **figures,
                **cpu_per_request(before, after, load.ok, load.seconds),
            }
            print(
                f"  {name:5} {pass_name:5} {passes[pass_name]['tiles_per_s']:9.1f} tiles/s "
                f"({load.ok} ok, {len(load.errors)} errors)",
                file=sys.stderr,
            )
        if name == "ours":
            passes["warm through nginx"] = through_nginx(urls(server.base, asks), rundir, args)
        decoded = {}
        with httpx.Client(headers=HEADERS, timeout=600.0) as client:
            for ask, url in zip(compared, urls(server.base, compared), strict=True):
                decoded[ask] = feature_counts(client.get(url))
    return ServerTiles(low_zoom, passes, decoded)


def through_nginx(urls: list[str], rundir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The warm pass again, through nginx with deploy/nginx/urbis.conf in front of our server.

    A first pass fills nginx's cache; then, as in the warm pass, the list round and round for
    --warm-seconds. nginx keeps a tile 1 s, then revalidates it with its ETag (the API answers
    a 304 from its own cache), so this is the shipped configuration's rate, not a pure hit rate.
    """
    with ShippedNginx(urls[0].split("/collections/")[0], rundir) as nginx:
        proxied = [nginx.url + "/collections/" + u.split("/collections/", 1)[1] for u in urls]
        asyncio.run(drive(proxied, args.concurrency, 0.0, ok_statuses=(200, 204), raw=True))
        load = asyncio.run(
            drive(proxied, args.concurrency, args.warm_seconds, ok_statuses=(200, 204), raw=True)
        )
    figures = load.figures()
    figures["tiles_per_s"] = figures.pop("requests_per_s")
    print(
        f"  ours  warm through nginx {figures['tiles_per_s']:9.1f} tiles/s "
        f"({load.ok} ok, {len(load.errors)} errors)",
        file=sys.stderr,
    )
    return figures


def one_at_a_time(asks: list[TileAsk], urls: list[str]) -> list[dict[str, Any]]:
    rows = []
    with httpx.Client(headers=HEADERS, timeout=600.0) as client:
        for ask, url in zip(asks, urls, strict=True):
            t0 = time.perf_counter()
            response = client.get(url)
            rows.append(
                {
                    "layer": ask.layer,
                    "tile": f"{ask.z}/{ask.x}/{ask.y}",
                    "status": response.status_code,
                    "ms": round((time.perf_counter() - t0) * 1000, 1),
                    "bytes": len(response.content),
                    "cache": response.headers.get("x-tile-cache"),
                }
            )
    return rows


def wait_drawn_ahead(base: str, timeout: float = 600.0) -> float:
    """Seconds until our server says it has drawn its low zooms ahead (from when it answers)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        state = httpx.get(f"{base}/healthz", timeout=10).json().get("low_zoom_tiles", {})
        if state.get("drawn_ahead", 0) > 0 and not state.get("drawing", True):
            return round(time.perf_counter() - started, 2)
        time.sleep(0.1)
    raise SystemExit(f"{base}: low zooms still not drawn after {timeout:.0f} s")


def feature_counts(response: httpx.Response) -> dict[str, int]:
    if response.status_code == 204 or not response.content:
        return {}
    layers = mapbox_vector_tile.decode(response.content)
    return {name: len(layer["features"]) for name, layer in layers.items()}


# -- seeding ---------------------------------------------------------------------------------


def seed_rate(url: str, workdir: Path, zooms: str) -> dict[str, Any]:
    out = workdir / "tile-run" / "seed.pmtiles"
    request = seed_request(out, TMS, zooms, ",".join(LAYERS), force=True)
    result = run_seed(url, request)
    return {
        "zooms": zooms,
        "tiles_planned": result.planned,
        "tiles_rendered": result.rendered,
        "tiles_stored": result.tiles,
        "archive_bytes": result.bytes,
        "seconds": round(result.seconds, 2),
        "tiles_per_s": round(result.rate, 1),
    }


# -- report ----------------------------------------------------------------------------------


def low_zoom_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r["status"] in (200, 204)]
    return {
        "tiles": len(rows),
        "answered": len(ok),
        "max_bytes": max((r["bytes"] for r in ok), default=0),
        "mean_bytes": round(sum(r["bytes"] for r in ok) / len(ok)) if ok else None,
        "total_ms": round(sum(r["ms"] for r in ok), 1),
        **({"latency": latency_summary([r["ms"] / 1000 for r in ok])} if ok else {}),
    }


def comparison(runs: dict[str, ServerTiles]) -> dict[str, Any]:
    """Per compared (layer, tile): the features each server's tile holds for that layer."""
    rows = []
    for ask, ours in runs["ours"].decoded.items():
        tipg = runs["tipg"].decoded.get(ask, {})
        # tipg names the tile's layer after the collection ("default" in older releases)
        counts = {
            "ours": ours.get(ask.layer, 0),
            "tipg": next(iter(tipg.values()), 0) if tipg else 0,
        }
        rows.append(
            {
                "layer": ask.layer,
                "tile": f"{ask.z}/{ask.x}/{ask.y}",
                **counts,
                "same": counts["ours"] == counts["tipg"],
            }
        )
    return {"compared": len(rows), "same_count": sum(r["same"] for r in rows), "tiles": rows}


def report(
    args: argparse.Namespace,
    url: str,
    asks: list[TileAsk],
    runs: dict[str, ServerTiles],
    seeding: dict[str, Any],
    started: float,
) -> dict[str, Any]:
    tps = {p: {s: runs[s].passes[p]["tiles_per_s"] for s in SERVERS} for p in ("cold", "warm")}
    low = {
        f"{s} {label}": {
            **low_zoom_summary(run["rows"]),
            **{k: v for k, v in run.items() if k != "rows"},
            "rows": run["rows"],
        }
        for s in SERVERS
        for label, run in runs[s].low_zoom.items()
    }
    tipg_ms = low["tipg cold"]["total_ms"]
    ratios = {
        "cold": ratio(tps["cold"]["ours"], tps["cold"]["tipg"]),
        "warm": ratio(tps["warm"]["ours"], tps["warm"]["tipg"]),
        # how many times less time ours takes over the low-zoom tiles, one at a time:
        # as a running server answers (drawn ahead), and drawn when asked
        "low_zoom_speed": ratio(tipg_ms, low["ours drawn ahead"]["total_ms"]),
        "low_zoom_speed_drawn_when_asked": ratio(tipg_ms, low["ours cold"]["total_ms"]),
    }
    zooms: dict[int, int] = {}
    for ask in asks:
        zooms[ask.z] = zooms.get(ask.z, 0) + 1
    return {
        "command": "python -m bench.tile_bench " + " ".join(sys.argv[1:]),
        "data": {"buildings": args.buildings, "seed": 1, "features": table_counts(url)},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "busy_cores_before_start": args.busy_at_start,
        },
        "setup": {
            "pool_size": args.pool_size,
            "concurrency": args.concurrency,
            "warm_seconds": args.warm_seconds,
            "tile_requests": len(asks),
            "requests_per_zoom": dict(sorted(zooms.items())),
            "tms": TMS,
            "order": list(SERVERS),
            "servers": {
                "ours": "urbis serve (uvicorn, one process), tile cache "
                "256 MB in memory, no disk tier",
                "tipg": f"tipg {api_peers.TIPG_VERSION} (uvicorn, one process), "
                "defaults: buffer 256, at most 10000 features a tile",
            },
        },
        "versions": {
            "ours code": args.our_code,
            "tipg": api_peers.installed_version(args.workdir / "peers" / "tipg", "tipg"),
        },
        "tiles_per_s": tps,
        "ratios": ratios,
        "targets": {
            "cold >= 1.5 x tipg": _met(ratios["cold"], TARGETS["cold"]),
            "warm >= 20 x tipg": _met(ratios["warm"], TARGETS["warm"]),
            "low zoom >= 5 x faster than tipg": _met(
                ratios["low_zoom_speed"], TARGETS["low_zoom_speed"]
            ),
            "low zoom tiles <= 500 KB (ours)": low["ours cold"]["max_bytes"]
            <= TARGETS["low_zoom_max_bytes"],
        },
        "low_zoom": low,
        "passes": {p: {s: runs[s].passes[p] for s in SERVERS} for p in ("cold", "warm")},
        # the shipped nginx configuration in front of ours (one nginx worker process)
        "warm_through_nginx": {
            **runs["ours"].passes["warm through nginx"],
            "ratio_to_ours_alone": ratio(
                runs["ours"].passes["warm through nginx"]["tiles_per_s"], tps["warm"]["ours"]
            ),
        },
        "feature_counts_z16_plus": comparison(runs),
        "seeding": seeding,
        "total_seconds": round(time.perf_counter() - started),
    }


def _met(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


def table_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            t: int(conn.execute(f"SELECT count(*) FROM urbis.{t}").fetchone()[0])  # type: ignore[index]
            for t in LAYERS
        }


# -- the run ---------------------------------------------------------------------------------


def layer_config(rundir: Path, gpkg: Path) -> Path:
    path = rundir / "tile-bench.yaml"
    path.write_text(
        "layers:\n"
        + "".join(
            f"  {layer}:\n    source: {{kind: file, path: {gpkg}, layer: {SOURCE_LAYERS[layer]}}}\n"
            "    key: INSPIRE_ID\n"
            for layer in LAYERS
        )
    )
    return path


def compact(url: str) -> None:
    """Rewrite the loaded tables without the room their first fill left (urbis_sync.tile_geometry
    updates every row of a first load once), so that neither server reads twice the pages."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (FULL, ANALYZE) " + ", ".join(f"urbis.{t}" for t in LAYERS))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--buildings",
        type=int,
        default=None,
        help="buildings to generate (default 500000; 50000 with --quick)",
    )
    parser.add_argument(
        "--tiles",
        type=int,
        default=None,
        help="distinct z12-z18 tiles drawn (default 300; 80 with --quick)",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--pool-size", type=int, default=10, help="database connections per server")
    parser.add_argument(
        "--compare", type=int, default=60, help="z16+ tile requests whose features are compared"
    )
    warm_option(parser)
    parser.add_argument(
        "--seed-zooms",
        default=None,
        help="zooms seeded into PMTiles (default 10-15; 10-14 with --quick)",
    )
    run_options(parser, "50,000 buildings, fewer tiles")
    args = parser.parse_args(argv)
    return with_defaults(
        args,
        {
            "buildings": 50_000 if args.quick else 500_000,
            "tiles": 80 if args.quick else 300,
            "seed_zooms": "10-14" if args.quick else "10-15",
        },
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    args.busy_at_start = wait_for_quiet(args.wait_quiet)
    gpkg = generated(args.workdir, "brussels-tiles", args.buildings, list(LAYERS))
    rundir = fresh_folder(args.workdir / "tile-run")
    config = layer_config(rundir, gpkg)
    with scratch_cluster("urbis-tile-bench-cluster-") as (admin, postmaster):
        print("loading the layers with urbis sync ...", file=sys.stderr)
        url = loaded_database(admin, config, LAYERS)
        compact(url)
        asks = requests_for(draw_tiles(url, args.tiles, args.seed), args.seed)
        print(f"{len(asks)} tile requests", file=sys.stderr)
        tipg = api_peers.ensure_venv(args.workdir / "peers", "tipg")
        specs: dict[str, Callable[[int, bool], api_peers.ServerSpec]] = {
            "ours": lambda port, ahead: ours_tile_spec(url, config, port, args.pool_size, ahead),
            "tipg": lambda port, _: tipg_tile_spec(tipg, url, port, args.pool_size),
        }
        runs = {}
        before = our_code()
        for name in SERVERS:
            print(f"{name} ...", file=sys.stderr)
            runs[name] = measure_server(name, specs[name], asks, rundir, postmaster, args)
        args.our_code = before if before == our_code() else f"CHANGED during the run: {before}"
        print(f"seeding {args.seed_zooms} ...", file=sys.stderr)
        seeding = seed_rate(url, args.workdir, args.seed_zooms)
        result = report(args, url, asks, runs, seeding, started)
    write_result(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
