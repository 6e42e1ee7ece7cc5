"""The catalog's writer: a synced layer described as it now is (urbis_meta.layer_catalog).

`urbis_core.catalog` reads the catalog; the sync is the one that writes it.
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, func, select

from urbis_core.catalog import STORAGE_SRID, layer_catalog
from urbis_core.config import LayerConfig
from urbis_core.db import LAYER_SCHEMA
from urbis_core.errors import SourceError
from urbis_core.names import label_problems
from urbis_sync.reconcile.shape import LayerShape


def mark_synced(conn: Connection, layer_id: str, layer: LayerConfig, fields: list[str]) -> None:
    """A run that changed nothing: the layer is as fresh as its source, its settings new."""
    conn.execute(
        layer_catalog.update()
        .where(layer_catalog.c.id == layer_id)
        .values(
            last_success=func.now(),
            tiles=layer.tiles.model_dump(),
            label=checked_label(layer_id, layer, fields),
        )
    )


def checked_label(layer_id: str, layer: LayerConfig, fields: list[str]) -> dict[str, str]:
    """The configured label, each field it reads being one of the layer's."""
    label = layer.label.fields()
    problems = label_problems(label, fields)
    if problems:
        raise SourceError(f"layer '{layer_id}': {'; '.join(problems)}; correct the layer's `label`")
    return label


def write_catalog(
    conn: Connection, layer_id: str, layer: LayerConfig, shape: LayerShape, version: int
) -> tuple[int, tuple[float, float, float, float] | None]:
    """Describe the layer as it now is; returns its feature count and extent."""
    live = f'{LAYER_SCHEMA}."{layer_id}"'
    extent = conn.exec_driver_sql(
        f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e), n FROM "
        f"(SELECT ST_Extent(geom) e, count(*) n FROM {live}) s"
    ).one()
    bbox = list(extent[:4]) if extent[0] is not None else None
    values = {
        "table_name": layer_id,
        "title": {k: v for k, v in layer.title.model_dump().items() if v},
        "description": layer.description,
        "source": json.loads(layer.source.model_dump_json()),
        "key_field": layer.key,
        "geometry_type": shape.geometry_type,
        "srid": STORAGE_SRID,
        "columns": [{"name": c.name, "type": c.sql_type} for c in shape.columns],
        "feature_count": int(extent[4]),
        "bbox_native": bbox,
        "bbox_crs84": _crs84_bbox(conn, bbox),
        "version": version,
        "last_success": func.now(),
        "tiles": layer.tiles.model_dump(),
        "label": checked_label(layer_id, layer, [c.name for c in shape.columns]),
    }
    exists = conn.execute(select(layer_catalog.c.id).where(layer_catalog.c.id == layer_id)).first()
    if exists:
        conn.execute(layer_catalog.update().where(layer_catalog.c.id == layer_id).values(values))
    else:
        conn.execute(layer_catalog.insert().values(id=layer_id, **values))
    return int(extent[4]), (tuple(bbox) if bbox else None)


def _crs84_bbox(conn: Connection, bbox: list[float] | None) -> list[float] | None:
    """The native extent in CRS84, from the densified envelope so curved edges are covered."""
    if bbox is None:
        return None
    env = func.ST_Transform(
        func.ST_Segmentize(func.ST_MakeEnvelope(*bbox, STORAGE_SRID), 50.0), 4326
    )
    row = conn.execute(
        select(func.ST_XMin(env), func.ST_YMin(env), func.ST_XMax(env), func.ST_YMax(env))
    ).one()
    return [float(v) for v in row]
