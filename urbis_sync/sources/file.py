"""Reading `file` sources: GeoPackage, shapefile, GML, GeoJSON; zipped or not; path or URL.

Sources are taken as found. Two URBIS quirks are handled here: shapefiles shipped without their
`.shx` index (GDAL can rebuild it, but writes it beside the file, so we work on a private copy),
and decimal-comma numbers in .dbf files (see `urbis_sync.dbf`). Features stream through GDAL's
Arrow interface in batches, so a layer is never in memory whole.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyogrio
from pyproj import CRS

from urbis_core.config import FileSource
from urbis_core.errors import SourceError
from urbis_sync.dbf import decimal_comma_columns, parse_decimal_comma
from urbis_sync.sources import (
    BATCH_SIZE,
    FeatureBatch,
    Field,
    SourceSchema,
    SourceStats,
    sql_type_from_ogr,
)

DATASET_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".gml", ".fgb", ".sqlite")


@dataclass(frozen=True)
class LocatedDataset:
    """A dataset GDAL can open, and the layer in it to read."""

    path: Path
    layer: str | None
    missing_shx: bool
    label: str = ""  # how errors name the file (default: its name)

    @property
    def name(self) -> str:
        return self.label or self.path.name

    @property
    def is_shapefile(self) -> bool:
        return self.path.suffix.lower() == ".shp"


@contextmanager
def open_file_source(
    source: FileSource, layer_id: str, label: str = ""
) -> Iterator[LocatedDataset]:
    """Locate the dataset of a file source in a private working folder, removed afterwards.

    `label` names the file in errors (one of several files: its path below their folder).
    """
    with tempfile.TemporaryDirectory(prefix="urbis-source-") as tmp:
        workdir = Path(tmp)
        local = _local_copy(source, workdir, layer_id)
        if zipfile.is_zipfile(local):
            path = _extract_from_zip(local, source.layer, workdir, layer_id)
        else:
            path = local
        missing_shx = path.suffix.lower() == ".shp" and _sibling(path, ".shx") is None
        if missing_shx and path.parent != workdir:
            path = _copy_shapefile(path, workdir)
        layer = _choose_layer(path, source.layer, layer_id, missing_shx, label)
        yield LocatedDataset(path, layer, missing_shx, label)


class FileReader:
    """Streams the features of a located dataset; `schema` is known before the first batch.

    Fields named in `drop_fields` are neither read nor stored; `dropped` lists those it had.
    """

    def __init__(self, dataset: LocatedDataset, drop_fields: Sequence[str] = ()) -> None:
        self.dataset = dataset
        self.stats = SourceStats()
        with _gdal(dataset):
            info = pyogrio.read_info(str(dataset.path), layer=dataset.layer)
        every = [str(f) for f in info["fields"]]
        self.dropped = [name for name in every if name in drop_fields]
        names = [name for name in every if name not in drop_fields]
        types = {
            name: sql_type_from_ogr(ogr, sub)
            for name, ogr, sub in zip(every, info["ogr_types"], info["ogr_subtypes"], strict=True)
        }
        self._replacements: dict[str, list[Any]] = {}
        if dataset.is_shapefile:
            self._replacements = self._decimal_commas(info.get("encoding") or "latin-1")
            for name, values in self._replacements.items():
                numeric = all(v is None or isinstance(v, float) for v in values)
                types[name] = "double precision" if numeric else "text"
        self.schema = SourceSchema(
            fields=[Field(name, types[name]) for name in names],
            crs=CRS.from_user_input(info["crs"]) if info["crs"] else None,
            geometry_type=str(info["geometry_type"]),
        )
        self.feature_count = int(info["features"])

    def extent(self) -> tuple[float, float, float, float] | None:
        """The layer's bounding box in its own coordinates; None when it has no geometry."""
        with _gdal(self.dataset):
            info = pyogrio.read_info(
                str(self.dataset.path), layer=self.dataset.layer, force_total_bounds=True
            )
        bounds = info.get("total_bounds")
        if bounds is None or not all(math.isfinite(v) for v in bounds):
            return None
        minx, miny, maxx, maxy = (float(v) for v in bounds)
        return minx, miny, maxx, maxy

    def all_null(self, name: str) -> bool:
        """Whether every value of this field is null (GDAL types such a field as text)."""
        with _gdal(self.dataset):
            _meta, table = pyogrio.read_arrow(
                str(self.dataset.path),
                layer=self.dataset.layer,
                columns=[name],
                read_geometry=False,
            )
        column = table.column(name)
        return column.null_count == len(column)

    def _decimal_commas(self, encoding: str) -> dict[str, list[Any]]:
        dbf = _sibling(self.dataset.path, ".dbf")
        if dbf is None:
            return {}
        out: dict[str, list[Any]] = {}
        for name, raw in decimal_comma_columns(dbf, encoding).items():
            if name in self.dropped:
                continue
            numbers = parse_decimal_comma(raw)
            # Text that is not a number stays text: better a string than a wrong number.
            out[name] = list(numbers) if numbers is not None else list(raw)
        return out

    def batches(self) -> Iterator[FeatureBatch]:
        offset = 0
        with _gdal(self.dataset), warnings.catch_warnings():
            # GDAL warns about the decimal-comma values, which were re-read from the .dbf.
            warnings.filterwarnings("ignore", message=".*parsed incompletely.*")
            with pyogrio.open_arrow(
                str(self.dataset.path),
                layer=self.dataset.layer,
                columns=self.schema.names,
                batch_size=BATCH_SIZE,
                use_pyarrow=True,
            ) as (meta, reader):
                geometry_column = meta["geometry_name"] or "wkb_geometry"
                for record_batch in reader:
                    table = pa.Table.from_batches([record_batch])
                    wkb = table.column(geometry_column)
                    attributes = table.drop_columns([geometry_column])
                    for name, values in self._replacements.items():
                        column = pa.array(values[offset : offset + table.num_rows])
                        attributes = attributes.set_column(
                            attributes.schema.get_field_index(name), name, column
                        )
                    offset += table.num_rows
                    self.stats.pages += 1
                    yield FeatureBatch(attributes, wkb)


