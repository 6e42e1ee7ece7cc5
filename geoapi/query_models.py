"""What a features request asks for, as values: no SQL here.

The edge (geoapi.params) builds these from query parameters and the query building
(geoapi.features) reads them, so parsing a request never imports the SQL modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from geoapi.crs import CRS84_URI, SUPPORTED, OutputCrs

if TYPE_CHECKING:
    from geoapi.cql2 import CqlFilter


@dataclass(frozen=True)
class SortKey:
    """One `sortby` entry: a catalog property and its direction."""

    name: str
    descending: bool = False


@dataclass(frozen=True)
class PropertyFilter:
    """`<property>=<value>`: the value already converted to the column's type."""

    name: str
    value: Any


@dataclass(frozen=True)
class ItemsQuery:
    limit: int
    offset: int
    bbox: tuple[float, float, float, float] | None = None
    bbox_crs: OutputCrs = SUPPORTED[CRS84_URI]
    crs: OutputCrs = SUPPORTED[CRS84_URI]
    as_of: datetime | None = None
    properties: tuple[str, ...] | None = None  # None: all, in the source's order
    sortby: tuple[SortKey, ...] = ()
    equals: tuple[PropertyFilter, ...] = ()
    cql: CqlFilter | None = None  # `filter` (OGC API Features Part 3)
