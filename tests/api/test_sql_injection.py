"""SQL injection, tried as a hostile user would (issue 16): nothing executes, nothing changes.

A classic list of payloads goes into every parameter that reaches SQL, against a real server
over the synced sample and its raster layers (admin API on). Each payload carries a marker of
its own (`inj_<run>_<n>`, in an identifier or a comment: pg_stat_statements keeps those while it
replaces constants by `$n`) and many try to DROP or INSERT into a canary table made before the
server started. Then:

- every attempt is a 4xx in the JSON error model, or a correct empty answer; none is slow (a
  `pg_sleep(7.123)` that ran would show as time);
- the canary's row is intact, and no table, role, schema or function was added, dropped or
  altered: the row counts of every table (layers, history, catalog) are what they were;
- no statement pg_stat_statements saw, and no statement in the server's log
  (`log_statement = all` for this database), holds a marker: a payload reached the database
  only as a bound value (the log's `parameters:` lines) or not at all.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.api.conftest import CoverageSources, start_server

pytestmark = pytest.mark.api

RUN = uuid.uuid4().hex[:6]
MARK = f"inj_{RUN}_"  # every marker of this run starts so
ANSWER_BOUND = 3.0  # seconds: well under the 7.123 s a pg_sleep would take
TOKEN = "injection-admin-token-0123456789"
CANARY = "urbis_canary"
CANARY_ROW = (1, "the canary sings")

# {m} is the payload's own marker. The classics: a lone quote, tautologies, stacked queries,
# UNION, comments, dollar quoting, NUL, backslashes, unicode look-alike quotes.
PAYLOAD_TEMPLATES = [
    "'/*{m}*/",
    "x' OR '1'='1' --{m}",
    f"'; DROP TABLE {CANARY};--{{m}}",
    '") OR 1=1--{m}',
    "1; SELECT pg_sleep(7.123) AS {m}",
    "1' AND pg_sleep(7.123) IS NOT NULL AND 'x'='x /*{m}*/",
    "$$; SELECT pg_sleep(7.123) AS {m}; $$",
    "x\x00'; DROP TABLE " + CANARY + ";--{m}",
    "\u2019; DROP TABLE " + CANARY + ";--{m}",
    "\u02bc OR \u02bc1\u02bc=\u02bc1 /*{m}*/",
    "\uff07 OR 1=1 --{m}",
    "' UNION SELECT NULL, current_user AS {m}, NULL--",
    "1 UNION ALL SELECT usename AS {m} FROM pg_user--",
    f"1); INSERT INTO {CANARY} VALUES (666, '{{m}}');--",
    f"'; UPDATE {CANARY} SET note = '{{m}}';--",
    "{m}'/**/OR/**/1=1#",
    "\\'; DROP TABLE " + CANARY + ";--{m}",
    '"{m}"; DROP TABLE ' + CANARY + ";--",
    "E'\\x27 OR 1=1 /*{m}*/",
    "%' OR 'a' LIKE '% /*{m}*/",
]
PAYLOADS = [t.format(m=f"{MARK}{n:02d}") for n, t in enumerate(PAYLOAD_TEMPLATES)]


def _cql2_text(payload: str, n: int) -> list[str]:
    """CQL2 text with the payload in a string literal, a property name and a function name."""
    literal = payload.replace("'", "''")
    quoted = payload.replace('"', '""')
    m = f"{MARK}c{n:02d}"
    return [
        f"PZNC = '{literal}'",
        f"\"{quoted}\" = 'x'",
        f"{payload} = 'x'",
        f"PZNC = '1060' OR {payload}",
        f"{m}(PZNC) = 'x'",
        f"pg_sleep(7.123) = 1 AND {m} = 1",
    ]


def _cql2_json(payload: str, n: int) -> list[str]:
    """CQL2 JSON with the payload as a value, a property, an operator and a function."""
    m = f"{MARK}j{n:02d}"
    exprs: list[Any] = [
        {"op": "=", "args": [{"property": "PZNC"}, payload]},
        {"op": "=", "args": [{"property": payload}, "x"]},
        {"op": payload, "args": [{"property": "PZNC"}, "x"]},
        {"op": "=", "args": [{"op": m, "args": [{"property": "PZNC"}]}, "x"]},
        {"op": "=", "args": [{"function": {"name": payload, "args": [7.123]}}, 1]},
        {"op": "=", "args": [{"op": "pg_sleep", "args": [7.123]}, {"property": m}]},
    ]
    return [json.dumps(e) for e in exprs]


CQL2_TEXT = [f for n, p in enumerate(PAYLOADS) for f in _cql2_text(p, n)]
CQL2_JSON = [f for n, p in enumerate(PAYLOADS) for f in _cql2_json(p, n)]

# What a 2xx answer may be: none (a 4xx is the only right answer), an empty list (features,
# changes, runs: the payload was a value nothing holds), an empty tile, or a geocoder's answer
# (the text is words to look up, which may match some).
REFUSED, NOTHING_FOUND, EMPTY_TILE, ANY_ANSWER = "refused", "nothing found", "empty tile", "any"


@dataclass(frozen=True)
class Target:
    """One place a payload goes: `{v}` in the path (percent-encoded) or in a query value."""

    method: str
    path: str
    params: dict[str, str]
    allowed: str = REFUSED
    values: tuple[str, ...] = ()  # those payloads instead of PAYLOADS (the CQL2 sets)

    def name(self) -> str:
        where = [k for k, v in self.params.items() if "{v}" in k + v]
        return f"{self.method} {self.path} [{where[0] if where else 'path'}]"


C = "/collections/{c}"
TILE = "14/8392/5469"  # a WebMercatorQuad tile over Saint-Gilles
XY = {"x": "4.3445", "y": "50.8316"}
SINCE = {"since": "2000-01-01T00:00:00Z"}
POINT_FEATURE = {"feature": "municipalities/21013"}


def _collection_paths() -> list[Target]:
    """Every operation under /collections/{collection_id}, the id being the payload."""
    base = C.format(c="{v}")
    return [
        Target("GET", base, {}),
        Target("GET", f"{base}/items", {}),
        Target("GET", f"{base}/items/1", {}),
        Target("GET", f"{base}/changes", SINCE),
        Target("GET", f"{base}/quarantine", {}),
        Target("GET", f"{base}/queryables", {}),
        Target("GET", f"{base}/schema", {}),
        Target("GET", f"{base}/within", {**XY, "distance": "100"}),
        Target("GET", f"{base}/nearest", XY),
        Target("GET", f"{base}/intersects", POINT_FEATURE),
        Target("GET", f"{base}/stats", {"by": "municipalities"}),
        Target("GET", f"{base}/tiles", {}),
        Target("GET", f"{base}/tiles/WebMercatorQuad", {}),
        Target("GET", f"{base}/tiles/WebMercatorQuad/tilejson.json", {}),
        Target("GET", f"{base}/tiles/WebMercatorQuad/{TILE}", {}),
    ]


ADDRESSES = C.format(c="addresses")
MUNICIPALITIES = C.format(c="municipalities")
ITEMS = f"{ADDRESSES}/items"
MVT = f"{ADDRESSES}/tiles/WebMercatorQuad/{TILE}"
DATASET_TILE = f"/tiles/WebMercatorQuad/{TILE}"
TERRAIN = "/coverages/terrain"
SQUARE = "4.34,50.83,4.35,50.84"

TARGETS = [
    *_collection_paths(),
    # feature ids
    Target("GET", f"{MUNICIPALITIES}/items/{{v}}", {}),
    Target("GET", f"{ADDRESSES}/items/{{v}}", {}),
    # property filters: the value, and the property's name
    Target("GET", ITEMS, {"PZNC": "{v}"}, NOTHING_FOUND),
    Target("GET", f"{MUNICIPALITIES}/items", {"NAT_CODE": "{v}"}, NOTHING_FOUND),
    Target("GET", ITEMS, {"{v}": "1"}),
    # sortby, properties
    Target("GET", ITEMS, {"sortby": "{v}"}),
    Target("GET", ITEMS, {"sortby": "-{v}"}),
    Target("GET", ITEMS, {"properties": "{v}"}),
    Target("GET", ITEMS, {"properties": "PZNC,{v}"}),
    Target("GET", f"{ADDRESSES}/items/1", {"properties": "{v}"}),
    Target("GET", MVT, {"properties": "{v}"}),
    # CQL2 text and JSON, on items and both kinds of tiles
    Target("GET", ITEMS, {"filter": "{v}", "filter-lang": "cql2-text"}, NOTHING_FOUND, CQL2_TEXT),
    Target("GET", ITEMS, {"filter": "{v}", "filter-lang": "cql2-json"}, NOTHING_FOUND, CQL2_JSON),
    Target("GET", MVT, {"filter": "{v}"}, EMPTY_TILE, CQL2_TEXT),
    Target("GET", MVT, {"filter": "{v}", "filter-lang": "cql2-json"}, EMPTY_TILE, CQL2_JSON),
    Target(
        "GET", DATASET_TILE, {"collections": "addresses", "filter": "{v}"}, EMPTY_TILE, CQL2_TEXT
    ),
    # every CRS parameter
    Target("GET", ITEMS, {"crs": "{v}"}),
    Target("GET", ITEMS, {"bbox": SQUARE, "bbox-crs": "{v}"}),
    Target(
        "GET", ITEMS, {"filter": "S_INTERSECTS(geometry, POINT(4.34 50.83))", "filter-crs": "{v}"}
    ),
    Target(
        "GET", MVT, {"filter": "S_INTERSECTS(geometry, POINT(4.34 50.83))", "filter-crs": "{v}"}
    ),
    Target("GET", f"{ADDRESSES}/items/1", {"crs": "{v}"}),
    Target("GET", "/lookup", {**XY, "crs": "{v}"}),
    Target("GET", f"{ADDRESSES}/within", {**XY, "distance": "100", "crs": "{v}"}),
    Target("GET", f"{ADDRESSES}/nearest", {**XY, "crs": "{v}"}),
    Target("GET", f"{ADDRESSES}/intersects", {**POINT_FEATURE, "crs": "{v}"}),
    Target("GET", "/geocode", {"q": "rue", "crs": "{v}"}),
    Target("GET", "/reverse", {**XY, "crs": "{v}"}),
    Target("GET", f"{TERRAIN}/point", {"x": "148000", "y": "170000", "crs": "{v}"}),
    # datetime
    Target("GET", ITEMS, {"datetime": "{v}"}),
    Target("GET", ITEMS, {"datetime": "2020-01-01T00:00:00Z/{v}"}),
    # the geocoder
    Target("GET", "/geocode", {"q": "{v}"}, ANY_ANSWER),
    Target("GET", "/geocode", {"q": "rue {v}"}, ANY_ANSWER),
    Target("GET", "/geocode", {"q": "rue", "collection": "{v}"}),
    Target("GET", "/reverse", {**XY, "collection": "{v}"}),
    # collections=
    Target("GET", "/lookup", {**XY, "collections": "{v}"}),
    Target("GET", "/lookup", {**XY, "collections": "addresses,{v}"}),
    Target("GET", DATASET_TILE, {"collections": "{v}"}),
    Target("GET", "/tiles/WebMercatorQuad", {"collections": "{v}"}),
    Target("GET", "/tiles/WebMercatorQuad/tilejson.json", {"collections": "{v}"}),
    # changes, intersects, stats
    Target("GET", f"{ADDRESSES}/changes", {**SINCE, "key": "{v}"}, NOTHING_FOUND),
    Target("GET", f"{ADDRESSES}/changes", {"since": "{v}"}),
    Target("GET", f"{ADDRESSES}/intersects", {"feature": "{v}"}),
    Target("GET", f"{ADDRESSES}/intersects", {"feature": "municipalities/{v}"}),
    Target("GET", f"{ADDRESSES}/intersects", {"feature": "{v}/21013"}),
    Target("GET", f"{ADDRESSES}/stats", {"by": "{v}"}),
    # tile matrix sets
    Target("GET", "/tileMatrixSets/{v}", {}),
    Target("GET", f"{ADDRESSES}/tiles/{{v}}", {}),
    # coverages: ids, the feature of stats, the collection of zonal
    Target("GET", "/coverages/{v}", {}),
    Target("GET", "/coverages/{v}/point", {"x": "148000", "y": "170000", "crs": "EPSG:31370"}),
    Target("POST", "/coverages/{v}/stats", POINT_FEATURE),
    Target("GET", "/coverages/{v}/tiles", {}),
    Target("GET", "/coverages/{v}/tiles/WebMercatorQuad/tilejson.json", {}),
    Target("GET", f"/coverages/{{v}}/tiles/WebMercatorQuad/{TILE}.png", {}),
    Target("POST", "/coverages/{v}/zonal", {"collection": "municipalities"}),
    Target("POST", f"{TERRAIN}/stats", {"feature": "{v}"}),
    Target("POST", f"{TERRAIN}/stats", {"feature": "municipalities/{v}"}),
    Target("POST", f"{TERRAIN}/zonal", {"collection": "{v}"}),
    Target("GET", f"{TERRAIN}/tiles/WebMercatorQuad/tilejson.json", {"colormap": "{v}"}),
    # jobs
    Target("GET", "/jobs/{v}", {}),
    Target("GET", "/jobs/{v}/results", {}),
    Target("DELETE", "/jobs/{v}", {}),
    # the admin API
    Target("POST", "/admin/sync/{v}", {}),
    Target("GET", "/admin/runs", {"layer": "{v}"}, NOTHING_FOUND),
    Target("GET", "/admin/runs/{v}", {}),
    Target("POST", "/admin/tiles/purge", {"layer": "{v}"}),
    Target("POST", "/admin/tiles/purge", {"bbox": SQUARE, "bbox-crs": "{v}"}),
]


# --- the database before and after -----------------------------------------------------------

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


def snapshot(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """What an injection could change: every table's rows counted, the relations, columns,
    functions, schemas and roles, and the canary's row."""
    tables = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p') AND n.nspname <> ALL(%s) ORDER BY 1, 2",
        (list(SYSTEM_SCHEMAS),),
    ).fetchall()
    counts = {
        f"{schema}.{name}": conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))
        ).fetchone()[0]  # type: ignore[index]
        for schema, name in tables
    }
    return {
        "counts": counts,
        "relations": conn.execute(
            "SELECT n.nspname, c.relname, c.relkind FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname <> ALL(%s) ORDER BY 1, 2",
            (list(SYSTEM_SCHEMAS),),
        ).fetchall(),
        "columns": conn.execute(
            "SELECT table_schema, table_name, column_name, data_type"
            " FROM information_schema.columns WHERE table_schema <> ALL(%s) ORDER BY 1, 2, 3",
            (list(SYSTEM_SCHEMAS),),
        ).fetchall(),
        "functions": conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname <> ALL(%s)",
            (list(SYSTEM_SCHEMAS),),
        ).fetchone(),
        "schemas": conn.execute("SELECT nspname FROM pg_namespace ORDER BY 1").fetchall(),
        "roles": conn.execute("SELECT rolname, rolsuper FROM pg_roles ORDER BY 1").fetchall(),
        "canary": conn.execute(
            sql.SQL("SELECT id, note FROM {} ORDER BY id").format(sql.Identifier("public", CANARY))
        ).fetchall(),
    }


