"""Drawing a tile: the layers it shows, read in one snapshot with their rows, as MVT.

Used by the API for a request (tiles.cache keeps what it draws) and by the low-zoom keeper
ahead of requests (tiles.lowzoom). The connection comes from the caller's `Snapshot`, which
sets its timeout; a request's CQL2 filter comes compiled per layer (`ConditionsOf`), as the
API reads filters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncConnection

from tiles.keys import CachedTile, TileKey
from tiles.mvt import Condition, DrawingMemory, TileRequest, render_tile
from tiles.tms import get_tms
from urbis_core.catalog import LayerEntry, get_layer, list_layers
from urbis_core.errors import InvalidParameter
from urbis_core.layer_ids import layers_by_ids

LayersOf = Callable[[AsyncConnection], Awaitable[list[LayerEntry]]]
Snapshot = Callable[[], AbstractAsyncContextManager[AsyncConnection]]
ConditionsOf = Callable[[list[LayerEntry]], dict[str, Condition]]  # a filter, per layer


def layers_of(ids: tuple[str, ...]) -> LayersOf:
    """The layers a tile draws: these collections, or every layer when there are none."""

    async def read(conn: AsyncConnection) -> list[LayerEntry]:
        return layers_by_ids(ids, await list_layers(conn))

    return read


def layer_of(layer_id: str) -> LayersOf:
    """The one layer a collection's tile draws (named in the path: NotFound when absent)."""

    async def read(conn: AsyncConnection) -> list[LayerEntry]:
        return [await get_layer(conn, layer_id)]

    return read


def _properties(raw: str | None, layers: list[LayerEntry]) -> list[str] | None:
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    known = {c.name for layer in layers for c in layer.columns}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidParameter(
            "properties",
            f"no property {', '.join(unknown)} in {', '.join(layer.id for layer in layers)}",
        )
    return names


async def draw_tile(
    snapshot: Snapshot,
    memory: DrawingMemory,
    key: TileKey,
    layers_of: LayersOf,
    properties: str | None = None,
    conditions_of: ConditionsOf | None = None,
) -> CachedTile:
    """Render a tile in one snapshot of the catalog and the layers, with its ETag.

    `properties` is the comma-separated list asked for (None: all); `conditions_of` gives
    a filter's condition per layer, checked against each before any tile SQL runs.
    """
    tms = get_tms(key.tms)
    async with snapshot() as conn:
        layers = await layers_of(conn)
        names = _properties(properties, layers)
        conditions = conditions_of(layers) if conditions_of is not None else {}
        data = await render_tile(
            conn, memory, layers, TileRequest(tms, key.z, key.x, key.y), names, conditions
        )
    versions = "-".join(f"{layer.id}.{layer.version}" for layer in layers)
    return CachedTile(
        data,
        f'"{versions}{"-" + key.variant if key.variant else ""}"',
        tuple((layer.id, layer.version) for layer in layers),
    )
