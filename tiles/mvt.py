"""Mapbox Vector Tiles from the layer tables, written by PostGIS (ST_AsMVT).

Per layer and tile: features whose geometry meets the tile's envelope grown by the MVT
buffer (so shapes continue across tile edges without gaps), found with the GiST index in the
layer's own CRS; simplified by about one pixel (in Web Mercator, the copy the sync reprojected
once; else in the layer's CRS, then reprojected); polygons and lines smaller than
`min_size_px` left out; the properties the zoom level keeps. A tile of
several layers is their MVT layers one after the other (protobuf messages concatenate).

Why one module of about 500 lines: it is one query, built in parts (the candidates, the
simplified geometry, the size cap's order and limit, the squares standing for small polygons,
the label points) that share the layer's table object, the tile's envelope and the bound
values; split apart, each part would import the others' private helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.interfaces import Compiled
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from tiles.names import LABELS_SUFFIX, labelled_polygons
from tiles.tms import TileMatrixSet
from urbis_core.catalog import (
    GEOM_MEASURE,
    GEOM_SIZE,
    MERCATOR_GEOM,
    MERCATOR_SRID,
    LayerEntry,
    tile_ready_values,
)
from urbis_core.config import TileSettings

EXTENT = 4096  # MVT coordinate units across a tile
BUFFER = 64  # units of margin around it: lines and outlines continue past the edge
MERGED = "merged"  # the property of a square standing for small polygons (`small: merge`)
INTEGER_TYPES = {"integer", "bigint", "smallint"}
# When a tile is over its size cap, the features kept are cut to this share of what would
# fit at the size seen, so one retry is almost always enough.
SHRINK_MARGIN = 0.9
MAX_ATTEMPTS = 4


# A filter on a layer's features, built on the very table object the tile query selects from.
Condition = Callable[[sa.Table], ColumnElement[bool]]


@dataclass(frozen=True)
class TileRequest:
    tms: TileMatrixSet
    z: int
    x: int
    y: int


def _is_areal_or_linear(layer: LayerEntry) -> bool:
    return "Polygon" in layer.geometry_type or "LineString" in layer.geometry_type


def _priority(
    layer: LayerEntry, table: sa.Table, settings: TileSettings
) -> list[ColumnElement[Any]]:
    """What the features kept under the size cap are ordered by, best first."""
    key = table.c[layer.key_field]
    if settings.priority:
        name = settings.priority.lstrip("+-")
        column = table.c[name] if name in table.c else None
        if column is not None:
            return [column.desc() if settings.priority.startswith("-") else column.asc(), key]
    if _is_areal_or_linear(layer):  # area or length
        return [_kept_ready(table, GEOM_MEASURE).desc(), key]
    return [key]


def _kept_ready(table: sa.Table, column: str) -> ColumnElement[Any]:
    """A value the sync keeps ready (one of TILE_COLUMNS), or computed now for a row not filled.

    urbis_sync.tile_geometry fills the columns with the same expressions.
    """
    return func.coalesce(table.c[column], tile_ready_values(table.c.geom)[column])


def _feature_id(layer: LayerEntry, table: sa.Table) -> ColumnElement[Any]:
    """MVT ids are integers: the key itself when it is one, else a 63-bit hash of it."""
    key = table.c[layer.key_field]
    if layer.key_column.sql_type in INTEGER_TYPES:
        return key
    return func.abs(func.hashtextextended(sa.cast(key, sa.Text), 0))


def _tile_values(
    layer: LayerEntry, tile: TileRequest, settings: TileSettings, limit: int | None
) -> dict[str, Any]:
    """The numbers of a tile, bound to the named parameters of its layer's statement."""
    tms, z = tile.tms, tile.z
    minx, miny, maxx, maxy = tms.bounds(z, tile.x, tile.y)
    margin = tms.tile_span(z) * BUFFER / EXTENT
    on_copy = _draws_mercator_copy(layer, tms)
    pixel = tms.ground_pixel(z)  # in the layer's native metres
    return {
        "minx": minx,
        "miny": miny,
        "maxx": maxx,
        "maxy": maxy,
        "search_minx": minx - margin,
        "search_miny": miny - margin,
        "search_maxx": maxx + margin,
        "search_maxy": maxy + margin,
        "segment": tms.tile_span(z) / 16,
        "tolerance": tms.cell_size(z) if on_copy else pixel,
        "min_size": settings.min_size_px * pixel,
        "limit": limit,
        "cell": tms.cell_size(z),
        "origin_x": tms.origin[0],
        "origin_y": tms.origin[1],
        "units_per_metre": 1 / tms.ground_metres_per_unit,
    }


