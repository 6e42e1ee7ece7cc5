"""Small answers (issue 18): the fixed cost of a request, ours against tipg and pygeoapi.

    python -m bench.small_answers --wait-quiet 600 --json out.json --breakdown breakdown.json
    python -m bench.small_answers --breakdown-only --breakdown breakdown.json   # ours alone

What a map moving around asks, each scenario against the three servers in one run, on the same
database (`--buildings`, default 180,000, loaded by `urbis sync` as bench.api_bench does), the
three serving at once and measured in turn for each scenario, each with the same pool size:

- a bbox holding 50-200 buildings (its count checked in SQL when drawn), in CRS84 (`bbox=`
  lon/lat) and in EPSG:31370 (`bbox-crs`; tipg has no bbox-crs: it is left out there);
- the first page (`limit=100`) of a range filter on AREA matching ~1 %, ~10 %, ~30 %, ~60 %
  of the layer (`AREA > k AND AREA < m`: m is above every AREA, it only makes each filter
  distinct, as the first page of a new filter is, so that no server answers from a cache of
  answers or counts per filter; ours counts such a range from AREA's values held sorted,
  geoapi.column_ranges, which is not one);
- one feature by key (tipg: `items?ids=<key>`, the same query its item endpoint runs, since
  its item route cannot take a key holding '/');
- a `properties=` selection (two fields) on a bbox page of 50-200 buildings.

Per scenario: requests/s with --concurrency requests in flight on kept-alive connections, after
a warm-up on other requests (PostgreSQL warm for every server), the ratios ours/tipg and
ours/pygeoapi, then p50/p99 one request at a time on requests not sent before; and, unless
--no-cold, the first request of each scenario to a freshly started server (cold) against the
median of the next ten. `--breakdown FILE` then profiles ours (bench.request_breakdown).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import psycopg
from pyproj import Transformer

from bench import api_peers, request_breakdown
from bench.api_bench import (
    EPSG_31370,
    HEADERS,
    TARGETS,
    Answer,
    CpuMeter,
    bbox_param,
    building_anchors,
    count_rows,
    cpu_per_request,
    drive,
    fresh_folder,
    generated,
    latency_summary,
    layer_config,
    loaded_database,
    our_code,
    ratio,
    run_options,
    scratch_cluster,
    sequential,
    served_properties,
    square_bbox_crs84,
    targets_met,
    versions,
    wait_for_quiet,
    with_defaults,
)
from urbis_core.pgcluster import free_port

SERVERS = ("ours", "tipg", "pygeoapi")
BOX_MATCHES = (50, 200)  # buildings a drawn bbox must hold
BOX_SIDES_M = (150.0, 450.0)  # sides drawn at 180,000 buildings; scaled for other sizes
BOX_PAGE = 1000  # a bbox page takes the whole view: every server returns all 50-200
FILTER_PAGE = 100
FILTER_SHARES = (0.01, 0.10, 0.30, 0.60)
SELECTED = ("AREA", "CAPAKEY")  # the properties= scenario's fields
BOXES_PER_SECOND = 120  # distinct bboxes drawn per second of run (each checked in SQL)
LATENCY_WARMUP = 20
COLD_NEXT = 10  # requests after the cold one, whose median is the warm figure
DEFAULT_BUILDINGS = 180_000


# -- pure helpers (unit-tested) --------------------------------------------------------------


def threshold_for_share(areas: list[tuple[int, int]], share: float) -> tuple[int, int]:
    """The k for which `AREA > k` matches the share nearest `share`, and how many it matches.

    `areas`: (AREA value, buildings with it), nulls left out.
    """
    total = sum(n for _, n in areas)
    best: tuple[float, int, int] | None = None
    above = total
    for value, n in sorted(areas):
        above -= n  # buildings with AREA > value
        gap = abs(above / total - share)
        if best is None or gap < best[0]:
            best = (gap, value, above)
    if best is None:
        raise ValueError("no AREA values")
    return best[1], best[2]


def range_filters(k: int, top: int, count: int) -> list[str]:
    """`count` distinct CQL2 filters matching exactly `AREA > k`: upper bounds above `top`."""
    return [f"AREA > {k} AND AREA < {top + 1 + i}" for i in range(count)]


def lambert_square(x: float, y: float, side: float) -> tuple[float, ...]:
    """A side x side metres square centred on x/y in EPSG:31370, to the centimetre."""
    half = side / 2
    return tuple(round(v, 2) for v in (x - half, y - half, x + half, y + half))


@dataclass(frozen=True)
class Ask:
    """A server-neutral request: items with `params`, or one feature by `key`."""

    params: dict[str, Any]
    key: str | None = None
    needs_bbox_crs: bool = False

    def url(self, base: str, server: str, collection: str) -> str | None:
        """The URL `server` takes; None when it cannot ask this (tipg: no bbox-crs)."""
        items = f"{base}/collections/{collection}/items"
        if self.needs_bbox_crs and server == "tipg":
            return None
        if self.key is not None:
            if server == "tipg":  # its item route refuses a key holding '/'
                return f"{items}?{urlencode({'ids': self.key})}"
            return f"{items}/{quote(self.key, safe='')}"
        params = dict(self.params)
        if server == "pygeoapi" and params.get("filter-lang") == "cql2-text":
            del params["filter-lang"]  # pygeoapi 0.21 knows only cql-text, its default parser
        return f"{items}?{urlencode(params)}"


def parse_small_answer(status: int, body: bytes) -> Answer:
    """A page, or one feature (ours, pygeoapi) read as a page of one."""
    if status != 200:
        return Answer(status)
    doc = json.loads(body)
    if doc.get("type") == "Feature":
        return Answer(status, 1, 1, (str(doc.get("id")),))
    features = doc.get("features", [])
    matched = doc.get("numberMatched")
    return Answer(status, matched, len(features), tuple(sorted(str(f.get("id")) for f in features)))


def cold_summary(first: float, next_ones: list[float]) -> dict[str, float]:
    """The first request's ms, the median of the next ones, and how many times slower it is."""
    warm = statistics.median(next_ones)
    return {
        "first_ms": round(first * 1000, 1),
        "next_median_ms": round(warm * 1000, 2),
        "first_over_next": round(first / warm, 1) if warm else 0.0,
    }


