"""Several files read as one layer (`source.paths`): the recorded URBIS cells, and what fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from tests.conftest import SAMPLE_DIR
from tests.support.layers import geojson_feature, point, write_geojson
from urbis_core.config import FileSource
from urbis_core.errors import ConfigError, SourceError
from urbis_sync.check import check_config
from urbis_sync.sources.file_set import expand_paths, open_file_set

CELLS = SAMPLE_DIR / "geoserver"


def read(source: FileSource, key: str = "K") -> tuple[pa.Table, list[str]]:
    """Every feature's attributes, and the notes the reader left for the run."""
    with open_file_set(source, "layer", key) as files:
        table = pa.concat_tables([b.attributes for b in files.batches()])
        return table, files.stats.notes


def cells(layer: str) -> FileSource:
    return FileSource(kind="file", paths=[CELLS / f"bxl-*/{layer}.geojson"], drop_fields=["id"])


def test_the_recorded_cells_read_as_one_layer_each_feature_once():
    axes, notes = read(cells("street_axes"), "INSPIRE_ID")
    keys = axes.column("INSPIRE_ID").to_pylist()
    # 11 features in six files; streetaxe/99438 is in two cells, identical but for GeoServer's
    # transient feature id (dropped: `id`), so it is one feature.
    assert (len(keys), len(set(keys))) == (10, 10)
    assert "https://databrussels.be/id/streetaxe/99438" in keys
    assert "id" not in axes.column_names
    assert notes == [
        "6 files read",
        "1 feature found identical in an earlier file, read once "
        "(https://databrussels.be/id/streetaxe/99438)",
    ]
    # SLOPE is all null in one cell (GDAL types it text there), real numbers elsewhere.
    assert axes.schema.field("SLOPE").type == pa.float64()
    surfaces, _ = read(cells("street_surfaces"), "INSPIRE_ID")
    assert surfaces.num_rows == 29
    buildings, _ = read(cells("buildings"), "INSPIRE_ID")
    assert buildings.num_rows == 65


def test_the_current_municipalities_one_file_each_etterbeek_without_id():
    source = FileSource(kind="file", paths=[CELLS / "municipalities/*.geojson"], drop_fields=["id"])
    with open_file_set(source, "current_municipalities", "NISCODE") as files:
        assert [r.dataset.name for r in files.readers][:2] == [
            "anderlecht.geojson",
            "berchem.geojson",
        ]
        assert files.schema.crs is not None and files.schema.crs.to_epsg() == 31370
        assert files.schema.geometry_type == "MultiPolygon"  # Ixelles, Saint-Gilles: two parts
        table = pa.concat_tables([b.attributes for b in files.batches()])
    assert sorted(table.column("NISCODE").to_pylist()) == [
        "21001", "21003", "21005", "21006", "21008", "21009",
        "21010", "21011", "21012", "21013", "21014", "21015",
    ]  # fmt: skip
    assert files.dropped == ["id"]  # Etterbeek has none, the others had it


def test_without_drop_fields_the_files_fields_differ(tmp_path: Path):
    source = FileSource(kind="file", paths=[CELLS / "municipalities/*.geojson"])
    with pytest.raises(SourceError) as err, open_file_set(source, "m", "NISCODE"):
        pass
    assert "the files' fields differ: etterbeek.geojson lacks id" in str(err.value)