def _value(name: str) -> ColumnElement[Any]:
    return sa.bindparam(name, type_=sa.Integer if name == "limit" else sa.Float)


def _candidates(
    layer: LayerEntry,
    table: sa.Table,
    tms: TileMatrixSet,
    settings: TileSettings,
    condition: Condition | None,
    small: bool = False,
) -> list[ColumnElement[bool]]:
    """Which features a tile may show (`small`: instead, those too small to show).

    They meet its buffered envelope (the GiST index finds them in the layer's CRS), are not
    too small to see, and pass the request's filter.
    """
    search = func.ST_MakeEnvelope(
        *(_value(f"search_{c}") for c in ("minx", "miny", "maxx", "maxy")), tms.srid
    )
    if tms.srid != layer.srid:
        # Densified before reprojecting so the envelope's edges stay where they were drawn.
        search = func.ST_Transform(func.ST_Segmentize(search, _value("segment")), layer.srid)
    geom = table.c.geom
    where: list[ColumnElement[bool]] = [geom.op("&&")(search)]
    if _is_areal_or_linear(layer) and settings.min_size_px > 0:
        size = _kept_ready(table, GEOM_SIZE)  # the largest side of its bounding box
        where.append(size < _value("min_size") if small else size >= _value("min_size"))
    if condition is not None:
        where.append(condition(table))
    return where


def _draws_mercator_copy(layer: LayerEntry, tms: TileMatrixSet) -> bool:
    return tms.srid == MERCATOR_SRID and layer.srid != MERCATOR_SRID


def _drawn_geometry(layer: LayerEntry, table: sa.Table, tms: TileMatrixSet) -> ColumnElement[Any]:
    """A feature's geometry in the tile's CRS, lines and polygons simplified by about a pixel.

    Web Mercator tiles read the copy the sync reprojected once (urbis_sync.tile_geometry) and
    simplify it by a pixel of their own units: a tile reprojects nothing. A row whose copy is
    not made yet is reprojected here first, to the same shape. In any other CRS the geometry
    is simplified in the layer's own CRS, then reprojected if the tile's CRS differs.
    """
    simplified = _is_areal_or_linear(layer)
    if _draws_mercator_copy(layer, tms) or tms.srid == layer.srid:
        shape = _in_tile_crs(layer, table, tms)
        return func.ST_Simplify(shape, _value("tolerance"), True) if simplified else shape
    shape = table.c.geom
    if simplified:
        shape = func.ST_Simplify(shape, _value("tolerance"), True)
    return func.ST_Transform(shape, tms.srid)


def _in_tile_crs(layer: LayerEntry, table: sa.Table, tms: TileMatrixSet) -> ColumnElement[Any]:
    """A feature's whole geometry in the tile's CRS (Web Mercator: the copy the sync keeps)."""
    if tms.srid == layer.srid:
        return table.c.geom
    if _draws_mercator_copy(layer, tms):
        return _kept_ready(table, MERCATOR_GEOM)
    return func.ST_Transform(table.c.geom, tms.srid)


