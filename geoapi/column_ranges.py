"""numberMatched of a range on one numeric property, from that property's values held sorted.

The first page of `AREA > 500` must say how many buildings match, exactly (GDAL and QGIS show
it as the layer's feature count), and PostgreSQL counts by reading every matching index entry:
for 60 % of 180,000 buildings 14 ms, ten times the page itself (bench/README.md, issue 18). A
filter that is one range on one numeric property (comparisons joined by AND, BETWEEN) is
counted instead by two binary searches in the property's values, read once per layer version
and sorted.

The answer is the count PostgreSQL would give:
- the values are those of the layer version the request's snapshot sees, read in that
  snapshot (a version is what the sync commits with its catalog row, as MatchCounts relies on);
- NULLs are left out, as SQL's comparisons leave them out;
- numbers compare as float8 compares them (an integer property against a decimal number as
  geoapi.cql2 writes it, which keeps the float8 comparison's answer; two integers exactly, as
  float8 does below 2^53):
  a value or literal beyond 2^53 in magnitude, or a NaN (which PostgreSQL sorts above every
  number and equal to itself), leaves the count to SQL.

Values are read only for a property that was counted in SQL before on the same version (a
filter asked once pays no read), and only for layers of up to MAX_ROWS features.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import sqlalchemy as sa
from pygeofilter import ast
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from geoapi.cql2 import COMPARISONS, EXACT_LIMIT, MIRRORED
from geoapi.query_models import ItemsQuery
from urbis_core.catalog import LayerEntry

NUMERIC_TYPES = ("integer", "bigint", "double precision")
MAX_ROWS = 5_000_000  # 40 MB of values for the largest layer held
MAX_HELD = 16  # properties held at once, across layers (least recently counted dropped)
READ_AFTER = 2  # SQL counts of a property, on one version, before its values are read
_LOWER = (">", ">=")
_UPPER = ("<", "<=")


@dataclass(frozen=True)
class Bound:
    value: float
    included: bool


@dataclass(frozen=True)
class ColumnRange:
    """`low <(=) name <(=) high`, either bound open."""

    name: str
    low: Bound | None = None
    high: Bound | None = None

    def narrowed(self, op: str, value: float) -> ColumnRange:
        """The range kept by both this one and `name op value` (op one of = < <= > >=)."""
        span = self
        if op in ("=", *_LOWER):
            low = Bound(value, op != ">")
            if span.low is None or (low.value, not low.included) > (
                span.low.value,
                not span.low.included,
            ):
                span = replace(span, low=low)
        if op in ("=", *_UPPER):
            high = Bound(value, op != "<")
            if span.high is None or (high.value, high.included) < (
                span.high.value,
                span.high.included,
            ):
                span = replace(span, high=high)
        return span

    def count(self, values: np.ndarray[Any, np.dtype[np.float64]]) -> int:
        """How many of `values` (sorted, no NaN) lie in the range."""
        first = 0
        end = len(values)
        if self.low is not None:
            first = int(
                np.searchsorted(values, self.low.value, "left" if self.low.included else "right")
            )
        if self.high is not None:
            end = int(
                np.searchsorted(values, self.high.value, "right" if self.high.included else "left")
            )
        return max(0, end - first)


def column_range(layer: LayerEntry, query: ItemsQuery) -> ColumnRange | None:
    """The query's selection as one range on one numeric property, if it is only that."""
    if query.cql is None or query.bbox is not None or query.equals or query.as_of is not None:
        return None
    types = {c.name: c.sql_type for c in layer.columns}
    span: ColumnRange | None = None
    for part in _conjuncts(query.cql.node):
        found = _condition(part)
        if found is None:
            return None
        name, conditions = found
        if types.get(name) not in NUMERIC_TYPES or (span is not None and span.name != name):
            return None
        span = span or ColumnRange(name)
        for op, value in conditions:
            span = span.narrowed(op, value)
    return span


def _conjuncts(node: Any) -> list[Any]:
    if isinstance(node, ast.And):
        return [*_conjuncts(node.lhs), *_conjuncts(node.rhs)]
    return [node]


