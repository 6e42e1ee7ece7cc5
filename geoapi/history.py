"""What the sync set aside: SQL for /quarantine (what changed: urbis_core.changes)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncConnection

from geoapi.features import GEOJSON_PLAIN
from urbis_core.catalog import LayerEntry, quarantine, sync_run

CRS84_DECIMALS = 9


async def fetch_quarantine(
    conn: AsyncConnection, layer: LayerEntry, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """The features the latest successful run set aside, with the reason, as GeoJSON."""
    geometry = func.ST_AsGeoJSON(
        func.ST_Transform(quarantine.c.geom, 4326), CRS84_DECIMALS, GEOJSON_PLAIN
    )
    query = (
        sa.select(
            quarantine.c.id,
            quarantine.c.feature_key,
            quarantine.c.reason,
            quarantine.c.properties,
            quarantine.c.run_id,
            sync_run.c.started_at,
            geometry.label("geometry"),
        )
        .join(sync_run, sync_run.c.id == quarantine.c.run_id)
        .where(quarantine.c.layer_id == layer.id)
    )
    total = (await conn.execute(sa.select(func.count()).select_from(query.subquery()))).scalar()
    rows = await conn.execute(query.order_by(quarantine.c.id).limit(limit).offset(offset))
    features = [
        {
            "type": "Feature",
            "id": r.id,
            "geometry": json.loads(r.geometry) if r.geometry else None,
            "properties": {
                "key": r.feature_key,
                "reason": r.reason,
                "run": r.run_id,
                "runStarted": r.started_at.isoformat(),
                "source": r.properties,
            },
        }
        for r in rows
    ]
    return features, int(total or 0)
