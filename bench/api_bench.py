"""API benchmark: our server against tipg and pygeoapi on the same PostGIS tables, in one run.

    python -m bench.api_bench --json out.json        # 500,000 buildings, 600,000 addresses
    python -m bench.api_bench --quick                # 50,000 buildings, shorter runs
    python -m bench.api_bench --points-only          # ours' point queries only, no peers

What it does, in order:
1. generates the data (bench.generate: Buildings and Addresses, seed 1; cached under --workdir)
   and starts a throwaway PostgreSQL cluster (fsync off), loads the two layers and the 19 real
   municipalities with `urbis sync --once`, then VACUUM ANALYZE: all three servers read these
   same tables (`urbis.buildings`...) with the same indexes: key, GiST, and B-trees on the two
   filtered properties (the buildings' `indexes: [AREA, CAPAKEY]` in the layer config);
2. draws the requests once, with a fixed seed (--seed): pages of 1000 from the start and at
   random offsets; distinct bboxes inside the data, each matching 200 to 900 buildings, alone
   and with a CQL2 filter; distinct CQL2 filters (number comparisons, text LIKEs), each paged
   through by one client; points on and near buildings. Requests never repeat within a long
   list (no server's cache answers what real clients would not ask twice) and warm-ups use
   other requests than the timed ones;
3. installs tipg and pygeoapi in their own virtualenvs (first run only, bench.api_peers);
4. starts the three servers together, each one process with the same pool size
   (--pool-size) on the same database, and measures them in turn, never two at once: the
   same sample requests are answered by each first (feature counts and ids compared across
   servers afterwards); then each throughput scenario, on each server in turn before the
   next scenario, is warmed up (--warmup s) and driven for --duration s by --concurrency
   requests in flight (one asyncio httpx client, keep-alive, no compression); then, server
   by server, point queries are timed one at a time (--latency-requests): ours' /lookup,
   /nearest, /reverse and /geocode (a mix of what users type, bench.geocode_queries, whose
   first answers are then checked), and the items in a tiny bbox that all three serve.
   --points-only times ours' point queries alone (no peers, no throughput scenarios).

It prints (and with --json writes) requests/s per server and scenario, the ratios ours/tipg and
ours/pygeoapi, p50/p99 latencies, the CPU time per request of the server, of PostgreSQL and of
the client, the feature-count checks, versions, pool sizes, concurrency. Server logs and the
generated configurations of the last run stay in <workdir>/api-run/.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.metadata
import itertools
import json
import math
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
from pyproj import Transformer
from sqlalchemy import make_url

from bench import api_peers
from bench.generate import generate
from bench.geocode_queries import MIX, Query, draw_queries, right_first
from bench.rawhttp import RawClient
from urbis_core.catalog import MERCATOR_GEOM
from urbis_core.pgcluster import EmbeddedCluster, free_port

EPSG_31370 = "http://www.opengis.net/def/crs/EPSG/0/31370"
PAGE = 1000
INTERNAL_COLUMNS = ("geom", "row_hash", "valid_from", MERCATOR_GEOM)  # the sync's, not the source's
NUMBER_FILTERS = ("AREA > {k}", range(60, 200))  # 120,000 to 2,000 of 500,000 buildings
TEXT_FILTERS = "CAPAKEY LIKE '{prefix}%'"  # a parcel-key prefix: municipality (NIS) + section
FILTER_PAGES = 5  # pages a client reads per filter
BBOX_FILTER = ("AREA > 50", '"AREA" > 50')  # CQL2 text, and the same in SQL for the checks
FILTERED_PROPERTIES = ("AREA", "CAPAKEY")  # the buildings' `indexes`: every server uses them
BBOXES_PER_SECOND = 150  # distinct bboxes drawn per second of run: more than any server needs
BBOX_MATCHES = (200, 900)  # features a drawn bbox must match (under a page, for all servers)
TARGETS = {"tipg": 2.0, "pygeoapi": 10.0}  # issue 4: ours >= 2 x tipg, >= 10 x pygeoapi
SERVERS = ("ours", "tipg", "pygeoapi")
HEADERS = {
    "Accept": "application/geo+json, application/json;q=0.9",
    # compression would measure gzip (tipg compresses by default, the others do not)
    "Accept-Encoding": "identity",
}


# -- pure helpers (unit-tested) --------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(ours: float | None, peer: float | None) -> float | None:
    """ours / peer, rounded; None when either is missing or the peer did nothing."""
    if ours is None or not peer:
        return None
    return round(ours / peer, 2)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and mean in milliseconds, and how many requests they summarize."""
    return {
        "p50_ms": round(percentile(seconds, 50) * 1000, 2),
        "p95_ms": round(percentile(seconds, 95) * 1000, 2),
        "p99_ms": round(percentile(seconds, 99) * 1000, 2),
        "mean_ms": round(sum(seconds) / len(seconds) * 1000, 2),
        "n": len(seconds),
    }


def square_bbox_crs84(lon: float, lat: float, side_m: float) -> tuple[float, ...]:
    """A bbox of about side_m x side_m metres centred on lon/lat, in CRS84, to 1e-6 degree."""
    half_lat = side_m / 2 / 111_195.0  # metres per degree of latitude (mean Earth radius)
    half_lon = half_lat / math.cos(math.radians(lat))
    return tuple(
        round(v, 6) for v in (lon - half_lon, lat - half_lat, lon + half_lon, lat + half_lat)
    )


def bbox_param(bbox: Sequence[float]) -> str:
    return ",".join(f"{v:.6f}" for v in bbox)


def first_pages(pages: int) -> list[int]:
    """Offsets of the first `pages` pages: a client paging from the start."""
    return [i * PAGE for i in range(pages)]


def random_offsets(rng: random.Random, total: int, count: int) -> list[int]:
    """Offsets anywhere in the layer (a client jumping into the middle), page included."""
    return [rng.randrange(0, max(1, total - PAGE)) for _ in range(count)]


