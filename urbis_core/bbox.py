"""Reading a bbox given as text (`minx,miny,maxx,maxy`): one rule for the API and the seeder.

The API reads `bbox` in the CRS `bbox-crs` names, the seeder `--bbox` in CRS84; both refuse
what is not a box with a message naming the parameter. This module knows only axis order
and whether the CRS is geographic, so it imports nothing of the API.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from urbis_core.errors import InvalidParameter

Box = tuple[float, float, float, float]


class Axes(Protocol):
    """What reading a bbox needs of its CRS (geoapi.crs.OutputCrs has both)."""

    @property
    def lat_first(self) -> bool: ...

    @property
    def geographic(self) -> bool: ...


@dataclass(frozen=True)
class _Axes:
    lat_first: bool
    geographic: bool


LON_LAT: Axes = _Axes(lat_first=False, geographic=True)  # CRS84


def parse_bbox(raw: str | None, axes: Axes = LON_LAT, parameter: str = "bbox") -> Box | None:
    """The bbox as x/y (lon/lat) min/max, checked for range and order; None when absent.

    Accepts 4 numbers, or 6 with heights (dropped); where `axes` says latitude first
    (EPSG:4326) the numbers come latitude first and are returned longitude first. A min equal
    to its max is a box (a line or a point: what lies on it matches); a min past its max is
    refused, as a box across the antimeridian is not supported.
    """
    if raw is None or raw == "":
        return None
    parts = raw.split(",")
    if len(parts) not in (4, 6):
        raise InvalidParameter(
            parameter, f"expected 4 or 6 comma-separated numbers, got {len(parts)}"
        )
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise InvalidParameter(parameter, f"'{raw}' is not a list of numbers") from None
    if not all(math.isfinite(n) for n in numbers):
        raise InvalidParameter(parameter, "numbers must be finite")
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if axes.lat_first:
        numbers = [numbers[1], numbers[0], numbers[3], numbers[2]]
    minx, miny, maxx, maxy = numbers
    if axes.geographic and not (-180 <= minx <= 180 and -180 <= maxx <= 180):
        raise InvalidParameter(parameter, "longitudes must lie between -180 and 180")
    if axes.geographic and not (-90 <= miny <= 90 and -90 <= maxy <= 90):
        raise InvalidParameter(parameter, "latitudes must lie between -90 and 90")
    if minx > maxx or miny > maxy:
        raise InvalidParameter(
            parameter,
            "expected minx,miny,maxx,maxy with min <= max (a bbox "
            "across the antimeridian is not supported)",
        )
    return minx, miny, maxx, maxy
