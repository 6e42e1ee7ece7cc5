"""Where one small request's server time goes (issue 18): a profile of ours under load, per phase.

Run by `python -m bench.small_answers --breakdown FILE` (add --breakdown-only for ours alone).
For each picked scenario (a 100-feature bbox page, a feature by key, a limit=100 filter page)
a fresh `urbis serve` is driven with --concurrency requests in flight:

1. a pass without profiler gives the CPU per request of the server and of PostgreSQL
   (bench.api_bench.CpuMeter) and, from pg_stat_statements (track_planning on), each
   statement's calls, planning and execution time per request;
2. a pass under `py-spy record` (sampling, --nonblocking) gives where the server's CPU goes:
   each sample's stack is put in one phase (PHASES: the innermost frame that names one; the
   count and the catalog lookup by any frame), and a phase's ms per request is its share of
   the samples times the server's CPU per request from pass 1;
3. a few requests one at a time under auto_explain (log_analyze, log_buffers): the EXPLAIN
   (ANALYZE, BUFFERS) of every statement ours sends for them, from the cluster's log.

The result has a table of ms per phase and % of the total (server CPU + PostgreSQL CPU per
request), the statements, the plans, and the one-at-a-time latency for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from bench import api_peers
from bench.api_bench import CpuMeter, cpu_per_request, drive, latency_summary, sequential

PRELOAD = ("pg_stat_statements", "auto_explain")
SCENARIOS = ("bbox_crs84", "feature_by_key", "filter_10pct")
PY_SPY = Path(sys.executable).parent / "py-spy"
SAMPLE_RATE = 250  # py-spy samples per second
EXPLAINED = 2  # requests per scenario logged with their plans

# (phase, path or function fragments): a sample goes to the first phase whose fragments one
# of its frames holds, frames taken from the innermost out. WHOLE_STACK phases are tried
# first, on every frame: a count or a catalog lookup is all its frames (building, sending...).
WHOLE_STACK = (
    ("count (second statement)", ("_matched (", "geoapi/counting.py")),
    (
        "connection checkout and transaction (pool, BEGIN, set_config, ROLLBACK)",
        (
            "Budgets.snapshot (",
            "ReadEngines.snapshot (",
            "Budgets._start (",
            "Budgets._end (",
            "sqlalchemy/pool/",
        ),
    ),
    ("catalog lookup (a statement per request)", ("get_layer (", "_catalog_layer (")),
)
PHASES = (
    ("connection checkout (queue)", ("geoapi/budgets.py", "geoapi/read_replicas.py")),
    (
        "SQL building (SQLAlchemy compile, composition)",
        (
            "sqlalchemy/sql/",
            "geoapi/features.py",
            "geoapi/once.py",
            "geoalchemy2/",
            "geoapi/area_of_use.py",
            "pyproj/",
            "shapely/",
        ),
    ),
    (
        "driver and rows (psycopg, SQLAlchemy execute/result)",
        (
            "psycopg/",
            "psycopg_pool/",
            "sqlalchemy/engine/",
            "sqlalchemy/dialects/",
            "sqlalchemy/ext/asyncio/",
            "sqlalchemy/util/_concurrency",
            "greenlet",
        ),
    ),
    (
        "encoding (JSON, links, body)",
        ("json/", "orjson", "geoapi/links.py", "geoapi/responses/", "starlette/responses.py"),
    ),
    (
        "routing and validation",
        (
            "fastapi/",
            "starlette/routing.py",
            "pydantic",
            "geoapi/params.py",
            "geoapi/deps.py",
            "geoapi/query_models.py",
            "geoapi/crs.py",
            "geoapi/cql2.py",
            "pygeofilter/",
            "lark/",
            "geoapi/values.py",
            "urbis_core/catalog.py",
            "geoapi/routes/",
        ),
    ),
    (
        "middleware (request ids, logs, metrics, limits)",
        (
            "geoapi/request_ids.py",
            "geoapi/logs.py",
            "geoapi/metrics.py",
            "geoapi/observing.py",
            "geoapi/compression.py",
            "geoapi/request_limits.py",
            "geoapi/rate_limit.py",
            "geoapi/disconnect.py",
            "geoapi/client_address.py",
            "geoapi/public_url.py",
            "starlette/middleware/",
            "logging/",
            "prometheus_client/",
            "geoapi/app.py",
        ),
    ),
    (
        "HTTP server (uvicorn: parse, write)",
        ("uvicorn/", "h11/", "httptools/", "_SelectorSocketTransport.write", "_read_ready"),
    ),
    ("event loop (asyncio scheduling)", ("asyncio/", "uvloop", "selectors.py", "anyio/")),
)
OTHER = "other"
NO_FRAME = "(no Python frame in the sample)"
# a thread waiting for work (anyio's worker threads): idle, not a cost of the request
IDLE = ("wait (threading.py", "get (queue.py", "select (selectors.py")
ACCESS = re.compile(r"geoapi\.access \[[^\]]*\] GET \S+ 200 (?P<ms>[\d.]+) ms")
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?):(?P<line>\d+)\)$")


# -- pure helpers (unit-tested) --------------------------------------------------------------


def parse_collapsed(text: str) -> Counter[tuple[str, ...]]:
    """py-spy's raw (collapsed) output: stacks, outermost frame first, and their sample counts.

    Labels that are no Python frame (process, thread) are left out.
    """
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in text.splitlines():
        line = line.strip()
        if not line or " " not in line:
            continue
        frames, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        kept = tuple(f for f in frames.split(";") if FRAME.match(f))
        stacks[kept] += int(count)
    return stacks


def phase_of(stack: tuple[str, ...]) -> str | None:
    """The phase a sampled stack (outermost frame first) belongs to; None for an idle thread."""
    if not stack:
        return NO_FRAME
    if any(idle in stack[-1] for idle in IDLE):
        return None
    for phase, fragments in WHOLE_STACK:
        if any(fragment in frame for frame in stack for fragment in fragments):
            return phase
    for frame in reversed(stack):
        for phase, fragments in PHASES:
            if any(fragment in frame for fragment in fragments):
                return phase
    return OTHER


def statement_kind(query: str) -> str:
    """What a statement ours sends is for, from its text (pg_stat_statements or a log)."""
    text = " ".join(query.split()).lower()
    if text.startswith(("begin", "commit", "rollback", "start transaction")):
        return "transaction begin/end"
    if "set_config" in text:
        return "per-request settings (set_config)"
    if "layer_catalog" in text:
        return "catalog lookup"
    if "json_build_object" in text:  # a full bbox page carries its count: still the page
        return "page / feature"
    if "count(" in text:
        return "count"
    if text in ("select 1", "select $1"):
        return "pool pre-ping"
    return "other"


def phase_table(
    samples: Counter[str], server_ms: float, postgres: dict[str, float], postgres_cpu_ms: float
) -> list[dict[str, Any]]:
    """Rows (phase, ms per request, % of total): the server's CPU split by sample shares, then
    PostgreSQL's CPU per statement kind and step, then the rest of its CPU (parse, protocol).

    The total is the server's CPU plus PostgreSQL's, per request. `postgres` holds
    pg_stat_statements' ms per request (plan, execution), which under load count waiting for a
    core too: when they add up to more than PostgreSQL's CPU they are scaled down to it.
    """
    total_samples = sum(samples.values())
    rows: list[tuple[str, float]] = (
        [(f"server: {phase}", server_ms * n / total_samples) for phase, n in samples.most_common()]
        if total_samples
        else [("server: (no samples)", server_ms)]
    )
    in_statements = sum(postgres.values())
    scale = min(1.0, postgres_cpu_ms / in_statements) if in_statements else 0.0
    rows += [(f"PostgreSQL: {kind}", ms * scale) for kind, ms in postgres.items()]
    rows.append(
        (
            "PostgreSQL: rest of its CPU (parse, bind, protocol, per-statement overhead)",
            max(0.0, postgres_cpu_ms - in_statements),
        )
    )
    total = server_ms + postgres_cpu_ms
    return [
        {"phase": name, "ms": round(ms, 3), "percent": round(100 * ms / total, 1) if total else 0}
        for name, ms in rows
    ]


def access_ms(log: str) -> list[float]:
    """The durations ours' access lines give (time inside the app) for its 200 GETs, in order."""
    return [float(m["ms"]) for m in ACCESS.finditer(log)]


