"""From a source frame to rows ready for PostGIS: CRS, geometry family, column types, quarantine.

How column types are decided (also in the README): the OGR field type of the source decides —
Integer -> integer, Integer64 -> bigint, Real -> double precision (or bigint when every value is
a whole number, which is how shapefiles store identifiers), String -> text, Date -> date,
DateTime -> timestamptz, boolean subtype -> boolean. Decimal-comma text in a numeric .dbf field
is recovered as a number by `file_source`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from urbis_core.catalog import STORAGE_SRID, ColumnInfo
from urbis_core.errors import SourceError
from urbis_sync.file_source import SourceSchema

STORAGE_CRS = CRS.from_epsg(STORAGE_SRID)
# Belgium in EPSG:31370, with a margin: coordinates outside are a CRS or axis-order mistake.
PLAUSIBLE_31370 = (-50_000.0, -50_000.0, 400_000.0, 350_000.0)
_FAMILIES = {
    "Point": "Point", "MultiPoint": "Point",
    "LineString": "LineString", "MultiLineString": "LineString", "LinearRing": "LineString",
    "Polygon": "Polygon", "MultiPolygon": "Polygon",
}
_EXACT_INTEGER = 2**53


@dataclass(frozen=True)
class Quarantined:
    key: str | None
    reason: str
    properties: dict[str, Any]
    geometry: shapely.Geometry | None


@dataclass
class NormalizedLayer:
    """Rows in EPSG:31370 with typed values; what could not be stored is in `quarantined`."""

    columns: list[ColumnInfo]
    geometry_type: str
    rows: list[list[Any]]  # values in `columns` order
    geometries: list[shapely.Geometry]
    fetched: int
    repaired: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)


def resolve_crs(detected: CRS | None, declared_srid: int | None, layer_id: str) -> CRS:
    """The source's CRS: detected from the data, else declared in the config; never guessed."""
    if detected is None:
        if declared_srid is None:
            raise SourceError(f"layer '{layer_id}': the source carries no CRS; "
                              "declare it with source.srid (e.g. 31370)")
        return CRS.from_epsg(declared_srid)
    if declared_srid is not None and not _same_crs(detected, CRS.from_epsg(declared_srid)):
        raise SourceError(
            f"layer '{layer_id}': source.srid is {declared_srid} but the source says "
            f"{detected.name}; remove source.srid or fix it"
        )
    return detected


def _same_crs(a: CRS, b: CRS) -> bool:
    return a.equals(b, ignore_axis_order=True) or (
        a.to_epsg(min_confidence=20) is not None
        and a.to_epsg(min_confidence=20) == b.to_epsg(min_confidence=20)
    )


def normalize(
    frame: gpd.GeoDataFrame, schema: SourceSchema, key: str, crs: CRS, layer_id: str
) -> NormalizedLayer:
    if key not in schema.fields:
        raise SourceError(f"layer '{layer_id}': key field '{key}' is not in the source "
                          f"(fields: {', '.join(schema.fields)})")
    if "geom" in {name.lower() for name in schema.fields}:
        raise SourceError(f"layer '{layer_id}': a source field is named 'geom', which is "
                          "reserved for the geometry column")
    if not _same_crs(crs, STORAGE_CRS):
        frame = frame.set_crs(crs, allow_override=True).to_crs(STORAGE_CRS)
    geoms = shapely.force_2d(np.asarray(frame.geometry.values, dtype=object))

    columns = [ColumnInfo(name, _sql_type(name, ogr, schema.subtypes.get(name), frame[name]))
               for name, ogr in schema.fields.items()]
    values = {c.name: _python_values(frame[c.name], c.sql_type) for c in columns}
    result = NormalizedLayer(columns=columns, geometry_type="", rows=[], geometries=[],
                             fetched=len(frame))
    keys = values[key]
    key_counts = Counter(k for k in keys if k is not None)
    families: Counter[str] = Counter()
    multi = False
    for i, geom in enumerate(geoms):
        props = {c.name: values[c.name][i] for c in columns}
        reason = None
        if keys[i] is None:
            reason = f"no value for key {key}"
        elif key_counts[keys[i]] > 1:
            reason = f"duplicate key {key}={keys[i]} ({key_counts[keys[i]]} features)"
        elif geom is None or shapely.is_empty(geom):
            reason = "empty geometry"
        else:
            if not shapely.is_valid(geom):
                repaired = _repair(geom)
                if repaired is None:
                    why = shapely.is_valid_reason(geom)
                    reason = f"invalid geometry that cannot be repaired: {why}"
                else:
                    geom = repaired
                    result.repaired += 1
        if reason is not None:
            result.quarantined.append(Quarantined(
                None if keys[i] is None else str(keys[i]), reason, props, geom))
            continue
        family = _FAMILIES.get(geom.geom_type)
        if family is None:
            result.quarantined.append(Quarantined(str(keys[i]), f"unsupported geometry type "
                                                  f"{geom.geom_type}", props, geom))
            continue
        families[family] += 1
        multi = multi or geom.geom_type.startswith("Multi")
        result.rows.append([values[c.name][i] for c in columns])
        result.geometries.append(geom)

    if len(families) > 1:
        raise SourceError(f"layer '{layer_id}': the source mixes geometry types "
                          f"({', '.join(sorted(families))}); one layer holds one type")
    family = next(iter(families), _family_from_schema(schema.geometry_type))
    if multi or "Multi" in schema.geometry_type:
        result.geometry_type = "Multi" + family
        result.geometries = [_to_multi(g) for g in result.geometries]
    else:
        result.geometry_type = family
    _check_plausible(result.geometries, layer_id)
    return result