def _layer_statement(
    layer: LayerEntry,
    tms: TileMatrixSet,
    settings: TileSettings,
    names: Sequence[str],
    condition: Condition | None,
    limited: bool,
) -> sa.Select[Any]:
    """One layer's MVT for any tile of `tms`: `SELECT ST_AsMVT(...), count(*)`.

    The tile's numbers are named parameters (`_tile_values`), so one statement serves every
    tile of the same shape.
    """
    table = layer.table()
    envelope = func.ST_MakeEnvelope(
        *(_value(c) for c in ("minx", "miny", "maxx", "maxy")), tms.srid
    )
    shape = _drawn_geometry(layer, table, tms)
    columns: list[ColumnElement[Any]] = [_feature_id(layer, table).label("mvt_id")]
    columns += [table.c[n].label(n) for n in names]
    if merges_small(layer, settings):
        columns.append(sa.cast(sa.null(), sa.BigInteger).label(MERGED))
    columns.append(func.ST_AsMVTGeom(shape, envelope, EXTENT, BUFFER, True).label("mvt_geom"))
    features = sa.select(*columns).where(*_candidates(layer, table, tms, settings, condition))
    if limited:
        features = features.order_by(*_priority(layer, table, settings)).limit(_value("limit"))
    drawn: sa.Subquery = features.subquery("t")
    if merges_small(layer, settings):
        drawn = (
            sa.select(features.subquery("kept"))
            .union_all(_merged_small(layer, table, tms, settings, names, condition, envelope))
            .subquery("t")
        )
    # ST_AsMVT skips the rows whose geometry ST_AsMVTGeom clipped away (NULL), and so does
    # count(): filtering them in SQL would have PostgreSQL compute each geometry twice.
    mvt = func.ST_AsMVT(sa.literal_column("t"), layer.id, EXTENT, "mvt_geom", "mvt_id")
    return cast(
        sa.Select[Any],
        sa.select(
            func.coalesce(mvt, sa.literal(b"", sa.LargeBinary)), func.count(drawn.c.mvt_geom)
        ).select_from(drawn),
    )


def merges_small(layer: LayerEntry, settings: TileSettings) -> bool:
    """Whether the layer's polygons too small to draw are merged (`small: merge`)."""
    return (
        settings.small == "merge" and "Polygon" in layer.geometry_type and settings.min_size_px > 0
    )


def _merged_small(
    layer: LayerEntry,
    table: sa.Table,
    tms: TileMatrixSet,
    settings: TileSettings,
    names: Sequence[str],
    condition: Condition | None,
    envelope: ColumnElement[Any],
) -> sa.Select[Any]:
    """The polygons too small to draw, gathered per pixel of the tile into squares.

    As tippecanoe's tiny polygon reduction does: the polygons whose centre falls in a pixel
    become one square there (centred on their centres' mean) of their summed area, so a
    dense block of small buildings still shows at low zoom, as the area it covers. The square
    has no id and no property but `merged`, how many polygons it stands for. A pixel's
    polygons all meet the envelope of each tile that draws it (they are under a pixel, the
    buffer is 64 units), so neighbouring tiles draw the same square.
    """
    centre = func.ST_Centroid(_in_tile_crs(layer, table, tms))
    small = (
        sa.select(
            func.ST_X(centre).label("x"),
            func.ST_Y(centre).label("y"),
            _kept_ready(table, GEOM_MEASURE).label("area"),
        )
        .where(*_candidates(layer, table, tms, settings, condition, small=True))
        .subquery("small")
    )
    # the tile's own pixels (counted from the matrix's corner), the same in every tile
    cell_x = func.floor((small.c.x - _value("origin_x")) / _value("cell"))
    cell_y = func.floor((_value("origin_y") - small.c.y) / _value("cell"))
    side = func.sqrt(func.sum(small.c.area)) * _value("units_per_metre")
    square = func.ST_Expand(
        func.ST_SetSRID(func.ST_MakePoint(func.avg(small.c.x), func.avg(small.c.y)), tms.srid),
        side / 2,
    )
    columns: list[ColumnElement[Any]] = [sa.cast(sa.null(), sa.BigInteger).label("mvt_id")]
    columns += [sa.null().label(n) for n in names]
    columns += [
        func.count().label(MERGED),
        func.ST_AsMVTGeom(square, envelope, EXTENT, BUFFER, True).label("mvt_geom"),
    ]
    return sa.select(*columns).group_by(cell_x, cell_y)


