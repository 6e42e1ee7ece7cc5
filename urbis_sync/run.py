"""One sync run of one layer: read, normalize, apply in one transaction, record the run."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import shapely
from sqlalchemy import Connection, Engine, func, select, text

from urbis_core.catalog import STORAGE_SRID, change_log, quarantine, sync_run
from urbis_core.config import FileSource, LayerConfig, ServiceConfig
from urbis_core.errors import SyncError, UrbisError
from urbis_sync.file_source import open_file_source, read_frame, read_schema
from urbis_sync.load import LoadResult, replace_layer
from urbis_sync.normalize import NormalizedLayer, normalize, resolve_crs

log = logging.getLogger(__name__)
NOTIFY_CHANNEL = "urbis_layer_changed"
RUN_MODE = "full-replace"


@dataclass(frozen=True)
class RunReport:
    layer_id: str
    run_id: int
    status: str
    fetched: int = 0
    inserted: int = 0
    deleted: int = 0
    repaired: int = 0
    quarantined: int = 0
    version: int | None = None
    error: str | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        if self.status != "success":
            return f"{self.layer_id}: FAILED (run {self.run_id}): {self.error}"
        return (f"{self.layer_id}: {self.inserted} features stored (version {self.version}), "
                f"{self.repaired} repaired, {self.quarantined} quarantined, "
                f"{self.seconds:.1f} s (run {self.run_id})")


def read_layer(layer_id: str, layer: LayerConfig) -> NormalizedLayer:
    source = layer.source
    if not isinstance(source, FileSource):
        raise SyncError(f"layer '{layer_id}': source kind '{source.kind}' cannot be synced by "
                        "this version yet (only 'file' sources)")
    with open_file_source(source, layer_id) as dataset:
        schema = read_schema(dataset)
        frame = read_frame(dataset, schema)
    crs = resolve_crs(schema.crs, source.srid, layer_id)
    return normalize(frame, schema, layer.key, crs, layer_id)


def sync_layer(engine: Engine, config: ServiceConfig, layer_id: str) -> RunReport:
    layer = config.layer(layer_id)
    started = time.monotonic()
    with engine.begin() as conn:
        run_id = conn.execute(
            sync_run.insert().values(layer_id=layer_id, mode=RUN_MODE, status="running")
            .returning(sync_run.c.id)
        ).scalar_one()
    try:
        data = read_layer(layer_id, layer)
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '30s'"))
            result = replace_layer(conn, layer_id, layer, data)
            _record_quarantine(conn, layer_id, run_id, data)
            _record_change(conn, layer_id, run_id, result)
            conn.execute(sync_run.update().where(sync_run.c.id == run_id).values(
                status="success", finished_at=func.clock_timestamp(), fetched=data.fetched,
                inserted=result.feature_count, deleted=result.previous_count,
                repaired=data.repaired, quarantined=len(data.quarantined),
                version=result.version))
            conn.execute(select(func.pg_notify(NOTIFY_CHANNEL, json.dumps(
                {"layer": layer_id, "version": result.version}))))
    except Exception as exc:
        message = str(exc) if isinstance(exc, UrbisError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, UrbisError):
            log.exception("sync of layer %s failed unexpectedly", layer_id)
        with engine.begin() as conn:
            conn.execute(sync_run.update().where(sync_run.c.id == run_id).values(
                status="failed", finished_at=func.clock_timestamp(), error=message))
        return RunReport(layer_id, run_id, "failed", error=message,
                         seconds=time.monotonic() - started)
    return RunReport(
        layer_id, run_id, "success", fetched=data.fetched, inserted=result.feature_count,
        deleted=result.previous_count, repaired=data.repaired,
        quarantined=len(data.quarantined), version=result.version,
        seconds=time.monotonic() - started,
    )


def sync_once(engine: Engine, config: ServiceConfig, layer_ids: list[str]) -> list[RunReport]:
    return [sync_layer(engine, config, layer_id) for layer_id in layer_ids]


def _record_quarantine(conn: Connection, layer_id: str, run_id: int, data: NormalizedLayer) -> None:
    # A full replace supersedes what earlier runs set aside.
    conn.execute(quarantine.delete().where(quarantine.c.layer_id == layer_id))
    for item in data.quarantined:
        geom = None
        if item.geometry is not None and not shapely.is_empty(item.geometry):
            geom = func.ST_GeomFromEWKT(f"SRID={STORAGE_SRID};{item.geometry.wkt}")
        conn.execute(quarantine.insert().values(
            layer_id=layer_id, run_id=run_id, feature_key=item.key, reason=item.reason,
            properties=json.loads(json.dumps(item.properties, default=str)), geom=geom))


def _record_change(conn: Connection, layer_id: str, run_id: int, result: LoadResult) -> None:
    boxes = [b for b in (result.previous_bbox, result.bbox_native) if b]
    bbox = None
    if boxes:
        bbox = func.ST_MakeEnvelope(min(b[0] for b in boxes), min(b[1] for b in boxes),
                                    max(b[2] for b in boxes), max(b[3] for b in boxes),
                                    STORAGE_SRID)
    conn.execute(change_log.insert().values(
        layer_id=layer_id, run_id=run_id, version=result.version,
        inserted=result.feature_count, deleted=result.previous_count, bbox=bbox))
