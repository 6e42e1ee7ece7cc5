"""`urbis tiles seed`: archives of the synced sample, read back with independent readers
(the `pmtiles` package, sqlite3, mapbox_vector_tile) and compared tile by tile with what the
API's renderer draws.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import sqlite3
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import mapbox_vector_tile
import psycopg
import pytest
import sqlalchemy as sa
from pmtiles.reader import MmapSource, Reader, all_tiles
from pmtiles.tile import Compression, TileType
from sqlalchemy.ext.asyncio import create_async_engine

from tests.api.conftest import URBIS
from tests.conftest import drop_database, synced_sample_database
from tiles.archive import open_archive
from tiles.mvt import DrawingMemory, TileRequest, render_tile
from tiles.seed import SeedResult, plan_tiles, seed
from tiles.seed_progress import SeedProgress
from tiles.seed_request import SeedRequest, parse_zooms, seed_request
from tiles.seed_work import WorkFile
from tiles.tms import get_tms
from urbis_core.bbox import parse_bbox
from urbis_core.catalog import LayerEntry, layer_catalog
from urbis_core.db import create_sync_engine, sqlalchemy_url
from urbis_core.errors import InvalidParameter, UrbisError

COLLECTIONS = ("municipalities", "addresses")
Tile = tuple[int, int, int]


@pytest.fixture(scope="module")
def sample_url(admin_url: str, synced_template_url: str) -> Iterator[str]:
    """A database holding the synced sample, shared by the module (seeding only reads it)."""
    name = f"seed_{uuid.uuid4().hex[:10]}"
    url = synced_sample_database(admin_url, synced_template_url, name)
    # With statistics, as in production: then a tile's rows may come in another order from
    # one connection to the next (custom or generic plan), so tiles are compared by content.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    yield url
    drop_database(admin_url, name)


def request_for(
    out: Path, zooms: range = range(12, 15), tms: str = "WebMercatorQuad", **options
) -> SeedRequest:
    return SeedRequest(out=out, tms=get_tms(tms), zooms=zooms, collections=COLLECTIONS, **options)


def run(url: str, request: SeedRequest, on_progress=None) -> SeedResult:
    return asyncio.run(seed(url, request, on_progress))


class PulledThePlug(Exception):
    """The test's interruption: raised from the progress callback mid-run."""


class Recorder:
    """A progress callback keeping the tiles each run rendered; raises after `stop_after`."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.tiles: list[Tile] = []
        self.stop_after = stop_after

    def __call__(self, progress: SeedProgress) -> None:
        assert progress.tile is not None
        self.tiles.append(progress.tile)
        if self.stop_after is not None and len(self.tiles) >= self.stop_after:
            raise PulledThePlug


def load_layers(url: str) -> list[LayerEntry]:
    engine = create_sync_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(layer_catalog)).all()
    engine.dispose()
    by_id = {row.id: LayerEntry.from_row(row) for row in rows}
    return [by_id[i] for i in COLLECTIONS]


def render_directly(url: str, tms_id: str, tiles: Iterable[Tile]) -> dict[Tile, bytes]:
    """What the API's renderer gives for these tiles, one by one."""
    layers = load_layers(url)

    async def render_all() -> dict[Tile, bytes]:
        engine = create_async_engine(sqlalchemy_url(url))
        memory = DrawingMemory()
        try:
            async with engine.connect() as conn:
                return {
                    t: await render_tile(conn, memory, layers, TileRequest(get_tms(tms_id), *t))
                    for t in tiles
                }
        finally:
            await engine.dispose()

    return asyncio.run(render_all())


def planned_tiles(url: str, request: SeedRequest) -> list[Tile]:
    plan = plan_tiles(request, load_layers(url))
    return [(z, x, y) for z in plan.zooms for x, y in plan.tiles(z)]