@contextmanager
def _gdal(dataset: LocatedDataset) -> Iterator[None]:
    """Open the dataset as GDAL must see it, and turn GDAL's failures into SourceError."""
    if dataset.missing_shx:
        pyogrio.set_gdal_config_options({"SHAPE_RESTORE_SHX": "YES"})
    try:
        yield
    except pyogrio.errors.DataSourceError as exc:
        raise SourceError(f"{dataset.name}: GDAL cannot read it: {exc}") from exc
    finally:
        if dataset.missing_shx:
            pyogrio.set_gdal_config_options({"SHAPE_RESTORE_SHX": None})


def _local_copy(source: FileSource, workdir: Path, layer_id: str) -> Path:
    if source.path is not None:
        if not source.path.exists():
            raise SourceError(f"layer '{layer_id}': source.path {source.path} does not exist")
        return source.path
    assert source.url is not None
    name = Path(urllib.parse.urlparse(source.url).path).name or "download"
    target = workdir / name
    try:
        with urllib.request.urlopen(source.url, timeout=120) as response, target.open("wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        raise SourceError(f"layer '{layer_id}': cannot download {source.url}: {exc}") from exc
    return target


def _extract_from_zip(archive: Path, wanted: str | None, workdir: Path, layer_id: str) -> Path:
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        candidates = [n for n in names if Path(n).suffix.lower() in DATASET_SUFFIXES]
        if wanted is not None and len(candidates) > 1:
            stem_match = [n for n in candidates if Path(n).stem == wanted]
            candidates = stem_match or candidates
        if not candidates:
            raise SourceError(
                f"layer '{layer_id}': {archive.name} holds no GeoPackage, shapefile, GML or GeoJSON"
            )
        if len(candidates) > 1:
            raise SourceError(
                f"layer '{layer_id}': {archive.name} holds several datasets "
                f"({', '.join(candidates)}); name one with source.layer"
            )
        chosen = candidates[0]
        prefix = chosen[: -len(Path(chosen).suffix)]
        members = (
            [n for n in names if n.startswith(prefix + ".")]
            if chosen.endswith((".shp", ".SHP"))
            else [chosen]
        )
        target = workdir / "unzipped"
        for member in members:
            out = target / Path(member).name
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        return target / Path(chosen).name


def _sibling(path: Path, suffix: str) -> Path | None:
    for candidate in path.parent.glob(path.stem + ".*"):
        if candidate.suffix.lower() == suffix:
            return candidate
    return None


def _copy_shapefile(path: Path, workdir: Path) -> Path:
    target = workdir / "shapefile"
    target.mkdir()
    for part in path.parent.glob(path.stem + ".*"):
        shutil.copyfile(part, target / part.name)
    return target / path.name


def _choose_layer(
    path: Path, wanted: str | None, layer_id: str, missing_shx: bool, label: str
) -> str | None:
    dataset = LocatedDataset(path, None, missing_shx, label)
    with _gdal(dataset):
        layers = [str(row[0]) for row in pyogrio.list_layers(str(path))]
    if wanted is None:
        if len(layers) > 1:
            raise SourceError(
                f"layer '{layer_id}': {dataset.name} has several layers "
                f"({', '.join(layers)}); name one with source.layer"
            )
        return None
    if wanted not in layers:
        raise SourceError(
            f"layer '{layer_id}': source.layer '{wanted}' is not in {dataset.name} "
            f"(it has: {', '.join(layers)})"
        )
    return wanted
