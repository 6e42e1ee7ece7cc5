"""The small-answer benchmark's pure helpers: filters, boxes, URLs per server, the breakdown."""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qs, urlsplit

import pytest

from bench.request_breakdown import (
    NO_FRAME,
    OTHER,
    access_ms,
    explain_blocks,
    parse_collapsed,
    phase_of,
    phase_table,
    statement_kind,
)
from bench.small_answers import (
    Ask,
    cold_summary,
    lambert_square,
    parse_small_answer,
    range_filters,
    threshold_for_share,
)

EPSG_31370 = "http://www.opengis.net/def/crs/EPSG/0/31370"


def test_threshold_for_share_picks_the_nearest_share_and_counts_it() -> None:
    areas = [(10, 50), (20, 30), (30, 15), (40, 5)]  # 100 buildings
    assert threshold_for_share(areas, 0.05) == (30, 5)
    assert threshold_for_share(areas, 0.2) == (20, 20)
    assert threshold_for_share(areas, 0.6) == (10, 50)
    with pytest.raises(ValueError):
        threshold_for_share([], 0.1)


def test_range_filters_are_distinct_and_never_bound_below_the_top() -> None:
    filters = range_filters(120, 400, 3)
    assert filters == [
        "AREA > 120 AND AREA < 401",
        "AREA > 120 AND AREA < 402",
        "AREA > 120 AND AREA < 403",
    ]


def test_lambert_square_is_centred_and_rounded_to_the_centimetre() -> None:
    assert lambert_square(150000.123, 170000.0, 300.0) == (149850.12, 169850.0, 150150.12, 170150.0)


def test_ask_urls_per_server() -> None:
    key = "https://databrussels.be/id/building/7"
    feature = Ask({}, key)
    assert feature.url("http://h", "ours", "buildings") == (
        "http://h/collections/buildings/items/https%3A%2F%2Fdatabrussels.be%2Fid%2Fbuilding%2F7"
    )
    tipg = feature.url("http://h", "tipg", "urbis.buildings")
    assert tipg is not None
    assert urlsplit(tipg).path == "/collections/urbis.buildings/items"
    assert parse_qs(urlsplit(tipg).query) == {"ids": [key]}
    lambert = Ask({"bbox": "1,2,3,4", "bbox-crs": EPSG_31370}, None, True)
    assert lambert.url("http://h", "tipg", "urbis.buildings") is None
    assert "bbox-crs=" in (lambert.url("http://h", "pygeoapi", "buildings") or "")
    cql = Ask({"limit": 100, "filter": "AREA > 3", "filter-lang": "cql2-text"})
    assert "filter-lang" not in (cql.url("http://h", "pygeoapi", "buildings") or "")
    assert "filter-lang=cql2-text" in (cql.url("http://h", "tipg", "urbis.buildings") or "")


def test_parse_small_answer_reads_a_feature_as_a_page_of_one() -> None:
    one = parse_small_answer(200, b'{"type": "Feature", "id": "k1", "properties": {}}')
    assert (one.matched, one.returned, one.ids) == (1, 1, ("k1",))
    page = parse_small_answer(
        200, b'{"type": "FeatureCollection", "numberMatched": 9, "features": [{"id": 2}]}'
    )
    assert (page.matched, page.returned, page.ids) == (9, 1, ("2",))
    assert parse_small_answer(500, b"oops").status == 500


def test_cold_summary() -> None:
    assert cold_summary(0.1, [0.01, 0.02, 0.03]) == {
        "first_ms": 100.0,
        "next_median_ms": 20.0,
        "first_over_next": 5.0,
    }


def test_parse_collapsed_keeps_python_frames_and_counts() -> None:
    text = (
        'process 12:"urbis serve";thread (0x7f);run (uvicorn/main.py:10);'
        "compile (sqlalchemy/sql/compiler.py:99) 7\n"
        "thread (0x7f);run (uvicorn/main.py:10) 3\n"
        "garbage line\n"
    )
    stacks = parse_collapsed(text)
    assert stacks == Counter(
        {
            ("run (uvicorn/main.py:10)", "compile (sqlalchemy/sql/compiler.py:99)"): 7,
            ("run (uvicorn/main.py:10)",): 3,
        }
    )


