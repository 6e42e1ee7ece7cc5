"""OGC API Features Part 3 filters: CQL2 (text or JSON) as SQLAlchemy Core conditions.

pygeofilter parses; the translation is ours: property names must be catalog columns (or the
layer geometry, `geom`/`geometry`), every value is bound, geometry literals are cut to the area
where the layer's CRS is valid (`geoapi.area_of_use`) and transformed to its SRID (the literal,
never the column, so the GiST index is used). Anything the parser refuses or the translation
does not support is an `InvalidParameter` (a 400).

One module, over 400 lines: it is one translation (pygeofilter's tree to SQL), whose node
handlers share the layer, the CRS of literals and the depth bound; split, each part would
import the others.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import shapely
import shapely.geometry
import sqlalchemy as sa
from pygeofilter import ast, values
from sqlalchemy import BindParameter, ColumnElement, func
from sqlalchemy.dialects import postgresql

from geoapi.area_of_use import bbox_shape, in_storage
from geoapi.crs import PROJECTED_LIMIT_M, OutputCrs
from urbis_core.catalog import LayerEntry
from urbis_core.errors import InvalidParameter

LANGUAGES = ("cql2-text", "cql2-json")
GEOMETRY_NAMES = ("geom", "geometry")
MAX_FILTER_LENGTH = 100_000
# Brackets ( [ { open at once, strings aside. A real filter needs a dozen or two (a multipolygon
# literal in JSON inside AND and OR: about 12); far deeper ones are refused before any parser
# recurses through them.
MAX_NESTING = 100
# Operators inside one another in the parsed filter (a chain of ANDs or ORs is as deep as it
# is long). Translating it, writing its SQL and telling two filters apart (repr) recurse
# through each level: 400 ANDs ran out of Python's stack there, a 500.
MAX_DEPTH = 100
# GeometryCollections inside GeometryCollections in a literal. PostGIS refuses some 200 ("too
# many chained collections"), and shapely recurses through each.
MAX_COLLECTION_DEPTH = 16
_STRINGS = {
    "cql2-text": re.compile(r"'(?:[^']|'')*'|\"[^\"]*\""),
    "cql2-json": re.compile(r'"(?:[^"\\]|\\.)*"'),
}
_OPENS, _CLOSES = np.frombuffer(b"([{", np.uint8), np.frombuffer(b")]}", np.uint8)

COMPARISONS: dict[type[ast.Node], str] = {
    ast.Equal: "=",
    ast.NotEqual: "<>",
    ast.LessThan: "<",
    ast.LessEqual: "<=",
    ast.GreaterThan: ">",
    ast.GreaterEqual: ">=",
}
MIRRORED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}  # `5 < A` is `A > 5`
EXACT_LIMIT = 2.0**53  # float8 holds every integer below it exactly
_SPATIAL: dict[type[ast.Node], str] = {
    ast.GeometryIntersects: "ST_Intersects",
    ast.GeometryWithin: "ST_Within",
    ast.GeometryContains: "ST_Contains",
    ast.GeometryDisjoint: "ST_Disjoint",
    ast.GeometryEquals: "ST_Equals",
    ast.GeometryTouches: "ST_Touches",
    ast.GeometryCrosses: "ST_Crosses",
    ast.GeometryOverlaps: "ST_Overlaps",
}
_INTEGER_TYPES = {"integer": sa.BigInteger(), "bigint": sa.BigInteger()}
_SCALAR_TYPES: dict[str, tuple[type | tuple[type, ...], sa.types.TypeEngine[Any]]] = {
    "text": (str, sa.Text()),
    "boolean": (bool, sa.Boolean()),
    "date": (date, sa.Date()),
    "timestamptz": (datetime, sa.DateTime(timezone=True)),
}
_KNOWN_TYPES = {*_INTEGER_TYPES, "double precision", *_SCALAR_TYPES}


def _fail(message: str) -> InvalidParameter:
    return InvalidParameter("filter", message)


def _normalise_json(node: Any) -> Any:
    """Standard CQL2 JSON `between` (three args) in the two-arg form pygeofilter reads."""
    if isinstance(node, list):
        return [_normalise_json(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _normalise_json(v) for k, v in node.items()}
    if node.get("type") == "GeometryCollection" and "coordinates" not in node:
        # pygeofilter knows a geometry literal by its `coordinates`; a collection has
        # `geometries` instead (`_shape` reads them).
        node["coordinates"] = []
    args = node.get("args")
    if node.get("op") == "between" and isinstance(args, list) and len(args) == 3:
        node["args"] = [args[0], [args[1], args[2]]]
    return node


def parse_language(raw: str | None) -> str:
    """`filter-lang`: cql2-text (the default) or cql2-json."""
    language = raw or "cql2-text"
    if language not in LANGUAGES:
        raise InvalidParameter(
            "filter-lang", f"'{raw}' is not supported; use {' or '.join(LANGUAGES)}"
        )
    return language


@functools.lru_cache(maxsize=128)
def parse_filter(raw: str, language: str | None) -> ast.Node:
    """The filter's AST; a 400 naming `filter` (or `filter-lang`) when it cannot be read.

    Remembered: a map asks for tile after tile with the same filter, and a long one takes
    tens of milliseconds to parse (the first, which builds the parser, hundreds).
    """
    from pygeofilter.parsers.cql2_json import parse as parse_json
    from pygeofilter.parsers.cql2_text import parse as parse_text

    language = parse_language(language)
    if raw.strip() == "":
        raise _fail("the filter is empty")
    if len(raw) > MAX_FILTER_LENGTH:
        raise _fail(f"the filter is longer than {MAX_FILTER_LENGTH} characters")
    if _nesting(raw, language) > MAX_NESTING:
        raise _fail(
            f"the filter is nested too deeply: more than {MAX_NESTING} brackets ( [ {{ open at once"
        )
    try:
        if language == "cql2-json":
            document = _normalise_json(json.loads(raw))
            node = parse_json(document)
        else:
            node = parse_text(raw)
    except RecursionError:
        raise _fail("the filter is nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - the parsers raise many kinds of errors
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise _fail(f"not valid {language}: {detail[:300]}") from None
    if not isinstance(node, ast.Node):
        raise _fail(f"not valid {language}: expected a condition, got {node!r:.100}")
    if _depth(node) > MAX_DEPTH:
        raise _fail(
            f"the filter is nested too deeply: more than {MAX_DEPTH} operators inside "
            "one another (each AND or OR of a chain is one more; for a list of values "
            "use IN)"
        )
    return node


def _depth(node: ast.Node) -> int:
    """How many operators lie inside one another at most in `node` (found without recursion)."""
    deepest, todo = 0, [(node, 1)]
    while todo:
        current, depth = todo.pop()
        deepest = max(deepest, depth)
        todo += [(sub, depth + 1) for sub in current.get_sub_nodes() if isinstance(sub, ast.Node)]
    return deepest


def _nesting(raw: str, language: str) -> int:
    """How many brackets are open at most at once in `raw`, its string literals left out."""
    code = np.frombuffer(_STRINGS[language].sub("", raw).encode(), np.uint8)
    step = np.isin(code, _OPENS).astype(np.int64) - np.isin(code, _CLOSES)
    return int(np.cumsum(step).max(initial=0))


@dataclass(frozen=True)
class CqlFilter:
    """A parsed filter, the CRS of its geometry literals, and the layer it applies to."""

    node: ast.Node
    crs: OutputCrs

    def condition(self, layer: LayerEntry, table: sa.Table) -> ColumnElement[bool]:
        """The filter as a condition on `table` (the layer's live or history table)."""
        try:
            return _Translator(layer, table, self.crs).condition(self.node)
        except RecursionError:
            raise _fail("the filter is nested too deeply") from None


def compile_filter(raw: str, language: str | None, crs: OutputCrs, layer: LayerEntry) -> CqlFilter:
    """Parse `raw` and check it against `layer` (a 400 for anything not supported)."""
    cql = CqlFilter(parse_filter(raw, language), crs)
    cql.condition(layer, layer.table())  # translate once now, so errors come before any SQL
    return cql


class _Translator:
    def __init__(self, layer: LayerEntry, table: sa.Table, crs: OutputCrs) -> None:
        self.layer = layer
        self.table = table
        self.crs = crs
        self.types = {c.name: c.sql_type for c in layer.columns}

    # --- conditions --------------------------------------------------------------------------

    def condition(self, node: Any) -> ColumnElement[bool]:
        if isinstance(node, ast.And):
            return sa.and_(self.condition(node.lhs), self.condition(node.rhs))
        if isinstance(node, ast.Or):
            return sa.or_(self.condition(node.lhs), self.condition(node.rhs))
        if isinstance(node, ast.Not):
            return sa.not_(self.condition(node.sub_node))
        if isinstance(node, ast.Include):
            return sa.false() if node.not_ else sa.true()
        if type(node) in COMPARISONS:
            return self.comparison(node)
        if isinstance(node, ast.Like):
            return self.like(node)
        if isinstance(node, ast.In):
            return self.in_(node)
        if isinstance(node, ast.Between):
            return self.between(node)
        if isinstance(node, ast.IsNull):
            column = self.scalar_property(node.lhs, "IS NULL")
            return column.is_not(None) if node.not_ else column.is_(None)
        if type(node) in _SPATIAL:
            return self.spatial(node)
        if isinstance(node, ast.Node):
            raise _fail(
                f"{_describe(node)} is not supported; supported: comparisons "
                "(=, <>, <, <=, >, >=), LIKE, IN, BETWEEN, IS NULL, AND, OR, NOT, "
                + ", ".join(o.upper().replace("ST_", "S_") for o in _SPATIAL.values())
            )
        raise _fail(f"expected a condition, got the value {node!r:.100}")

    def comparison(self, node: Any) -> ColumnElement[bool]:
        op = COMPARISONS[type(node)]
        lhs, rhs = node.lhs, node.rhs
        if not isinstance(lhs, ast.Attribute) and isinstance(rhs, ast.Attribute):
            lhs, rhs = rhs, lhs
            op = MIRRORED.get(op, op)
        column = self.scalar_property(lhs, op)
        name = lhs.name
        if isinstance(rhs, ast.Attribute):
            other = self.scalar_property(rhs, op)
            if _family(self.types[name]) != _family(self.types[rhs.name]):
                raise _fail(
                    f"cannot compare '{name}' ({self.types[name]}) with "
                    f"'{rhs.name}' ({self.types[rhs.name]})"
                )
            return column.op(op, is_comparison=True)(other)
        value = self.value(name, rhs)
        if self.types[name] in _INTEGER_TYPES and _decimal(rhs):
            return _on_integers(column, op, rhs)
        return column.op(op, is_comparison=True)(value)

    def like(self, node: ast.Like) -> ColumnElement[bool]:
        column = self.scalar_property(node.lhs, "LIKE")
        name = node.lhs.name
        if not isinstance(node.pattern, str):
            raise _fail("the pattern of LIKE must be a string")
        if self.types[name] != "text":
            column = sa.cast(column, sa.Text)
        # CQL2 wildcards are SQL's: % and _, escaped with a backslash.
        pattern = sa.literal(node.pattern, sa.Text())
        condition = column.like(pattern, escape="\\")
        return sa.not_(condition) if node.not_ else condition

    def in_(self, node: ast.In) -> ColumnElement[bool]:
        column = self.scalar_property(node.lhs, "IN")
        name = node.lhs.name
        if not isinstance(node.sub_nodes, list) or not node.sub_nodes:
            raise _fail("IN needs a non-empty list of values")
        binds = [self.value(name, v) for v in node.sub_nodes]
        # One array bound, `= ANY(...)`, rather than a bound value each: a list of 20,000
        # values took SQLAlchemy 2 s to compile into each statement, on the event loop.
        kinds = {type(b.type) for b in binds if isinstance(b, BindParameter)}
        if len(kinds) == 1 and all(isinstance(b, BindParameter) for b in binds):
            array = sa.literal([b.value for b in binds], postgresql.ARRAY(binds[0].type))
            return column != sa.all_(array) if node.not_ else column == sa.any_(array)
        return column.not_in(binds) if node.not_ else column.in_(binds)

    def between(self, node: ast.Between) -> ColumnElement[bool]:
        column = self.scalar_property(node.lhs, "BETWEEN")
        name = node.lhs.name
        low, high = self.value(name, node.low), self.value(name, node.high)
        bounds = (node.low, node.high)
        if (
            self.types[name] in _INTEGER_TYPES
            and any(_decimal(v) for v in bounds)
            and all(abs(v) < EXACT_LIMIT for v in bounds)
        ):
            # the integers within, so that the column's index serves it (see _on_integers)
            low = sa.literal(math.ceil(node.low), sa.BigInteger())
            high = sa.literal(math.floor(node.high), sa.BigInteger())
        condition = column.between(low, high)
        return sa.not_(condition) if node.not_ else condition

    def spatial(self, node: Any) -> ColumnElement[bool]:
        function = _SPATIAL[type(node)]
        lhs, rhs = self.geometry(node.lhs), self.geometry(node.rhs)
        if isinstance(lhs, shapely.Geometry) and isinstance(rhs, shapely.Geometry):
            # Two literals: the same answer for every feature, found here in their own CRS.
            try:
                holds = _shapely_predicate(function)(lhs, rhs)
            except shapely.errors.GEOSException as exc:  # e.g. a bbox of 1e308 overflows
                raise _fail(f"cannot compare the two geometry literals: {exc}") from None
            return sa.true() if holds else sa.false()
        sides = [self.to_layer(g) if isinstance(g, shapely.Geometry) else g for g in (lhs, rhs)]
        if sides[0] is None or sides[1] is None:
            # The literal lies outside the storage CRS's area of use, where no feature can:
            # every feature is disjoint from it, and no other relation holds.
            return sa.true() if function == "ST_Disjoint" else sa.false()
        return getattr(func, function)(*sides)

    # --- operands ----------------------------------------------------------------------------

    def scalar_property(self, node: Any, op: str) -> ColumnElement[Any]:
        """The column of a non-geometry property."""
        if not isinstance(node, ast.Attribute):
            raise _fail(f"the left side of {op} must be a property, not {_describe(node)}")
        if node.name in GEOMETRY_NAMES and node.name not in self.types:
            raise _fail(
                f"'{node.name}' is the geometry; use a spatial operator (S_INTERSECTS, S_WITHIN...)"
            )
        if node.name not in self.types:
            raise _fail(
                f"unknown property '{node.name}'; '{self.layer.id}' has "
                + ", ".join(self.types)
                + " and the geometry (geom)"
            )
        column: ColumnElement[Any] = self.table.c[node.name]
        if self.types[node.name] not in _KNOWN_TYPES:
            column = sa.cast(column, sa.Text)  # types the API does not convert: text
        return column

    def value(self, name: str, raw: Any) -> ColumnElement[Any]:
        """A literal bound with the type of column `name`; a 400 when it is not of that type."""
        sql_type = self.types[name]
        if isinstance(raw, ast.Node | values.Geometry | values.Envelope):
            raise _fail(f"'{name}' can only be compared with a value, not {_describe(raw)}")
        if raw is None or isinstance(raw, list | dict):
            raise _fail(f"'{name}' cannot be compared with {raw!r:.100}")
        expected = f"'{name}' is {sql_type}; {raw!r:.100} is not"
        if sql_type in _INTEGER_TYPES or sql_type == "double precision":
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise _fail(f"{expected} a number")
            if isinstance(raw, float) and not math.isfinite(raw):
                raise _fail(f"{expected} a finite number")
            if isinstance(raw, int) and not -(2**63) <= raw < 2**63:
                raise _fail(f"{expected} within the range of a 64-bit integer")
            return sa.literal(raw, sa.BigInteger() if isinstance(raw, int) else sa.Float())
        if sql_type in _SCALAR_TYPES:
            kind, bind = _SCALAR_TYPES[sql_type]
            if sql_type == "date" and isinstance(raw, datetime):
                raise _fail(f"{expected} a date (use DATE('YYYY-MM-DD'))")
            if sql_type == "timestamptz" and isinstance(raw, datetime) and raw.tzinfo is None:
                raise _fail(f"{expected} a timestamp with a time zone")
            if not isinstance(raw, kind):
                raise _fail(f"{expected} {'a string' if kind is str else sql_type}")
            if isinstance(raw, str) and "\x00" in raw:
                raise _fail("strings cannot hold NUL characters")
            return sa.literal(raw, bind)
        if isinstance(raw, date | datetime):
            return sa.literal(raw.isoformat(), sa.Text())
        return sa.literal(str(raw).lower() if isinstance(raw, bool) else str(raw), sa.Text())

    def geometry(self, node: Any) -> ColumnElement[Any] | shapely.Geometry:
        """The layer geometry (a property named geom or geometry), or a literal as a shape.

        A literal's shape is x/y (longitude or easting first) in the filter's CRS.
        """
        if isinstance(node, ast.Attribute):
            if node.name in GEOMETRY_NAMES:
                return self.table.c.geom
            if node.name in self.types:
                raise _fail(
                    f"'{node.name}' is not a geometry; spatial operators take the geometry (geom)"
                )
            raise _fail(f"unknown property '{node.name}'; the geometry is 'geom'")
        if isinstance(node, values.Geometry):
            return self.literal(node.geometry)
        if isinstance(node, values.Envelope):  # cql2-json {"bbox": [...]}, read in order
            return self.envelope([node.x1, node.x2, node.y1, node.y2])
        if isinstance(node, ast.Function) and node.name.lower() == "bbox":  # cql2-text BBOX()
            return self.envelope(list(node.arguments))
        raise _fail(
            f"spatial operators take the geometry and a geometry literal, not {_describe(node)}"
        )

    def literal(self, geojson: Any) -> shapely.Geometry:
        if _collection_depth(geojson) > MAX_COLLECTION_DEPTH:
            raise _fail(
                f"a geometry literal has GeometryCollections nested more than "
                f"{MAX_COLLECTION_DEPTH} deep"
            )
        try:
            shape = _shape(geojson)
        except Exception as exc:  # noqa: BLE001 - shapely raises several kinds
            raise _fail(f"not a valid geometry literal: {str(exc)[:200]}") from None
        if shape.is_empty:
            raise _fail("the geometry literal is empty")
        self.check_coordinates(shape, projected_limit=PROJECTED_LIMIT_M)
        if not shape.is_valid:
            raise _fail(f"the geometry literal is not valid: {shapely.is_valid_reason(shape)}")
        shape = shapely.force_2d(shape)
        if self.crs.lat_first:
            shape = shapely.transform(shape, lambda xy: xy[:, ::-1])
        return shape

    def envelope(self, numbers: list[Any]) -> shapely.Geometry:
        if len(numbers) not in (4, 6) or not all(
            isinstance(n, int | float) and not isinstance(n, bool) for n in numbers
        ):
            raise _fail("a bbox literal needs 4 (or 6) numbers")
        if len(numbers) == 6:
            numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
        minx, miny, maxx, maxy = (float(n) for n in numbers)
        # Checked in the order given (latitude first in EPSG:4326), as the other literals are.
        self.check_coordinates(shapely.MultiPoint([(minx, miny), (maxx, maxy)]))
        if self.crs.lat_first:
            minx, miny, maxx, maxy = miny, minx, maxy, maxx
        if minx > maxx or miny > maxy:
            raise _fail("a bbox literal is minx,miny,maxx,maxy with min <= max")
        return bbox_shape((minx, miny, maxx, maxy))

    def check_coordinates(self, shape: Any, projected_limit: float = math.inf) -> None:
        """Finite numbers, in range for a geographic CRS, within `projected_limit` in others.

        A bbox has no projected limit: cut by its numbers to the storage CRS's area of use
        (`geoapi.area_of_use.clip`), any finite one is answered exactly, as `bbox` is.
        """
        coordinates = shapely.get_coordinates(shape)
        if not np.isfinite(coordinates).all():
            raise _fail("geometry coordinates must be finite numbers")
        if not self.crs.geographic and (np.abs(coordinates) > projected_limit).any():
            raise _fail(
                "geometry coordinates are out of range for filter-crs "
                f"{self.crs.uri}: projected coordinates lie within "
                f"±{projected_limit:,.0f} m"
            )
        if self.crs.geographic:
            lon = coordinates[:, 1] if self.crs.lat_first else coordinates[:, 0]
            lat = coordinates[:, 0] if self.crs.lat_first else coordinates[:, 1]
            if (abs(lon) > 180).any() or (abs(lat) > 90).any():
                raise _fail(
                    "geometry coordinates are out of range for filter-crs "
                    f"{self.crs.uri} (longitude -180..180, latitude -90..90)"
                )

    def to_layer(self, shape: shapely.Geometry) -> ColumnElement[Any] | None:
        """A literal in the layer's SRID, cut to where that CRS is valid; None if nothing is."""
        return in_storage(shape, self.crs.srid, self.layer.srid)


def _collection_depth(geojson: Any) -> int:
    """How deep GeometryCollections nest in a GeoJSON geometry (found without recursion)."""
    deepest, todo = 0, [(geojson, 0)]
    while todo:
        node, depth = todo.pop()
        if isinstance(node, dict) and node.get("type") == "GeometryCollection":
            deepest = max(deepest, depth + 1)
            members = node.get("geometries")
            if isinstance(members, list | tuple):
                todo += [(m, depth + 1) for m in members]
    return deepest


def _shape(geojson: Any) -> shapely.Geometry:
    """A GeoJSON geometry as a shape; a collection from its `geometries` alone."""
    if isinstance(geojson, dict) and geojson.get("type") == "GeometryCollection":
        members = geojson.get("geometries")
        if not isinstance(members, list | tuple):
            raise ValueError("a GeometryCollection needs a list of 'geometries'")
        return shapely.GeometryCollection([_shape(g) for g in members])
    return shapely.geometry.shape(geojson)


def _decimal(value: Any) -> bool:
    """A float (not a whole one) that float8 compares exactly with every integer below it."""
    return isinstance(value, float) and not value.is_integer() and abs(value) < EXACT_LIMIT


def _on_integers(column: ColumnElement[Any], op: str, number: float) -> ColumnElement[bool]:
    """`column op number`, an integer column against a decimal number, between integers.

    As written, PostgreSQL casts the column to float8, and no index on it serves the
    comparison: `AREA > 390.5` read all 180,000 entries of AREA's index for 3 matches (18 ms).
    The same condition on the integers either side is answered from the index. Exact: float8
    holds every integer below 2^53 (`_decimal`), and above it the column's values lie on the
    same side of both. NULL stays NULL (under NOT too), as the comparison it stands for.
    """
    below = sa.literal(math.floor(number), sa.BigInteger())
    above = sa.literal(math.floor(number) + 1, sa.BigInteger())
    if op in (">", ">="):
        return column >= above
    if op in ("<", "<="):
        return column <= below
    between = sa.and_(column > below, column < above)  # false for any integer, NULL for NULL
    return between if op == "=" else sa.not_(between)


def _shapely_predicate(function: str) -> Any:
    """The shapely function of a PostGIS predicate (ST_Intersects: shapely.intersects)."""
    return getattr(shapely, function.removeprefix("ST_").lower())


def _family(sql_type: str) -> str:
    if sql_type in _INTEGER_TYPES or sql_type == "double precision":
        return "number"
    return sql_type if sql_type in _SCALAR_TYPES else "text"


def _describe(node: Any) -> str:
    if isinstance(node, ast.Function):
        return f"the function {node.name}()"
    if isinstance(node, ast.Attribute):
        return f"the property '{node.name}'"
    if isinstance(node, ast.Node):
        op = getattr(node, "op", None)
        name = getattr(op, "value", None) or type(node).__name__
        return f"the operator {str(name).upper()}"
    if isinstance(node, values.Geometry | values.Envelope):
        return "a geometry"
    return f"the value {node!r:.100}"
