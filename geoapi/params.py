"""Validation of query parameters at the edge: bad values become 400s that say what is wrong."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime

from geoapi.crs import CRS84_URI, SUPPORTED, OutputCrs
from urbis_core.errors import InvalidParameter


def parse_bbox(
    raw: str | None, crs: OutputCrs = SUPPORTED[CRS84_URI]
) -> tuple[float, float, float, float] | None:
    """The bbox as x/y (lon/lat) min/max in `crs`, checked for range and order.

    Accepts 4 numbers, or 6 with heights; in EPSG:4326 the numbers come latitude first.
    """
    if raw is None or raw == "":
        return None
    parts = raw.split(",")
    if len(parts) not in (4, 6):
        raise InvalidParameter("bbox", f"expected 4 or 6 comma-separated numbers, got {len(parts)}")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise InvalidParameter("bbox", f"'{raw}' is not a list of numbers") from None
    if not all(math.isfinite(n) for n in numbers):
        raise InvalidParameter("bbox", "numbers must be finite")
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if crs.lat_first:
        numbers = [numbers[1], numbers[0], numbers[3], numbers[2]]
    minx, miny, maxx, maxy = numbers
    if crs.geographic and not (-180 <= minx <= 180 and -180 <= maxx <= 180):
        raise InvalidParameter("bbox", "longitudes must lie between -180 and 180")
    if crs.geographic and not (-90 <= miny <= 90 and -90 <= maxy <= 90):
        raise InvalidParameter("bbox", "latitudes must lie between -90 and 90")
    if minx > maxx or miny > maxy:
        raise InvalidParameter("bbox", "expected minx,miny,maxx,maxy with min <= max")
    return minx, miny, maxx, maxy


def reject_unknown(params: Iterable[str], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InvalidParameter(
            unknown[0], f"unknown parameter; this resource accepts {', '.join(sorted(allowed))}"
        )


def parse_instant(raw: str | None, parameter: str) -> datetime | None:
    """An RFC 3339 instant (a plain date means its midnight, UTC); intervals are refused."""
    if raw is None or raw == "":
        return None
    example = "e.g. 2026-11-28T12:00:00Z"
    if "/" in raw:
        raise InvalidParameter(parameter, f"only a single instant is supported ({example}), "
                                          "not an interval")
    try:
        if len(raw) == 10:
            return datetime.fromisoformat(raw).replace(tzinfo=UTC)
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidParameter(parameter,
                               f"'{raw}' is not an RFC 3339 date-time ({example})") from None
    if value.tzinfo is None:
        raise InvalidParameter(parameter, f"'{raw}' needs a time zone, Z or +01:00 ({example})")
    return value
