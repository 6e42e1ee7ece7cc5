"""numberMatched without counting again: filtered counts remembered per layer version.

Paging through a filtered collection asks for the same count on every page; the count of a
query only changes when its layer does, and the layer's version says when. Counts are kept
per (layer, version, query) in a small LRU, so each is computed once per version.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncConnection

from urbis_core.catalog import LayerEntry

MAX_ENTRIES = 4096


class MatchCounts:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._counts: OrderedDict[tuple[Any, ...], int] = OrderedDict()

    async def count(self, conn: AsyncConnection, layer: LayerEntry, query: Select[Any]) -> int:
        compiled = query.compile(dialect=conn.dialect)
        key = (layer.id, layer.version, str(compiled),
               tuple(sorted((k, repr(v)) for k, v in compiled.params.items())))
        if key in self._counts:
            self._counts.move_to_end(key)
            return self._counts[key]
        value = int((await conn.execute(query)).scalar_one())
        self._counts[key] = value
        while len(self._counts) > self.max_entries:
            self._counts.popitem(last=False)
        return value
