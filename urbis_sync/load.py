"""Writing a normalized layer into PostGIS. Functions take a connection and never commit.

This is the first sync path: the live table is replaced whole, inside the caller's
transaction, so readers see the old layer or the new one and never a mix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import shapely
from psycopg import sql
from sqlalchemy import Connection, func, select

from urbis_core.catalog import STORAGE_SRID, layer_catalog
from urbis_core.config import LayerConfig
from urbis_core.db import LAYER_SCHEMA
from urbis_sync.normalize import NormalizedLayer


@dataclass(frozen=True)
class LoadResult:
    version: int
    feature_count: int
    previous_count: int
    previous_bbox: tuple[float, ...] | None
    bbox_native: tuple[float, float, float, float] | None


def _raw(conn: Connection) -> psycopg.Connection[Any]:
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver


def replace_layer(
    conn: Connection, layer_id: str, layer: LayerConfig, data: NormalizedLayer
) -> LoadResult:
    """Replace the layer table and its catalog row; the caller's transaction makes it atomic."""
    raw = _raw(conn)
    table = sql.Identifier(LAYER_SCHEMA, layer_id)
    previous = conn.execute(
        select(layer_catalog.c.version, layer_catalog.c.feature_count,
               layer_catalog.c.bbox_native)
        .where(layer_catalog.c.id == layer_id)
    ).first()
    column_defs = [
        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(_TYPES[c.sql_type]))
        for c in data.columns
    ]
    column_defs.append(sql.SQL("geom geometry({}, {}) NOT NULL").format(
        sql.SQL(data.geometry_type), sql.Literal(STORAGE_SRID)))
    column_defs.append(sql.SQL("PRIMARY KEY ({})").format(sql.Identifier(layer.key)))
    with raw.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        cur.execute(sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(", ").join(column_defs)))
        names = [sql.Identifier(c.name) for c in data.columns] + [sql.Identifier("geom")]
        geoms = shapely.set_srid(np.asarray(data.geometries, dtype=object), STORAGE_SRID)
        wkb = shapely.to_wkb(geoms, hex=True, include_srid=True)
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
                table, sql.SQL(", ").join(names))) as copy:
            for row, geom_hex in zip(data.rows, wkb, strict=True):
                copy.write_row([*row, geom_hex])
        cur.execute(sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(
            sql.Identifier(f"{layer_id}_geom_gist"), table))
        count, *bbox = cur.execute(sql.SQL(
            "SELECT count(*), ST_XMin(ST_Extent(geom)), ST_YMin(ST_Extent(geom)), "
            "ST_XMax(ST_Extent(geom)), ST_YMax(ST_Extent(geom)) FROM {}").format(table)
        ).fetchone() or (0, None, None, None, None)
    bbox_native = tuple(bbox) if bbox[0] is not None else None
    version = (previous.version if previous else 0) + 1
    values = {
        "table_name": layer_id,
        "title": {k: v for k, v in layer.title.model_dump().items() if v},
        "description": layer.description,
        "source": json.loads(layer.source.model_dump_json()),
        "key_field": layer.key,
        "geometry_type": data.geometry_type,
        "srid": STORAGE_SRID,
        "columns": [{"name": c.name, "type": c.sql_type} for c in data.columns],
        "feature_count": count,
        "bbox_native": list(bbox_native) if bbox_native else None,
        "bbox_crs84": _crs84_bbox(conn, bbox_native),
        "version": version,
        "last_success": func.now(),
    }
    if previous:
        conn.execute(layer_catalog.update().where(layer_catalog.c.id == layer_id).values(values))
    else:
        conn.execute(layer_catalog.insert().values(id=layer_id, **values))
    return LoadResult(
        version=version,
        feature_count=count,
        previous_count=previous.feature_count if previous else 0,
        previous_bbox=tuple(previous.bbox_native) if previous and previous.bbox_native else None,
        bbox_native=bbox_native,
    )


def _crs84_bbox(conn: Connection, bbox: tuple[float, ...] | None) -> list[float] | None:
    """The native extent in CRS84, from the densified envelope so curved edges are covered."""
    if bbox is None:
        return None
    env = func.ST_Transform(
        func.ST_Segmentize(func.ST_MakeEnvelope(*bbox, STORAGE_SRID), 50.0), 4326)
    row = conn.execute(select(func.ST_XMin(env), func.ST_YMin(env), func.ST_XMax(env),
                              func.ST_YMax(env))).one()
    return [float(v) for v in row]


_TYPES = {
    "integer": "integer", "bigint": "bigint", "double precision": "double precision",
    "boolean": "boolean", "date": "date", "timestamptz": "timestamptz", "time": "time",
    "bytea": "bytea", "text": "text",
}