def explain_blocks(log: str) -> list[str]:
    """auto_explain's entries (`duration: ... plan:` and the lines after) in a server log."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in log.splitlines():
        if "plan:" in line and "duration:" in line:
            current = [line]
            blocks.append("")
        elif current is not None and (line.startswith(("\t", " ")) or not line.strip()):
            current.append(line)
        else:
            current = None
        if current is not None:
            blocks[-1] = "\n".join(current)
    return blocks


def phases(
    stacks: Counter[tuple[str, ...]], cpu: dict[str, Any], sent: list[dict[str, Any]]
) -> dict[str, Any]:
    """The phase table of one scenario from its profile, its CPU and its statements."""
    by_phase: Counter[str] = Counter()
    idle = 0
    for stack, n in stacks.items():
        phase = phase_of(stack)
        if phase is None:
            idle += n
        else:
            by_phase[phase] += n
    postgres: dict[str, float] = {}
    for row in sent:
        for step, per_call in (("planning", "plan_ms_per_call"), ("execution", "exec_ms_per_call")):
            name = f"{row['kind']}, {step}"
            postgres[name] = postgres.get(name, 0.0) + row[per_call] * row["calls_per_request"]
    server_ms = cpu["server_cpu_ms_per_request"] or 0.0
    pg_ms = cpu["postgres_cpu_ms_per_request"] or 0.0
    return {
        "py_spy_samples": sum(by_phase.values()),
        "py_spy_idle_thread_samples_left_out": idle,
        "phases": phase_table(by_phase, server_ms, postgres, pg_ms),
    }


# -- the database side -----------------------------------------------------------------------


def prepare_database(url: str) -> None:
    """pg_stat_statements in the bench database, tracking nothing until a breakdown asks."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    settings(url, {"pg_stat_statements.track": "none", "auto_explain.log_min_duration": "-1"})


