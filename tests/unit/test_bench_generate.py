"""The benchmark data generator: URBIS schema, plausible geometry, determinism, changed copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from bench.generate import generate, main, mutate

ROOT = Path(__file__).resolve().parents[2]
MUNICIPALITIES = ROOT / "data" / "sample" / "UrbAdm_MUNICIPALITY.shp"
BUILDINGS = 2000
EXPECTED_FIELDS = {
    "Buildings": ["INSPIRE_ID", "BLOCK_ID", "AREA", "CAPA_ID", "CAPAKEY"],
    "StreetAxes": [
        "INSPIRE_ID",
        "TYPE",
        "HIERARCHY",
        "LVL",
        "STARTSN_ID",
        "ENDSN_ID",
        "STRNAMEFRE",
        "STRNAMEDUT",
        "SLOPE",
        "LENGTH",
    ],
    "Addresses": [
        "INSPIRE_ID",
        "STREET_ID",
        "STRNAMEFRE",
        "STRNAMEDUT",
        "POLICENUM",
        "BOXNUMBER",
        "ZIPCODE",
        "MUNNISCODE",
        "MUNNAMEFRE",
        "MUNNAMEDUT",
    ],
}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def generated(work: Path) -> tuple[Path, dict[str, int]]:
    out = work / "brussels.gpkg"
    return out, generate(out, buildings=BUILDINGS, seed=1)


@pytest.fixture(scope="module")
def gpkg(generated: tuple[Path, dict[str, int]]) -> Path:
    return generated[0]


@pytest.fixture(scope="module")
def municipalities(work: Path) -> pd.DataFrame:
    """The 19 municipalities, read independently of the generator (copy, restored .shx)."""
    copy = work / "municipalities"
    copy.mkdir()
    for suffix in (".shp", ".dbf"):
        shutil.copyfile(MUNICIPALITIES.with_suffix(suffix), copy / f"m{suffix}")
    pyogrio.set_gdal_config_options({"SHAPE_RESTORE_SHX": "YES"})
    try:
        frame = pyogrio.read_dataframe(copy / "m.shp", columns=["NAT_CODE", "NAME_FRE"])
    finally:
        pyogrio.set_gdal_config_options({"SHAPE_RESTORE_SHX": None})
    return frame.set_geometry(shapely.force_2d(np.asarray(frame.geometry.array)), crs=31370)


def read(path: Path, layer: str) -> pd.DataFrame:
    return pyogrio.read_dataframe(path, layer=layer)


def geoms(frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(frame.geometry.array)


def containing_nis(points: np.ndarray, municipalities: pd.DataFrame) -> np.ndarray:
    tree = shapely.STRtree(geoms(municipalities))
    pairs = tree.query(points, predicate="within")
    nis = np.full(len(points), None, dtype=object)
    nis[pairs[0]] = municipalities["NAT_CODE"].to_numpy()[pairs[1]]
    return nis


def same_content(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Equal attributes (nulls included) and byte-identical geometries, row by row."""
    attributes = a.drop(columns="geometry").equals(b.drop(columns="geometry"))
    return attributes and bool(np.all(shapely.to_wkb(geoms(a)) == shapely.to_wkb(geoms(b))))


def test_layers_fields_and_crs(gpkg: Path) -> None:
    assert sorted(pyogrio.list_layers(gpkg)[:, 0]) == ["Addresses", "Buildings", "StreetAxes"]
    for layer, fields in EXPECTED_FIELDS.items():
        info = pyogrio.read_info(gpkg, layer=layer)
        assert list(info["fields"]) == fields
        assert info["crs"] == "EPSG:31370"


def test_counts(generated: tuple[Path, dict[str, int]]) -> None:
    gpkg, counts = generated
    assert counts == {
        "Buildings": BUILDINGS,
        "StreetAxes": round(BUILDINGS / 15),
        "Addresses": round(1.2 * BUILDINGS),
    }
    for layer, count in counts.items():
        assert pyogrio.read_info(gpkg, layer=layer)["features"] == count


