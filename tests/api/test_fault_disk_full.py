"""Fault: the disk fills up while a tile cache entry or a PMTiles archive is written.

Each test mounts a small tmpfs of its own (tests.support.small_disk) and fills it with a
file, so that the writes meet the kernel's real ENOSPC. What was stored before must stay
whole and readable, no temporary file may be left, and the error must say what happened:
the API still answers the tile (drawn from the database) and counts the failure; the CLI
exits non-zero naming the folder and the lack of space.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import subprocess
from pathlib import Path

import httpx
import mapbox_vector_tile
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import URBIS, server_log, start_server
from tests.support.small_disk import fill, small_disk, temporary_files
from tiles.archive import open_archive
from tiles.disk import DiskTier
from tiles.keys import CachedTile, TileKey
from tiles.seed import seed
from tiles.seed_progress import SeedProgress
from tiles.seed_request import SeedRequest
from tiles.tms import get_tms

pytestmark = pytest.mark.api

# Three tiles of Brussels' municipalities at z12 (WebMercatorQuad), each holding features.
TILES = [f"/collections/municipalities/tiles/WebMercatorQuad/12/{x}/1373" for x in (2096, 2097)]
TILES.append("/collections/municipalities/tiles/WebMercatorQuad/12/2097/1374")
SEED_ARGS = ("--collections", "municipalities,addresses", "--zooms", "12-13")


# --- the tile cache's disk tier ----------------------------------------------------------------


def test_a_full_disk_leaves_a_stored_tile_and_its_etag_as_they_were():
    key = TileKey(("municipalities",), "WebMercatorQuad", 12, 2097, 1373)
    with small_disk("256k") as folder:
        disk = DiskTier(folder / "cache")
        disk.write(key, CachedTile(b"old tile", '"old"'))
        disk.record_versions({"municipalities": 3})
        fill(folder)
        with pytest.raises(OSError) as full:
            disk.write(key, CachedTile(b"new tile " * 2000, '"new"'))
        assert full.value.errno == errno.ENOSPC
        assert disk.read(key) == CachedTile(b"old tile", '"old"')
        with contextlib.suppress(OSError):
            disk.record_versions({"municipalities": 4})
        assert temporary_files(folder) == []
        # the versions on disk are whole: the old ones or the new ones, never an empty file
        recorded = json.loads((folder / "cache" / "versions.json").read_text())
        assert recorded in ({"municipalities": 3}, {"municipalities": 4})
        assert DiskTier(folder / "cache").versions() == recorded


def scrape(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics", timeout=30).text
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def features_in(tile: bytes) -> int:
    return sum(len(layer["features"]) for layer in mapbox_vector_tile.decode(tile).values())


def test_the_api_answers_tiles_while_its_cache_disk_is_full(synced_database_url):
    with small_disk("4m") as folder:
        cache_dir = folder / "tiles"
        proc, base = start_server(synced_database_url, URBIS_TILE_CACHE_DIR=str(cache_dir))
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                first = client.get(TILES[0])
                assert first.status_code == 200 and first.headers["x-tile-cache"] == "miss"
                stored = list(cache_dir.rglob("*.mvt"))
                assert len(stored) == 1 and stored[0].read_bytes() == first.content
                before = scrape(base)["urbis_tile_cache_disk_write_errors_total"]

                filler = fill(folder)
                full = client.get(TILES[1])
                # drawn from the database and answered whole, only not kept on disk
                assert full.status_code == 200, full.text
                assert full.headers["x-tile-cache"] == "miss" and features_in(full.content) > 0
                assert client.get(TILES[2]).status_code == 200
                assert scrape(base)["urbis_tile_cache_disk_write_errors_total"] == before + 2
                assert list(cache_dir.rglob("*.mvt")) == stored
                assert stored[0].read_bytes() == first.content
                assert temporary_files(folder) == []
                # served from memory meanwhile; the tile stored before is still a hit
                assert client.get(TILES[1]).headers["x-tile-cache"] == "hit"
                log = server_log(proc)
                assert log.count(f"the tile cache cannot write to {cache_dir}") == 1, log
                assert "No space left on device" in log and "Traceback" not in log

                filler.unlink()  # space again: the next tile drawn is kept on disk
                again = client.get(TILES[1].replace("/1373", "/1372"))
                assert again.status_code == 200
                assert len(list(cache_dir.rglob("*.mvt"))) == 2
                assert "writes to its disk tier again" in server_log(proc)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


# --- a PMTiles archive ---------------------------------------------------------------------------


def urbis_seed(database_url: str, out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(URBIS), "tiles", "seed", *SEED_ARGS, "--out", str(out), *flags],
        env={**os.environ, "DATABASE_URL": database_url, "URBIS_LOG_FORMAT": "text"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def a_tile_of(archive: Path) -> bytes:
    with open_archive(archive) as opened:
        tile = opened.get(12, 2097, 1373)
    assert tile, "the archive lost its tiles"
    return tile


class StopAtTheLastTile(Exception):
    """Raised once every tile is drawn and kept: the work file is whole, no archive written."""


def draw_every_tile(database_url: str, out: Path) -> None:
    """A forced seed stopped after its last tile: its work file holds them all."""

    def on_progress(progress: SeedProgress) -> None:
        if progress.done == progress.total:
            raise StopAtTheLastTile

    request = SeedRequest(
        out=out,
        tms=get_tms("WebMercatorQuad"),
        zooms=range(12, 14),
        collections=("municipalities", "addresses"),
        force=True,
    )
    with pytest.raises(StopAtTheLastTile):
        asyncio.run(seed(database_url, request, on_progress))


def test_a_full_disk_while_seeding_keeps_the_previous_archive(synced_database_url):
    with small_disk("8m") as folder:
        out = folder / "brussels.pmtiles"
        work = out.with_name(out.name + ".seeding")
        done = urbis_seed(synced_database_url, out)
        assert done.returncode == 0, done.stderr
        previous = out.read_bytes()
        tile = a_tile_of(out)

        # the disk full before the first tile is kept: the forced run stops, the archive stays
        filler = fill(folder)
        refused = urbis_seed(synced_database_url, out, "--force")
        assert refused.returncode == 1, (refused.stdout, refused.stderr)
        assert f"no space left on device in {folder}" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
        assert out.read_bytes() == previous and a_tile_of(out) == tile
        assert temporary_files(folder) == []
        filler.unlink()
        work.unlink(missing_ok=True)
        for leftover in folder.glob(f"{work.name}-*"):  # sqlite's -wal and -shm beside it
            leftover.unlink()

        # every tile drawn, then the disk fills: the archive itself cannot be written
        draw_every_tile(synced_database_url, out)
        assert work.exists() and out.read_bytes() == previous
        filler = fill(folder, leave=len(previous) // 2)
        cut = urbis_seed(synced_database_url, out)
        assert cut.returncode == 1, (cut.stdout, cut.stderr)
        assert (
            f"no space left on device in {folder} while writing brussels.pmtiles: the "
            "previous archive is kept as it was" in cut.stderr
        ), cut.stderr
        assert out.read_bytes() == previous and a_tile_of(out) == tile
        assert temporary_files(folder) == [] and work.exists()

        # space again: the same command writes the archive from the tiles drawn
        filler.unlink()
        written = urbis_seed(synced_database_url, out)
        assert written.returncode == 0, written.stderr
        assert "from the interrupted run" in written.stdout
        assert not work.exists() and a_tile_of(out) == tile