# -- the request plan ------------------------------------------------------------------------


@dataclass
class SmallScenario:
    warmup: list[Ask]
    timed: list[Ask]
    latency: list[Ask]  # one at a time, none sent before
    note: str


def split(asks: list[Ask], warm: int, latency: int) -> tuple[list[Ask], list[Ask], list[Ask]]:
    """Warm-up, timed and latency lists, none sharing a request."""
    return asks[:warm], asks[warm + latency :], asks[warm : warm + latency]


def draw_boxes(
    conn: psycopg.Connection[Any],
    anchors: list[tuple[float, float]],
    rng: random.Random,
    wanted: int,
    lambert: bool,
) -> list[tuple[float, ...]]:
    """Squares centred on buildings whose count (ours' reading, in SQL) is in BOX_MATCHES."""
    to_crs84 = Transformer.from_crs(31370, 4326, always_xy=True)
    scale = math.sqrt(DEFAULT_BUILDINGS / len(anchors))
    ours_crs84 = "ST_Transform(ST_Segmentize(ST_MakeEnvelope(%s, %s, %s, %s, 4326), 0.001), 31370)"
    envelope = "ST_MakeEnvelope(%s, %s, %s, %s, 31370)" if lambert else ours_crs84
    sql = f"SELECT count(*) FROM urbis.buildings WHERE ST_Intersects(geom, {envelope})"
    kept: list[tuple[float, ...]] = []
    for _ in range(wanted * 30):
        x, y = anchors[rng.randrange(len(anchors))]
        side = rng.uniform(*BOX_SIDES_M) * scale
        box = (
            lambert_square(x, y, side)
            if lambert
            else square_bbox_crs84(*to_crs84.transform(x, y), side)
        )
        if BOX_MATCHES[0] <= count_rows(conn, sql, box) <= BOX_MATCHES[1]:
            kept.append(box)
            if len(kept) == wanted:
                return kept
    raise SystemExit(f"only {len(kept)} bboxes hold {BOX_MATCHES} buildings")