def _repair(geom: shapely.Geometry) -> shapely.Geometry | None:
    """make_valid, keeping only the parts of the original family (a polygon stays areal)."""
    family = _FAMILIES.get(geom.geom_type)
    fixed = shapely.make_valid(geom)
    parts = [p for p in shapely.get_parts(fixed) if _FAMILIES.get(p.geom_type) == family]
    if not parts or family is None:
        return None
    if len(parts) == 1:
        return parts[0]
    return shapely.union_all(parts)


def _to_multi(geom: shapely.Geometry) -> shapely.Geometry:
    if geom.geom_type.startswith("Multi"):
        return geom
    return {"Point": shapely.MultiPoint, "LineString": shapely.MultiLineString,
            "Polygon": shapely.MultiPolygon}[geom.geom_type]([geom])


def _family_from_schema(ogr_geometry_type: str) -> str:
    for name, family in _FAMILIES.items():
        if ogr_geometry_type.replace(" Z", "").replace(" M", "").strip() == name:
            return family
    return "Geometry"


def _check_plausible(geoms: list[shapely.Geometry], layer_id: str) -> None:
    if not geoms:
        return
    minx, miny, maxx, maxy = shapely.total_bounds(np.asarray(geoms, dtype=object))
    lo_x, lo_y, hi_x, hi_y = PLAUSIBLE_31370
    if minx < lo_x or miny < lo_y or maxx > hi_x or maxy > hi_y:
        raise SourceError(
            f"layer '{layer_id}': coordinates ({minx:.0f}, {miny:.0f}, {maxx:.0f}, {maxy:.0f}) "
            "are outside Belgium in EPSG:31370; the source CRS (or source.srid) is wrong"
        )


def _sql_type(name: str, ogr_type: str, subtype: str | None, series: pd.Series) -> str:
    if ogr_type == "OFTInteger":
        return "boolean" if subtype == "OFSTBoolean" else "integer"
    if ogr_type == "OFTInteger64":
        return "bigint"
    if ogr_type == "OFTReal":
        numbers = pd.to_numeric(series, errors="coerce").dropna()
        whole = bool(len(numbers)) and bool(
            ((numbers % 1 == 0) & (numbers.abs() < _EXACT_INTEGER)).all())
        return "bigint" if whole else "double precision"
    return {
        "OFTDate": "date", "OFTDateTime": "timestamptz", "OFTTime": "time",
        "OFTBinary": "bytea",
    }.get(ogr_type, "text")


def _python_values(series: pd.Series, sql_type: str) -> list[Any]:
    """Plain Python values (None for missing) that psycopg can COPY."""
    out: list[Any] = []
    for value in series.astype(object).tolist():
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
            out.append(None)
        elif sql_type in ("integer", "bigint"):
            out.append(int(value))
        elif sql_type == "double precision":
            out.append(float(value))
        elif sql_type == "boolean":
            out.append(bool(value))
        elif sql_type == "date":
            out.append(value.date() if isinstance(value, datetime) else value)
        elif sql_type == "timestamptz":
            ts = pd.Timestamp(value).to_pydatetime()
            out.append(ts if ts.tzinfo else ts.replace(tzinfo=UTC))
        elif sql_type == "text":
            out.append(value if isinstance(value, str) else str(value))
        else:
            out.append(value)
    return out