def adapt_params(server: str, params: dict[str, Any]) -> dict[str, Any]:
    """The request as `server` takes it.

    pygeoapi 0.21 refuses filter-lang=cql2-text (it knows only the names cql-text and
    cql-json); without filter-lang it parses `filter` as CQL text (pygeofilter's ECQL parser),
    which reads these filters the same.
    """
    if server == "pygeoapi" and params.get("filter-lang") == "cql2-text":
        return {k: v for k, v in params.items() if k != "filter-lang"}
    return params


def request_url(base: str, path: str, params: dict[str, Any]) -> str:
    return f"{base}{path}?{urlencode(params)}"


@dataclass
class Answer:
    """What a sample request returned: enough to compare servers."""

    status: int
    matched: int | None = None
    returned: int | None = None
    ids: tuple[str, ...] = ()

    def row(self) -> list[Any]:
        return [self.matched, self.returned] if self.status == 200 else [f"HTTP {self.status}"]


def parse_answer(status: int, body: bytes) -> Answer:
    if status != 200:
        return Answer(status)
    doc = json.loads(body)
    features = doc.get("features", [])
    return Answer(
        status,
        doc.get("numberMatched"),
        len(features),
        tuple(sorted(str(f.get("id")) for f in features)),
    )


def compare_answers(answers: dict[str, Answer]) -> dict[str, Any]:
    """One sample request across the servers: counts, and ids that one has and ours not."""
    ours = answers.get("ours")
    row: dict[str, Any] = {name: a.row() for name, a in answers.items()}
    same = True
    for name, answer in answers.items():
        if name == "ours" or ours is None:
            continue
        if (answer.status, answer.matched, answer.returned) != (
            ours.status,
            ours.matched,
            ours.returned,
        ):
            same = False
        if answer.ids != ours.ids:
            same = False
            theirs, mine = set(answer.ids), set(ours.ids)
            row[f"ids_only_{name}"] = len(theirs - mine)
            row[f"ids_only_ours_vs_{name}"] = len(mine - theirs)
    row["same"] = same
    return row


def targets_met(ratios: dict[str, dict[str, float | None]]) -> dict[str, dict[str, bool | None]]:
    out: dict[str, dict[str, bool | None]] = {}
    for scenario, by_peer in ratios.items():
        out[scenario] = {}
        for peer, target in TARGETS.items():
            value = by_peer.get(f"ours/{peer}")
            out[scenario][f"ours/{peer} >= {target:g}"] = (
                None if value is None else (value >= target)
            )
    return out


# -- the request plan ------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """A server-neutral request: a path (with {collection}) and its query parameters."""

    path: str
    params: dict[str, Any]

    def url(self, base: str, server: str, collection: str) -> str:
        return request_url(
            base, self.path.format(collection=collection), adapt_params(server, self.params)
        )


@dataclass
class Scenario:
    """A throughput scenario: what is measured, what warms up before it, and what it means.

    Long lists never repeat a request within a run, so that a server's result cache (ours
    remembers numberMatched per query) only helps where real clients would let it: paging
    through one filter. Short lists (pages of the whole layer) are sent in full at least once.
    """

    requests: list[Request]
    warmup: list[Request]
    note: str

    @property
    def full_pass(self) -> bool:
        return len(self.requests) <= 50


@dataclass
class Plan:
    throughput: dict[str, Scenario]
    ours_latency: dict[str, list[Request]]  # our point endpoints: no peer has them
    shared_latency: dict[str, list[Request]]  # the closest thing all three serve
    notes: dict[str, str] = field(default_factory=dict)
    geocode_queries: list[Query] = field(default_factory=list)  # behind ours' geocode_mix

    def shared(self) -> dict[str, list[Request]]:
        """The requests every server answers, per scenario (for the cross-server checks)."""
        return {
            **{name: sc.requests for name, sc in self.throughput.items()},
            **self.shared_latency,
        }


ITEMS = "/collections/{collection}/items"
LATENCY_WARMUP = 20  # point queries timed first and not kept
WARMUP_SESSIONS = 5  # filters paged through before the filter scenario is timed


def items(**params: Any) -> Request:
    return Request(ITEMS, {"limit": PAGE, **params})


def cql(text: str, **params: Any) -> Request:
    return items(**params, filter=text, **{"filter-lang": "cql2-text"})


def shuffled(requests: list[Any], seed: int) -> list[Any]:
    """A fixed order in which any prefix mixes the kinds: a slow server sees the same mix."""
    out = list(requests)
    random.Random(seed).shuffle(out)
    return out