def _server_log(conn: psycopg.Connection[Any]) -> Path | None:
    """The embedded test cluster's log file (pg_ctl -l, beside its data folder), if readable."""
    data = Path(str(conn.execute("SHOW data_directory").fetchone()[0]))  # type: ignore[index]
    log = data.parent / "server.log"
    return log if log.is_file() else None


@dataclass
class Database:
    url: str
    before: dict[str, Any]
    log: Path | None
    log_start: int  # the log's size when the server started: only what follows is ours
    statements: bool  # pg_stat_statements is there to read


@pytest.fixture(scope="module")
def database(coverage_database_url: str) -> Iterator[Database]:
    """The synced sample and rasters, a canary table, and every statement made visible."""
    with psycopg.connect(coverage_database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, note text NOT NULL)").format(
                sql.Identifier("public", CANARY)
            )
        )
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(sql.Identifier("public", CANARY)),
            CANARY_ROW,
        )
        name = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        # The server's sessions start after this: each of their statements goes to the log.
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET log_statement = 'all'").format(sql.Identifier(name))
        )
        statements = (
            conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'"
            ).fetchone()
            is not None
            and str(
                conn.execute("SHOW shared_preload_libraries").fetchone()[0]  # type: ignore[index]
            ).find("pg_stat_statements")
            >= 0
        )
        if statements:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        before = snapshot(conn)
        if statements:
            # What this database ran so far (the canary made, counted) is forgotten.
            conn.execute(
                "SELECT pg_stat_statements_reset(0, oid, 0) FROM pg_database"
                " WHERE datname = current_database()"
            )
        log = _server_log(conn)
        yield Database(
            coverage_database_url, before, log, log.stat().st_size if log else 0, statements
        )


