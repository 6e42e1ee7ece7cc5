"""JSON Schemas of a layer, typed from the catalog: its queryables and its features' schema.

Both say what the database holds, column for column: a catalog type gives one JSON type (and
format), so a filter's values, the queryables and the features' schema agree with each other and
with what the items carry (integers as JSON integers, dates as `YYYY-MM-DD` strings...).
"""

from __future__ import annotations

from typing import Any

from urbis_core.catalog import LayerEntry

SCHEMA_MEDIA_TYPE = "application/schema+json"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
SCHEMA_REL = "http://www.opengis.net/def/rel/ogc/1.0/schema"
JSON_TYPES: dict[str, dict[str, str]] = {
    "integer": {"type": "integer"},
    "bigint": {"type": "integer"},
    "double precision": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "timestamptz": {"type": "string", "format": "date-time"},
    "time": {"type": "string", "format": "time"},
}
# The simple feature types, as GeoJSON, OGC API and GDAL name them.
GEOMETRY_TYPES = (
    "Point",
    "LineString",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
)


def json_type(sql_type: str) -> dict[str, str]:
    """The JSON type (and format) of a catalog column's values; text for anything else."""
    return dict(JSON_TYPES.get(sql_type, {"type": "string"}))


def _geometry_format(layer: LayerEntry) -> str:
    kind = layer.geometry_type
    return f"geometry-{kind.lower()}" if kind in GEOMETRY_TYPES else "geometry-any"


def queryables_doc(layer: LayerEntry, base: str) -> dict[str, Any]:
    """The properties `filter` accepts, as a JSON Schema (OGC API Features Part 3)."""
    properties: dict[str, Any] = {
        c.name: {"title": c.name, **json_type(c.sql_type)} for c in layer.columns
    }
    kind = layer.geometry_type
    shape = kind if kind in GEOMETRY_TYPES else "Geometry"
    properties["geometry"] = {
        "title": "The geometry (also `geom` in filters)",
        "format": _geometry_format(layer),
        "$ref": f"https://geojson.org/schema/{shape}.json",
    }
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": f"{base}/collections/{layer.id}/queryables",
        "type": "object",
        "title": layer.display_title("en"),
        "properties": properties,
        "additionalProperties": False,
    }


def feature_schema_doc(layer: LayerEntry, base: str) -> dict[str, Any]:
    """The features' logical schema (OGC API Features Part 5 / Common Part 3: Schemas).

    Every property the items carry, in their order (`x-ogc-propertySeq`), with its JSON type;
    the key has the role `id` (it is also each feature's id) and the geometry the role
    `primary-geometry`. A property other than the key may be null where the source had no
    value.
    """
    properties: dict[str, Any] = {}
    for sequence, column in enumerate(layer.columns, start=1):
        spec: dict[str, Any] = {
            "title": column.name,
            **json_type(column.sql_type),
            "x-ogc-propertySeq": sequence,
        }
        if column.name == layer.key_field:
            spec["x-ogc-role"] = "id"
        properties[column.name] = spec
    properties["geometry"] = {
        "title": "The geometry",
        "format": _geometry_format(layer),
        "x-ogc-role": "primary-geometry",
        "x-ogc-propertySeq": len(layer.columns) + 1,
    }
    doc: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{base}/collections/{layer.id}/schema",
        "type": "object",
        "title": layer.display_title("en"),
        "properties": properties,
        "required": [layer.key_field],
    }
    if layer.description:
        doc["description"] = layer.description
    return doc
