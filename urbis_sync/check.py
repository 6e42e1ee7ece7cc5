"""Checks of the configuration that need to open the sources (`urbis config check`).

Every problem is collected, one line each naming the file, the layer and the field, so that a
file is fixed in one pass rather than one error at a time.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import rasterio
from pyproj import CRS, Transformer
from pyproj.exceptions import ProjError

from urbis_core.catalog import STORAGE_SRID
from urbis_core.config import FileSource, ServiceConfig, read_config
from urbis_core.errors import ConfigError, SourceError
from urbis_core.names import label_problems
from urbis_sync.normalize import resolve_crs
from urbis_sync.raster.source import locate
from urbis_sync.raster.validate import RasterInvalid, check_files
from urbis_sync.sources.file import FileReader, open_file_source
from urbis_sync.sources.file_set import FileSetReader, expand_paths, no_match, open_file_set

Extent = tuple[float, float, float, float]
# Degrees around an area of use: data at its very edge still fits, while Brussels' coordinates
# in degrees taken as Lambert 72 metres land 0.2 degrees outside Belgium.
AREA_MARGIN = 0.1


def check_config(path: Path, layer_ids: list[str] | None = None) -> ServiceConfig:
    """The configuration, or ConfigError listing every problem of the file.

    The whole file is validated; the sources are opened for `layer_ids` (default: all).
    """
    config, problems = read_config(path)
    if not problems:
        layer_ids = config.select(layer_ids or [])
    problems += source_problems(
        config, [i for i in layer_ids or config.layers if i in config.layers]
    )
    problems += raster_problems(
        config, [i for i in layer_ids or config.rasters if i in config.rasters]
    )
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def source_problems(config: ServiceConfig, layer_ids: list[str]) -> list[str]:
    """Every problem found by opening the layers' file sources.

    Network sources (wfs, ogcapi, feed) are only checked structurally: nothing here goes
    online (`urbis sources check` does).
    """
    problems: list[str] = []
    for layer_id in layer_ids:
        layer = config.layer(layer_id)
        source = layer.source
        if not isinstance(source, FileSource) or source.url is not None:
            continue
        where = f"{config.path}: layer '{layer_id}'"
        if source.path is not None and not source.path.exists():
            problems.append(f"{where}: source.path {source.path} does not exist")
            continue
        if source.paths is not None:
            unmatched = expand_paths(source.paths)[1]
            problems += [f"{where}: {no_match(pattern)}" for pattern in unmatched]
            if unmatched:
                continue
        try:
            with _file_reader(source, layer_id, layer.key) as reader:
                extent = reader.extent()
        except SourceError as exc:
            problems.append(f"{where}: {str(exc).removeprefix(f'layer {layer_id!r}: ')}")
            continue
        schema = reader.schema
        kept = [name for name in source.drop_fields if name not in reader.dropped]
        if kept:
            problems.append(
                f"{where}: source.drop_fields: {', '.join(repr(n) for n in kept)} "
                f"not in the source (it has: {', '.join(schema.names)})"
            )
        if layer.key not in schema.names:
            problems.append(
                f"{where}: key: field '{layer.key}' is not in the source "
                f"(it has: {', '.join(schema.names)})"
            )
        missing = [name for name in layer.indexes if name not in schema.names]
        if missing:
            problems.append(
                f"{where}: indexes: {', '.join(repr(n) for n in missing)} "
                f"not in the source (it has: {', '.join(schema.names)})"
            )
        problems += [f"{where}: {p}" for p in label_problems(layer.label.fields(), schema.names)]
        if schema.crs is None and source.srid is None:
            problems.append(f"{where}: source.srid: missing, and the source carries no CRS")
            continue
        try:
            crs = resolve_crs(schema.crs, source.srid, layer_id)
        except SourceError as exc:
            problems.append(f"{where}: {str(exc).removeprefix(f'layer {layer_id!r}: ')}")
            continue
        field = "source.srid" if schema.crs is None else "source (the file's own CRS)"
        misfit = extent_misfit(extent, crs) if extent is not None else None
        if misfit:
            problems.append(f"{where}: {field}: {misfit}")
    return problems


def raster_problems(config: ServiceConfig, layer_ids: list[str]) -> list[str]:
    """Every problem found by opening raster layers' local files (URLs: checked by the sync).

    Each file is opened: it must be a raster, carry a CRS or have `srid`, carry nodata or
    have `nodata`, have bands of a supported type, and lie in Belgium once read in its CRS.
    """
    problems: list[str] = []
    for layer_id in layer_ids:
        layer = config.raster(layer_id)
        if layer.source.url is not None:
            continue
        where = f"{config.path}: layer '{layer_id}'"
        with tempfile.TemporaryDirectory(prefix="urbis-check-") as tmp:
            try:
                located = locate(layer, layer_id, Path(tmp))
                facts = check_files(layer, located.files, located.labels)
            except SourceError as exc:
                problems.append(f"{where}: {str(exc).removeprefix(f'layer {layer_id!r}: ')}")
                continue
            except RasterInvalid as exc:
                problems += [f"{where}: {p}" for p in exc.problems]
                continue
            for path, label in zip(located.files, located.labels, strict=True):
                with rasterio.open(path) as ds:
                    misfit = extent_misfit(tuple(ds.bounds), facts.crs)
                if misfit:
                    field = "srid" if facts.crs_declared else "the file's own CRS"
                    problems.append(f"{where}: {label}: {field}: {misfit}")
    return problems


@contextmanager
def _file_reader(
    source: FileSource, layer_id: str, key: str
) -> Iterator[FileReader | FileSetReader]:
    """The reader a run would use for a file source: one file, or several as one layer."""
    if source.paths is not None:
        with open_file_set(source, layer_id, key) as files:
            yield files
        return
    with open_file_source(source, layer_id) as dataset:
        yield FileReader(dataset, source.drop_fields)


def extent_misfit(extent: Extent, crs: CRS) -> str | None:
    """Why a layer's extent, read in `crs`, cannot be right; None when it is plausible.

    Two tests on the extent in longitude/latitude: it must lie within the CRS's area of use
    (4326 declared on Lambert metres puts the data at longitude 150,000), and within Belgium,
    the area of use of the storage CRS (URBIS is Brussels; 31370 declared on degrees puts
    Brussels near Paris, and Lambert 2008 declared on Lambert 72 puts it in the Atlantic).
    """
    name = _crs_name(crs)
    shown = ", ".join(f"{v:.6g}" for v in extent)
    lonlat = _transformed(extent, crs, CRS.from_epsg(4326))
    where = (
        "nowhere on Earth"
        if lonlat is None
        else "at lon/lat " + ", ".join(f"{v:.4g}" for v in lonlat)
    )
    for area, whose in (
        (crs.area_of_use, "that CRS's area of use"),
        (CRS.from_epsg(STORAGE_SRID).area_of_use, "Belgium"),
    ):
        if area is None:
            continue
        west, south, east, north = area.bounds
        if lonlat is None or not _within(
            lonlat,
            (west - AREA_MARGIN, south - AREA_MARGIN, east + AREA_MARGIN, north + AREA_MARGIN),
        ):
            return (
                f"{name} does not fit the data: its extent ({shown}) read in {name} is "
                f"{where}, outside {whose} ({area.name.rstrip('.')}: {west:g}, {south:g}, "
                f"{east:g}, {north:g}); is the data in another CRS?"
            )
    return None


def _crs_name(crs: CRS) -> str:
    epsg = crs.to_epsg(min_confidence=20)
    return f"EPSG:{epsg} ({crs.name})" if epsg else crs.name


def _transformed(extent: Extent, source: CRS, target: CRS) -> Extent | None:
    try:
        out = Transformer.from_crs(source, target, always_xy=True).transform_bounds(*extent)
    except ProjError:
        return None
    return out if all(math.isfinite(v) for v in out) else None


def _within(inner: Extent, outer: Extent) -> bool:
    return (
        inner[0] >= outer[0]
        and inner[1] >= outer[1]
        and inner[2] <= outer[2]
        and inner[3] <= outer[3]
    )