@dataclass(frozen=True)
class Attempt:
    target: str
    payload: str
    status: int
    seconds: float
    problem: str  # what is wrong with the answer; empty when it is right


def _url(target: Target, value: str) -> tuple[str, dict[str, str]]:
    path = target.path.replace("{v}", quote(value, safe=""))
    params = {k.replace("{v}", value): v.replace("{v}", value) for k, v in target.params.items()}
    return path, params


def judge(target: Target, response: httpx.Response) -> str:
    """Why the answer is wrong for an injection attempt; empty when it is a refusal in the
    error model or a correct empty answer."""
    status, kind = response.status_code, response.headers.get("content-type", "")
    if 400 <= status < 500:
        if "json" not in kind:
            return f"a {status} that is not JSON ({kind}): {response.text[:120]!r}"
        body = response.json()
        if set(body) != {"status", "title", "detail"} or body["status"] != status:
            return f"a {status} outside the error model: {response.text[:200]}"
        return ""
    if status >= 500 or target.allowed == REFUSED:
        return f"answered {status}: {response.text[:200]}"
    if target.allowed == ANY_ANSWER:
        return ""
    if target.allowed == EMPTY_TILE:
        return (
            ""
            if status == 204 or not response.content
            else f"a tile of {len(response.content)} bytes"
        )
    body = response.json()
    rows = next((body[k] for k in ("features", "changes", "runs") if k in body), None)
    return "" if rows == [] else f"answered {status} with {str(rows)[:200]}"


