"""What changed in a layer, and what the sync set aside: SQL for /changes and /quarantine."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncConnection

from geoapi.features import GEOJSON_PLAIN, has_history
from urbis_core.catalog import LayerEntry, quarantine, sync_run

CRS84_DECIMALS = 9


async def fetch_changes(
    conn: AsyncConnection, layer: LayerEntry, since: datetime, limit: int, offset: int
) -> list[dict[str, Any]]:
    """Inserted, updated and deleted keys after `since`, oldest first.

    A superseded row tells an update or a delete at the moment it stopped being valid; a row
    whose validity starts after `since` without a superseded row ending at that moment is an
    insert.
    """
    live = layer.table()
    key = layer.key_field
    starts: list[sa.Select[Any]] = [
        sa.select(live.c[key].label("k"), live.c.valid_from.label("at")).where(
            live.c.valid_from > since
        )
    ]
    ends: list[sa.Select[Any]] = []
    hist = layer.history_table()
    if await has_history(conn, layer):
        starts.append(
            sa.select(hist.c[key].label("k"), hist.c.valid_from.label("at")).where(
                hist.c.valid_from > since
            )
        )
        ends.append(
            sa.select(
                hist.c[key].label("k"), hist.c.op.label("op"), hist.c.valid_to.label("at")
            ).where(hist.c.valid_to > since)
        )
    begun = sa.union_all(*starts).subquery("begun")
    inserts = sa.select(begun.c.k, sa.literal("insert").label("op"), begun.c.at)
    if ends:
        replaced = sa.select(sa.literal(1)).where(
            hist.c[key] == begun.c.k, hist.c.valid_to == begun.c.at
        )
        inserts = inserts.where(~replaced.exists())
    events = sa.union_all(inserts, *ends).subquery("events")
    rows = await conn.execute(
        sa.select(events.c.k, events.c.op, events.c.at)
        .order_by(events.c.at, events.c.op, sa.cast(events.c.k, sa.Text))
        .limit(limit)
        .offset(offset)
    )
    return [{"id": r.k, "op": r.op, "time": r.at.isoformat()} for r in rows]


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