def _condition(node: Any) -> tuple[str, list[tuple[str, float]]] | None:
    """(property, [(op, value)...]) for `property op number` or `property BETWEEN a AND b`."""
    if isinstance(node, ast.Between):
        low, high = _number(node.low), _number(node.high)
        if node.not_ or not isinstance(node.lhs, ast.Attribute) or low is None or high is None:
            return None
        return node.lhs.name, [(">=", low), ("<=", high)]
    op = COMPARISONS.get(type(node))
    if op is None or op == "<>":  # not one range
        return None
    lhs, rhs = node.lhs, node.rhs
    if isinstance(rhs, ast.Attribute) and not isinstance(lhs, ast.Attribute):
        lhs, rhs, op = rhs, lhs, MIRRORED.get(op, op)
    value = _number(rhs)
    if not isinstance(lhs, ast.Attribute) or value is None:
        return None
    return lhs.name, [(op, value)]


def _number(value: Any) -> float | None:
    """A literal number float8 holds exactly, as a float; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or abs(value) >= EXACT_LIMIT:
        return None
    return float(value)


class SortedValues:
    """Numeric properties' values, sorted, per layer version; see the module's note."""

    def __init__(self, max_rows: int = MAX_ROWS, max_held: int = MAX_HELD) -> None:
        self.max_rows = max_rows
        self.max_held = max_held
        # (layer, property) -> (version, values, or None where SQL must count)
        self._held: OrderedDict[tuple[str, str], tuple[int, np.ndarray[Any, Any] | None]] = (
            OrderedDict()
        )
        self._asked: Counter[tuple[str, int, str]] = Counter()
        self._reading: dict[tuple[str, str], asyncio.Lock] = {}

    async def count(
        self, conn: AsyncConnection, layer: LayerEntry, span: ColumnRange
    ) -> int | None:
        """`span`'s count on the layer version `conn`'s snapshot sees; None: count in SQL."""
        values = await self._values(conn, layer, span.name)
        return None if values is None else span.count(values)

    async def _values(
        self, conn: AsyncConnection, layer: LayerEntry, name: str
    ) -> np.ndarray[Any, Any] | None:
        key = (layer.id, name)
        held = self._held.get(key)
        if held is not None and held[0] == layer.version:
            self._held.move_to_end(key)
            return held[1]
        if layer.feature_count > self.max_rows:
            return None
        self._asked[(layer.id, layer.version, name)] += 1
        if self._asked[(layer.id, layer.version, name)] <= READ_AFTER:
            if len(self._asked) > 16 * self.max_held:  # asked once and never again
                self._asked.clear()
            return None
        async with self._reading.setdefault(key, asyncio.Lock()):  # one read per version
            held = self._held.get(key)
            if held is None or held[0] != layer.version:
                held = (layer.version, await _read_or_leave(conn, layer, name))
                self._held[key] = held
                self._held.move_to_end(key)
                while len(self._held) > self.max_held:
                    self._held.popitem(last=False)
            return held[1]


async def _read_or_leave(
    conn: AsyncConnection, layer: LayerEntry, name: str
) -> np.ndarray[Any, Any] | None:
    """`_read_sorted`, or None (SQL counts on this version) when the read fails.

    A large layer under a short statement timeout (URBIS_TIMEOUT_ITEMS) may not be read in
    time: inside a savepoint, the request's transaction survives it and counts in SQL, and no
    later request of this version tries again.
    """
    try:
        async with conn.begin_nested():
            return await _read_sorted(conn, layer, name)
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise
        return None


async def _read_sorted(
    conn: AsyncConnection, layer: LayerEntry, name: str
) -> np.ndarray[Any, Any] | None:
    """The property's values without NULLs, sorted; None where float8 cannot stand for them.

    Read as one bytea of big-endian float8s: a row per value costs Python far more (90 ms
    against 40 for 180,000 values).
    """
    column = layer.table().c[name]
    value = sa.cast(column, DOUBLE_PRECISION)
    packed, nans, largest = (
        await conn.execute(
            sa.select(
                func.string_agg(func.float8send(value), sa.literal(b"", sa.LargeBinary)),
                func.count().filter(value == sa.literal(math.nan, DOUBLE_PRECISION)),
                func.max(func.abs(value)),
            ).where(column.is_not(None))
        )
    ).one()
    if nans or (largest is not None and largest >= EXACT_LIMIT):
        return None
    if packed is None:  # no value at all
        return np.empty(0, np.float64)
    values = np.frombuffer(packed, ">f8").astype(np.float64)
    return await asyncio.to_thread(np.sort, values)