@pytest.fixture(scope="module")
def attempts(database: Database, coverage_sources: CoverageSources) -> Iterator[list[Attempt]]:
    """Every payload in every target, against one server; the answers judged."""
    proc, base = start_server(
        database.url,
        URBIS_ADMIN_TOKEN=TOKEN,
        URBIS_CONFIG=str(coverage_sources.config),
    )
    calls = [(t, v) for t in TARGETS for v in (t.values or PAYLOADS)]
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    try:
        with httpx.Client(base_url=base, timeout=30, headers=headers) as client:

            def attempt(call: tuple[Target, str]) -> Attempt:
                target, value = call
                path, params = _url(target, value)
                started = time.monotonic()
                response = client.request(target.method, path, params=params)
                seconds = time.monotonic() - started
                return Attempt(
                    target.name(), value, response.status_code, seconds, judge(target, response)
                )

            with ThreadPoolExecutor(4) as pool:
                done = list(pool.map(attempt, calls))
        statuses = Counter(a.status for a in done)
        slowest = max(done, key=lambda a: a.seconds)
        print(
            f"\n{len(done)} attempts on {len(TARGETS)} targets;"
            f" statuses {dict(sorted(statuses.items()))};"
            f" slowest {slowest.seconds:.2f} s: {slowest.target} {slowest.payload!r}"
        )
        yield done
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _listed(bad: list[Attempt]) -> str:
    return "\n".join(f"{a.target} {a.payload!r}: {a.problem or a.seconds}" for a in bad[:40])


