"""The API benchmark's pure helpers: statistics, the request plan, the cross-server checks."""

from __future__ import annotations

import random
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from bench.api_bench import (
    PAGE,
    Answer,
    Request,
    adapt_params,
    as_clients,
    compare_answers,
    cpu_per_request,
    cql,
    first_pages,
    lambert_envelopes,
    latency_summary,
    paging_sessions,
    parse_answer,
    percentile,
    random_offsets,
    ratio,
    shuffled,
    square_bbox_crs84,
    targets_met,
)
from bench.api_peers import pygeoapi_config


def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(list(map(float, range(1, 101))), 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_latency_summary_is_in_milliseconds() -> None:
    summary = latency_summary([0.010, 0.020, 0.030])
    assert summary == {
        "p50_ms": 20.0,
        "p95_ms": pytest.approx(29.0),
        "p99_ms": pytest.approx(29.8),
        "mean_ms": 20.0,
        "n": 3,
    }


def test_ratio_is_ours_over_peer_and_none_without_a_peer_figure() -> None:
    assert ratio(30.0, 10.0) == 3.0
    assert ratio(10.0, 3.0) == 3.33
    assert ratio(10.0, 0.0) is None
    assert ratio(None, 5.0) is None


def test_targets_compare_each_ratio_with_the_issue_targets() -> None:
    met = targets_met(
        {
            "bbox": {"ours/tipg": 2.5, "ours/pygeoapi": 9.0},
            "cql2_filter": {"ours/tipg": None, "ours/pygeoapi": 12.0},
        }
    )
    assert met == {
        "bbox": {"ours/tipg >= 2": True, "ours/pygeoapi >= 10": False},
        "cql2_filter": {"ours/tipg >= 2": None, "ours/pygeoapi >= 10": True},
    }


def test_cpu_per_request_is_the_difference_in_milliseconds_per_answer() -> None:
    # 2.6 s of busy CPU in 2 s, 2.6 s of it ours: nothing else ran
    assert cpu_per_request((1.0, 10.0, 0.5, 50.0), (1.5, 12.0, 0.6, 52.6), 100, 2.0) == {
        "server_cpu_ms_per_request": 5.0,
        "postgres_cpu_ms_per_request": 20.0,
        "client_cpu_ms_per_request": 1.0,
        "other_processes_cores": 0.0,
    }
    # another process kept one core busy
    assert (
        cpu_per_request((1.0, 10.0, 0.5, 50.0), (1.5, 12.0, 0.6, 54.6), 100, 2.0)[
            "other_processes_cores"
        ]
        == 1.0
    )
    assert cpu_per_request((0.0,) * 4, (1.0,) * 4, 0, 1.0)["server_cpu_ms_per_request"] is None


def test_square_bbox_is_about_the_asked_size_around_the_centre() -> None:
    minx, miny, maxx, maxy = square_bbox_crs84(4.35, 50.85, 300.0)
    assert (minx + maxx) / 2 == pytest.approx(4.35, abs=1e-6)
    assert (miny + maxy) / 2 == pytest.approx(50.85, abs=1e-6)
    # a degree of latitude is ~111.2 km; of longitude, that times cos(latitude)
    assert (maxy - miny) * 111_195 == pytest.approx(300.0, rel=1e-3)
    assert (maxx - minx) * 111_195 * 0.6307 == pytest.approx(300.0, rel=2e-3)


def test_the_peers_bbox_rules_give_lambert_rectangles_around_the_bbox() -> None:
    bbox = square_bbox_crs84(4.35, 50.85, 300.0)
    rules = lambert_envelopes(bbox)
    for envelope in rules.values():
        x0, y0, x1, y1 = envelope
        assert 100_000 < x0 < x1 < 200_000 and 150_000 < y0 < y1 < 200_000
        assert x1 - x0 == pytest.approx(300.0, rel=0.01)
    # transform_bounds encloses the whole transformed bbox: never smaller than two corners
    tipg, pygeoapi = rules["tipg"], rules["pygeoapi"]
    assert tipg[0] <= pygeoapi[0] and tipg[1] <= pygeoapi[1]
    assert tipg[2] >= pygeoapi[2] and tipg[3] >= pygeoapi[3]


def test_offsets_page_from_the_start_and_jump_inside_the_layer() -> None:
    assert first_pages(3) == [0, PAGE, 2 * PAGE]
    offsets = random_offsets(random.Random(1), 50_000, 20)
    assert offsets == random_offsets(random.Random(1), 50_000, 20)  # deterministic
    assert len(offsets) == 20 and all(0 <= o < 50_000 - PAGE for o in offsets)


def test_shuffled_is_a_fixed_permutation() -> None:
    requests = [cql("AREA > 100", offset=o) for o in first_pages(10)]
    assert shuffled(requests, 7) == shuffled(requests, 7)
    assert sorted(r.params["offset"] for r in shuffled(requests, 7)) == first_pages(10)


def test_a_paging_session_reads_the_first_pages_a_filter_has() -> None:
    sessions = paging_sessions(
        [("AREA > 100", 32_819), ("CAPAKEY LIKE '21009B%'", 2_500), ("AREA > 300", 12)], pages=5
    )
    assert [[r.params["offset"] for r in s] for s in sessions] == [
        first_pages(5),
        first_pages(2),
        [0],
    ]
    assert {r.params["filter"] for r in sessions[1]} == {"CAPAKEY LIKE '21009B%'"}


def test_clients_page_side_by_side_through_their_own_filter() -> None:
    sessions = paging_sessions([("A", 3000), ("B", 1000), ("C", 2000)], pages=5)
    order = [(r.params["filter"], r.params["offset"]) for r in as_clients(sessions, 2)]
    assert order == [("A", 0), ("B", 0), ("A", 1000), ("A", 2000), ("C", 0), ("C", 1000)]


def test_pygeoapi_gets_the_filter_without_the_cql2_language_name() -> None:
    params = cql("AREA > 100", offset=0).params
    assert params["filter-lang"] == "cql2-text"
    assert "filter-lang" not in adapt_params("pygeoapi", params)
    assert adapt_params("tipg", params) == params == adapt_params("ours", params)


def test_request_url_names_the_servers_collection() -> None:
    request = Request("/collections/{collection}/items", {"limit": 1000, "bbox": "1,2,3,4"})
    url = request.url("http://127.0.0.1:9", "tipg", "urbis.buildings")
    parts = urlsplit(url)
    assert parts.path == "/collections/urbis.buildings/items"
    assert parse_qs(parts.query) == {"limit": ["1000"], "bbox": ["1,2,3,4"]}


def test_answers_parse_counts_and_ids() -> None:
    body = b'{"numberMatched": 5, "features": [{"id": "b"}, {"id": "a"}]}'
    assert parse_answer(200, body) == Answer(200, 5, 2, ("a", "b"))
    assert parse_answer(500, b"oops").row() == ["HTTP 500"]


def test_compare_answers_flags_count_and_id_differences() -> None:
    same = compare_answers(
        {"ours": Answer(200, 2, 2, ("a", "b")), "tipg": Answer(200, 2, 2, ("a", "b"))}
    )
    assert same == {"ours": [2, 2], "tipg": [2, 2], "same": True}
    differ = compare_answers(
        {
            "ours": Answer(200, 2, 2, ("a", "b")),
            "tipg": Answer(200, 3, 3, ("a", "b", "c")),
            "pygeoapi": Answer(500),
        }
    )
    assert differ["same"] is False
    assert differ["ids_only_tipg"] == 1 and differ["ids_only_ours_vs_tipg"] == 0
    assert differ["pygeoapi"] == ["HTTP 500"]


def test_pygeoapi_config_serves_the_buildings_table_in_its_storage_crs() -> None:
    url = "postgresql://postgres:s%40cret@127.0.0.1:5999/api_bench"
    doc = yaml.safe_load(pygeoapi_config(url, 8123, ["INSPIRE_ID", "AREA"]))
    provider = doc["resources"]["buildings"]["providers"][0]
    assert provider["data"] == {
        "host": "127.0.0.1",
        "port": 5999,
        "dbname": "api_bench",
        "user": "postgres",
        "password": "s@cret",
        "search_path": ["urbis"],
    }
    assert provider["table"] == "buildings" and provider["id_field"] == "INSPIRE_ID"
    assert provider["storage_crs"].endswith("/EPSG/0/31370")
    assert doc["server"]["limits"]["max_items"] >= PAGE
    assert doc["server"]["url"] == "http://127.0.0.1:8123"
