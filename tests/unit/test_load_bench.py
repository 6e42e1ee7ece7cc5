"""The load benchmark's parts that need no server: the changing source, the request mix."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import geopandas as gpd
import pyogrio
import pytest
import shapely

from bench.load_bench import summary
from bench.load_source import ID_PREFIX, ChangingSource, gpkg_blob, parse_blob
from bench.load_workload import KINDS, TILE_ZOOMS, Places, Workload
from tiles.tms import get_tms


@pytest.fixture
def buildings_gpkg(tmp_path: Path) -> Path:
    """30 square buildings in the generated data's schema (as bench.generate writes it)."""
    squares = [shapely.box(150_000 + 20 * i, 170_000, 150_010 + 20 * i, 170_010) for i in range(30)]
    frame = gpd.GeoDataFrame(
        {
            "INSPIRE_ID": [f"https://databrussels.be/id/building/{i}" for i in range(30)],
            "AREA": [100] * 30,
            "CAPAKEY": [f"21004A{i:04d}" for i in range(30)],
        },
        geometry=squares,
        crs="EPSG:31370",
    )
    path = tmp_path / "original.gpkg"
    pyogrio.write_dataframe(
        frame, path, layer="Buildings", driver="GPKG", layer_options={"GEOMETRY_NAME": "GEOM"}
    )
    return path


def read(path: Path) -> gpd.GeoDataFrame:
    return pyogrio.read_dataframe(path, layer="Buildings").set_index("INSPIRE_ID")


def test_geopackage_blob_round_trip() -> None:
    polygon = shapely.Polygon([(0, 0), (3.5, 0), (3.5, 2), (0, 2)])
    blob = gpkg_blob(polygon)
    assert blob[:2] == b"GP" and int.from_bytes(blob[4:8], "little") == 31370
    assert parse_blob(blob).equals(polygon)
    with pytest.raises(ValueError, match="not a GeoPackage"):
        parse_blob(b"XX" + blob[2:])


def test_a_cycle_inserts_updates_and_deletes_what_it_says(
    buildings_gpkg: Path, tmp_path: Path
) -> None:
    source = ChangingSource.copied_from(buildings_gpkg, tmp_path / "source.gpkg", 9, seed=1)
    before = read(source.path)

    change = source.change()
    after = read(source.path)  # GDAL reads the file sqlite3 changed

    assert (len(change.inserted), len(change.updated), len(change.deleted)) == (3, 3, 3)
    assert change.features == 9
    assert len(after) == len(before)  # as many inserted as deleted
    for key, (geom, area) in {**change.inserted, **change.updated}.items():
        assert after.loc[key, "AREA"] == area
        assert after.loc[key, "geometry"].equals(geom)
    for key in change.updated:
        assert not after.loc[key, "geometry"].equals(before.loc[key, "geometry"])
        assert after.loc[key, "CAPAKEY"] == before.loc[key, "CAPAKEY"]  # the rest is kept
    assert all(key.startswith(f"{ID_PREFIX}1-") for key in change.inserted)
    assert not set(change.deleted) & set(after.index)
    assert buildings_gpkg.read_bytes() != source.path.read_bytes()  # the original is untouched
    assert len(read(buildings_gpkg)) == 30

    second = source.change()
    assert not set(second.inserted) & set(change.inserted)
    assert [c.cycle for c in source.changes] == [1, 2]
    assert not list(tmp_path.glob(".*.next"))  # renamed over the file, nothing left beside


def places() -> Places:
    # 500 points along 10 km (Lambert 72 and, about where, Web Mercator)
    buildings = [
        (145_000.0 + 20 * i, 165_000.0 + 13 * i, 477_000.0 + 31 * i, 6_588_000.0 + 20 * i)
        for i in range(500)
    ]
    addresses = [(150_000.0 + 9 * i, 170_000.0 + 5 * i) for i in range(50)]
    counts = {"buildings": 5000, "street_axes": 300, "addresses": 6000}
    return Places(buildings, addresses, counts, ["Rue Haute 1", "Avenue Louise 12"])


def test_the_mix_asks_every_kind_in_its_share_with_valid_requests() -> None:
    where = places()
    workload = Workload(where, seed=5, popular=Workload.popular_tiles(where, seed=1))
    drawn = [workload.next() for _ in range(5000)]

    counts = Counter(kind for kind, _ in drawn)
    total = sum(KINDS.values())
    for kind, weight in KINDS.items():
        assert abs(counts[kind] / len(drawn) - weight / total) < 0.03, (kind, counts[kind])
    for kind, path in drawn:
        parts = urlsplit(path)
        if kind.startswith("tile"):
            layer, tms, z, x, y = parts.path.split("/")[2:3] + parts.path.split("/")[4:]
            assert tms == kind.split()[1] and int(z) in TILE_ZOOMS[tms]
            get_tms(tms).check(int(z), int(x), int(y))  # raises for a tile outside the grid
        elif kind == "items page":
            query = parse_qs(parts.query)
            assert int(query["offset"][0]) + 100 <= 6000
        elif kind == "geocode":
            assert parse_qs(parts.query)["q"][0] in where.geocode


def test_the_mix_repeats_for_a_seed_and_tiles_come_back() -> None:
    where = places()
    popular = Workload.popular_tiles(where, seed=1)
    first, again, other = (Workload(where, seed, popular) for seed in (7, 7, 8))
    assert [first.next() for _ in range(50)] == [again.next() for _ in range(50)]
    tiles = [path for kind, path in (other.next() for _ in range(3000)) if "tile" in kind]
    # popular tiles are asked again and again (cached), others mostly once (drawn)
    repeats = Counter(tiles)
    assert max(repeats.values()) > 3
    assert sum(1 for n in repeats.values() if n == 1) > 50


def test_summary_counts_errors_and_takes_percentiles() -> None:
    row = summary([0.001 * i for i in range(1, 101)], errors=2, seconds=10.0)
    assert row["requests"] == 102 and row["errors"] == 2 and row["per_s"] == 10.0
    assert row["p50_ms"] == 50.5 and row["p99_ms"] == 99.0 and row["max_ms"] == 100.0
    assert summary([], errors=3, seconds=1.0) == {"requests": 3, "errors": 3, "per_s": 0.0}