def test_every_attempt_is_refused_or_answered_empty(attempts):
    bad = [a for a in attempts if a.problem]
    assert not bad, f"{len(bad)} of {len(attempts)} attempts answered wrongly:\n{_listed(bad)}"


def test_no_attempt_is_slow(attempts):
    slow = [a for a in attempts if a.seconds >= ANSWER_BOUND]
    assert not slow, f"{len(slow)} attempts took {ANSWER_BOUND} s or more:\n{_listed(slow)}"


def executed_with_marker(conn: psycopg.Connection[Any]) -> list[str]:
    """The statements pg_stat_statements saw in this database that hold a marker of the run,
    name the canary or sleep: constants are `$n` there, identifiers and comments stay. (It
    keeps only statements that ran to their end: the log holds those refused.)"""
    rows = conn.execute(
        "SELECT query FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
        " WHERE d.datname = current_database()"
        " AND (query ILIKE %s OR query ILIKE %s OR query ILIKE %s)",
        (f"%{MARK}%", f"%{CANARY}%", "%pg_sleep%"),
    ).fetchall()
    return [str(r[0]) for r in rows]


# A log entry begins with the default log_line_prefix ('%m [%p] '): a timestamp and a pid.
LOG_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \[\d+\] ", re.MULTILINE)


def logged_with_marker(text: str) -> tuple[list[str], int]:
    """The log entries holding a marker other than as a bound value (`DETAIL:  parameters: $1
    = ...`): statements run, or refused (`STATEMENT:` after an error), with it in their text;
    and how many entries held one as a bound value."""
    entries = [e for e in LOG_ENTRY.split(text) if MARK in e]
    bound = [e for e in entries if e.startswith("DETAIL:  parameters:")]
    return [e.strip()[:300] for e in entries if e not in bound], len(bound)


