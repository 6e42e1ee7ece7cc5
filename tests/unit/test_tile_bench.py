"""The tile benchmark's pure helpers: the request list, the summaries, the comparison."""

from __future__ import annotations

from pathlib import Path

import yaml

from bench.tile_bench import (
    LAYERS,
    ServerTiles,
    TileAsk,
    collection_id,
    comparison,
    layer_config,
    low_zoom_summary,
    requests_for,
)


def test_each_tile_is_asked_for_each_layer_in_one_fixed_shuffled_order() -> None:
    tiles = [(12, 2100, 1370), (16, 33610, 21930), (10, 525, 342)]
    asks = requests_for(tiles, seed=1)
    assert sorted((a.z, a.x, a.y, a.layer) for a in asks) == sorted(
        (z, x, y, layer) for z, x, y in tiles for layer in LAYERS
    )
    assert asks == requests_for(tiles, seed=1)
    assert asks != requests_for(tiles, seed=2)


def test_both_servers_get_the_same_tile_under_their_own_collection_id() -> None:
    ask = TileAsk("buildings", 14, 8400, 5480)
    assert (
        ask.path(collection_id("ours", "buildings"))
        == "/collections/buildings/tiles/WebMercatorQuad/14/8400/5480"
    )
    assert (
        ask.path(collection_id("tipg", "buildings"))
        == "/collections/urbis.buildings/tiles/WebMercatorQuad/14/8400/5480"
    )


def test_low_zoom_summary_takes_the_largest_tile_and_the_total_time() -> None:
    rows = [
        {"status": 200, "bytes": 300_000, "ms": 400.0},
        {"status": 204, "bytes": 0, "ms": 10.0},
        {"status": 500, "bytes": 50, "ms": 1.0},
    ]
    summary = low_zoom_summary(rows)
    assert (summary["tiles"], summary["answered"]) == (3, 2)
    assert summary["max_bytes"] == 300_000
    assert summary["total_ms"] == 410.0


def test_comparison_reads_each_servers_layer_whatever_tipg_names_it() -> None:
    same = TileAsk("buildings", 17, 1, 2)
    other = TileAsk("street_axes", 16, 3, 4)
    runs = {
        "ours": ServerTiles({}, {}, {same: {"buildings": 40}, other: {"street_axes": 3}}),
        "tipg": ServerTiles({}, {}, {same: {"urbis.buildings": 40}, other: {}}),
    }
    result = comparison(runs)
    assert (result["compared"], result["same_count"]) == (2, 1)
    assert result["tiles"][1] == {
        "layer": "street_axes",
        "tile": "16/3/4",
        "ours": 3,
        "tipg": 0,
        "same": False,
    }


def test_layer_config_loads_both_layers_by_their_key(tmp_path: Path) -> None:
    config = yaml.safe_load(layer_config(tmp_path, tmp_path / "city.gpkg").read_text())
    assert list(config["layers"]) == list(LAYERS)
    assert config["layers"]["street_axes"]["source"]["layer"] == "StreetAxes"
    assert all(layer["key"] == "INSPIRE_ID" for layer in config["layers"].values())