def test_copies_that_differ_are_both_kept_for_the_run_to_quarantine(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_geojson(tmp_path / "a/x.geojson", [geojson_feature({"K": "k1"}, point(150000, 170000))])
    write_geojson(tmp_path / "b/x.geojson", [geojson_feature({"K": "k1"}, point(150001, 170000))])
    table, notes = read(FileSource(kind="file", paths=[tmp_path / "*/x.geojson"]))
    assert table.column("K").to_pylist() == ["k1", "k1"]
    assert notes == ["2 files read"]


def test_a_feature_twice_within_one_file_stays_twice(tmp_path: Path):
    twice = [geojson_feature({"K": "k1"}, point(150000, 170000))] * 2
    write_geojson(tmp_path / "a.geojson", twice)
    write_geojson(tmp_path / "b.geojson", [geojson_feature({"K": "k2"}, point(150000, 170000))])
    table, _ = read(FileSource(kind="file", paths=[tmp_path / "*.geojson"]))
    assert table.column("K").to_pylist() == ["k1", "k1", "k2"]


def test_types_are_widened_across_files(tmp_path: Path):
    write_geojson(
        tmp_path / "a.geojson", [geojson_feature({"K": "1", "N": 5, "S": None}, point(1, 2))]
    )
    write_geojson(
        tmp_path / "b.geojson", [geojson_feature({"K": "2", "N": 2.5, "S": 7}, point(1, 2))]
    )
    write_geojson(
        tmp_path / "c.geojson", [geojson_feature({"K": "3", "N": "many", "S": 8}, point(1, 2))]
    )
    source = FileSource(kind="file", paths=[tmp_path / "a.geojson", tmp_path / "b.geojson"])
    with open_file_set(source, "layer", "K") as files:
        assert {f.name: f.sql_type for f in files.schema.fields} == {
            "K": "text",
            "N": "double precision",
            "S": "integer",
        }
    source = FileSource(kind="file", paths=[tmp_path / "*.geojson"])
    table, notes = read(source)
    assert table.column("N").to_pylist() == ["5", "2.5", "many"]
    assert "N is typed double precision, integer, text: stored as text" in notes


def test_files_in_different_crs_are_refused_naming_both(tmp_path: Path):
    write_geojson(tmp_path / "a.geojson", [geojson_feature({"K": "1"}, point(150000, 170000))])
    (tmp_path / "b.geojson").write_text(
        json.dumps(
            {"type": "FeatureCollection", "features": [geojson_feature({"K": "2"}, point(4, 50))]}
        )
    )
    source = FileSource(kind="file", paths=[tmp_path / "*.geojson"])
    with pytest.raises(SourceError) as err, open_file_set(source, "layer", "K"):
        pass
    assert str(err.value) == (
        "layer 'layer': the files' CRS differ: a.geojson is EPSG:31370, b.geojson is EPSG:4326"
    )


def test_no_match_and_an_unreadable_file_are_named(tmp_path: Path):
    for cell in ("bxl-1", "bxl-2"):
        shutil.copytree(CELLS / "bxl-e141000-n167000-s500", tmp_path / cell)
    assert expand_paths([tmp_path / "bxl-*/nothing.geojson", tmp_path / "bxl-1/*.geojson"]) == (
        sorted((tmp_path / "bxl-1").glob("*.geojson")),
        [tmp_path / "bxl-*/nothing.geojson"],
    )
    source = FileSource(kind="file", paths=[tmp_path / "bxl-*/nothing.geojson"])
    with pytest.raises(SourceError, match=r"source.paths: .*/bxl-\*/nothing.geojson matches no"):
        with open_file_set(source, "layer", "K"):
            pass
    (tmp_path / "bxl-2/buildings.geojson").write_text('{"type": "FeatureCollection", "feat')
    source = FileSource(kind="file", paths=[tmp_path / "bxl-*/buildings.geojson"])
    with pytest.raises(SourceError, match=r"^bxl-2/buildings.geojson: GDAL cannot read it"):
        with open_file_set(source, "layer", "K"):
            pass


def test_config_check_names_every_pattern_without_a_file(tmp_path: Path):
    write_geojson(tmp_path / "a.geojson", [geojson_feature({"K": "1"}, point(150000, 170000))])
    config = tmp_path / "urbis.yaml"
    config.write_text(
        "layers:\n"
        "  a:\n    source: {kind: file, paths: ['*.geojson', 'tiles/*.gpkg', none.gml]}\n"
        "    key: K\n"
        "  b:\n    source: {kind: file, paths: '*.geojson', drop_fields: [id]}\n    key: K\n"
    )
    with pytest.raises(ConfigError) as err:
        check_config(config)
    assert str(err.value).splitlines() == [
        f"{config}: layer 'a': source.paths: {tmp_path}/tiles/*.gpkg matches no file",
        f"{config}: layer 'a': source.paths: {tmp_path}/none.gml matches no file",
        f"{config}: layer 'b': source.drop_fields: 'id' not in the source (it has: K)",
    ]
