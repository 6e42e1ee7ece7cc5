"""Reading the real URBIS extracts as shipped, quirks included."""

import zipfile
from pathlib import Path

import pyarrow as pa
import pytest

from tests.conftest import SAMPLE_DIR
from urbis_core.config import FileSource
from urbis_core.errors import SourceError
from urbis_sync.dbf import parse_decimal_comma, read_text_columns
from urbis_sync.sources.file import FileReader, open_file_source


def test_shapefile_without_shx_is_read_without_touching_the_source_folder():
    before = sorted(p.name for p in SAMPLE_DIR.iterdir())
    source = FileSource(kind="file", path=SAMPLE_DIR / "UrbAdm_MUNICIPALITY.shp", srid=31370)
    with open_file_source(source, "municipalities") as dataset:
        assert dataset.missing_shx
        reader = FileReader(dataset)
        codes = [c for b in reader.batches() for c in b.attributes.column("NAT_CODE").to_pylist()]
    assert len(codes) == 19
    assert reader.schema.crs is None  # no .prj travelled with it
    assert sorted(codes) == [str(n) for n in range(21001, 21020)]
    assert sorted(p.name for p in SAMPLE_DIR.iterdir()) == before  # no .shx written there


def test_zipped_shapefile_with_decimal_comma_angles(tmp_path: Path):
    source = FileSource(
        kind="file", path=SAMPLE_DIR / "UrbAdm_AdPt_sample.zip", layer="UrbAdm_AdPt"
    )
    with open_file_source(source, "addresses") as dataset:
        reader = FileReader(dataset)
        frame = pa.concat_tables([b.attributes for b in reader.batches()]).to_pandas()
    assert len(frame) == 666
    assert reader.schema.crs is not None
    assert reader.schema.crs.to_epsg(min_confidence=20) == 31370
    assert {f.name: f.sql_type for f in reader.schema.fields}["ANGLE"] == "double precision"

    # Independent reading of the raw .dbf text, straight from the archive.
    with zipfile.ZipFile(SAMPLE_DIR / "UrbAdm_AdPt_sample.zip") as zf:
        (tmp_path / "a.dbf").write_bytes(zf.read("shp/UrbAdm_AdPt.dbf"))
    raw = read_text_columns(tmp_path / "a.dbf", {"ANGLE", "ID"}, "utf-8")
    by_id = dict(zip(raw["ID"], raw["ANGLE"], strict=True))
    row = frame[frame["ANGLE"].notna()].iloc[0]
    text = by_id[next(k for k in by_id if float(k) == row["ID"])]
    assert text is not None and "," in text
    whole, fraction = text.split(".")[0].split(",")
    assert row["ANGLE"] == pytest.approx(float(f"{whole}.{fraction}"))
    assert (frame["ANGLE"] % 1 != 0).sum() > 600  # fractions kept, not truncated to whole degrees


def test_decimal_comma_parser():
    assert parse_decimal_comma(["309,92.000000000000000", "-17,73.000", "5", None]) == [
        309.92,
        -17.73,
        5.0,
        None,
    ]
    assert parse_decimal_comma(["12,5", "north"]) is None


def test_missing_layer_and_missing_file_are_explained(tmp_path: Path):
    source = FileSource(kind="file", path=SAMPLE_DIR / "UrbAdm_AdPt_sample.zip", layer="Nope")
    with pytest.raises(SourceError, match="source.layer 'Nope' is not in"):
        with open_file_source(source, "addresses"):
            pass
    source = FileSource(kind="file", path=tmp_path / "absent.gpkg")
    with pytest.raises(SourceError, match="does not exist"):
        with open_file_source(source, "x"):
            pass
    (tmp_path / "junk.zip").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    source = FileSource(kind="file", path=tmp_path / "junk.zip")
    with pytest.raises(SourceError, match="holds no GeoPackage"):
        with open_file_source(source, "x"):
            pass
