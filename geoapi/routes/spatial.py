"""Spatial queries for regional apps: what is here, within a distance, nearest, intersects, stats.

Points and geometries come in `crs` (CRS84 by default, longitude first; EPSG:4326 latitude
first) and answers go out in it. Everything is checked here, at the edge: bad values are 400s
naming the parameter, unknown collections and features 404s.

Over 400 lines: the spatial queries share their parameters (point, crs, limit, posted
geometry) and their answer (a FeatureCollection); one module keeps their rules alike.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from geoapi.crs import PROJECTED_LIMIT_M, OutputCrs, parse_crs
from geoapi.deps import (
    CollectionId,
    FormatDep,
    LangDep,
    SettingsDep,
    SpatialConnDep,
    StatsConnDep,
    base_url,
    chosen_format,
)
from geoapi.features import label_properties
from geoapi.i18n import number, text
from geoapi.links import collection_link
from geoapi.media_types import CSV, GEOJSON, HTML
from geoapi.offload import in_process, json_text, off_loop
from geoapi.params import Offset, reject_unknown
from geoapi.posted_geometry import check_lists, out_of_range, parse_geometry
from geoapi.responses.common import FeatureCollection
from geoapi.responses.documented import (
    ALSO_HTML,
    CATALOG_ERRORS,
    answers,
    errors,
    geometry_body,
)
from geoapi.responses.spatial import Lookup, Stats
from geoapi.spatial import (
    LOOKUP_MAX_PER_COLLECTION,
    LOOKUP_TOLERANCE_M,
    MAX_DISTANCE_M,
    MAX_NEAREST,
    MAX_STATS_GROUPS,
    GroupStats,
    QueryPoint,
    QueryShape,
    features_at,
    features_intersecting,
    features_within,
    group_stats,
    literal_shape,
    nearest_features,
    stored_shape,
)
from geoapi.spatial_pages import lookup_page, near_page, stats_page
from urbis_core.catalog import LayerEntry, get_layer, list_layers
from urbis_core.errors import InvalidParameter
from urbis_core.layer_ids import layers_by_ids, parse_layer_ids
from urbis_core.settings import MAX_ITEMS_LIMIT

router = APIRouter(tags=["Spatial queries"])

DEFAULT_LIMIT = 100

X = Annotated[
    float,
    Query(
        allow_inf_nan=False,
        description=(
            "First coordinate in `crs`: longitude in CRS84 (default), latitude in EPSG:4326, "
            "easting in EPSG:31370 and EPSG:3857, e.g. 4.3445. Longitudes lie in [-180, 180], "
            f"latitudes in [-90, 90], projected coordinates within ±{PROJECTED_LIMIT_M:,.0f} m"
        ),
    ),
]
Y = Annotated[
    float,
    Query(
        allow_inf_nan=False,
        description=(
            "Second coordinate in `crs`: latitude in CRS84, longitude in EPSG:4326, northing in "
            "EPSG:31370 and EPSG:3857, e.g. 50.8316 (ranges as for x)"
        ),
    ),
]
Crs = Annotated[
    str | None,
    Query(
        description=(
            "CRS (URI or short form) of the point or geometry given and of the answer: "
            "http://www.opengis.net/def/crs/OGC/1.3/CRS84 (default, lon/lat), EPSG:4326 (lat/lon), "
            "EPSG:31370 (Belgian Lambert 72, the storage CRS), EPSG:3857"
        )
    ),
]
Limit = Annotated[
    int | None,
    Query(
        ge=1,
        description=(
            f"Features per answer (default {DEFAULT_LIMIT}; at most {MAX_ITEMS_LIMIT}, larger "
            "values are reduced to it)"
        ),
    ),
]
# What a query far from the data answers (geoapi.area_of_use), said on each endpoint.
OUTSIDE_POINT = (
    " A point outside EPSG:31370's area of use (Belgium: 2.5-6.4 E, 49.5-51.51 N, "
    "edges included) finds nothing: the answer is empty."
)
Measure = Annotated[
    bool,
    Query(
        description=(
            "Add each feature's `intersection_area` (m², polygons with a polygon) or "
            "`intersection_length` (m, polygons with a line, lines with a polygon), planar in "
            "EPSG:31370; other pairs intersect in points, with nothing to measure (a 400)"
        )
    ),
]


# -- validation at the edge ------------------------------------------------------------------


def parse_point(x: float, y: float, crs: OutputCrs) -> QueryPoint:
    """The point x/y given in `crs`, checked for range, as longitude/easting first."""
    problem = out_of_range(x, y, crs)
    if problem is not None:
        raise InvalidParameter(("x", "y")[problem[0]], problem[1])
    return QueryPoint(y, x, crs.srid) if crs.lat_first else QueryPoint(x, y, crs.srid)


def _limit(limit: int | None, cap: int) -> int:
    return min(limit or DEFAULT_LIMIT, cap)


# -- answers ----------------------------------------------------------------------------------


async def feature_collection(
    request: Request,
    layer: LayerEntry,
    crs: OutputCrs,
    features: list[dict[str, Any]],
    **members: Any,
) -> Response:
    doc: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": features,
        **members,
        "numberReturned": len(features),
    }
    if not crs.geographic:
        # GeoJSON readers (GDAL, geopandas) assume WGS 84 unless told otherwise.
        doc["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{crs.srid}"}}
    doc["links"] = [collection_link(base_url(request), layer)]
    return Response(
        await json_text(request, doc, len(features)),
        media_type=GEOJSON,
        headers={"Content-Crs": f"<{crs.uri}>"},
    )


def _stats_csv(stats: GroupStats) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            name
            for name in (stats.key_field, stats.title_field, "count", stats.measure)
            if name is not None
        ]
    )
    writer.writerows(row.values() for row in stats.rows)
    return out.getvalue()


FEATURE_COLLECTION_RESPONSE = answers(
    FeatureCollection, GEOJSON, errors_=CATALOG_ERRORS, description="GeoJSON FeatureCollection"
)
# within, nearest and geocode answer a page to browsers as well
FEATURES_OR_PAGE = answers(
    FeatureCollection,
    GEOJSON,
    also=ALSO_HTML,
    errors_=CATALOG_ERRORS,
    description="GeoJSON FeatureCollection, or an HTML page",
)
_GEOMETRY_BODY = geometry_body(
    "A GeoJSON geometry (Point, MultiPoint, LineString, MultiLineString, Polygon, "
    "MultiPolygon) or a Feature holding one, in `crs`; it must be valid (no "
    "self-intersection)",
    required=True,
)


# -- endpoints --------------------------------------------------------------------------------


@router.get(
    "/lookup",
    summary="What is at a point, per collection",
    responses=answers(Lookup, also=ALSO_HTML, errors_=CATALOG_ERRORS),
    description=(
        "For each collection asked for (default: all), the features at the point: in polygon "
        "collections those whose area contains it (boundary included); in point and line "
        f"collections those within {LOOKUP_TOLERANCE_M:g} m of it. Nearest first, at most "
        f"{LOOKUP_MAX_PER_COLLECTION} per collection. Answer: "
        '`{"point": <GeoJSON Point>, "crs": <uri>, '
        '"results": {"<collection>": [<Feature>, ...]}}`, '
        "features in `crs`." + OUTSIDE_POINT
    ),
)
async def lookup(
    request: Request,
    conn: SpatialConnDep,
    fmt: FormatDep,
    lang: LangDep,
    x: X,
    y: Y,
    crs: Crs = None,
    collections: Annotated[
        str | None,
        Query(
            description=(
                "Comma-separated collection ids, e.g. municipalities,addresses (default: all)"
            )
        ),
    ] = None,
) -> Any:
    reject_unknown(request.query_params.keys(), {"x", "y", "crs", "collections", "f", "lang"})
    out = parse_crs(crs, "crs")
    point = parse_point(x, y, out)
    layers = layers_by_ids(parse_layer_ids(collections), await list_layers(conn))
    results = {layer.id: await features_at(conn, layer, point, out) for layer in layers}
    doc = {"point": {"type": "Point", "coordinates": [x, y]}, "crs": out.uri, "results": results}
    if fmt == "html":
        return lookup_page(request, lang, layers, doc)
    return doc


@router.get(
    "/collections/{collection_id}/within",
    summary="Features within a distance",
    response_class=Response,
    responses=FEATURES_OR_PAGE,
    description=(
        "Features within `distance` metres of the point, nearest first (then by key), "
        "each with a `distance` property (metres, planar in EPSG:31370, rounded to the "
        "mm; 0 inside a polygon). `numberMatched` counts them all." + OUTSIDE_POINT
    ),
)
async def within(
    collection_id: CollectionId,
    request: Request,
    conn: SpatialConnDep,
    settings: SettingsDep,
    fmt: FormatDep,
    lang: LangDep,
    x: X,
    y: Y,
    distance: Annotated[
        float,
        Query(
            gt=0,
            le=MAX_DISTANCE_M,
            allow_inf_nan=False,
            description=(f"Radius in metres, more than 0 and at most {MAX_DISTANCE_M:,.0f}"),
        ),
    ],
    crs: Crs = None,
    limit: Limit = None,
    offset: Offset = 0,
) -> Response:
    reject_unknown(
        request.query_params.keys(), {"x", "y", "distance", "crs", "limit", "offset", "f", "lang"}
    )
    out = parse_crs(crs, "crs")
    point = parse_point(x, y, out)
    layer = await get_layer(conn, collection_id)
    features, matched = await features_within(
        conn, layer, point, distance, out, _limit(limit, settings.max_limit), offset
    )
    if fmt == "html":
        code = lang.code
        title = text(
            code,
            "within.title",
            layer=layer.display_title(code),
            distance=number(int(distance) if distance.is_integer() else distance, code),
        )
        doc = {"features": features, "numberMatched": matched}
        return near_page(
            request, lang, layer, title, doc, out, f"/collections/{layer.id}/within", ["distance"]
        )
    return await feature_collection(request, layer, out, features, numberMatched=matched)


@router.get(
    "/collections/{collection_id}/nearest",
    summary="The k nearest features",
    response_class=Response,
    responses=FEATURES_OR_PAGE,
    description=(
        "The `k` features nearest to the point (the spatial index's KNN order), nearest "
        "first (ties by key), each with a `distance` property (metres, planar in "
        "EPSG:31370, rounded to the mm; 0 inside a polygon)."
        + OUTSIDE_POINT
        + " No feature is then reported as nearest: it would lie hundreds of kilometres "
        "away, at a planar Lambert 72 distance that means little there."
    ),
)
async def nearest(
    collection_id: CollectionId,
    request: Request,
    conn: SpatialConnDep,
    fmt: FormatDep,
    lang: LangDep,
    x: X,
    y: Y,
    k: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_NEAREST,
            description=(f"How many features (default 1, at most {MAX_NEAREST})"),
        ),
    ] = 1,
    crs: Crs = None,
) -> Response:
    reject_unknown(request.query_params.keys(), {"x", "y", "k", "crs", "f", "lang"})
    out = parse_crs(crs, "crs")
    point = parse_point(x, y, out)
    layer = await get_layer(conn, collection_id)
    features = await nearest_features(conn, layer, point, k, out)
    if fmt == "html":
        code = lang.code
        title = text(code, "nearest.title", layer=layer.display_title(code), k=k)
        doc = {"features": features}
        return near_page(
            request, lang, layer, title, doc, out, f"/collections/{layer.id}/nearest", ["k"]
        )
    return await feature_collection(request, layer, out, features)


async def _intersecting(
    request: Request,
    conn: AsyncConnection,
    layer: LayerEntry,
    shape: QueryShape,
    out: OutputCrs,
    measure: bool,
    limit: int,
    offset: int,
) -> Response:
    features, matched = await features_intersecting(conn, layer, shape, out, measure, limit, offset)
    return await feature_collection(request, layer, out, features, numberMatched=matched)


@router.post(
    "/collections/{collection_id}/intersects",
    summary="Features intersecting a geometry",
    response_class=Response,
    responses={**FEATURE_COLLECTION_RESPONSE, **errors(413)},
    openapi_extra=_GEOMETRY_BODY,
    description=(
        "Features whose geometry intersects the GeoJSON geometry in the body (given "
        "in `crs`), by key; `numberMatched` counts them all. A body that is not "
        "GeoJSON, or an empty or invalid geometry, is a 400. The geometry is cut to "
        "EPSG:31370's area of use (Belgium) before it is reprojected: a polygon of the "
        "whole world intersects every feature, one far from Belgium none."
    ),
)
async def intersects_geometry(
    collection_id: CollectionId,
    request: Request,
    conn: SpatialConnDep,
    settings: SettingsDep,
    crs: Crs = None,
    measure: Measure = False,
    limit: Limit = None,
    offset: Offset = 0,
) -> Response:
    reject_unknown(request.query_params.keys(), {"crs", "measure", "limit", "offset"})
    out = parse_crs(crs, "crs")
    body = await request.body()
    check_lists(body, settings.max_query_vertices)
    geometry = await in_process(request, parse_geometry, body, out, settings.max_query_vertices)
    layer = await get_layer(conn, collection_id)
    shape = await off_loop(request, literal_shape, geometry, out.srid, layer)
    return await _intersecting(
        request, conn, layer, shape, out, measure, _limit(limit, settings.max_limit), offset
    )


@router.get(
    "/collections/{collection_id}/intersects",
    summary="Features intersecting another stored feature",
    response_class=Response,
    responses=FEATURE_COLLECTION_RESPONSE,
    description=(
        "Features whose geometry intersects the geometry of the stored feature "
        "`feature` (e.g. the addresses in a municipality), by key; `numberMatched` "
        "counts them all. Features touching it count."
    ),
)
async def intersects_feature(
    collection_id: CollectionId,
    request: Request,
    conn: SpatialConnDep,
    settings: SettingsDep,
    feature: Annotated[
        str,
        Query(description=("The other feature as <collection>/<key>, e.g. municipalities/21013")),
    ],
    crs: Annotated[
        str | None,
        Query(
            description=("Output CRS: CRS84 (default), EPSG:4326 (lat/lon), EPSG:31370, EPSG:3857")
        ),
    ] = None,
    measure: Measure = False,
    limit: Limit = None,
    offset: Offset = 0,
) -> Response:
    reject_unknown(request.query_params.keys(), {"feature", "crs", "measure", "limit", "offset"})
    out = parse_crs(crs, "crs")
    source_id, slash, key = feature.partition("/")
    if not slash or not source_id or not key:
        raise InvalidParameter(
            "feature", f"'{feature}' is not <collection>/<key>, e.g. municipalities/21013"
        )
    layer = await get_layer(conn, collection_id)
    source = await get_layer(conn, source_id)
    shape = await stored_shape(conn, source, key, layer)
    return await _intersecting(
        request, conn, layer, shape, out, measure, _limit(limit, settings.max_limit), offset
    )


@router.get(
    "/collections/{collection_id}/stats",
    summary="Counts and totals per area",
    responses=answers(Stats, also={CSV: {}, HTML: {}}, errors_=CATALOG_ERRORS),
    response_class=Response,
    description=(
        "For each feature of the polygon collection `by` (by key): its key, a naming "
        "field when it has one (e.g. NAME_FRE), the `count` of this collection's "
        "features in it (points: inside or on its boundary; polygons: whose "
        "representative point, ST_PointOnSurface, is; lines: whose longest part is) "
        "and, for polygons, `area_m2` of their parts inside it, for lines `length_m`. "
        f"`by` may have at most {MAX_STATS_GROUPS:,} features. JSON, or CSV with a "
        "header line (`f=csv` or `Accept: text/csv`)."
    ),
)
async def stats(
    collection_id: CollectionId,
    request: Request,
    conn: StatsConnDep,
    lang: LangDep,
    by: Annotated[str, Query(description="Polygon collection to group by, e.g. municipalities")],
    f: Annotated[
        Literal["json", "csv", "html"] | None,
        Query(
            description=(
                "Output format (default: JSON, or CSV when the Accept header asks for "
                "text/csv, HTML when it prefers text/html)"
            )
        ),
    ] = None,
) -> Response:
    reject_unknown(request.query_params.keys(), {"by", "f", "lang"})
    layer = await get_layer(conn, collection_id)
    group = await get_layer(conn, by)
    result = await group_stats(conn, layer, group)
    if f == "csv" or (f is None and CSV in request.headers.get("accept", "")):
        return Response(
            _stats_csv(result),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'inline; filename="{layer.id}-by-{group.id}.csv"'},
        )
    doc = {
        "collection": layer.id,
        "by": group.id,
        "keyField": result.key_field,
        "titleField": result.title_field,
        "measure": result.measure,
        "groups": result.rows,
        "numberReturned": len(result.rows),
    }
    if chosen_format(request, f, ("json", "html")) == "html":
        keys = [row["key"] for row in result.rows]
        names = await label_properties(conn, group, keys)
        return stats_page(request, lang, layer, group, doc, names)
    return Response(json.dumps(doc, default=str), media_type="application/json")