@dataclass(frozen=True)
class Aftermath:
    """The database once every attempt was answered."""

    after: dict[str, Any]
    executed: list[str] | None  # None: no pg_stat_statements on this server
    logged: list[str] | None  # None: its log is not readable here
    bound: int  # log entries where a marker was a bound value


CONTROL_MARK = f"{MARK}control"
CONTROL = f"SELECT 1 AS {CONTROL_MARK}"  # a marker in SQL text: each detector must find it


@pytest.fixture(scope="module")
def aftermath(database: Database, attempts: list[Attempt]) -> Aftermath:
    with psycopg.connect(database.url, autocommit=True) as conn:
        conn.execute(CONTROL)
        executed = executed_with_marker(conn) if database.statements else None
        after = snapshot(conn)
    logged, bound = None, 0
    if database.log is not None:
        with database.log.open("rb") as log:
            log.seek(database.log_start)
            logged, bound = logged_with_marker(log.read().decode("utf-8", "replace"))
    return Aftermath(after, executed, logged, bound)


def test_the_canary_and_every_table_are_as_they_were(database, aftermath):
    assert aftermath.after["canary"] == [CANARY_ROW]
    for part, before in database.before.items():
        assert aftermath.after[part] == before, part


def test_no_payload_ran_as_sql(aftermath):
    if aftermath.executed is None:
        pytest.skip("pg_stat_statements is not loaded on this server (URBIS_TEST_ADMIN_URL)")
    found = [q for q in aftermath.executed if CONTROL_MARK not in q]
    assert not found, "\n".join(found)
    assert aftermath.executed, "pg_stat_statements would show one: the control is not there"


def test_no_payload_is_in_a_logged_statement(aftermath):
    if aftermath.logged is None:
        pytest.skip("the server's log is not readable here (URBIS_TEST_ADMIN_URL)")
    found = [e for e in aftermath.logged if CONTROL_MARK not in e]
    assert not found, "\n".join(found)
    assert aftermath.logged, "the log would show one: the control is not there"
    # Values did reach the database, bound: the log is the API's, with log_statement on.
    assert aftermath.bound > 100


def test_the_snapshot_would_see_the_canary_touched(database, aftermath):
    """Run after the aftermath was taken (it waits for it): changes rolled back."""
    with psycopg.connect(database.url) as conn:
        conn.execute(sql.SQL("UPDATE {} SET note = 'sung'").format(sql.Identifier(CANARY)))
        conn.execute(sql.SQL("CREATE TABLE {} ()").format(sql.Identifier(f"{MARK}table")))
        touched = snapshot(conn)
        conn.rollback()
    assert touched["canary"] != [CANARY_ROW]
    assert touched["relations"] != database.before["relations"]