def test_geometries_valid_and_typed(gpkg: Path) -> None:
    expected = {
        "Buildings": {"Polygon", "MultiPolygon"},
        "StreetAxes": {"LineString"},
        "Addresses": {"Point"},
    }
    for layer, types in expected.items():
        frame = read(gpkg, layer)
        assert shapely.is_valid(geoms(frame)).all()
        assert set(frame.geom_type) <= types
    multi = (read(gpkg, "Buildings").geom_type == "MultiPolygon").mean()
    assert 0.01 <= multi <= 0.08


def test_inspire_ids_unique(gpkg: Path) -> None:
    for layer in EXPECTED_FIELDS:
        ids = read(gpkg, layer)["INSPIRE_ID"]
        assert ids.is_unique and ids.notna().all()
    assert (
        read(gpkg, "Buildings")["INSPIRE_ID"]
        .str.match(r"^https://databrussels\.be/id/building/\d+$")
        .all()
    )


def test_buildings_inside_the_municipalities(gpkg: Path, municipalities: pd.DataFrame) -> None:
    region = shapely.union_all(geoms(municipalities))
    assert shapely.within(geoms(read(gpkg, "Buildings")), region).all()
    assert shapely.within(geoms(read(gpkg, "StreetAxes")), region).all()


def test_building_footprints_are_plausible(gpkg: Path) -> None:
    frame = read(gpkg, "Buildings")
    area = shapely.area(geoms(frame))
    assert frame["AREA"].tolist() == [round(a) for a in area]
    assert area.min() >= 6 and area.max() <= 400
    parts = shapely.get_parts(geoms(frame))
    vertices = shapely.get_num_coordinates(parts)
    assert vertices.min() >= 5 and vertices.max() <= 12
    assert (vertices > 5).mean() > 0.3  # L, U, T and porch shapes, not only rectangles
    assert frame["CAPAKEY"].str.match(r"^210\d\d[A-Z]\d{4}/\d{2}[A-Z]\d{3}$").all()
    assert 0.2 < frame["BLOCK_ID"].isna().mean() < 0.6


def test_footprints_do_not_overlap(gpkg: Path) -> None:
    polygons = geoms(read(gpkg, "Buildings"))
    pairs = shapely.STRtree(polygons).query(polygons, predicate="intersects")
    pairs = pairs[:, pairs[0] < pairs[1]]
    overlap = shapely.area(shapely.intersection(polygons[pairs[0]], polygons[pairs[1]])).sum()
    assert overlap <= 0.001 * shapely.area(polygons).sum()


def test_density_follows_the_municipalities(gpkg: Path, municipalities: pd.DataFrame) -> None:
    centroids = shapely.centroid(geoms(read(gpkg, "Buildings")))
    nis = containing_nis(centroids, municipalities)
    area = dict(zip(municipalities["NAT_CODE"], shapely.area(geoms(municipalities)), strict=True))
    density = {code: (nis == code).sum() / area[code] for code in area}
    assert all((nis == code).sum() > 0 for code in area)  # all 19 get buildings
    for centre in ("21004", "21009", "21013", "21014"):  # Bruxelles, Ixelles, St-Gilles, St-Josse
        for suburb in ("21016", "21017"):  # Uccle, Watermael-Boitsfort
            assert density[centre] > 1.5 * density[suburb]


def test_addresses_in_their_municipality_and_building(
    gpkg: Path, municipalities: pd.DataFrame
) -> None:
    frame = read(gpkg, "Addresses")
    points = geoms(frame)
    assert (containing_nis(points, municipalities) == frame["MUNNISCODE"].to_numpy()).mean() >= 0.99
    buildings = geoms(read(gpkg, "Buildings"))
    hits = shapely.STRtree(buildings).query(points, predicate="dwithin", distance=0.01)
    assert len(np.unique(hits[0])) == len(points)
    assert frame["ZIPCODE"].str.fullmatch(r"1\d{3}").all()
    assert frame["POLICENUM"].str.fullmatch(r"\d+[A-Z]?").all()
    assert frame["STRNAMEFRE"].notna().all() and frame["STRNAMEDUT"].notna().all()
    assert frame["BOXNUMBER"].notna().any() and frame["BOXNUMBER"].isna().any()