def content(mvt: bytes) -> list[tuple[str, list[str]]]:
    """What a tile holds, layer by layer in order, whatever order its features came in."""
    return [
        (name, sorted(json.dumps(f, sort_keys=True) for f in layer["features"]))
        for name, layer in mapbox_vector_tile.decode(mvt).items()
    ]


def contents(tiles: dict[Tile, bytes]) -> dict[Tile, list[tuple[str, list[str]]]]:
    return {t: content(data) for t, data in tiles.items() if data}


def pmtiles_content(path: Path) -> dict[Tile, bytes]:
    """Every tile of a PMTiles file, gunzipped, read by the pmtiles package itself."""
    with path.open("rb") as f:
        return {zxy: gzip.decompress(data) for zxy, data in all_tiles(MmapSource(f))}


@pytest.fixture(scope="module")
def full_pmtiles(sample_url: str, tmp_path_factory) -> tuple[Path, SeedResult]:
    out = tmp_path_factory.mktemp("seed") / "brussels.pmtiles"
    return out, run(sample_url, request_for(out))


# -- arguments ----------------------------------------------------------------------------------


def test_arguments_are_parsed_and_refused_with_the_option_named(tmp_path: Path):
    assert parse_zooms("10-16") == range(10, 17) and parse_zooms("14") == range(14, 15)
    assert parse_bbox("4.3,50.8,4.4,50.9", parameter="--bbox") == (4.3, 50.8, 4.4, 50.9)
    for bad, option in (
        ("16-10", "--zooms"),
        ("x", "--zooms"),
        ("4.4,50.8,4.3,50.9", "--bbox"),
        ("50.8,4.3,50.9", "--bbox"),
    ):
        with pytest.raises(InvalidParameter, match=option):
            if option == "--zooms":
                parse_zooms(bad)
            else:
                parse_bbox(bad, parameter="--bbox")
    with pytest.raises(InvalidParameter, match="PMTiles holds WebMercatorQuad tiles only"):
        seed_request(tmp_path / "a.pmtiles", "BelgianLambert72", "5-7")
    with pytest.raises(InvalidParameter, match=r"\.pmtiles or \.mbtiles"):
        seed_request(tmp_path / "a.zip", "WebMercatorQuad", "5-7")
    assert seed_request(tmp_path / "a.mbtiles", "BelgianLambert72", "5-7").format == "mbtiles"


# -- PMTiles --------------------------------------------------------------------------------------


def test_pmtiles_header_and_metadata_are_those_of_a_vector_tileset(full_pmtiles):
    out, result = full_pmtiles
    assert result.status == "complete" and 0 < result.tiles <= result.planned
    assert not out.with_name(out.name + ".seeding").exists()
    with out.open("rb") as f:
        reader = Reader(MmapSource(f))
        header, metadata = reader.header(), reader.metadata()
    assert header["tile_type"] == TileType.MVT
    assert header["tile_compression"] == Compression.GZIP
    assert (header["min_zoom"], header["max_zoom"]) == (12, 14)
    assert header["clustered"] and header["addressed_tiles_count"] == result.tiles
    west, south = header["min_lon_e7"] / 1e7, header["min_lat_e7"] / 1e7
    east, north = header["max_lon_e7"] / 1e7, header["max_lat_e7"] / 1e7
    assert 4.2 < west < east < 4.5 and 50.7 < south < north < 50.95  # Brussels
    assert west < header["center_lon_e7"] / 1e7 < east and header["center_zoom"] == 12
    assert [v["id"] for v in metadata["vector_layers"]][:1] == ["municipalities"]
    # Every MVT layer the tiles hold is described (label points included), and nothing else.
    in_tiles = {
        name for data in pmtiles_content(out).values() for name in mapbox_vector_tile.decode(data)
    }
    assert {v["id"] for v in metadata["vector_layers"]} == in_tiles >= set(COLLECTIONS)
    municipalities = metadata["vector_layers"][0]
    assert municipalities["fields"]["NAT_CODE"] in ("Integer", "String")
    assert municipalities["fields"]["NAME_FRE"] == "String"
    assert "UrbIS" in metadata["attribution"]


