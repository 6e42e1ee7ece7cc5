"""One sync run of a raster layer: locate, fingerprint, validate, write the COG, swap it in.

The swap is a file then a row: the new COG is written under a temporary name, fsynced and
renamed (readers never see a half-written file), then the catalog row names it in one
transaction. Older COGs go only after that commit, and the one just replaced stays until the
next run, so a reader that read the old path a moment ago still finds its file. On any failure
the previous COG and row stay as they were and the run row says which file and what is wrong.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rasterio
import sqlalchemy as sa
from rasterio._err import CPLE_BaseError  # GDAL's errors while reading pixels; not re-exported
from rasterio.errors import RasterioError
from rasterio.warp import transform_bounds
from sqlalchemy import Connection, Engine, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError

from urbis_core.catalog import STORAGE_SRID
from urbis_core.changes import LayerChanged, announce, coverage_layer
from urbis_core.config import RasterLayerConfig, ServiceConfig
from urbis_core.coverages import CoverageEntry, coverage_catalog, read_coverage
from urbis_core.errors import UrbisError
from urbis_core.settings import SyncSettings
from urbis_sync.raster.cog import write_cog
from urbis_sync.raster.source import RasterFiles, locate
from urbis_sync.raster.stats import band_statistics
from urbis_sync.raster.validate import RasterInvalid, check_files
from urbis_sync.run_rows import begin_run, describe_failure, finish_run, record_failure

log = logging.getLogger(__name__)
RUN_MODE = "raster"


@dataclass(frozen=True)
class RasterOutcome:
    run_id: int
    status: str  # success or failed
    version: int | None = None
    changed: bool = False  # a new COG was written (False: the source was unchanged)
    path: str | None = None
    error: str | None = None


def run_raster(
    engine: Engine, config: ServiceConfig, layer_id: str, settings: SyncSettings
) -> RasterOutcome:
    """One run; the caller holds the layer's advisory lock (urbis_sync.run.sync_layer)."""
    layer = config.raster(layer_id)
    with engine.begin() as conn:
        run_id = begin_run(conn, layer_id, RUN_MODE)
    try:
        with tempfile.TemporaryDirectory(prefix="urbis-raster-") as tmp:
            return _convert(engine, layer, layer_id, settings, run_id, Path(tmp))
    except Exception as exc:
        message = _describe_failure(layer_id, exc)
        if not isinstance(exc, UrbisError | DBAPIError | RasterInvalid | RasterioError):
            log.exception("sync of raster layer %s failed unexpectedly", layer_id)
        record_failure(engine, layer_id, run_id, message)
        return RasterOutcome(run_id, "failed", error=message)


def _convert(
    engine: Engine,
    layer: RasterLayerConfig,
    layer_id: str,
    settings: SyncSettings,
    run_id: int,
    workdir: Path,
) -> RasterOutcome:
    located = locate(layer, layer_id, workdir)
    with engine.connect() as conn:
        current = read_coverage(conn, layer_id)
    if (
        current is not None
        and current.checksum == located.checksum
        and Path(current.path).is_file()
    ):
        with engine.begin() as conn:
            _describe_layer(conn, layer_id, layer)  # titles and style may change alone
            if _described(current) != _json(_metadata(layer)):
                # the API's kept catalog rows and tiles drawn in the old style go at once
                conn.execute(
                    sa.select(
                        LayerChanged(coverage_layer(layer_id), current.version, None).notification()
                    )
                )
            finish_run(conn, run_id, "success", version=current.version)
        return RasterOutcome(run_id, "success", current.version, False, current.path)

    facts = check_files(layer, located.files, located.labels)
    version = (current.version if current else 0) + 1
    folder = settings.raster_dir / layer_id
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{version}-{located.checksum[:12]}.tif"
    partial = folder / f".{final.name}.{os.getpid()}.partial"
    try:
        try:
            write_cog(located.files, facts, workdir, partial)
        except (RasterioError, CPLE_BaseError) as exc:
            raise RasterInvalid(
                [f"{_names(located)}: cannot be converted to a COG ({exc})"]
            ) from exc
        row = _row(layer_id, layer, partial, located.checksum, version)
        os.replace(partial, final)
        _fsync_folder(folder)
    finally:
        partial.unlink(missing_ok=True)
    # If this fails the new file stays unnamed, and the next successful run's prune removes it.
    # It is not removed here: a failure while committing may hide a commit that happened.
    with engine.begin() as conn:
        conn.execute(
            insert(coverage_catalog)
            .values(path=str(final), **row)
            .on_conflict_do_update(
                index_elements=[coverage_catalog.c.id],
                set_={"path": str(final), **{k: v for k, v in row.items() if k != "id"}},
            )
        )
        # The API's tile caches drop this coverage's tiles when this commits (tiles.listener).
        # No bbox: a new file may differ anywhere, and its extent may not be the old one.
        first = current is None
        announce(
            conn,
            run_id,
            LayerChanged(coverage_layer(layer_id), version, None),
            (1 if first else 0, 0 if first else 1, 0),  # the coverage, as one item
        )
        finish_run(conn, run_id, "success", version=version)
    _prune(folder, keep={final, Path(current.path)} if current else {final})
    return RasterOutcome(run_id, "success", version, True, str(final))


