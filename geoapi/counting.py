"""numberMatched without counting again: filtered counts remembered per layer version.

Paging through a filtered collection asks for the same count on every page; the count of a
query only changes when its layer does, and the layer's version says when. Counts are kept
per (layer, version, request) in a small LRU, so each is computed once per version. The
request part of the key is what the caller's conditions were made from (bbox, filters...):
cheaper to build than the compiled SQL, which would cost more than many counts it saves.
A range on one numeric property is counted from the property's sorted values instead
(`geoapi.column_ranges`), once they are held.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncConnection

from geoapi.column_ranges import ColumnRange, SortedValues
from urbis_core.catalog import LayerEntry

MAX_ENTRIES = 4096


class MatchCounts:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._counts: OrderedDict[tuple[Any, ...], int] = OrderedDict()
        self.sorted_values = SortedValues()

    def known(self, layer: LayerEntry, request: Hashable) -> int | None:
        """The count remembered for `request` on this version of the layer, if any."""
        key = (layer.id, layer.version, request)
        value = self._counts.get(key)
        if value is not None:
            self._counts.move_to_end(key)
        return value

    async def count(
        self,
        conn: AsyncConnection,
        layer: LayerEntry,
        request: Hashable,
        query: Select[Any],
        span: ColumnRange | None = None,
    ) -> int:
        """`query`'s count; `request` must tell apart every two requests it can differ for.

        `span`: the same selection as a range on one numeric property, when it is one.
        """
        value = self.known(layer, request)
        if value is None and span is not None:
            value = await self.sorted_values.count(conn, layer, span)
            if value is not None:
                return value  # as cheap as finding it here: not kept
        if value is None:
            value = int((await conn.execute(query)).scalar_one())
            self._counts[(layer.id, layer.version, request)] = value
            while len(self._counts) > self.max_entries:
                self._counts.popitem(last=False)
        return value