def test_phase_of_takes_the_innermost_named_frame_and_the_count_by_any_frame() -> None:
    route = "items (geoapi/routes/collections.py:443)"
    fetch = "fetch_items (geoapi/features.py:370)"
    compile_ = "process (sqlalchemy/sql/compiler.py:9)"
    assert str(phase_of(("run (uvicorn/x.py:1)", route, fetch, compile_))).startswith("SQL")
    assert str(phase_of(("run (uvicorn/x.py:1)", route, "dumps (json/__init__.py:1)"))).startswith(
        "encoding"
    )
    assert str(phase_of(("run (uvicorn/x.py:1)", "helper (typing.py:3)"))).startswith("HTTP")
    counted = ("run (uvicorn/x.py:1)", route, "_matched (geoapi/features.py:1)", compile_)
    assert str(phase_of(counted)).startswith("count")
    assert phase_of(("x (somewhere.py:1)",)) == OTHER
    assert phase_of(()) == NO_FRAME
    ending = ("x (uvicorn/x.py:1)", "Budgets._end (geoapi/budgets.py:174)", "send (psycopg/c.py:1)")
    assert str(phase_of(ending)).startswith("connection checkout and transaction")
    waiting = (
        "run (anyio/_backends/_asyncio.py:1)",
        "get (queue.py:171)",
        "wait (threading.py:327)",
    )
    assert phase_of(waiting) is None
    assert phase_of(("x (asyncio/selector_events.py:9)",)) == "event loop (asyncio scheduling)"
    sending = ("send (uvicorn/h11_impl.py:1)", "_SelectorSocketTransport.write (asyncio/s.py:1)")
    assert str(phase_of(sending)).startswith("HTTP server")


def test_statement_kind() -> None:
    assert statement_kind("BEGIN") == "transaction begin/end"
    assert statement_kind("SELECT set_config($1, $2, true)") == "per-request settings (set_config)"
    assert statement_kind("SELECT x FROM urbis_meta.layer_catalog WHERE id = $1") == (
        "catalog lookup"
    )
    assert statement_kind('SELECT count(*) AS count_1 FROM urbis.buildings WHERE "AREA" > $1') == (
        "count"
    )
    assert statement_kind("SELECT CAST(json_build_object($1, ...) AS TEXT)") == "page / feature"
    assert statement_kind(
        "SELECT CAST(json_build_object($1, ...) AS TEXT), (SELECT count(*) FROM urbis.b) AS n"
    ) == ("page / feature")
    assert statement_kind("SELECT $1") == "pool pre-ping"


def test_phase_table_splits_server_cpu_by_samples_and_adds_postgres() -> None:
    rows = phase_table(Counter({"a": 3, "b": 1}), 4.0, {"page, execution": 1.0}, 1.5)
    assert [(r["phase"], r["ms"], r["percent"]) for r in rows] == [
        ("server: a", 3.0, 54.5),
        ("server: b", 1.0, 18.2),
        ("PostgreSQL: page, execution", 1.0, 18.2),
        ("PostgreSQL: rest of its CPU (parse, bind, protocol, per-statement overhead)", 0.5, 9.1),
    ]
    # statements timed under load (waiting for a core) beyond PostgreSQL's CPU: scaled to it
    busy = phase_table(Counter({"a": 1}), 1.0, {"x": 2.0, "y": 2.0}, 2.0)
    assert [r["ms"] for r in busy] == [1.0, 1.0, 1.0, 0.0]


def test_explain_blocks_reads_auto_explain_entries() -> None:
    log = (
        "2026-12-07 LOG:  duration: 0.5 ms  plan:\n"
        "\tQuery Text: SELECT 1\n"
        "\tResult  (actual time=0.001..0.001 rows=1 loops=1)\n"
        "2026-12-07 LOG:  checkpoint starting\n"
        "2026-12-07 LOG:  duration: 1.5 ms  plan:\n"
        "\tQuery Text: SELECT 2\n"
    )
    blocks = explain_blocks(log)
    assert len(blocks) == 2
    assert blocks[0].endswith("rows=1 loops=1)")
    assert "checkpoint" not in blocks[0]
    assert "SELECT 2" in blocks[1]


def test_access_ms_reads_ours_access_lines() -> None:
    log = (
        "2026-12-07 18:29:50,1 INFO geoapi.access [abc] GET /collections/b/items 200 3.4 ms\n"
        "2026-12-07 18:29:50,2 INFO geoapi.access [abd] GET /readyz 503 1.0 ms\n"
        "2026-12-07 18:29:50,3 INFO geoapi.access [abe] GET /collections/b/items/k 200 12.0 ms\n"
    )
    assert access_ms(log) == [3.4, 12.0]
