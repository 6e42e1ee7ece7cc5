"""Reading the layer catalog: the only place collection ids turn into tables."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from urbis_core.catalog import LayerEntry, layer_catalog
from urbis_core.errors import NotFound


async def list_layers(conn: AsyncConnection) -> list[LayerEntry]:
    rows = await conn.execute(select(layer_catalog).order_by(layer_catalog.c.id))
    return [LayerEntry.from_row(r) for r in rows]


async def get_layer(conn: AsyncConnection, layer_id: str) -> LayerEntry:
    row = (await conn.execute(select(layer_catalog).where(layer_catalog.c.id == layer_id))).first()
    if row is None:
        raise NotFound(f"no collection '{layer_id}'; /collections lists the available ones")
    return LayerEntry.from_row(row)
