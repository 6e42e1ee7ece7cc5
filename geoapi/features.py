"""SQL for features, composed with SQLAlchemy Core: identifiers from the catalog, values bound.

PostgreSQL writes each feature's GeoJSON itself; Python only joins the rows, which keeps large
pages cheap. The same composition (filters, order, paging, history) also yields plain rows for
the tabular downloads (CSV, GeoPackage), which are encoded at the end of this module.

One module, over 400 lines: the GeoJSON pages and the downloads share one composition of
filters, order and paging, so that a download holds exactly the features a page lists.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Row, Select, func
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from geoapi.area_of_use import bbox_shape, in_storage
from geoapi.column_ranges import column_range
from geoapi.counting import MatchCounts
from geoapi.crs import CRS84_URI, OutputCrs
from geoapi.json_schema import GEOMETRY_TYPES
from geoapi.query_models import ItemsQuery
from geoapi.values import parse_value
from urbis_core.catalog import ColumnInfo, LayerEntry, has_history
from urbis_core.errors import NotFound
from urbis_core.names import label_field_names, label_templates

MAX_PAIRS_PER_CALL = 50  # PostgreSQL functions take at most 100 arguments
GEOJSON_PLAIN = 0  # ST_AsGeoJSON options: no bbox, no crs member
CSV_GEOMETRY = "WKT"  # GDAL's CSV driver reads a column of this name as the geometry
GPKG_GEOMETRY = "geom"


@dataclass(frozen=True)
class ItemsPage:
    features: list[str]  # each a GeoJSON Feature as JSON text
    number_matched: int


# How a value converted at the edge is bound, by the catalog's SQL type of the column.
BIND_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "integer": sa.BigInteger(),
    "bigint": sa.BigInteger(),
    "double precision": sa.Float(),
    "boolean": sa.Boolean(),
    "date": sa.Date(),
    "timestamptz": sa.DateTime(timezone=True),
    "time": sa.Time(),
    "text": sa.Text(),
}


def _const(text: str) -> ColumnElement[Any]:
    return sa.cast(sa.literal(text), sa.Text)


def selected_columns(layer: LayerEntry, names: tuple[str, ...] | None) -> list[ColumnInfo]:
    """The catalog columns `names` asks for, in that order (all of them when None)."""
    if names is None:
        return list(layer.columns)
    by_name = {c.name: c for c in layer.columns}
    return [by_name[n] for n in names]


def _properties(
    layer: LayerEntry, table: sa.Table, names: tuple[str, ...] | None = None
) -> ColumnElement[Any]:
    """The selected properties (default all, in the source's field order) as a JSON object.

    json keeps the key order; jsonb would sort the keys.
    """
    pairs: list[ColumnElement[Any]] = []
    for column in selected_columns(layer, names):
        pairs += [_const(column.name), table.c[column.name]]
    if len(pairs) <= 2 * MAX_PAIRS_PER_CALL:
        return func.json_build_object(*pairs)
    # Too many fields for one call: merge jsonb chunks (key order is then jsonb's own).
    chunks = [
        func.jsonb_build_object(*pairs[i : i + 2 * MAX_PAIRS_PER_CALL])
        for i in range(0, len(pairs), 2 * MAX_PAIRS_PER_CALL)
    ]
    merged: ColumnElement[Any] = chunks[0]
    for chunk in chunks[1:]:
        merged = merged.op("||")(chunk)
    return merged


def _geometry(
    layer: LayerEntry, table: sa.Table, crs: OutputCrs, axis_order: bool = True
) -> ColumnElement[Any]:
    """The geometry in `crs`; latitude first where the CRS says so, if `axis_order`."""
    geom: ColumnElement[Any] = table.c.geom
    if crs.srid != layer.srid:
        geom = func.ST_Transform(geom, crs.srid)
    if crs.lat_first and axis_order:
        geom = func.ST_FlipCoordinates(geom)
    return geom


def feature_json(
    layer: LayerEntry, table: sa.Table, crs: OutputCrs, properties: tuple[str, ...] | None = None
) -> ColumnElement[str]:
    """One GeoJSON Feature as text, written by PostgreSQL: the key as id, then the geometry.

    Option 0 keeps PostGIS from adding a `crs` member to each geometry outside EPSG:4326 (not
    GeoJSON; the Content-Crs header says the CRS).

    On the layer's own table the expression is composed and compiled once per definition and
    kept as SQL text: composing its dozens of elements, and SQLAlchemy hashing them to find the
    statement in its cache, cost milliseconds per request, more than PostgreSQL takes for a
    feature by key. (On an alias, whose name the statement chooses, it is composed each time.)
    """
    if isinstance(table, sa.Table):  # not an alias (typed as a Table where it stands for one)
        return WrittenOnce(
            _feature_json_sql(table, layer.key_field, layer.columns, layer.srid, crs, properties),
            table,
        )
    return _feature_json(layer, table, crs, properties)


class WrittenOnce(ColumnElement[str]):
    """A text expression on `table` written as SQL once (`_feature_json_sql`).

    Unlike `literal_column`, it names its table, so a statement selecting it has it in FROM;
    its cache key is the text and the table, cheap to make and to compare.
    """

    type = sa.Text()
    _traverse_internals = [
        ("sql", InternalTraversal.dp_string),
        ("table", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, sql: str, table: sa.Table) -> None:
        self.sql = sql
        self.table = table

    @property
    def _from_objects(self) -> list[sa.FromClause]:
        return [self.table]


@compiles(WrittenOnce)
def _write_once(element: WrittenOnce, compiler: Any, **kw: Any) -> str:
    return element.sql


@functools.lru_cache(maxsize=256)
def _feature_json_sql(
    table: sa.Table,
    key_field: str,
    columns: tuple[ColumnInfo, ...],
    srid: int,
    crs: OutputCrs,
    properties: tuple[str, ...] | None,
) -> str:
    """`_feature_json` on a layer table as SQL text, its constants written in.

    None of them is a value a client sent: names from the catalog, the CRS's code and precision.
    """
    layer = _Shape(key_field, columns, srid)
    expression = _feature_json(layer, table, crs, properties)  # type: ignore[arg-type]
    return str(
        expression.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )


@dataclass(frozen=True)
class _Shape:
    """What `_feature_json` reads of a layer entry."""

    key_field: str
    columns: tuple[ColumnInfo, ...]
    srid: int


def _feature_json(
    layer: LayerEntry, table: sa.Table, crs: OutputCrs, properties: tuple[str, ...] | None
) -> ColumnElement[str]:
    geometry = sa.cast(
        func.ST_AsGeoJSON(_geometry(layer, table, crs), crs.decimals, GEOJSON_PLAIN), JSON
    )
    return sa.cast(
        func.json_build_object(
            _const("type"),
            _const("Feature"),
            _const("id"),
            table.c[layer.key_field],
            _const("geometry"),
            geometry,
            _const("properties"),
            _properties(layer, table, properties),
        ),
        sa.Text,
    )


def _filters(layer: LayerEntry, table: sa.Table, query: ItemsQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.bbox is not None:
        # Transform the bbox, not the column, so the GiST index is used; cut to where the
        # storage CRS is valid first (a bbox of the whole world then selects everything).
        envelope = in_storage(bbox_shape(query.bbox), query.bbox_crs.srid, layer.srid)
        conditions.append(
            sa.false() if envelope is None else func.ST_Intersects(table.c.geom, envelope)
        )
    types = {c.name: c.sql_type for c in layer.columns}
    for flt in query.equals:
        conditions.append(_equals(table.c[flt.name], types[flt.name], flt.value))
    if query.cql is not None:
        conditions.append(query.cql.condition(layer, table))
    return conditions


def _equals(column: ColumnElement[Any], sql_type: str, value: Any) -> ColumnElement[bool]:
    """`column = value`, the value bound with the column's type."""
    bind_type = BIND_TYPES.get(sql_type)
    if bind_type is None:  # a type the API does not convert: compare as text
        return sa.cast(column, sa.Text) == sa.literal(str(value), sa.Text())
    return column == sa.literal(value, bind_type)


DEFERRED_OFFSET = 1000  # from here, a page's keys are found before its rows are read


def _order(
    layer: LayerEntry, table: sa.FromClause, query: ItemsQuery
) -> list[tuple[ColumnElement[Any], bool]]:
    """`sortby`, then the key as the last tie-breaker so that pages never overlap."""
    keys: list[tuple[ColumnElement[Any], bool]] = [
        (table.c[s.name], s.descending) for s in query.sortby
    ]
    if all(s.name != layer.key_field for s in query.sortby):
        keys.append((table.c[layer.key_field], False))
    return keys


def _direction(expr: ColumnElement[Any], descending: bool) -> ColumnElement[Any]:
    """Features without a value come last whichever the direction."""
    return (expr.desc() if descending else expr.asc()).nulls_last()


Outputs = Callable[[sa.Table], list[ColumnElement[Any]]]


def _filter_first(matched: int, query: ItemsQuery, layer: LayerEntry) -> bool:
    """Whether to find every matching feature first and sort them, rather than walk the order.

    Walking the key (or sort) index and testing each row finds a page after about
    (offset + limit) / s rows, s being the matching share; finding the s * N matching ones
    through the filter's own index and sorting them costs about s * N, each a few times more
    than a step of the walk. PostgreSQL estimates the walk well when the index carries the
    filtered properties (`indexes` in the layer config) and picks it; when the walk has to
    read the table, its estimate trusts the page to come early, and a filter that keeps 1 %
    of a large layer then walks most of it. The exact count settles it here.
    """
    return 4 * matched * matched < (query.offset + query.limit) * max(layer.feature_count, 1)


def _page(
    layer: LayerEntry,
    table: sa.Table,
    conditions: list[ColumnElement[bool]],
    query: ItemsQuery,
    outputs: Outputs,
    by_keys: bool,
    filter_first: bool,
) -> Select[Any]:
    """The page query: `outputs` per row, sorted, limited.

    `by_keys`: find the page's keys first, then read and encode only those rows. Far into the
    layer, or through a filter, the walk then stays in indexes (the key index, or one carrying
    the filtered properties) instead of reading every row it passes.
    """
    order = [_direction(e, d) for e, d in _order(layer, table, query)]
    if not by_keys:
        return (
            sa.select(*outputs(table))
            .where(*conditions)
            .order_by(*order)
            .limit(query.limit)
            .offset(query.offset)
        )
    source: sa.FromClause = table
    if filter_first:
        # OFFSET 0 keeps PostgreSQL from merging the filter back into the walk of the order.
        needed = dict.fromkeys([layer.key_field, *(s.name for s in query.sortby)])
        source = (
            sa.select(*(table.c[n] for n in needed))
            .where(*conditions)
            .offset(0)
            .subquery("matching")
        )
        conditions = []
    keys = (
        sa.select(source.c[layer.key_field])
        .where(*conditions)
        .order_by(*[_direction(e, d) for e, d in _order(layer, source, query)])
        .limit(query.limit)
        .offset(query.offset)
    )
    return (
        sa.select(*outputs(table))
        .where(table.c[layer.key_field].in_(keys.scalar_subquery()))
        .order_by(*order)
    )


def _counted_by_page(query: ItemsQuery, returned: int) -> int | None:
    """The count a page tells by itself: a short one (not past the end) ends the matches."""
    if returned < query.limit and (returned > 0 or query.offset == 0):
        return query.offset + returned
    return None


async def _select(
    conn: AsyncConnection,
    layer: LayerEntry,
    query: ItemsQuery,
    outputs: Outputs,
    counts: MatchCounts | None,
) -> tuple[list[Row[Any]], int]:
    """The page's rows and the number of features the query matches.

    Property filters without a bbox count first (the count is remembered per filter, and
    chooses how the page is found). A bbox lets its GiST index find the page, and is counted
    only when the page cannot tell (a full page, or one past the end). (Counted in the page's
    own statement, the count also ran for every short page, where it is not needed: large bbox
    pages cost PostgreSQL a third more; bench/README.md, issue 18.)
    """
    if query.as_of is not None:
        page, count = await _compose_as_of(conn, layer, query, outputs, query.as_of)
        rows = (await conn.execute(page)).all()
        matched = _counted_by_page(query, len(rows))
        return rows, (
            matched if matched is not None else await _matched(conn, layer, query, count, counts)
        )
    table = layer.table()
    conditions = _filters(layer, table, query)
    if not conditions:
        page = _live_page(layer, table, conditions, query, outputs, None)
        return (await conn.execute(page)).all(), layer.feature_count
    count = sa.select(func.count()).select_from(table).where(*conditions)
    known = counts.known(layer, _selection(query)) if counts is not None else None
    if known is None and query.bbox is None:
        known = await _matched(conn, layer, query, count, counts)
    rows = (await conn.execute(_live_page(layer, table, conditions, query, outputs, known))).all()
    if known is None:
        known = _counted_by_page(query, len(rows))
    if known is None:
        known = await _matched(conn, layer, query, count, counts)
    return rows, known


def _live_page(
    layer: LayerEntry,
    table: sa.Table,
    conditions: list[ColumnElement[bool]],
    query: ItemsQuery,
    outputs: Outputs,
    matched: int | None,
) -> Select[Any]:
    """The page query on the live layer, found the way its conditions and count suit best.

    Without conditions, or with a bbox (whose GiST index finds the page), it walks the order;
    property filters find the page's keys first, and when few features match (`matched`,
    known before), find them all and sort them.
    """
    far = query.offset >= DEFERRED_OFFSET
    if not conditions:
        return _page(layer, table, conditions, query, outputs, far, filter_first=False)
    properties_only = query.bbox is None
    filter_first = properties_only and matched is not None and _filter_first(matched, query, layer)
    return _page(layer, table, conditions, query, outputs, far or properties_only, filter_first)


async def _compose_as_of(
    conn: AsyncConnection, layer: LayerEntry, query: ItemsQuery, outputs: Outputs, instant: datetime
) -> tuple[Select[Any], Select[Any] | None]:
    """The layer as it was at `instant`.

    Live rows already valid then, plus superseded rows (history) that were valid then.
    """
    live = layer.table()
    tables: list[tuple[sa.Table, list[ColumnElement[bool]]]] = [
        (live, [live.c.valid_from <= instant])
    ]
    if await has_history(conn, layer):
        hist = layer.history_table()
        tables.append((hist, [hist.c.valid_from <= instant, hist.c.valid_to > instant]))
    branches = []
    directions: list[bool] = []
    for table, when in tables:
        out = [c.label(f"c{i}") for i, c in enumerate(outputs(table))]
        order = _order(layer, table, query)
        directions = [d for _, d in order]
        sorts = [e.label(f"s{i}") for i, (e, _) in enumerate(order)]
        branches.append(sa.select(*out, *sorts).where(*_filters(layer, table, query), *when))
    union = sa.union_all(*branches).subquery("as_of")
    width = len(branches[0].selected_columns) - len(directions)
    page = (
        sa.select(*[union.c[f"c{i}"] for i in range(width)])
        .order_by(*[_direction(union.c[f"s{i}"], d) for i, d in enumerate(directions)])
        .limit(query.limit)
        .offset(query.offset)
    )
    keys = sa.union_all(
        *[
            sa.select(table.c[layer.key_field]).where(*_filters(layer, table, query), *when)
            for table, when in tables
        ]
    ).subquery("as_of_keys")
    return page, sa.select(func.count()).select_from(keys)


def _selection(query: ItemsQuery) -> tuple[Any, ...]:
    """Everything the features a query matches depend on (not its paging, order or output)."""
    cql = (repr(query.cql.node), query.cql.crs.uri) if query.cql is not None else None
    return (query.bbox, query.bbox_crs.uri, query.equals, cql, query.as_of)


async def _matched(
    conn: AsyncConnection,
    layer: LayerEntry,
    query: ItemsQuery,
    count: Select[Any] | None,
    counts: MatchCounts | None,
) -> int:
    if count is None:
        return layer.feature_count
    if counts is not None:
        return await counts.count(conn, layer, _selection(query), count, column_range(layer, query))
    return int((await conn.execute(count)).scalar_one())


async def fetch_items(
    conn: AsyncConnection, layer: LayerEntry, query: ItemsQuery, counts: MatchCounts | None = None
) -> ItemsPage:
    """A page of GeoJSON features and the number of features the filters match."""
    rows, matched = await _select(
        conn, layer, query, lambda t: [feature_json(layer, t, query.crs, query.properties)], counts
    )
    return ItemsPage([str(r[0]) for r in rows], matched)


def table_columns(layer: LayerEntry, properties: tuple[str, ...] | None) -> list[ColumnInfo]:
    """Columns of a tabular download: the key first unless selected, then the properties."""
    chosen = selected_columns(layer, properties)
    if all(c.name != layer.key_field for c in chosen):
        chosen.insert(0, layer.key_column)
    return chosen


def _row_outputs(
    layer: LayerEntry, query: ItemsQuery, columns: list[ColumnInfo], geometry: Literal["wkt", "wkb"]
) -> Outputs:
    """Per row, one value per column, then the geometry as WKT or WKB."""
    multi = layer.geometry_type.startswith("Multi")

    def outputs(table: sa.Table) -> list[ColumnElement[Any]]:
        values = [
            table.c[c.name] if c.sql_type in BIND_TYPES else sa.cast(table.c[c.name], sa.Text)
            for c in columns
        ]
        if geometry == "wkt":
            return [*values, func.ST_AsText(_geometry(layer, table, query.crs), query.crs.decimals)]
        # GeoPackage stores x/y (longitude first) whatever the CRS's axis order says.
        geom = _geometry(layer, table, query.crs, axis_order=False)
        return [*values, func.ST_AsBinary(func.ST_Multi(geom) if multi else geom)]

    return outputs


async def count_matched(
    conn: AsyncConnection, layer: LayerEntry, query: ItemsQuery, counts: MatchCounts | None = None
) -> int:
    """How many features the query's filters keep, whatever its paging."""
    if query.as_of is not None:
        _, count = await _compose_as_of(
            conn, layer, query, lambda t: [t.c[layer.key_field]], query.as_of
        )
        return await _matched(conn, layer, query, count, counts)
    table = layer.table()
    conditions = _filters(layer, table, query)
    if not conditions:
        return layer.feature_count
    count = sa.select(func.count()).select_from(table).where(*conditions)
    return await _matched(conn, layer, query, count, counts)


# Rows fetched from the server-side cursor, and written to a GeoPackage, at a time: what a
# download holds in memory (a few MB), whatever its size. The CSV of 1 kB rows in
# tests/api/test_downloads.py (119 MB) grows the server by about 19 MiB at 1,000 rows a batch,
# by 29 at 2,000 (each batch's rows, its text and the off-loop thread's allocations).
STREAM_BATCH = 1000


async def stream_rows(
    conn: AsyncConnection,
    layer: LayerEntry,
    query: ItemsQuery,
    columns: list[ColumnInfo],
    geometry: Literal["wkt", "wkb"],
    matched: int,
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """The query's rows (`query.limit` of them from `query.offset`), a batch at a time.

    Read through a server-side cursor in the request's snapshot, so a download of the whole
    layer holds one batch in memory, never the layer. `matched` is the query's count, known
    before (it chooses how the rows are found, as for a page).
    """
    outputs = _row_outputs(layer, query, columns, geometry)
    if query.as_of is not None:
        page, _ = await _compose_as_of(conn, layer, query, outputs, query.as_of)
    else:
        table = layer.table()
        page = _live_page(layer, table, _filters(layer, table, query), query, outputs, matched)
    result = await conn.stream(page)
    async for rows in result.partitions(STREAM_BATCH):
        yield [tuple(row) for row in rows]


def key_condition(
    layer: LayerEntry, table: sa.Table, feature_id: str
) -> ColumnElement[bool] | None:
    """`key = <feature id>` with the id bound as the key's type; None when it cannot match."""
    sql_type = layer.key_column.sql_type
    try:
        value = parse_value(sql_type, feature_id)
    except ValueError:
        return None  # an id that cannot be a key of this type is no feature
    return _equals(table.c[layer.key_field], sql_type, value)


async def label_properties(
    conn: AsyncConnection, layer: LayerEntry, keys: list[Any]
) -> dict[Any, dict[str, Any]]:
    """Per key, the fields the layer's label reads (to name features listed elsewhere)."""
    fields = sorted(
        {name for chosen in label_templates(layer).values() for name in label_field_names(chosen)}
    )
    if not fields or not keys:
        return {}
    table = layer.table()
    key = table.c[layer.key_field]
    rows = await conn.execute(
        sa.select(key, *(table.c[name] for name in fields)).where(key.in_(keys))
    )
    return {row[0]: dict(zip(fields, row[1:], strict=True)) for row in rows}


def key_filter(layer: LayerEntry, feature_id: str) -> Callable[[sa.Table], ColumnElement[bool]]:
    """`key = <feature id>` on any table of the layer (live or history).

    False for an id that cannot be a key of this type: it names no feature.
    """

    def condition(table: sa.Table) -> ColumnElement[bool]:
        found = key_condition(layer, table, feature_id)
        return sa.false() if found is None else found

    return condition


async def fetch_feature(
    conn: AsyncConnection,
    layer: LayerEntry,
    feature_id: str,
    crs: OutputCrs,
    properties: tuple[str, ...] | None = None,
) -> str:
    table = layer.table()
    condition = key_condition(layer, table, feature_id)
    row = None
    if condition is not None:
        selected = sa.select(feature_json(layer, table, crs, properties)).where(condition)
        row = (await conn.execute(selected)).first()
    if row is None:
        raise NotFound(f"no feature '{feature_id}' in collection '{layer.id}'")
    return str(row[0])


# --- Tabular downloads ---------------------------------------------------------------------


def _csv_text(value: Any) -> str:
    """A value as CSV text, written as the GeoJSON output writes it (ISO dates, true/false)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def csv_header(columns: list[ColumnInfo]) -> str:
    """The header line: the column names, then WKT (RFC 4180)."""
    return csv_lines([[c.name for c in columns] + [CSV_GEOMETRY]])


def csv_lines(rows: Iterable[Iterable[Any]]) -> str:
    """One CSV line per row, values written as the GeoJSON output writes them."""
    out = io.StringIO()
    csv.writer(out).writerows([_csv_text(v) for v in row] for row in rows)
    return out.getvalue()


def _arrow_type(sql_type: str) -> Any:
    import pyarrow as pa

    return {
        "integer": pa.int32(),
        "bigint": pa.int64(),
        "double precision": pa.float64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "time": pa.time64("us"),
    }.get(sql_type, pa.string())


class GpkgWriter:
    """Rows appended, batch by batch, to a GeoPackage layer named after the collection.

    In `crs` (x/y order). The first batch creates the file; with no batch at all, `close`
    writes the empty layer, so a download that matched nothing is still a GeoPackage.
    """

    def __init__(
        self, path: Path, layer: LayerEntry, columns: list[ColumnInfo], crs: OutputCrs
    ) -> None:
        self.path = path
        self.layer = layer
        self.columns = columns
        self.crs = crs
        self.written = False

    def append(self, rows: list[tuple[Any, ...]]) -> None:
        import pyarrow as pa
        import pyogrio

        # Arrow's own allocator keeps what a batch used; the system's gives it back, so a long
        # download stays at one batch's worth of memory.
        pool = pa.system_memory_pool()
        arrays = {
            c.name: pa.array([r[i] for r in rows], type=_arrow_type(c.sql_type), memory_pool=pool)
            for i, c in enumerate(self.columns)
        }
        width = len(self.columns)
        arrays[GPKG_GEOMETRY] = pa.array(
            [r[width] for r in rows], type=pa.binary(), memory_pool=pool
        )
        options = {}
        if any(c.name.lower() == "fid" for c in self.columns):
            options["FID"] = "gpkg_fid"  # GeoPackage's own row id must not take a property's name
        geometry_type = self.layer.geometry_type
        if geometry_type not in GEOMETRY_TYPES:
            geometry_type = "Unknown"
        crs_name = "OGC:CRS84" if self.crs.uri == CRS84_URI else f"EPSG:{self.crs.srid}"
        pyogrio.write_arrow(
            pa.table(arrays),
            str(self.path),
            layer=self.layer.id,
            driver="GPKG",
            geometry_name=GPKG_GEOMETRY,
            geometry_type=geometry_type,
            crs=crs_name,
            append=self.written,
            layer_options=None if self.written else options or None,
        )
        self.written = True

    def close(self) -> None:
        if not self.written:
            self.append([])
