"""Low-zoom tiles drawn ahead into the cache, at start and again after each sync's change."""

from __future__ import annotations

import math
import time
from pathlib import Path

import httpx
import mapbox_vector_tile
import pytest

from tests.api.conftest import start_server, sync_file_layer
from tests.support.layers import file_layer, geojson_feature, point

pytestmark = pytest.mark.api

BARRIERE = (4.3440, 50.8330)  # lon, lat of the sample addresses


def mercator_tile(z: int, lon: float, lat: float) -> tuple[int, int]:
    n = 2**z
    phi = math.radians(lat)
    return (
        int((lon + 180) / 360 * n),
        int((1 - math.log(math.tan(phi) + 1 / math.cos(phi)) / math.pi) / 2 * n),
    )


def settled(client: httpx.Client, drawn_before: int = -1) -> int:
    """Wait until the API has drawn what it draws ahead; how many tiles it drew so far."""
    deadline = time.monotonic() + 60
    while True:
        state = client.get("/healthz").json()["low_zoom_tiles"]
        if not state["drawing"] and state["drawn_ahead"] > drawn_before:
            return int(state["drawn_ahead"])
        assert time.monotonic() < deadline, state
        time.sleep(0.1)


def point_layer(folder: Path, x: float, y: float) -> Path:
    return file_layer(folder, "spot", "SID", [geojson_feature({"SID": "s1"}, point(x, y))])


def test_low_zoom_tiles_are_drawn_ahead_and_again_after_a_change(synced_database_url, tmp_path):
    server, base = start_server(synced_database_url, URBIS_TILE_WARM_ZOOM="11")
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            drawn = settled(client)
            assert drawn > 0
            x10, y10 = mercator_tile(10, *BARRIERE)
            low = [
                f"/collections/municipalities/tiles/WebMercatorQuad/10/{x10}/{y10}",
                f"/tiles/WebMercatorQuad/10/{x10}/{y10}",
                f"/collections/addresses/tiles/WebMercatorQuad/11/"
                f"{mercator_tile(11, *BARRIERE)[0]}/{mercator_tile(11, *BARRIERE)[1]}",
                # Lambert 72 zoom 2: 75 km tiles (1 px = 293 m), Brussels in column 2, row 1
                "/collections/municipalities/tiles/BelgianLambert72/2/2/1",
            ]
            for path in low:
                response = client.get(path)
                assert response.status_code in (200, 204), path
                assert response.headers["x-tile-cache"] == "hit", path
            every = mapbox_vector_tile.decode(client.get(low[1]).content)
            assert len(every["municipalities"]["features"]) == 19
            x12, y12 = mercator_tile(12, *BARRIERE)
            high = client.get(f"/collections/municipalities/tiles/WebMercatorQuad/12/{x12}/{y12}")
            assert high.headers["x-tile-cache"] == "miss"  # not a low zoom: drawn when asked

            # a new layer: its low zooms, and those of every layer together, are drawn again
            sync_file_layer(synced_database_url, point_layer(tmp_path, 148384.0, 169116.0), "spot")
            settled(client, drawn)
            spot = client.get(f"/collections/spot/tiles/WebMercatorQuad/10/{x10}/{y10}")
            assert spot.headers["x-tile-cache"] == "hit"
            assert len(mapbox_vector_tile.decode(spot.content)["spot"]["features"]) == 1
            together = client.get(low[1])
            assert together.headers["x-tile-cache"] == "hit"
            assert "spot" in mapbox_vector_tile.decode(together.content)
    finally:
        server.terminate()
        server.wait(timeout=10)