def settings(url: str, values: dict[str, str]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for name, value in values.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)  # sessions read the new settings at their next statement


def statements(url: str, requests: int) -> list[dict[str, Any]]:
    """ours' statements since the reset: per request, calls and ms planning and executing."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT query, calls, total_plan_time, total_exec_time, rows, shared_blks_hit, "
            "shared_blks_read FROM pg_stat_statements WHERE query NOT ILIKE "
            "'%pg_stat_statements%' AND query NOT ILIKE '%pg_reload_conf%' AND query NOT "
            "ILIKE 'ALTER SYSTEM%' ORDER BY total_exec_time DESC"
        ).fetchall()
    return [
        {
            "kind": statement_kind(q),
            "calls_per_request": round(calls / requests, 3),
            "plan_ms_per_call": round(plan / calls, 4),
            "exec_ms_per_call": round(ex / calls, 4),
            "ms_per_request": round((plan + ex) / requests, 4),
            "rows_per_call": round(n / calls, 1),
            "buffers_hit_per_call": round(hit / calls, 1),
            "buffers_read_per_call": round(read / calls, 1),
            "query": " ".join(q.split())[:600],
        }
        for q, calls, plan, ex, n, hit, read in rows
        if calls
    ]


def server_log(url: str) -> Path:
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    return Path(row[0]).parent / "server.log"


# -- one scenario ----------------------------------------------------------------------------


def profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    cmd = [
        str(PY_SPY),
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(SAMPLE_RATE),
        "--format",
        "raw",
        "--output",
        str(out),
        "--duration",
        str(int(seconds) + 2),
        "--nonblocking",
        "--subprocesses",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def scenario(
    base: str,
    pid: int,
    url: str,
    meter: CpuMeter,
    urls: list[str],
    latency_urls: list[str],
    args: argparse.Namespace,
    rundir: Path,
    name: str,
) -> dict[str, Any]:
    seconds = args.breakdown_seconds
    asyncio.run(drive(urls[-500:], args.concurrency, 2.0, full_pass=False))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    settings(url, {"pg_stat_statements.track": "top", "pg_stat_statements.track_planning": "on"})
    before = meter.sample()
    load = asyncio.run(drive(urls, args.concurrency, seconds, full_pass=False))
    cpu = cpu_per_request(before, meter.sample(), load.ok, load.seconds)
    settings(url, {"pg_stat_statements.track": "none"})
    sent = statements(url, load.ok)
    # the profile, on other requests of the same kind
    raw = rundir / f"py-spy-{name}.txt"
    spy = profile(pid, seconds, raw)
    time.sleep(1.0)
    profiled = asyncio.run(drive(urls[::-1], args.concurrency, seconds, full_pass=False))
    _, spy_err = spy.communicate(timeout=seconds + 60)
    stacks = parse_collapsed(raw.read_text()) if raw.exists() else Counter()
    access_log = rundir / "ours-breakdown.log"
    mark = access_log.stat().st_size
    took, _ = sequential(latency_urls[:120], 20)
    time.sleep(0.2)  # the last access line written
    with access_log.open("rb") as f:
        f.seek(mark)
        inside = access_ms(f.read().decode(errors="replace"))[20:]
    # the plans of what ours sends, for two requests one at a time
    log = server_log(url)
    start = log.stat().st_size
    settings(
        url,
        {
            "auto_explain.log_min_duration": "0",
            "auto_explain.log_analyze": "on",
            "auto_explain.log_buffers": "on",
            "auto_explain.log_timing": "on",
        },
    )
    sequential(latency_urls[-EXPLAINED:], 0)
    settings(url, {"auto_explain.log_min_duration": "-1"})
    with log.open("rb") as f:
        f.seek(start)
        plans = explain_blocks(f.read().decode(errors="replace"))
    return {
        "requests_per_s_unprofiled": load.figures()["requests_per_s"],
        "requests_per_s_profiled": profiled.figures()["requests_per_s"],
        "cpu_ms_per_request": cpu,
        "statements_per_request": round(sum(r["calls_per_request"] for r in sent), 2),
        "statements": sent,
        **phases(stacks, cpu, sent),
        "py_spy_errors": spy_err.decode(errors="replace")[-500:] if spy.returncode else "",
        "one_at_a_time_ms": latency_summary([t for t, _ in took]) if took else {},
        # what ours' access lines say for the same requests: the time inside the app
        # (middleware to the last body byte), without uvicorn's parsing and the network
        "one_at_a_time_in_app_ms": latency_summary([ms / 1000 for ms in inside]) if inside else {},
        "top_stacks": [
            {"samples": n, "phase": phase_of(s), "innermost": list(s[-6:])}
            for s, n in stacks.most_common(15)
        ],
        "explain_analyze_buffers": plans,
    }


def run(
    spec: api_peers.ServerSpec,
    rundir: Path,
    url: str,
    postmaster: int,
    picked: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Each picked scenario on its own fresh ours (so no count is remembered from before)."""
    out: dict[str, Any] = {}
    for name, sc in picked.items():
        port = int(spec.env["URBIS_PORT"])
        with api_peers.running(spec, port, rundir / "ours-breakdown.log") as server:
            meter = CpuMeter(server.group, postmaster)
            timed = [u for a in sc.timed if (u := a.url(server.base, "ours", spec.collection))]
            latency = [u for a in sc.latency if (u := a.url(server.base, "ours", spec.collection))]
            out[name] = scenario(
                server.base, server.group, url, meter, timed, latency, args, rundir, name
            )
        print(f"  breakdown {name}:", file=sys.stderr)
        for row in out[name]["phases"]:
            print(
                f"    {row['ms']:8.3f} ms {row['percent']:5.1f} %  {row['phase']}", file=sys.stderr
            )
    return out


def rederive(result: Path, rundir: Path) -> None:
    """Rewrite `result`'s phase tables from the raw profiles kept in `rundir` (py-spy-*.txt),
    with the phase rules of this code: for when the rules change after a run."""
    found = json.loads(result.read_text())
    for name, entry in found.items():
        raw = rundir / f"py-spy-{name}.txt"
        stacks = parse_collapsed(raw.read_text())
        entry.update(phases(stacks, entry["cpu_ms_per_request"], entry["statements"]))
        entry["top_stacks"] = [
            {"samples": n, "phase": phase_of(s), "innermost": list(s[-6:])}
            for s, n in stacks.most_common(15)
        ]
    result.write_text(json.dumps(found, indent=2, default=str) + "\n")
    for name, entry in found.items():
        print(name)
        for row in entry["phases"]:
            print(f"  {row['ms']:8.3f} ms {row['percent']:5.1f} %  {row['phase']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=rederive.__doc__)
    parser.add_argument("result", type=Path, help="the --breakdown JSON")
    parser.add_argument("rundir", type=Path, help="where its py-spy-*.txt are")
    args = parser.parse_args()
    rederive(args.result, args.rundir)
