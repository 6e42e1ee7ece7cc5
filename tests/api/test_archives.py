"""Seeded archives served by the API: the same tiles as live, frozen at seeding time."""

from __future__ import annotations

import httpx
import mapbox_vector_tile
import pytest

from tests.api.conftest import assert_problem, start_server
from tiles.seed import run_seed
from tiles.seed_request import seed_request

pytestmark = pytest.mark.api


def content(tile: bytes) -> dict[str, list]:
    """A tile's layers and features, the features in id order (PostgreSQL may draw them in
    another order from one query to the next)."""
    return {
        name: sorted((f["id"], repr(f)) for f in layer["features"])
        for name, layer in mapbox_vector_tile.decode(tile).items()
    }


@pytest.fixture(scope="module")
def archived(synced_database_url, tmp_path_factory):
    folder = tmp_path_factory.mktemp("archives")
    for out in ("muni.pmtiles", "muni-l72.mbtiles"):
        tms = "WebMercatorQuad" if out.endswith("pmtiles") else "BelgianLambert72"
        zooms = "10-12" if tms == "WebMercatorQuad" else "8-9"
        run_seed(synced_database_url, seed_request(folder / out, tms, zooms, "municipalities"))
    server, base = start_server(
        synced_database_url,
        URBIS_TILE_ARCHIVES=f"{folder / 'muni.pmtiles'},{folder / 'muni-l72.mbtiles'}",
    )
    yield base
    server.terminate()
    server.wait(timeout=10)


def test_archives_are_listed_with_their_tilejson(archived):
    listed = httpx.get(f"{archived}/archives").json()["archives"]
    assert {a["name"]: a["tileMatrixSet"] for a in listed} == {
        "muni": "WebMercatorQuad",
        "muni-l72": "BelgianLambert72",
    }
    tilejson = httpx.get(f"{archived}/archives/muni/tilejson.json").json()
    assert (tilejson["minzoom"], tilejson["maxzoom"]) == (10, 12)
    assert [v["id"] for v in tilejson["vector_layers"]] == [
        "municipalities",
        "municipalities_labels",
    ]


@pytest.mark.parametrize(
    ("name", "tms", "tile"),
    [
        ("muni", "WebMercatorQuad", (11, 1048, 686)),
        ("muni-l72", "BelgianLambert72", (9, 236, 242)),
    ],
)
def test_archived_tiles_equal_the_live_ones(archived, name, tms, tile):
    z, x, y = tile
    stored = httpx.get(f"{archived}/archives/{name}/{z}/{x}/{y}")
    live = httpx.get(f"{archived}/collections/municipalities/tiles/{tms}/{z}/{x}/{y}")
    assert stored.status_code == live.status_code == 200
    assert stored.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert content(stored.content) == content(live.content)
    again = httpx.get(
        f"{archived}/archives/{name}/{z}/{x}/{y}", headers={"If-None-Match": stored.headers["etag"]}
    )
    assert again.status_code == 304


def test_archive_gaps_and_mistakes(archived):
    assert httpx.get(f"{archived}/archives/muni/12/0/0").status_code == 204
    assert_problem(httpx.get(f"{archived}/archives/muni/12/4096/0"), 404, "columns run")
    assert_problem(httpx.get(f"{archived}/archives/nowhere/12/0/0"), 404, "muni")