def paging_sessions(filters: list[tuple[str, int]], pages: int) -> list[list[Request]]:
    """Per filter (CQL2 text, features it matches), a client reading its first pages."""
    return [
        [cql(text, offset=o) for o in first_pages(max(1, min(pages, matched // PAGE)))]
        for text, matched in filters
    ]


def as_clients(sessions: list[list[Request]], clients: int) -> list[Request]:
    """The sessions' pages in the order `clients` readers paging side by side send them.

    Sessions go in groups of `clients`: the first pages of a group, then the second pages...
    so that with as many requests in flight each one follows a filter page after page, as a
    client does (a server may then reuse what it learnt on the first page, e.g. the count).
    """
    out: list[Request] = []
    for start in range(0, len(sessions), clients):
        group = sessions[start : start + clients]
        for page in range(max(len(s) for s in group)):
            out.extend(s[page] for s in group if page < len(s))
    return out


def build_plan(url: str, seed: int, args: argparse.Namespace) -> Plan:
    anchors = building_anchors(url)
    total = len(anchors)
    rng = random.Random(seed)
    # enough distinct bboxes that even the fastest server never sends one twice
    n_warm, n_timed = (math.ceil(BBOXES_PER_SECOND * s) for s in (args.warmup, args.duration))
    bboxes = [bbox_param(b) for b in draw_bboxes(url, anchors, rng, n_warm + n_timed)]
    timed_boxes, warm_boxes = bboxes[:n_timed], bboxes[n_timed:]
    to_crs84 = Transformer.from_crs(31370, 4326, always_xy=True)
    n_points = args.latency_requests + LATENCY_WARMUP
    points = [jitter(anchors[rng.randrange(total)], rng, 10.0) for _ in range(n_points)]
    lambert = [{"x": f"{x:.3f}", "y": f"{y:.3f}", "crs": EPSG_31370} for x, y in points]
    tiny = [bbox_param(square_bbox_crs84(*to_crs84.transform(x, y), 2.0)) for x, y in points]
    sessions = shuffled(paging_sessions(filter_counts(url), FILTER_PAGES), seed)
    queries = draw_queries(url, n_points, seed)
    first = [items(offset=o) for o in first_pages(20)]
    jumps = [items(offset=o) for o in random_offsets(rng, total, 20)]
    return Plan(
        throughput={
            "items_first_pages": Scenario(
                first, first, f"limit={PAGE}, offsets 0..{19 * PAGE}, no filter"
            ),
            "items_random_offsets": Scenario(
                jumps, jumps, f"limit={PAGE}, 20 offsets drawn in the whole layer, no filter"
            ),
            "bbox": Scenario(
                [items(bbox=b) for b in timed_boxes],
                [items(bbox=b) for b in warm_boxes],
                f"limit={PAGE}, distinct CRS84 bboxes (150-500 m at full size) matching "
                f"{BBOX_MATCHES[0]}-{BBOX_MATCHES[1]} buildings (by ours' count); warm-up on "
                "other bboxes",
            ),
            "cql2_filter": Scenario(
                as_clients(sessions[WARMUP_SESSIONS:], args.concurrency),
                as_clients(sessions[:WARMUP_SESSIONS], args.concurrency),
                f"limit={PAGE}, the first pages (up to {FILTER_PAGES}) of distinct filters, "
                "each paged through in order as by one of --concurrency clients, the filters "
                f"in a fixed shuffled order: {NUMBER_FILTERS[0]!r} for k = "
                f"{min(NUMBER_FILTERS[1])}..{max(NUMBER_FILTERS[1])} "
                f"and {TEXT_FILTERS!r} for each parcel-key prefix (municipality + section) "
                "with 500+ buildings; filter-lang=cql2-text (pygeoapi: no filter-lang, its "
                "CQL text parser)",
            ),
            "cql2_filter_bbox": Scenario(
                [cql(BBOX_FILTER[0], bbox=b) for b in timed_boxes],
                [cql(BBOX_FILTER[0], bbox=b) for b in warm_boxes],
                f"limit={PAGE}, filter={BBOX_FILTER[0]!r} with each bbox of the bbox scenario",
            ),
        },
        ours_latency={
            "lookup_buildings": [
                Request("/lookup", {**p, "collections": "buildings"}) for p in lambert
            ],
            "lookup_all_layers": [
                Request("/lookup", {**p, "collections": "buildings,addresses,municipalities"})
                for p in lambert
            ],
            "nearest_addresses_k5": [
                Request("/collections/addresses/nearest", {**p, "k": 5}) for p in lambert
            ],
            "nearest_buildings_k5": [
                Request("/collections/buildings/nearest", {**p, "k": 5}) for p in lambert
            ],
            "reverse": [Request("/reverse", p) for p in lambert],
            "geocode_mix": [Request("/geocode", {"q": g.q}) for g in queries],
        },
        shared_latency={
            "point_bbox_items": [Request(ITEMS, {"bbox": b, "limit": 10}) for b in tiny],
        },
        notes={
            "point_bbox_items": "the closest query tipg and pygeoapi have to /lookup: items "
            "with a 2 m x 2 m CRS84 bbox around the point, limit=10 (not "
            "the same work: no distance order, CRS84 output)",
            "lookup_buildings": "/lookup?x&y&crs=EPSG:31370&collections=buildings",
            "lookup_all_layers": "/lookup, collections=buildings,addresses,municipalities",
            "nearest_addresses_k5": "/collections/addresses/nearest?x&y&k=5&crs=EPSG:31370",
            "nearest_buildings_k5": "/collections/buildings/nearest?x&y&k=5&crs=EPSG:31370",
            "reverse": "/reverse?x&y&crs=EPSG:31370 (max_distance 100 m by default)",
            "geocode_mix": "/geocode?q (limit 10) on the addresses: "
            + ", ".join(f"{round(100 * share)} % {kind}" for kind, share in MIX.items())
            + " (bench.geocode_queries), all distinct; the first request, "
            "which builds the street index, is timed apart",
            "points": f"{args.latency_requests} points, each a building's point on surface "
            f"moved up to 10 m; requests one at a time, after {LATENCY_WARMUP} "
            "others",
        },
        geocode_queries=queries,
    )


def filter_counts(url: str) -> list[tuple[str, int]]:
    """The CQL2 filters of the filter scenario, each with the features it matches."""
    with psycopg.connect(url) as conn:
        areas = conn.execute(
            'SELECT "AREA", count(*) FROM urbis.buildings WHERE "AREA" IS NOT NULL GROUP BY 1'
        ).fetchall()
        prefixes = conn.execute(
            'SELECT left("CAPAKEY", 6), count(*) FROM urbis.buildings GROUP BY 1 '
            "HAVING count(*) >= 500 ORDER BY 1"
        ).fetchall()
    template, thresholds = NUMBER_FILTERS
    out = [(template.format(k=k), sum(n for area, n in areas if area > k)) for k in thresholds]
    return out + [(TEXT_FILTERS.format(prefix=p), int(n)) for p, n in prefixes]


def matching(url: str, where: str) -> int:
    with psycopg.connect(url) as conn:
        return count_rows(conn, f"SELECT count(*) FROM urbis.buildings WHERE {where}", ())


def building_anchors(url: str) -> list[tuple[float, float]]:
    """A point on each building, in key order (so the same data gives the same draws)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            'SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p, "INSPIRE_ID" '
            'FROM urbis.buildings) s ORDER BY "INSPIRE_ID"'
        ).fetchall()
    return [(float(x), float(y)) for x, y in rows]


def jitter(point: tuple[float, float], rng: random.Random, metres: float) -> tuple[float, float]:
    return (point[0] + rng.uniform(-metres, metres), point[1] + rng.uniform(-metres, metres))


def draw_bboxes(
    url: str, anchors: list[tuple[float, float]], rng: random.Random, wanted: int
) -> list[tuple[float, ...]]:
    """Bboxes centred on buildings, kept when ours would match BBOX_MATCHES features.

    Sides of 150 to 500 m at the full 500,000 buildings, longer when there are fewer (the
    city keeps its extent, its density drops).
    """
    to_crs84 = Transformer.from_crs(31370, 4326, always_xy=True)
    scale = math.sqrt(500_000 / len(anchors))
    kept: list[tuple[float, ...]] = []
    with psycopg.connect(url) as conn:
        for _ in range(wanted * 50):
            lon, lat = to_crs84.transform(*anchors[rng.randrange(len(anchors))])
            bbox = square_bbox_crs84(lon, lat, rng.uniform(150.0, 500.0) * scale)
            # our server's reading of a CRS84 bbox: the densified envelope, transformed
            matched = count_rows(
                conn,
                "SELECT count(*) FROM urbis.buildings WHERE ST_Intersects("
                "geom, ST_Transform(ST_Segmentize(ST_MakeEnvelope(%s, %s, %s, %s, "
                "4326), 0.001), 31370))",
                bbox,
            )
            if BBOX_MATCHES[0] <= matched <= BBOX_MATCHES[1]:
                kept.append(bbox)
                if len(kept) == wanted:
                    return kept
    raise SystemExit(f"only {len(kept)} bboxes match {BBOX_MATCHES} buildings: too little data")


def lambert_envelopes(bbox: Sequence[float]) -> dict[str, tuple[float, ...]]:
    """How tipg and pygeoapi turn a CRS84 bbox into a rectangle in EPSG:31370.

    tipg takes the rectangle enclosing the transformed bbox (pyproj transform_bounds, edges
    densified); pygeoapi transforms the two corners (min, min) and (max, max) only. Ours
    transforms the densified bbox itself, a slightly tilted quadrilateral (see
    `expected_counts`). Near the edges the three select slightly different features.
    """
    to_lambert = Transformer.from_crs(4326, 31370, always_xy=True)
    x0, y0 = to_lambert.transform(bbox[0], bbox[1])
    x1, y1 = to_lambert.transform(bbox[2], bbox[3])
    return {"tipg": tuple(to_lambert.transform_bounds(*bbox)), "pygeoapi": (x0, y0, x1, y1)}


def expected_counts(url: str, bbox: Sequence[float], where: str = "TRUE") -> dict[str, int]:
    """The features each server's own reading of the bbox selects, counted in SQL."""
    matches = "SELECT count(*) FROM urbis.buildings WHERE ST_Intersects(geom, {}) AND " + where
    ours = "ST_Transform(ST_Segmentize(ST_MakeEnvelope(%s, %s, %s, %s, 4326), 0.001), 31370)"
    with psycopg.connect(url) as conn:
        out = {"ours": count_rows(conn, matches.format(ours), tuple(bbox))}
        for server, envelope in lambert_envelopes(bbox).items():
            out[server] = count_rows(
                conn, matches.format("ST_MakeEnvelope(%s, %s, %s, %s, 31370)"), envelope
            )
    return out


def count_rows(conn: psycopg.Connection[Any], sql: str, params: Sequence[float]) -> int:
    # no parameters: none passed, so that a '%' in a LIKE pattern stays a '%'
    row = conn.execute(sql, tuple(params) if params else None).fetchone()
    assert row is not None
    return int(row[0])


def explain_bbox_checks(url: str, checks: dict[str, list[dict[str, Any]]]) -> None:
    """Add to each bbox sample what each server's bbox rule selects, and whether that explains
    the counts each server returned."""
    for scenario, where in (("bbox", "TRUE"), ("cql2_filter_bbox", BBOX_FILTER[1])):
        for row in checks.get(scenario, []):
            bbox = [float(v) for v in row["params"]["bbox"].split(",")]
            expected = expected_counts(url, bbox, where)
            row["expected_by_own_bbox_rule"] = expected
            row["explained_by_bbox_rules"] = all(
                row[s] == [expected[s], expected[s]] for s in SERVERS
            )


# -- driving the servers ---------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_table() -> list[tuple[int, int, int, float]]:
    """(pid, parent pid, process group, CPU seconds incl. reaped children) of every process."""
    table = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        ticks = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
        table.append((int(entry.name), int(fields[1]), int(fields[2]), ticks / CLOCK_TICKS))
    return table


@dataclass(frozen=True)
class CpuMeter:
    """CPU seconds used so far by the server, by PostgreSQL and by this client.

    Why: on a 2-core machine the three share the CPU, so requests/s alone does not say where
    the time goes. PostgreSQL is the cluster's postmaster and its children (backends and
    parallel workers; those that exited are in the postmaster's children times); the server is
    its process group.
    """

    server_group: int
    postmaster: int

    def sample(self) -> tuple[float, float, float, float]:
        """Server, PostgreSQL, client, and the whole machine's busy CPU seconds."""
        server = postgres = 0.0
        for pid, ppid, group, seconds in process_table():
            if group == self.server_group:
                server += seconds
            if self.postmaster in (pid, ppid):
                postgres += seconds
        own = resource.getrusage(resource.RUSAGE_SELF)
        return server, postgres, own.ru_utime + own.ru_stime, machine_busy_seconds()


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def busy_cores(seconds: float) -> float:
    """Cores kept busy over the next `seconds` by everything on the machine."""
    before = machine_busy_seconds()
    time.sleep(seconds)
    return round((machine_busy_seconds() - before) / seconds, 2)


def wait_for_quiet(max_wait: float, threshold: float = 0.25) -> float:
    """Wait (up to `max_wait` s) until other work leaves the CPU nearly idle; the last figure.

    Why: the machine may be shared (a test suite, a tile seed...); two cores busy elsewhere
    would slow whichever server is being measured at that moment.
    """
    deadline = time.monotonic() + max_wait
    load = busy_cores(3.0)
    while load > threshold and time.monotonic() < deadline:
        print(f"waiting: other processes keep {load} cores busy", file=sys.stderr)
        load = busy_cores(10.0)
    return load


def cpu_per_request(
    before: tuple[float, ...], after: tuple[float, ...], requests: int, seconds: float
) -> dict[str, float | None]:
    """Milliseconds of CPU per answered request (server, PostgreSQL, client), and how many
    cores other processes on the machine kept busy meanwhile (0 on a quiet machine)."""
    names = (
        "server_cpu_ms_per_request",
        "postgres_cpu_ms_per_request",
        "client_cpu_ms_per_request",
    )
    out: dict[str, float | None] = {
        name: round((b - a) / requests * 1000, 1) if requests else None
        for name, a, b in zip(names, before[:3], after[:3], strict=True)
    }
    ours = sum(b - a for a, b in zip(before[:3], after[:3], strict=True))
    out["other_processes_cores"] = (
        round(max(0.0, after[3] - before[3] - ours) / seconds, 2) if seconds else None
    )
    return out


@dataclass
class Load:
    """What one throughput run did."""

    ok: int
    errors: list[str]
    seconds: float
    latencies: list[float]
    body_bytes: int
    distinct: int
    repeated: int  # requests sent again after the whole list (a server's cache may help)

    def figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests_per_s": round(self.ok / self.seconds, 2) if self.seconds else 0.0,
            "requests": self.ok,
            "seconds": round(self.seconds, 2),
            "distinct_requests": self.distinct,
            "repeated_requests": self.repeated,
            "errors": len(self.errors),
            "mean_body_kb": round(self.body_bytes / self.ok / 1024, 1) if self.ok else None,
        }
        if self.latencies:
            out.update({k: v for k, v in latency_summary(self.latencies).items() if k != "n"})
        if self.errors:
            out["first_errors"] = self.errors[:3]
        return out


async def drive(
    urls: list[str],
    concurrency: int,
    seconds: float,
    full_pass: bool = True,
    ok_statuses: tuple[int, ...] = (200,),
    raw: bool = False,
    valid: Callable[[bytes], bool] | None = None,
) -> Load:
    """`concurrency` requests in flight until `seconds` are up (and, with `full_pass`, every
    URL was sent once, so that a slow server is measured on the whole list too).

    The URLs are taken in order, round and round; throughput counts the 200 answers over the
    time from the first request sent to the last answer received (`ok_statuses` answers: an
    empty vector tile is a 204). `raw`: bench.rawhttp's client instead of httpx, for servers
    that answer faster than httpx asks. `valid`: a check of each answered body (an image's
    signature...); a body it refuses counts as an error, not as answered.
    """
    must_send = len(urls) if full_pass else 0
    position = itertools.count()
    latencies: list[float] = []
    errors: list[str] = []
    body = 0
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client: httpx.AsyncClient | RawClient = (
        RawClient(HEADERS)
        if raw
        else httpx.AsyncClient(headers=HEADERS, limits=limits, timeout=300.0)
    )
    async with client:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            nonlocal body, sent
            while time.perf_counter() < deadline or sent < must_send:
                index = next(position)
                sent += 1
                url = urls[index % len(urls)]
                t0 = time.perf_counter()
                try:
                    response = await client.get(url)
                except (httpx.HTTPError, OSError, asyncio.IncompleteReadError) as exc:
                    errors.append(f"{type(exc).__name__} {url}")
                    continue
                if response.status_code not in ok_statuses:
                    errors.append(f"HTTP {response.status_code} {url}: {response.text[:200]}")
                elif valid is not None and not valid(response.content):
                    errors.append(f"not the expected body {url}: {response.content[:40]!r}")
                else:
                    latencies.append(time.perf_counter() - t0)
                    body += len(response.content)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Load(
        len(latencies),
        errors,
        elapsed,
        latencies,
        body,
        min(sent, len(urls)),
        max(0, sent - len(urls)),
    )


def sequential(urls: list[str], warmup: int) -> tuple[list[tuple[float, str]], list[str]]:
    """One request at a time: (seconds, URL) without queueing. The first `warmup` URLs are
    sent first and not kept."""
    latencies: list[tuple[float, str]] = []
    errors: list[str] = []
    with httpx.Client(headers=HEADERS, timeout=300.0) as client:
        for i, url in enumerate(urls):
            t0 = time.perf_counter()
            response = client.get(url)
            took = time.perf_counter() - t0
            if response.status_code != 200:
                errors.append(f"HTTP {response.status_code} {url}: {response.text[:200]}")
            elif i >= warmup:
                latencies.append((took, url))
    return latencies, errors


def sample_answers(
    base: str, server: str, collection: str, plan: Plan, per_scenario: int
) -> dict[str, list[Answer]]:
    """The first requests of each shared scenario, answered and parsed (before any timing)."""
    out: dict[str, list[Answer]] = {}
    with httpx.Client(headers=HEADERS, timeout=300.0) as client:
        for name, requests in plan.shared().items():
            out[name] = []
            for request in requests[:per_scenario]:
                response = client.get(request.url(base, server, collection))
                out[name].append(parse_answer(response.status_code, response.content))
    return out


@dataclass
class ServerRun:
    throughput: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: dict[str, dict[str, Any]] = field(default_factory=dict)
    samples: dict[str, list[Answer]] = field(default_factory=dict)


def throughput(
    base: str,
    server: str,
    collection: str,
    name: str,
    scenario: Scenario,
    meter: CpuMeter,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One throughput scenario on one server, with its CPU per request."""
    warm = [r.url(base, server, collection) for r in scenario.warmup]
    urls = [r.url(base, server, collection) for r in scenario.requests]
    asyncio.run(drive(warm, args.concurrency, args.warmup, full_pass=False))
    before = meter.sample()
    load = asyncio.run(drive(urls, args.concurrency, args.duration, scenario.full_pass))
    cpu = cpu_per_request(before, meter.sample(), load.ok, load.seconds)
    figures = {**load.figures(), **cpu}
    print(
        f"  {server:9s} {name:22s} {figures['requests_per_s']:8.2f} req/s"
        f"  ({load.ok} ok, {len(load.errors)} errors; CPU ms/request: server "
        f"{cpu['server_cpu_ms_per_request']}, postgres "
        f"{cpu['postgres_cpu_ms_per_request']}; other processes "
        f"{cpu['other_processes_cores']} cores)",
        file=sys.stderr,
    )
    return figures


def time_latencies(
    base: str,
    server: str,
    collection: str,
    plan: Plan,
    latency_sets: dict[str, list[Request]],
    run: ServerRun,
) -> None:
    for name, requests in latency_sets.items():
        if name == "geocode_mix":
            run.latency["geocode_first_request"] = first_geocode(base)
        urls = [r.url(base, server, collection) for r in requests]
        timed, errors = sequential(urls, warmup=LATENCY_WARMUP)
        summary = latency_summary([t for t, _ in timed]) if timed else {}
        run.latency[name] = {
            **summary,
            "errors": len(errors),
            "slowest": [
                [round(t * 1000, 1), u.removeprefix(base)]
                for t, u in sorted(timed, reverse=True)[:3]
            ],
        }
        if errors:
            run.latency[name]["first_errors"] = errors[:3]
        print(
            f"  {server:9s} {name:22s} p50 {summary.get('p50_ms')} ms, "
            f"p95 {summary.get('p95_ms')} ms, p99 {summary.get('p99_ms')} ms, "
            f"{len(errors)} errors",
            file=sys.stderr,
        )
        if name == "geocode_mix":
            run.latency["geocode_answers_checked"] = check_geocoder(base, plan.geocode_queries)
            print(
                f"  {server:9s} geocoder answers: {run.latency['geocode_answers_checked']}",
                file=sys.stderr,
            )


def first_geocode(base: str) -> dict[str, float]:
    """The first /geocode request of a fresh server: it reads the layer's streets."""
    t0 = time.perf_counter()
    response = httpx.get(
        f"{base}/geocode", params={"q": "Rue de la Victoire 1"}, headers=HEADERS, timeout=300.0
    )
    return {"ms": round((time.perf_counter() - t0) * 1000, 1), "status": response.status_code}


def check_geocoder(base: str, queries: list[Query]) -> dict[str, str]:
    """Per kind of query, how many first answers were right (asked again, untimed)."""
    right: dict[str, list[int]] = {}
    with httpx.Client(headers=HEADERS, timeout=300.0) as client:
        for query in queries[LATENCY_WARMUP:]:
            response = client.get(f"{base}/geocode", params={"q": query.q})
            ok = response.status_code == 200 and right_first(query, response.json()["features"])
            counts = right.setdefault(query.kind, [0, 0])
            counts[0] += ok
            counts[1] += 1
    return {kind: f"{ok}/{total}" for kind, (ok, total) in right.items()}


# -- the database ----------------------------------------------------------------------------


def layer_config(workdir: Path, gpkg: Path, municipalities: Path) -> Path:
    path = workdir / "api-bench.yaml"
    path.write_text(
        "layers:\n"
        f"  buildings:\n    source: {{kind: file, path: {gpkg}, layer: Buildings}}\n"
        f"    key: INSPIRE_ID\n    indexes: [{', '.join(FILTERED_PROPERTIES)}]\n"
        f"  addresses:\n    source: {{kind: file, path: {gpkg}, layer: Addresses}}\n"
        "    key: INSPIRE_ID\n"
        f"  municipalities:\n    source: {{kind: file, path: {municipalities}, srid: 31370}}\n"
        "    key: NAT_CODE\n"
    )
    return path


def loaded_database(
    admin: str, config: Path, tables: Sequence[str] = ("buildings", "addresses", "municipalities")
) -> str:
    """A fresh database, migrated, with the layers loaded by our sync and analysed."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS api_bench WITH (FORCE)")
        conn.execute("CREATE DATABASE api_bench")
    url = make_url(admin).set(database="api_bench").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION postgis")
    env = {**os.environ, "DATABASE_URL": url, "URBIS_CONFIG": str(config)}
    for cmd in (["migrate"], ["sync", "--once"]):
        done = subprocess.run([str(api_peers.URBIS), *cmd], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"urbis {' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    with psycopg.connect(url, autocommit=True) as conn:
        # planner statistics and the visibility map, the same for every server
        conn.execute("VACUUM ANALYZE " + ", ".join(f"urbis.{t}" for t in tables))
    return url


def served_properties(url: str) -> list[str]:
    """The buildings' source fields: what ours serves, and what the peers are told to."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'urbis' "
            "AND table_name = 'buildings' ORDER BY ordinal_position"
        ).fetchall()
    return [r[0] for r in rows if r[0] not in INTERNAL_COLUMNS]


def database_facts(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:

        def one(sql: str) -> Any:
            return conn.execute(sql).fetchone()[0]  # type: ignore[index]

        return {
            "postgresql": one("SHOW server_version"),
            "postgis": one("SELECT postgis_lib_version()"),
            "shared_buffers": one("SHOW shared_buffers"),
            "max_parallel_workers_per_gather": one("SHOW max_parallel_workers_per_gather"),
            "jit": one("SHOW jit"),
            "features": {
                t: one(f"SELECT count(*) FROM urbis.{t}")
                for t in ("buildings", "addresses", "municipalities")
            },
        }


# -- the run ---------------------------------------------------------------------------------


def server_specs(
    args: argparse.Namespace, url: str, config: Path, rundir: Path, properties: list[str]
) -> dict[str, Callable[[int], api_peers.ServerSpec]]:
    """Each server's start-up, built lazily with its port (peers installed first)."""
    peers = args.workdir / "peers"
    tipg = api_peers.ensure_venv(peers, "tipg")
    pygeoapi = api_peers.ensure_venv(peers, "pygeoapi")
    return {
        "ours": lambda port: api_peers.ours_spec(url, config, port, args.pool_size),
        "tipg": lambda port: api_peers.tipg_spec(tipg, url, port, args.pool_size, properties),
        "pygeoapi": lambda port: api_peers.pygeoapi_spec(
            pygeoapi, url, port, args.pool_size, properties, rundir
        ),
    }


SERVER_CODE = ("geoapi", "urbis_core")  # what `urbis serve` runs


def our_code() -> str:
    """Which code our server runs: the commit, '+changes' when the server's code differs from
    it, and a digest of that code (git is only read: others may be editing the tree)."""
    root = Path(__file__).resolve().parent.parent
    git = ["git", "--no-optional-locks", "-C", str(root)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    changed = (
        subprocess.run(
            [*git, "diff", "--quiet", "HEAD", "--", *SERVER_CODE], capture_output=True
        ).returncode
        != 0
    )
    digest = hashlib.sha256()
    for path in sorted(p for d in SERVER_CODE for p in (root / d).rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    commit = head.stdout.strip() if head.returncode == 0 else "unknown"
    return (
        f"{commit}{' +uncommitted changes' if changed else ''} "
        f"(code sha256 {digest.hexdigest()[:12]})"
    )


def versions(workdir: Path, code: tuple[str, str]) -> dict[str, str]:
    peers = workdir / "peers"
    return {
        "ours (urbis-geoservice)": importlib.metadata.version("urbis-geoservice"),
        "ours code": code[0]
        if code[0] == code[1]
        else (f"CHANGED while ours ran: {code[0]} at its start, {code[1]} at its end"),
        "ours uvicorn": importlib.metadata.version("uvicorn"),
        "tipg": api_peers.installed_version(peers / "tipg", "tipg"),
        "tipg uvicorn": api_peers.installed_version(peers / "tipg", "uvicorn"),
        "pygeoapi": api_peers.installed_version(peers / "pygeoapi", "pygeoapi"),
        "pygeoapi gunicorn": api_peers.installed_version(peers / "pygeoapi", "gunicorn"),
        "httpx (client)": importlib.metadata.version("httpx"),
    }


def run_servers(
    args: argparse.Namespace, url: str, config: Path, rundir: Path, plan: Plan, postmaster: int
) -> tuple[dict[str, ServerRun], dict[str, list[str]]]:
    """The three servers at once, measured in turn: each scenario on each server, then each
    server's point queries one at a time."""
    made = server_specs(args, url, config, rundir, served_properties(url))
    before = our_code()  # the tree may change under us: the code ours started with...
    with api_peers.all_running(made, rundir) as served:
        notes = {name: s.spec.notes for name, s in served.items()}
        meters = {name: CpuMeter(s.running.group, postmaster) for name, s in served.items()}
        runs = {
            name: ServerRun(
                samples=sample_answers(s.running.base, name, s.spec.collection, plan, args.check)
            )
            for name, s in served.items()
        }
        for scenario_name, scenario in plan.throughput.items():
            for name, s in served.items():
                runs[name].throughput[scenario_name] = throughput(
                    s.running.base,
                    name,
                    s.spec.collection,
                    scenario_name,
                    scenario,
                    meters[name],
                    args,
                )
        for name, s in served.items():
            latency_sets = dict(plan.shared_latency)
            if name == "ours":
                latency_sets.update(plan.ours_latency)
            time_latencies(s.running.base, name, s.spec.collection, plan, latency_sets, runs[name])
        args.our_code = (before, our_code())  # ... and still had when it stopped
    return runs, notes


def run_our_point_queries(
    args: argparse.Namespace, url: str, config: Path, rundir: Path, plan: Plan
) -> ServerRun:
    """--points-only: our server alone, its point queries timed (no peers, no throughput)."""
    port = free_port()
    spec = api_peers.ours_spec(url, config, port, args.pool_size)
    print(f"ours: {' '.join(spec.cmd[:2])} ... on port {port}", file=sys.stderr)
    run = ServerRun()
    before = our_code()
    with api_peers.running(spec, port, rundir / "ours.log") as server:
        time_latencies(server.base, "ours", spec.collection, plan, plan.ours_latency, run)
    args.our_code = (before, our_code())
    return run


def points_report(
    args: argparse.Namespace, url: str, plan: Plan, run: ServerRun, started: float
) -> dict[str, Any]:
    code = args.our_code
    return {
        "command": "python -m bench.api_bench " + " ".join(sys.argv[1:]),
        "data": {"buildings": args.buildings, "seed": args.seed, **database_facts(url)},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "busy_cores_before_start": args.busy_at_start,
            "load_average_at_start": args.load_at_start,
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        },
        "setup": {
            "pool_size": args.pool_size,
            "latency_requests": args.latency_requests,
            "only": "ours' point queries, one at a time (--points-only)",
        },
        "versions": {
            "ours code": code[0]
            if code[0] == code[1]
            else (f"CHANGED while ours ran: {code[0]} at its start, {code[1]} at its end")
        },
        "latency_ms": {"ours": run.latency},
        "scenarios": {
            name: note
            for name, note in plan.notes.items()
            if name in plan.ours_latency or name == "points"
        },
        "total_seconds": round(time.perf_counter() - started),
    }


def report(
    args: argparse.Namespace,
    url: str,
    plan: Plan,
    runs: dict[str, ServerRun],
    notes: dict[str, list[str]],
    started: float,
) -> dict[str, Any]:
    rps = {
        scenario: {s: runs[s].throughput[scenario]["requests_per_s"] for s in SERVERS}
        for scenario in plan.throughput
    }
    ratios = {
        scenario: {
            f"ours/{peer}": ratio(by_server["ours"], by_server[peer])
            for peer in ("tipg", "pygeoapi")
        }
        for scenario, by_server in rps.items()
    }
    checks: dict[str, list[dict[str, Any]]] = {}
    for scenario, answers in runs["ours"].samples.items():
        requests = plan.shared()[scenario]
        checks[scenario] = [
            {
                "params": requests[i].params,
                **compare_answers({s: runs[s].samples[scenario][i] for s in SERVERS}),
            }
            for i in range(len(answers))
        ]
    explain_bbox_checks(url, checks)
    point = {s: runs[s].latency["point_bbox_items"] for s in SERVERS}
    return {
        "command": "python -m bench.api_bench " + " ".join(sys.argv[1:]),
        "data": {"buildings": args.buildings, "seed": args.seed, **database_facts(url)},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.platform(),
            # other work on the machine shows here (and per scenario, in
            # throughput_detail: other_processes_cores)
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
            "order": list(SERVERS),
            "client": "one asyncio httpx client in the benchmark process, keep-alive, "
            "Accept-Encoding: identity; the servers run together, measured in turn, each "
            "scenario on each server before the next scenario",
        },
        "versions": versions(args.workdir, args.our_code),
        "throughput_rps": rps,
        "ratios": ratios,
        "targets": targets_met(ratios),
        "throughput_detail": {
            scenario: {s: runs[s].throughput[scenario] for s in SERVERS}
            for scenario in plan.throughput
        },
        "latency_ms": {
            "ours": runs["ours"].latency,
            "point_bbox_items (all servers)": point,
            # how many times less time ours takes: the peer's p50 over ours
            "point_bbox_items p50 speed-up": {
                f"{p} p50 / ours p50": ratio(point[p].get("p50_ms"), point["ours"].get("p50_ms"))
                for p in ("tipg", "pygeoapi")
            },
        },
        "feature_count_checks": {
            "mismatched_requests": sum(not row["same"] for rows in checks.values() for row in rows),
            "mismatches_not_explained_by_bbox_rules": sum(
                not row["same"] and not row.get("explained_by_bbox_rules", False)
                for rows in checks.values()
                for row in rows
            ),
            "checked_requests": sum(len(rows) for rows in checks.values()),
            "by_scenario": checks,
        },
        "scenarios": {**{name: sc.note for name, sc in plan.throughput.items()}, **plan.notes},
        "total_seconds": round(time.perf_counter() - started),
    }


# -- set-up shared with bench.tile_bench -----------------------------------------------------


def with_defaults(args: argparse.Namespace, defaults: dict[str, Any]) -> argparse.Namespace:
    """Fill the options left unset (None) with `defaults`."""
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def run_options(parser: argparse.ArgumentParser, quick: str) -> None:
    """The options every side-by-side benchmark takes: seed, quiet wait, quick, workdir, JSON."""
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for other processes to leave the CPU "
        "idle (a shared machine)",
    )
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/urbis-bench"))
    parser.add_argument("--json", type=Path, default=None, help="write the result here too")


def warm_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--warm-seconds",
        type=float,
        default=10.0,
        help="how long the warm pass goes round the list (at least once)",
    )


def generated(workdir: Path, stem: str, buildings: int, layers: list[str]) -> Path:
    """The generated GeoPackage `<stem>-<buildings>.gpkg`, made on first use (seed 1)."""
    workdir.mkdir(parents=True, exist_ok=True)
    gpkg = workdir / f"{stem}-{buildings}.gpkg"
    if not gpkg.exists():
        print(f"generating {gpkg} ...", file=sys.stderr)
        generate(gpkg, buildings=buildings, seed=1, layers=layers)
    return gpkg


def fresh_folder(path: Path) -> Path:
    """`path`, emptied: the configurations and server logs of the last run."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    return path


@contextmanager
def scratch_cluster(prefix: str, preload: tuple[str, ...] = ()) -> Iterator[tuple[str, int]]:
    """A throwaway PostgreSQL cluster (fsync off): its admin URL and postmaster pid.

    `preload`: shared_preload_libraries (e.g. pg_stat_statements for bench.request_breakdown).
    """
    home = Path(tempfile.mkdtemp(prefix=prefix))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home, durable=False, preload=preload)
    try:
        state = cluster.start()
        yield state.admin_url(), int((state.data_dir / "postmaster.pid").read_text().split()[0])
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)


def write_result(result: dict[str, Any], json_path: Path | None) -> None:
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if json_path:
        json_path.write_text(text + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--buildings",
        type=int,
        default=None,
        help="buildings to generate (default 500000; 50000 with --quick)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds each throughput scenario is driven (default 15)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds of the same requests before each (default 3)",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument(
        "--pool-size",
        type=int,
        default=10,
        help="database connections per server (ours, tipg; pygeoapi: threads)",
    )
    parser.add_argument(
        "--latency-requests",
        type=int,
        default=None,
        help="sequential requests per point query (default 500)",
    )
    parser.add_argument(
        "--check", type=int, default=6, help="sample requests per scenario compared across servers"
    )
    run_options(parser, "50,000 buildings, 5 s runs, 100 point queries: a quick look")
    parser.add_argument(
        "--points-only",
        action="store_true",
        help="time only our point queries (/lookup, /nearest, /reverse, "
        "/geocode): no peers, no throughput scenarios",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    return with_defaults(
        args,
        {
            "buildings": 50_000 if quick else 500_000,
            "duration": 5.0 if quick else 15.0,
            "warmup": 1.0 if quick else 3.0,
            "latency_requests": 100 if quick else 500,
        },
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    args.busy_at_start = wait_for_quiet(args.wait_quiet)
    args.load_at_start = [round(v, 2) for v in os.getloadavg()]
    gpkg = generated(args.workdir, "brussels-api", args.buildings, ["buildings", "addresses"])
    rundir = fresh_folder(args.workdir / "api-run")
    config = layer_config(
        rundir,
        gpkg,
        Path(__file__).resolve().parent.parent / "data" / "sample" / "UrbAdm_MUNICIPALITY.shp",
    )
    with scratch_cluster("urbis-api-bench-cluster-") as (admin, postmaster):
        print("loading the layers with urbis sync ...", file=sys.stderr)
        url = loaded_database(admin, config)
        print("drawing the requests ...", file=sys.stderr)
        plan = build_plan(url, args.seed, args)
        if args.points_only:
            result = points_report(
                args, url, plan, run_our_point_queries(args, url, config, rundir, plan), started
            )
        else:
            runs, notes = run_servers(args, url, config, rundir, plan, postmaster)
            result = report(args, url, plan, runs, notes, started)
    write_result(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