def test_pmtiles_holds_exactly_the_non_empty_tiles_the_renderer_draws(sample_url, full_pmtiles):
    out, result = full_pmtiles
    planned = planned_tiles(sample_url, request_for(out))
    assert len(planned) == result.planned
    expected = render_directly(sample_url, "WebMercatorQuad", planned)
    stored = pmtiles_content(out)
    assert contents(stored) == contents(expected)
    assert result.tiles == len(stored) and result.planned - result.tiles > 0  # empties left out

    # The tiles just outside the plan (a ring around it at its lowest zoom) are empty indeed.
    z = 12
    xs = [x for zz, x, _ in planned if zz == z]
    ys = [y for zz, _, y in planned if zz == z]
    ring = [
        (z, x, y)
        for x in range(min(xs) - 1, max(xs) + 2)
        for y in range(min(ys) - 1, max(ys) + 2)
        if (z, x, y) not in set(planned)
    ]
    assert not any(render_directly(sample_url, "WebMercatorQuad", ring).values())

    # And the archive's tiles decode: the Barrière de Saint-Gilles tile at z14 has both layers.
    with open_archive(out) as archive:
        data = archive.get(14, 8389, 5497)
        assert data is not None and archive.get(13, 0, 0) is None
        assert archive.metadata["minzoom"] == 12 and archive.metadata["format"] == "pbf"
    decoded = mapbox_vector_tile.decode(data)
    assert set(COLLECTIONS) <= set(decoded)
    assert len(decoded["addresses"]["features"]) > 100
    names = {f["properties"].get("NAME_FRE") for f in decoded["municipalities"]["features"]}
    assert "Saint-Gilles" in names


# -- MBTiles --------------------------------------------------------------------------------------


def test_mbtiles_in_belgian_lambert_72_with_rows_counted_from_the_bottom(
    sample_url, tmp_path: Path
):
    out = tmp_path / "brussels-l72.mbtiles"
    request = request_for(out, zooms=range(5, 7), tms="BelgianLambert72")
    result = run(sample_url, request)
    assert result.status == "complete"

    db = sqlite3.connect(out)
    meta = dict(db.execute("SELECT name, value FROM metadata"))
    rows = db.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles").fetchall()
    db.close()
    assert meta["format"] == "pbf" and meta["name"]
    assert (meta["minzoom"], meta["maxzoom"]) == ("5", "6")
    assert meta["tile_matrix_set"] == "BelgianLambert72" and meta["crs"] == "EPSG:31370"
    west, south, east, north = (float(v) for v in meta["bounds"].split(","))
    assert 4.2 < west < east < 4.5 and 50.7 < south < north < 50.95
    lon, lat, zoom = meta["center"].split(",")
    assert west < float(lon) < east and south < float(lat) < north and zoom == "6"
    layers = json.loads(meta["json"])["vector_layers"]
    assert {"municipalities", "addresses"} <= {v["id"] for v in layers}

    stored = {(z, x, 2**z - 1 - row): gzip.decompress(data) for z, x, row, data in rows}
    expected = render_directly(sample_url, "BelgianLambert72", planned_tiles(sample_url, request))
    assert contents(stored) == contents(expected)
    assert len(stored) == result.tiles
    with open_archive(out) as archive:
        z, x, y = next(iter(stored))
        assert archive.get(z, x, y) == stored[(z, x, y)]
        assert archive.metadata["vector_layers"] == layers


def test_mbtiles_in_web_mercator_matches_the_pmtiles(sample_url, full_pmtiles, tmp_path: Path):
    out = tmp_path / "brussels.mbtiles"
    assert run(sample_url, request_for(out, zooms=range(12, 14))).status == "complete"
    with open_archive(out) as archive:
        pmtiles = {t: data for t, data in pmtiles_content(full_pmtiles[0]).items() if t[0] < 14}
        assert contents({t: archive.get(*t) or b"" for t in pmtiles}) == contents(pmtiles)
        assert sqlite3.connect(out).execute("SELECT count(*) FROM tiles").fetchone()[0] == len(
            pmtiles
        )
        assert archive.metadata["tile_matrix_set"] == "WebMercatorQuad"