def _names(
    layer: LayerEntry, z: int, settings: TileSettings, properties: Sequence[str] | None
) -> tuple[str, ...]:
    """The properties a layer's features carry in a tile: those asked for, or the zoom's."""
    names = (
        list(properties)
        if properties is not None
        else settings.properties_at(z, [c.name for c in layer.columns])
    )
    if layer.key_field not in names:
        names.insert(0, layer.key_field)
    return tuple(names)


def layer_tile_query(
    layer: LayerEntry,
    tile: TileRequest,
    settings: TileSettings,
    properties: Sequence[str] | None = None,
    condition: Condition | None = None,
    limit: int | None = None,
) -> sa.Select[Any]:
    """One layer's MVT for a tile, its numbers bound: `SELECT ST_AsMVT(...), count(*)`."""
    statement = _layer_statement(
        layer,
        tile.tms,
        settings,
        _names(layer, tile.z, settings, properties),
        condition,
        limit is not None,
    )
    return statement.params(_tile_values(layer, tile, settings, limit))


class DrawingMemory:
    """What drawing tiles learns as it goes, kept by whoever draws.

    The API keeps one for its lifetime (its lifespan makes it), a seed run its own: statements
    compiled once per layer shape, and the bytes per feature seen per (layer, tile matrix set,
    zoom). The second lets a tile be drawn with at most the features its size cap lets fit, best
    first, so that one too large is cut in the same query instead of being drawn whole first.
    Where fewer features meet the tile, the limit does not bind and the tile holds them all.
    """

    MAX_COMPILED = 1024

    def __init__(self) -> None:
        self.compiled: dict[tuple[Any, ...], Compiled] = {}
        self.bytes_per_feature: dict[tuple[str, str, int], float] = {}


def _compiled(
    memory: DrawingMemory,
    layer: LayerEntry,
    tms: TileMatrixSet,
    settings: TileSettings,
    names: tuple[str, ...],
    limited: bool,
    dialect: Dialect,
) -> Compiled:
    """A layer's statement for tiles of `tms` (no filter), compiled once for every tile."""
    key = (
        layer.id,
        layer.table_name,
        layer.srid,
        layer.geometry_type,
        layer.key_field,
        layer.columns,
        tms.id,
        settings.priority,
        settings.min_size_px > 0,
        settings.small,
        names,
        limited,
        dialect.name,
    )
    compiled = memory.compiled.get(key)
    if compiled is None:
        if len(memory.compiled) >= memory.MAX_COMPILED:  # columns changed many times: again
            memory.compiled.clear()
        compiled = memory.compiled[key] = _layer_statement(
            layer, tms, settings, names, None, limited
        ).compile(dialect=dialect)
    return compiled


def label_points_query(
    layer: LayerEntry,
    tile: TileRequest,
    settings: TileSettings,
    pair: tuple[str, str],
    condition: Condition | None = None,
) -> sa.Select[Any]:
    """The MVT layer `<id>_labels`: each polygon's point on surface, with its names.

    A point belongs to the one tile it falls in (edges half-open), so a polygon spread over
    many tiles is labelled once, not once per piece.
    """
    tms, z = tile.tms, tile.z
    table = layer.table()
    minx, miny, maxx, maxy = tms.bounds(z, tile.x, tile.y)
    point = func.ST_PointOnSurface(table.c.geom)
    if tms.srid != layer.srid:
        point = func.ST_Transform(point, tms.srid)
    rows = (
        sa.select(
            _feature_id(layer, table).label("mvt_id"),
            *(table.c[n].label(n) for n in dict.fromkeys((layer.key_field, *pair))),
            point.label("p"),
        )
        .where(*_candidates(layer, table, tms, settings, condition))
        .subquery("f")
    )
    x, y = func.ST_X(rows.c.p), func.ST_Y(rows.c.p)
    envelope = func.ST_MakeEnvelope(minx, miny, maxx, maxy, tms.srid)
    inside = (
        sa.select(
            *(c for c in rows.c if c.name != "p"),
            func.ST_AsMVTGeom(rows.c.p, envelope, EXTENT, 0, False).label("mvt_geom"),
        )
        .where(x >= minx, x < maxx, y > miny, y <= maxy)
        .subquery("t")
    )
    mvt = func.ST_AsMVT(
        sa.literal_column("t"), layer.id + LABELS_SUFFIX, EXTENT, "mvt_geom", "mvt_id"
    )
    return (
        sa.select(func.coalesce(mvt, sa.literal(b"", sa.LargeBinary)))
        .select_from(inside)
        .params(_tile_values(layer, tile, settings, None))
    )