def test_street_axes_length(gpkg: Path) -> None:
    frame = read(gpkg, "StreetAxes")
    assert np.array_equal(frame["LENGTH"].to_numpy(), shapely.length(geoms(frame)))
    assert frame["STRNAMEFRE"].notna().all()


def test_same_seed_same_content(gpkg: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.gpkg"
    generate(again, buildings=BUILDINGS, seed=1)
    for layer in EXPECTED_FIELDS:
        assert same_content(read(gpkg, layer), read(again, layer)), layer


def test_layer_subset_has_the_same_content(gpkg: Path, tmp_path: Path) -> None:
    only = tmp_path / "addresses.gpkg"
    assert generate(only, buildings=BUILDINGS, seed=1, layers="addresses") == {
        "Addresses": round(1.2 * BUILDINGS)
    }
    assert list(pyogrio.list_layers(only)[:, 0]) == ["Addresses"]
    assert same_content(read(gpkg, "Addresses"), read(only, "Addresses"))


def test_unknown_layer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown layer"):
        generate(tmp_path / "x.gpkg", buildings=10, layers="buildings,parcels")


def test_mutate_announces_what_it_changed(gpkg: Path, tmp_path: Path) -> None:
    out = tmp_path / "changed.gpkg"
    counts = mutate(gpkg, out, fraction=0.05, seed=2)
    assert counts == {"updated": 70, "deleted": 15, "inserted": 15}
    before = read(gpkg, "Buildings").set_index("INSPIRE_ID")
    after = read(out, "Buildings").set_index("INSPIRE_ID")
    assert after.index.is_unique
    assert len(before.index.difference(after.index)) == counts["deleted"]
    assert len(after.index.difference(before.index)) == counts["inserted"]
    common = before.index.intersection(after.index)
    old, new = before.loc[common], after.loc[common]
    moved = shapely.to_wkb(geoms(old)) != shapely.to_wkb(geoms(new))
    edited = (
        ~(
            old.drop(columns="geometry").fillna("-").astype(str)
            == new.drop(columns="geometry").fillna("-").astype(str)
        )
        .all(axis=1)
        .to_numpy()
    )
    assert (moved | edited).sum() == counts["updated"]
    assert moved.sum() > 0 and edited.sum() > 0
    assert shapely.is_valid(geoms(after)).all()
    assert after["AREA"].tolist() == [round(a) for a in shapely.area(geoms(after))]
    for layer in ("StreetAxes", "Addresses"):
        assert same_content(read(gpkg, layer), read(out, layer)), layer
    again = tmp_path / "changed-again.gpkg"
    assert mutate(gpkg, again, fraction=0.05, seed=2) == counts
    assert same_content(read(out, "Buildings"), read(again, "Buildings"))


def test_cli(
    gpkg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fake_generate(out: Path, **kwargs: object) -> dict[str, int]:
        calls.append((out, kwargs))
        return {"Buildings": 300}

    monkeypatch.setattr("bench.generate.generate", fake_generate)
    out = tmp_path / "cli.gpkg"
    assert (
        main(
            [
                "--out",
                str(out),
                "--buildings",
                "300",
                "--seed",
                "3",
                "--layers",
                "buildings,street_axes",
            ]
        )
        == 0
    )
    assert calls == [(out, {"buildings": 300, "seed": 3, "layers": "buildings,street_axes"})]
    assert json.loads(capsys.readouterr().out)["counts"] == {"Buildings": 300}
    main(["--out", str(out)])
    assert calls[-1][1] == {
        "buildings": 500_000,
        "seed": 1,
        "layers": "buildings,street_axes,addresses",
    }
    capsys.readouterr()
    assert (
        main(
            ["--mutate-from", str(gpkg), "--out", str(tmp_path / "cli2.gpkg"), "--fraction", "0.02"]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["seed"] == 2
    assert report["counts"] == {"updated": 28, "deleted": 6, "inserted": 6}