# -- the area -----------------------------------------------------------------------------------


def test_bbox_limits_the_tiles_to_the_area_asked(sample_url, tmp_path: Path):
    out = tmp_path / "barriere.pmtiles"
    bbox = (4.3435, 50.83, 4.347, 50.833)
    request = request_for(out, zooms=range(15, 17), bbox=bbox)
    result = run(sample_url, request)
    planned = planned_tiles(sample_url, request)
    assert result.planned == len(planned) <= 12  # a few tiles, not all of Brussels
    tms = get_tms("WebMercatorQuad")
    for z, x, y in planned:
        minx, miny, maxx, maxy = tms.bounds(z, x, y)
        assert minx < 483_900 and maxx > 483_500  # around 4.345 E in Web Mercator metres
    with out.open("rb") as f:
        west = Reader(MmapSource(f)).header()["min_lon_e7"] / 1e7
    assert west == pytest.approx(4.3435)


def test_an_area_without_data_is_refused(sample_url, tmp_path: Path):
    request = request_for(tmp_path / "x.pmtiles", bbox=(5.5, 50.0, 5.6, 50.1))  # Ardennes
    with pytest.raises(InvalidParameter, match="no tile to seed"):
        run(sample_url, request)


# -- resuming -----------------------------------------------------------------------------------


def test_an_interrupted_run_goes_on_where_it_stopped(sample_url, full_pmtiles, tmp_path: Path):
    out = tmp_path / "resumed.pmtiles"
    work = out.with_name(out.name + ".seeding")
    first = Recorder(stop_after=40)
    with pytest.raises(PulledThePlug):
        run(sample_url, request_for(out), first)
    assert not out.exists() and work.exists()
    # Tiles other connections finished in the same instant are kept too (and not redone).
    assert 40 <= len(first.tiles) < 40 + 4

    second = Recorder()
    result = run(sample_url, request_for(out), second)
    assert result.status == "complete" and result.resumed == len(first.tiles)
    assert not set(first.tiles) & set(second.tiles), "a tile was rendered twice"
    assert sorted(first.tiles + second.tiles) == sorted(planned_tiles(sample_url, request_for(out)))
    assert result.rendered == len(second.tiles) == result.planned - len(first.tiles)
    assert contents(pmtiles_content(out)) == contents(pmtiles_content(full_pmtiles[0]))
    assert not work.exists()


def test_a_finished_archive_is_kept_unless_forced(sample_url, tmp_path: Path):
    out = tmp_path / "done.pmtiles"
    request = request_for(out, zooms=range(12, 13))
    assert run(sample_url, request).status == "complete"
    before = out.read_bytes()
    first = contents(pmtiles_content(out))
    again = Recorder()
    result = run(sample_url, request, again)
    assert result.status == "already complete" and not again.tiles
    assert out.read_bytes() == before

    forced = Recorder()
    result = run(sample_url, request_for(out, zooms=range(12, 13), force=True), forced)
    assert result.status == "complete" and len(forced.tiles) == result.planned
    assert contents(pmtiles_content(out)) == first


def test_a_file_that_is_no_archive_or_a_seeder_at_work_is_not_overwritten(
    sample_url, tmp_path: Path
):
    out = tmp_path / "notes.mbtiles"
    out.write_text("my notes, not tiles")
    with pytest.raises(UrbisError, match="exists and is not a tile archive"):
        run(sample_url, request_for(out, zooms=range(12, 13)))
    assert out.read_text() == "my notes, not tiles"
    out.unlink()

    other = WorkFile(out.with_name(out.name + ".seeding"))  # another seeder holds it
    try:
        for force in (False, True):
            with pytest.raises(UrbisError, match="another `urbis tiles seed` is writing"):
                run(sample_url, request_for(out, zooms=range(12, 13), force=force))
    finally:
        other.close()
    assert run(sample_url, request_for(out, zooms=range(12, 13))).status == "complete"