async def render_layer(
    conn: AsyncConnection,
    memory: DrawingMemory,
    layer: LayerEntry,
    tile: TileRequest,
    settings: TileSettings,
    properties: Sequence[str] | None = None,
    condition: Condition | None = None,
) -> bytes:
    """One layer's part of a tile (drawn at its zoom), under its size cap by priority order."""
    seen = (layer.id, tile.tms.id, tile.z)
    limit = None
    if seen in memory.bytes_per_feature:
        limit = max(1, int(settings.max_bytes / memory.bytes_per_feature[seen]))
    data, count = await _draw(conn, memory, layer, tile, settings, properties, condition, limit)
    if count:
        memory.bytes_per_feature[seen] = len(data) / count
    for _attempt in range(MAX_ATTEMPTS):
        if len(data) <= settings.max_bytes or count <= 1:
            break
        limit = max(1, int(count * settings.max_bytes / len(data) * SHRINK_MARGIN))
        data, count = await _draw(conn, memory, layer, tile, settings, properties, condition, limit)
    return data


async def _draw(
    conn: AsyncConnection,
    memory: DrawingMemory,
    layer: LayerEntry,
    tile: TileRequest,
    settings: TileSettings,
    properties: Sequence[str] | None,
    condition: Condition | None,
    limit: int | None,
) -> tuple[bytes, int]:
    if condition is not None:  # its values are bound in it: compiled for this tile only
        result = await conn.execute(
            layer_tile_query(layer, tile, settings, properties, condition, limit)
        )
    else:
        # The statement compiled once per shape, and sent with the tile's numbers: building
        # and compiling it for each tile cost the API more CPU than PostgreSQL took for a
        # small tile.
        compiled = _compiled(
            memory,
            layer,
            tile.tms,
            settings,
            _names(layer, tile.z, settings, properties),
            limit is not None,
            conn.dialect,
        )
        values = compiled.construct_params(_tile_values(layer, tile, settings, limit))
        result = await conn.exec_driver_sql(compiled.string, values)
    row = result.one()
    return bytes(row[0]), int(row[1])


async def render_tile(
    conn: AsyncConnection,
    memory: DrawingMemory,
    layers: Sequence[LayerEntry],
    tile: TileRequest,
    properties: Sequence[str] | None = None,
    conditions: dict[str, Condition] | None = None,
) -> bytes:
    """The tile of several layers (in the order given): their MVT layers concatenated.

    Runs in the caller's transaction.
    """
    # Parallel workers are new processes: each would set up PROJ again (tens of milliseconds)
    # to reproject a tile's features, more than the workers save; and tiles come many at once.
    # JIT compiling a crowded tile's query costs more (about 8 ms) than it saves. A crowded
    # tile keeps its largest features under the size cap: a top-N sort of ~10,000 rows, which
    # spills to disk in the default 4 MB of work memory.
    await conn.execute(
        sa.text(
            "SELECT set_config('max_parallel_workers_per_gather', '0', true), "
            "set_config('jit', 'off', true), "
            "set_config('work_mem', '32MB', true)"
        )
    )
    parts = []
    for layer in layers:
        settings = layer.tiles
        if not settings.minzoom <= tile.z <= settings.maxzoom:
            continue  # outside its zooms, the layer is absent from tiles
        condition = (conditions or {}).get(layer.id)
        parts.append(await render_layer(conn, memory, layer, tile, settings, properties, condition))
        pair = labelled_polygons(layer)
        if pair is not None:
            parts.append(
                bytes(
                    (
                        await conn.execute(
                            label_points_query(layer, tile, settings, pair, condition)
                        )
                    ).scalar_one()
                )
            )
    return b"".join(parts)