def build_scenarios(url: str, args: argparse.Namespace) -> tuple[dict[str, SmallScenario], dict]:
    """The scenarios, and what was checked in SQL while drawing them."""
    rng = random.Random(args.seed)
    anchors = building_anchors(url)
    n_warm = math.ceil(BOXES_PER_SECOND * args.warmup)
    n_timed = math.ceil(BOXES_PER_SECOND * args.duration)
    n_lat = args.latency_requests + LATENCY_WARMUP
    n_boxes = n_warm + n_timed + n_lat
    with psycopg.connect(url) as conn:
        crs84 = draw_boxes(conn, anchors, rng, n_boxes, lambert=False)
        lambert = draw_boxes(conn, anchors, rng, n_boxes, lambert=True)
        selected = draw_boxes(conn, anchors, rng, n_boxes, lambert=False)
        areas = [
            (int(a), int(n))
            for a, n in conn.execute(
                'SELECT "AREA", count(*) FROM urbis.buildings WHERE "AREA" IS NOT NULL GROUP BY 1'
            ).fetchall()
        ]
        keys = [
            str(r[0]) for r in conn.execute('SELECT "INSPIRE_ID" FROM urbis.buildings').fetchall()
        ]
        total = count_rows(conn, "SELECT count(*) FROM urbis.buildings", ())
    scenarios: dict[str, SmallScenario] = {}
    box = {"limit": BOX_PAGE}
    warm, timed, lat = split([Ask({**box, "bbox": bbox_param(b)}) for b in crs84], n_warm, n_lat)
    scenarios["bbox_crs84"] = SmallScenario(
        warm, timed, lat, f"bbox= lon/lat holding {BOX_MATCHES[0]}-{BOX_MATCHES[1]} buildings"
    )
    lam = [
        Ask({**box, "bbox": ",".join(f"{v:.2f}" for v in b), "bbox-crs": EPSG_31370}, None, True)
        for b in lambert
    ]
    warm, timed, lat = split(lam, n_warm, n_lat)
    scenarios["bbox_31370"] = SmallScenario(
        warm, timed, lat, "bbox-crs=EPSG:31370, the same kind of box (tipg: no bbox-crs)"
    )
    top = max(a for a, _ in areas)
    shares: dict[str, Any] = {}
    n_filters = math.ceil(1000 * (args.warmup + args.duration)) + n_lat
    for share in FILTER_SHARES:
        k, matched = threshold_for_share(areas, share)
        name = f"filter_{round(share * 100)}pct"
        shares[name] = {"filter": f"AREA > {k}", "matched": matched, "share": matched / total}
        texts = range_filters(k, top, n_filters)
        rng.shuffle(texts)
        asks = [Ask({"limit": FILTER_PAGE, "filter": t, "filter-lang": "cql2-text"}) for t in texts]
        warm, timed, lat = split(asks, n_filters // 5, n_lat)
        scenarios[name] = SmallScenario(
            warm,
            timed,
            lat,
            f"first page, limit={FILTER_PAGE}, of AREA > {k} (matches {matched}, "
            f"{100 * matched / total:.1f} %), upper bound AREA < m for m > {top}",
        )
    rng.shuffle(keys)
    warm, timed, lat = split([Ask({}, k) for k in keys], n_warm * 4, n_lat)
    scenarios["feature_by_key"] = SmallScenario(
        warm, timed, lat, "/items/{INSPIRE_ID} percent-encoded (tipg: items?ids=)"
    )
    sel = [Ask({**box, "bbox": bbox_param(b), "properties": ",".join(SELECTED)}) for b in selected]
    warm, timed, lat = split(sel, n_warm, n_lat)
    scenarios["properties_bbox"] = SmallScenario(
        warm, timed, lat, f"properties={','.join(SELECTED)} on a CRS84 bbox as above"
    )
    return scenarios, {"features": total, "filters": shares}


# -- measuring -------------------------------------------------------------------------------


def urls(asks: list[Ask], base: str, server: str, collection: str) -> list[str]:
    return [u for a in asks if (u := a.url(base, server, collection)) is not None]


def samples(
    base: str, server: str, collection: str, scenarios: dict[str, SmallScenario], n: int
) -> dict[str, list[Answer | None]]:
    out: dict[str, list[Answer | None]] = {}
    with httpx.Client(headers=HEADERS, timeout=300.0) as client:
        for name, sc in scenarios.items():
            out[name] = []
            for ask in sc.latency[:n]:
                url = ask.url(base, server, collection)
                if url is None:
                    out[name].append(None)
                    continue
                r = client.get(url)
                out[name].append(parse_small_answer(r.status_code, r.content))
    return out


def measure(
    base: str,
    server: str,
    collection: str,
    name: str,
    sc: SmallScenario,
    meter: CpuMeter,
    args: argparse.Namespace,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """One scenario on one server: throughput with its CPU per request, then one at a time."""
    timed = urls(sc.timed, base, server, collection)
    if not timed:
        return None, None
    warm = urls(sc.warmup, base, server, collection)
    asyncio.run(drive(warm, args.concurrency, args.warmup, full_pass=False))
    before = meter.sample()
    load = asyncio.run(drive(timed, args.concurrency, args.duration, full_pass=False))
    cpu = cpu_per_request(before, meter.sample(), load.ok, load.seconds)
    throughput = {**load.figures(), **cpu}
    took, errors = sequential(urls(sc.latency, base, server, collection), LATENCY_WARMUP)
    latency = {
        **(latency_summary([t for t, _ in took]) if took else {}),
        "errors": len(errors),
        **({"first_errors": errors[:3]} if errors else {}),
    }
    print(
        f"  {server:9s} {name:16s} {throughput['requests_per_s']:8.1f} req/s "
        f"({len(load.errors)} errors, server {cpu['server_cpu_ms_per_request']} ms, "
        f"postgres {cpu['postgres_cpu_ms_per_request']} ms CPU/request, others "
        f"{cpu['other_processes_cores']} cores); one at a time p50 "
        f"{latency.get('p50_ms')} p99 {latency.get('p99_ms')} ms",
        file=sys.stderr,
    )
    return throughput, latency


def cold(
    spec: Callable[[int], api_peers.ServerSpec],
    server: str,
    scenarios: dict[str, SmallScenario],
    rundir: Path,
) -> dict[str, Any]:
    """Per scenario, a fresh server: its first request (after its readiness probe), then ten."""
    out: dict[str, Any] = {}
    for name, sc in scenarios.items():
        port = free_port()
        s = spec(port)
        with api_peers.running(s, port, rundir / f"{server}-cold.log") as running:
            asked = urls(sc.latency[: COLD_NEXT + 1], running.base, server, s.collection)
            if not asked:
                out[name] = None
                continue
            with httpx.Client(headers=HEADERS, timeout=300.0) as client:
                took = []
                for u in asked:
                    t0 = time.perf_counter()
                    client.get(u).raise_for_status()
                    took.append(time.perf_counter() - t0)
        out[name] = cold_summary(took[0], took[1:])
    print(f"  {server:9s} cold: {out}", file=sys.stderr)
    return out


def checks(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per scenario, sample answers the servers disagree on (counts, returned, ids)."""
    out: dict[str, Any] = {}
    for name, ours in runs["ours"]["samples"].items():
        rows = []
        for i, mine in enumerate(ours):
            row: dict[str, Any] = {"ours": mine.row() if mine else None}
            for peer in SERVERS[1:]:
                theirs = runs[peer]["samples"][name][i]
                if theirs is None or mine is None:
                    continue
                row[peer] = theirs.row()
                row[f"same_as_{peer}"] = (theirs.matched, theirs.returned, theirs.ids) == (
                    mine.matched,
                    mine.returned,
                    mine.ids,
                )
            rows.append(row)
        out[name] = {
            "checked": len(rows),
            "differing": [r for r in rows if not all(v for k, v in r.items() if "same" in k)],
        }
    return out


def report(
    args: argparse.Namespace, runs: dict[str, dict[str, Any]], drawn: dict, notes: dict
) -> dict[str, Any]:
    names = list(runs["ours"]["throughput"])
    rps = {
        n: {s: (runs[s]["throughput"][n] or {}).get("requests_per_s") for s in SERVERS}
        for n in names
    }
    ratios = {
        n: {f"ours/{p}": ratio(by["ours"], by[p]) for p in SERVERS[1:]} for n, by in rps.items()
    }
    return {
        "command": "python -m bench.small_answers " + " ".join(sys.argv[1:]),
        "data": {"buildings": args.buildings, "seed": args.seed, **drawn},
        "machine": {
            "cpus": os.cpu_count(),
            "busy_cores_before_start": args.busy_at_start,
            "load_average_at_start": args.load_at_start,
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        },
        "setup": {
            "pool_size": args.pool_size,
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "latency_requests": args.latency_requests,
            "servers": notes,
        },
        "versions": versions(args.workdir, args.our_code),
        "throughput_rps": rps,
        "ratios": ratios,
        "targets": {n: {k: v for k, v in t.items()} for n, t in targets_met(ratios).items()},
        "target_ratios": TARGETS,
        "latency_one_at_a_time_ms": {n: {s: runs[s]["latency"][n] for s in SERVERS} for n in names},
        "cold_first_request": {s: runs[s].get("cold") for s in SERVERS},
        "throughput_detail": {n: {s: runs[s]["throughput"][n] for s in SERVERS} for n in names},
        "answer_checks": checks(runs),
    }


# -- the run ---------------------------------------------------------------------------------


def specs(
    args: argparse.Namespace, url: str, config: Path, rundir: Path
) -> dict[str, Callable[[int], api_peers.ServerSpec]]:
    peers = args.workdir / "peers"
    properties = served_properties(url)
    tipg = api_peers.ensure_venv(peers, "tipg")
    pygeoapi = api_peers.ensure_venv(peers, "pygeoapi")
    return {
        "ours": lambda port: api_peers.ours_spec(url, config, port, args.pool_size),
        "tipg": lambda port: api_peers.tipg_spec(tipg, url, port, args.pool_size, properties),
        "pygeoapi": lambda port: api_peers.pygeoapi_spec(
            pygeoapi, url, port, args.pool_size, properties, rundir, (EPSG_31370,)
        ),
    }


def compare(
    args: argparse.Namespace,
    url: str,
    config: Path,
    rundir: Path,
    scenarios: dict[str, SmallScenario],
    postmaster: int,
) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    made = specs(args, url, config, rundir)
    runs: dict[str, dict[str, Any]] = {}
    notes: dict[str, list[str]] = {}
    before = our_code()
    with api_peers.all_running(made, rundir) as served:
        meters = {}
        for server, s in served.items():
            notes[server] = s.spec.notes
            meters[server] = CpuMeter(s.running.group, postmaster)
            runs[server] = {
                "samples": samples(
                    s.running.base, server, s.spec.collection, scenarios, args.check
                ),
                "throughput": {},
                "latency": {},
            }
        for name, sc in scenarios.items():
            for server, s in served.items():
                throughput, latency = measure(
                    s.running.base, server, s.spec.collection, name, sc, meters[server], args
                )
                runs[server]["throughput"][name] = throughput
                runs[server]["latency"][name] = latency
        args.our_code = (before, our_code())
    if args.cold:
        for server in SERVERS:
            runs[server]["cold"] = cold(made[server], server, scenarios, rundir)
    return runs, notes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=None, help="default 180000")
    parser.add_argument("--duration", type=float, default=None, help="s per scenario (10)")
    parser.add_argument("--warmup", type=float, default=None, help="s before each (3)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--latency-requests", type=int, default=None, help="default 200")
    parser.add_argument("--check", type=int, default=5, help="sample answers compared")
    parser.add_argument("--no-cold", dest="cold", action="store_false")
    parser.add_argument("--breakdown", type=Path, default=None, help="profile ours, write here")
    parser.add_argument("--breakdown-only", action="store_true", help="no peers, no comparison")
    parser.add_argument("--breakdown-seconds", type=float, default=10.0)
    parser.add_argument(
        "--breakdown-scenarios",
        default=",".join(request_breakdown.SCENARIOS),
        help="the scenarios profiled, comma-separated (default: %(default)s)",
    )
    run_options(parser, "50,000 buildings, 4 s runs, 100 requests one at a time")
    args = parser.parse_args(argv)
    return with_defaults(
        args,
        {
            "buildings": 50_000 if args.quick else DEFAULT_BUILDINGS,
            "duration": 4.0 if args.quick else 10.0,
            "warmup": 1.0 if args.quick else 3.0,
            "latency_requests": 100 if args.quick else 200,
        },
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    args.busy_at_start = wait_for_quiet(args.wait_quiet)
    args.load_at_start = [round(v, 2) for v in os.getloadavg()]
    gpkg = generated(args.workdir, "brussels-api", args.buildings, ["buildings", "addresses"])
    rundir = fresh_folder(args.workdir / "small-run")
    config = layer_config(
        rundir,
        gpkg,
        Path(__file__).resolve().parent.parent / "data" / "sample" / "UrbAdm_MUNICIPALITY.shp",
    )
    preload = request_breakdown.PRELOAD
    with scratch_cluster("urbis-small-bench-cluster-", preload) as (admin, postmaster):
        print("loading the layers with urbis sync ...", file=sys.stderr)
        url = loaded_database(admin, config)
        request_breakdown.prepare_database(url)
        print("drawing the requests ...", file=sys.stderr)
        scenarios, drawn = build_scenarios(url, args)
        result: dict[str, Any] = {}
        if not args.breakdown_only:
            runs, notes = compare(args, url, config, rundir, scenarios, postmaster)
            result = report(args, runs, drawn, notes)
            if args.json:
                args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        if args.breakdown:
            spec = api_peers.ours_spec(url, config, free_port(), args.pool_size)
            picked = {name: scenarios[name] for name in args.breakdown_scenarios.split(",")}
            found = request_breakdown.run(spec, rundir, url, postmaster, picked, args)
            args.breakdown.write_text(json.dumps(found, indent=2, default=str) + "\n")
            result["breakdown"] = found
    result["total_seconds"] = round(time.perf_counter() - started)
    print(json.dumps(result, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
