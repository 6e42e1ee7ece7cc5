"""Coordinate reference systems the API reads and writes (OGC API Features Part 2)."""

from __future__ import annotations

from dataclasses import dataclass

from urbis_core.errors import InvalidParameter

CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
# The extent of Web Mercator: nothing on Earth lies further in a projected CRS (metres), and the
# range the API takes a projected position in (a point, a posted geometry, a filter's literal).
PROJECTED_LIMIT_M = 20_048_966.11


@dataclass(frozen=True)
class OutputCrs:
    uri: str
    srid: int
    lat_first: bool  # EPSG:4326 is latitude/longitude in OGC APIs; CRS84 is lon/lat
    geographic: bool

    @property
    def decimals(self) -> int:
        # About 0.1 mm: at 1 mm, rounding alone moves the area of Bruxelles' polygon by ~1 m².
        return 9 if self.geographic else 4


SUPPORTED: dict[str, OutputCrs] = {
    CRS84_URI: OutputCrs(CRS84_URI, 4326, lat_first=False, geographic=True),
    EPSG_URI.format(4326): OutputCrs(EPSG_URI.format(4326), 4326, lat_first=True, geographic=True),
    EPSG_URI.format(31370): OutputCrs(
        EPSG_URI.format(31370), 31370, lat_first=False, geographic=False
    ),
    EPSG_URI.format(3857): OutputCrs(
        EPSG_URI.format(3857), 3857, lat_first=False, geographic=False
    ),
}
_ALIASES = {"CRS84": CRS84_URI, "OGC:CRS84": CRS84_URI, "[OGC:CRS84]": CRS84_URI}
for _srid in (4326, 31370, 3857):
    for _alias in (f"EPSG:{_srid}", f"[EPSG:{_srid}]", f"urn:ogc:def:crs:EPSG::{_srid}"):
        _ALIASES[_alias] = EPSG_URI.format(_srid)


def parse_crs(raw: str | None, parameter: str) -> OutputCrs:
    """A supported CRS from its URI (or a common short form); CRS84 when absent."""
    if raw is None or raw == "":
        return SUPPORTED[CRS84_URI]
    uri = _ALIASES.get(raw.strip(), raw.strip())
    if uri not in SUPPORTED:
        raise InvalidParameter(
            parameter, f"'{raw}' is not supported; use one of {', '.join(SUPPORTED)}"
        )
    return SUPPORTED[uri]
