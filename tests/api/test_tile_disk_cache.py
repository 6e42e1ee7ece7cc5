"""The tile cache's disk tier: tiles survive a restart; changes made meanwhile are dropped."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.api.conftest import lambert_tile, start_server, sync_file_layer
from tests.support.layers import file_layer, geojson_feature, point

pytestmark = pytest.mark.api

BARRIERE, UCCLE = (148384.0, 169116.0), (148000.0, 163000.0)


def tile_path(xy: tuple[float, float]) -> str:
    return "/collections/stored/tiles/BelgianLambert72/10/{}/{}".format(  # 278 m tiles
        *lambert_tile(10, *xy)
    )


def sync_points(database_url: str, folder: Path, points: dict[str, tuple[float, float]]) -> None:
    features = (geojson_feature({"SID": key}, point(*xy)) for key, xy in points.items())
    config = file_layer(folder, "stored", "SID", features)
    sync_file_layer(database_url, config, "stored")


def get(base: str, path: str) -> httpx.Response:
    response = httpx.get(base + path, timeout=30)
    assert response.status_code == 200, response.text
    return response


def test_tiles_survive_a_restart_and_changes_made_meanwhile_are_dropped(
    synced_database_url, tmp_path
):
    cache_dir = tmp_path / "tile-cache"
    sync_points(synced_database_url, tmp_path, {"a": BARRIERE, "b": UCCLE})
    near, far = tile_path(BARRIERE), tile_path(UCCLE)

    server, base = start_server(synced_database_url, URBIS_TILE_CACHE_DIR=str(cache_dir))
    try:
        first = {path: get(base, path) for path in (near, far)}
        assert {r.headers["x-tile-cache"] for r in first.values()} == {"miss"}
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert len(list(cache_dir.rglob("*.mvt"))) == 2

    # while no API listens, point a moves (inside its tile): the near tile is stale on disk
    sync_points(synced_database_url, tmp_path, {"a": (BARRIERE[0] + 30, BARRIERE[1]), "b": UCCLE})
    server, base = start_server(synced_database_url, URBIS_TILE_CACHE_DIR=str(cache_dir))
    try:
        untouched = get(base, far)
        assert untouched.headers["x-tile-cache"] == "hit"  # from disk, after a restart
        assert untouched.content == first[far].content
        changed = get(base, near)
        assert changed.headers["x-tile-cache"] == "miss"  # dropped on start from the change log
        assert changed.content != first[near].content
        assert get(base, near).headers["x-tile-cache"] == "hit"
    finally:
        server.terminate()
        server.wait(timeout=10)