def _row(
    layer_id: str, layer: RasterLayerConfig, cog: Path, checksum: str, version: int
) -> dict[str, Any]:
    """The catalog row of a COG just written, read back from the file itself."""
    with rasterio.open(cog) as ds:
        bounds = tuple(ds.bounds)
        crs84 = transform_bounds(ds.crs, "OGC:CRS84", *bounds, densify_pts=21)
        shape = {"width": ds.width, "height": ds.height, "resolution": list(ds.res)}
    return {
        "id": layer_id,
        **_metadata(layer),
        "version": version,
        "checksum": checksum,
        "bands": [_json_safe(band) for band in band_statistics(cog)],
        **shape,
        "bbox_native": list(bounds),
        "bbox_crs84": list(crs84),
        "srid": STORAGE_SRID,
        "last_success": func.now(),
    }


def _metadata(layer: RasterLayerConfig) -> dict[str, Any]:
    return {
        "title": layer.title.model_dump(exclude_none=True),
        "description": layer.description,
        "style": layer.style.model_dump(exclude_defaults=True),
    }


def _described(entry: CoverageEntry) -> dict[str, Any]:
    """What `_metadata` wrote, as the catalog row gives it back."""
    return {"title": entry.title, "description": entry.description, "style": entry.style}


def _json(value: dict[str, Any]) -> dict[str, Any]:
    """As JSONB gives it back (tuples as lists)."""
    result: dict[str, Any] = json.loads(json.dumps(value))
    return result


def _describe_layer(conn: Connection, layer_id: str, layer: RasterLayerConfig) -> None:
    conn.execute(
        coverage_catalog.update()
        .where(coverage_catalog.c.id == layer_id)
        .values(**_metadata(layer), last_success=func.now())
    )


def _json_safe(band: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: a NaN nodata is written as the string 'nan'."""
    nodata = band["nodata"]
    return band | {"nodata": "nan" if nodata is not None and nodata != nodata else nodata}


def _prune(folder: Path, keep: set[Path]) -> None:
    """Remove the COGs no row names any more, and partial files of runs that died."""
    for path in folder.iterdir():
        if path.is_file() and path not in keep:
            try:
                path.unlink()
            except OSError as exc:  # the next run tries again
                log.warning("cannot remove old raster %s: %s", path, exc)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable: a crash after the commit must not lose the file."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _names(located: RasterFiles) -> str:
    return ", ".join(located.labels)


def _describe_failure(layer_id: str, exc: Exception) -> str:
    if isinstance(exc, RasterInvalid):
        return f"layer '{layer_id}': {'; '.join(exc.problems)}"
    if isinstance(exc, UrbisError | DBAPIError):
        return describe_failure(exc)
    return f"layer '{layer_id}': {describe_failure(exc)}"