def test_other_arguments_or_changed_layers_start_over(sample_url, tmp_path: Path):
    out = tmp_path / "restart.pmtiles"
    with pytest.raises(PulledThePlug):
        run(sample_url, request_for(out, zooms=range(12, 14)), Recorder(stop_after=5))
    result = run(sample_url, request_for(out, zooms=range(12, 13)))
    assert result.started_over == "the interrupted run had other arguments"
    assert result.resumed == 0 and result.rendered == result.planned
    out.unlink()

    with pytest.raises(PulledThePlug):
        run(sample_url, request_for(out, zooms=range(12, 13)), Recorder(stop_after=2))
    engine = create_sync_engine(sample_url)
    bump = "UPDATE urbis_meta.layer_catalog SET version = version + :d WHERE id = 'addresses'"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(bump), {"d": 1})
        result = run(sample_url, request_for(out, zooms=range(12, 13)))
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(bump), {"d": -1})
        engine.dispose()
    assert result.started_over is not None and "addresses v1 -> v2" in result.started_over
    assert result.resumed == 0


# -- the command --------------------------------------------------------------------------------


def urbis(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([str(URBIS), *args], env=env, capture_output=True, text=True, timeout=120)


def test_urbis_tiles_seed_end_to_end(sample_url, full_pmtiles, tmp_path: Path):
    out = tmp_path / "cli.pmtiles"
    args = [
        "tiles",
        "seed",
        "--collections",
        ",".join(COLLECTIONS),
        "--zooms",
        "12-13",
        "--out",
        str(out),
    ]
    done = urbis(*args, url=sample_url)
    assert done.returncode == 0, done.stderr
    assert "tiles/s" in done.stdout and str(out) in done.stdout
    logs = [json.loads(line) for line in done.stderr.splitlines()]  # not a terminal: JSON
    assert logs[-1]["status"] == "complete" and "tiles/s" in logs[-1]["message"]
    assert contents(pmtiles_content(out)) == contents(
        {t: data for t, data in pmtiles_content(full_pmtiles[0]).items() if t[0] <= 13}
    )

    again = urbis(*args, url=sample_url)
    assert again.returncode == 0 and "already complete" in again.stdout

    refused = urbis(
        "tiles",
        "seed",
        "--tms",
        "BelgianLambert72",
        "--zooms",
        "5-7",
        "--out",
        str(tmp_path / "l72.pmtiles"),
        url=sample_url,
    )
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "PMTiles holds WebMercatorQuad" in refused.stderr

    unknown = urbis(
        "tiles",
        "seed",
        "--collections",
        "nope",
        "--zooms",
        "12",
        "--out",
        str(tmp_path / "n.mbtiles"),
        url=sample_url,
    )
    assert unknown.returncode == 2 and "no collection 'nope'" in unknown.stderr


def test_urbis_tiles_seed_stops_on_sigterm_and_goes_on_after(sample_url, tmp_path: Path):
    out = tmp_path / "killed.mbtiles"
    args = ["tiles", "seed", "--zooms", "12-15", "--out", str(out)]
    proc = subprocess.Popen(
        [str(URBIS), *args],
        env={**os.environ, "DATABASE_URL": sample_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # its JSON log says when it reaches each zoom
        if json.loads(line)["message"].startswith("zoom 14:"):
            break
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "run the same command to go on" in stderr and not out.exists()
    assert out.with_name(out.name + ".seeding").exists()

    done = urbis(*args, url=sample_url)
    assert done.returncode == 0, done.stderr
    assert "from the interrupted run" in done.stdout
    with open_archive(out) as archive:
        assert archive.metadata["maxzoom"] == 15
