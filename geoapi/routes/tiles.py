"""OGC API Tiles: vector tiles (MVT) of one collection or several, tile matrix sets, TileJSON.

Tile URLs are `/{z}/{x}/{y}` (zoom, column, row from the top), as web map libraries write
them; the tileset documents give the same as an OGC template. A cached tile is answered
without touching the database. An empty tile is a 204 with no body.

Over 400 lines: the tiles and the documents that describe them (tilesets, TileJSON, tile
matrix sets) share the zoom range and extent of a set of layers; one module keeps the
templates the documents give and the routes that answer them together.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from geoapi.budgets import Budgets
from geoapi.cql2 import compile_filter, parse_filter, parse_language
from geoapi.crs import CRS84_URI, parse_crs
from geoapi.deps import CatalogLayer, ConnDep, FormatDep, LangDep, SettingsDep, base_url
from geoapi.i18n import text
from geoapi.links import OGC_REL, link
from geoapi.media_types import MVT
from geoapi.offload import off_loop
from geoapi.params import reject_unknown
from geoapi.responses.documented import ALSO_HTML, CATALOG_ERRORS, answers, errors
from geoapi.responses.tiles import (
    TileJson,
    TileMatrixSetDefinition,
    TileMatrixSets,
    Tileset,
    Tilesets,
)
from geoapi.tile_answers import cache_control, tile_answer
from geoapi.tile_pages import (
    tile_matrix_set_page,
    tile_matrix_sets_page,
    tileset_page,
    tilesets_page,
)
from tiles.cache import TileCache
from tiles.draw import LayersOf, draw_tile, layer_of, layers_of
from tiles.keys import EVERY_LAYER, CachedTile, TileKey, bbox_in
from tiles.mvt import Condition
from tiles.tilejson import (
    crs84_extent,
    field_type,
    tilejson_document,
    union_of,
    vector_layers,
)
from tiles.tms import TILE_MATRIX_SETS, TileMatrixSet, get_tms
from urbis_core.catalog import LayerEntry, list_layers
from urbis_core.errors import InvalidParameter
from urbis_core.layer_ids import layers_by_ids, parse_layer_ids
from urbis_core.settings import ApiSettings

router = APIRouter(tags=["Tiles"])

TILE_PARAMS = {"filter", "filter-lang", "filter-crs", "properties"}
TmsId = Annotated[str, Path(description="Tile matrix set: WebMercatorQuad or BelgianLambert72")]
Z = Annotated[int, Path(description="Zoom level (tile matrix)")]
X = Annotated[int, Path(description="Column, from the left (0-based)")]
Y = Annotated[int, Path(description="Row, from the top (0-based)")]
Filter = Annotated[
    str | None,
    Query(alias="filter", description=("CQL2 filter on the features drawn, as for items")),
]
FilterLang = Annotated[str | None, Query(alias="filter-lang")]
FilterCrs = Annotated[str | None, Query(alias="filter-crs")]
Properties = Annotated[
    str | None,
    Query(
        description=(
            "Comma-separated properties to carry (default: those the layer's settings give the "
            "zoom)"
        )
    ),
]


@dataclass(frozen=True)
class TileAsked:
    """A tile request's position and what else it asks: a filter, the properties to carry."""

    tms_id: str
    z: int
    x: int
    y: int
    params: dict[str, str | None]

    def key(self, collections: tuple[str, ...]) -> TileKey:
        return TileKey(collections, self.tms_id, self.z, self.x, self.y, _variant(self.params))


async def _tile_asked(
    tms_id: TmsId,
    z: Z,
    x: X,
    y: Y,
    filter_: Filter = None,
    filter_lang: FilterLang = None,
    filter_crs: FilterCrs = None,
    properties: Properties = None,
) -> TileAsked:
    """The tile asked for, read from its path and query.

    Async: FastAPI runs a plain function dependency in a worker thread, a hop that halved the
    cached tiles' throughput.
    """
    params = {
        "filter": filter_,
        "filter-lang": filter_lang,
        "filter-crs": filter_crs,
        "properties": properties,
    }
    return TileAsked(tms_id, z, x, y, params)


TileAskedDep = Annotated[TileAsked, Depends(_tile_asked)]

Collections = Annotated[
    str | None,
    Query(description=("Comma-separated collection ids, drawn in that order (default: all)")),
]

_TILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {MVT: {}}, "description": "The tile (Mapbox Vector Tile)"},
    204: {"description": "An empty tile: no feature of the collections in it"},
    304: {"description": "Not modified (If-None-Match matched the ETag)"},
}


def _cache(request: Request) -> TileCache:
    cache: TileCache = request.app.state.tile_cache
    return cache


def _variant(params: dict[str, str | None]) -> str:
    """What besides z/x/y makes two requests for a tile differ (hashed into the cache key)."""
    given = {k: v for k, v in sorted(params.items()) if v}
    return hashlib.sha1(json.dumps(given).encode()).hexdigest()[:16] if given else ""


def _conditions(
    layers: list[LayerEntry], raw: str | None, lang: str | None, crs: str | None
) -> dict[str, Condition]:
    """The CQL2 filter per layer (checked against each now: a 400 before any tile SQL)."""
    if raw is None:
        return {}
    language = parse_language(lang)
    filter_crs = parse_crs(crs, "filter-crs")
    conditions: dict[str, Condition] = {}
    for layer in layers:
        cql = compile_filter(raw, language, filter_crs, layer)
        conditions[layer.id] = functools.partial(cql.condition, layer)
    return conditions


async def _tile_response(
    request: Request,
    settings: ApiSettings,
    key: TileKey,
    layers: LayersOf,
    params: dict[str, str | None],
) -> Response:
    """The tile from the cache, or rendered (once, however many ask at the same moment)."""
    get_tms(key.tms).check(key.z, key.x, key.y)
    cache = _cache(request)
    tile, hit = await cache.get_or_render(
        key, functools.partial(_draw, request, key, layers, params)
    )
    headers = {
        "X-Tile-Cache": "hit" if hit else "miss",
        "Cache-Control": cache_control(settings),
    }
    return tile_answer(request, tile.data, tile.etag, MVT, headers)


async def _draw(
    request: Request, key: TileKey, layers: LayersOf, params: dict[str, str | None]
) -> CachedTile:
    """A tile drawn for a request: in its turn among tile requests, under their timeout."""
    budgets: Budgets = request.app.state.budgets
    request.state.query_kind = "tiles"
    if params.get("filter") is not None:
        # parsed off the loop once; drawing then finds it parsed (geoapi.cql2.parse_filter)
        await off_loop(request, parse_filter, params["filter"], params.get("filter-lang"))
    conditions_of = functools.partial(
        _conditions,
        raw=params.get("filter"),
        lang=params.get("filter-lang"),
        crs=params.get("filter-crs"),
    )
    async with budgets.turn("tiles"):
        return await draw_tile(
            functools.partial(request.app.state.reads.snapshot, "tiles"),
            request.app.state.drawing_memory,
            key,
            layers,
            params.get("properties"),
            conditions_of,
        )


@router.get(
    "/collections/{collection_id}/tiles/{tms_id}/{z}/{x}/{y}",
    summary="A vector tile of one collection",
    response_class=Response,
    responses={**_TILE_RESPONSES, **errors(*CATALOG_ERRORS)},
)
async def collection_tile(
    request: Request, settings: SettingsDep, collection_id: str, asked: TileAskedDep
) -> Response:
    reject_unknown(request.query_params.keys(), TILE_PARAMS)
    return await _tile_response(
        request, settings, asked.key((collection_id,)), layer_of(collection_id), asked.params
    )


@router.get(
    "/tiles/{tms_id}/{z}/{x}/{y}",
    summary="A vector tile of several collections",
    response_class=Response,
    responses={**_TILE_RESPONSES, **errors(*CATALOG_ERRORS)},
)
async def dataset_tile(
    request: Request, settings: SettingsDep, asked: TileAskedDep, collections: Collections = None
) -> Response:
    reject_unknown(request.query_params.keys(), TILE_PARAMS | {"collections"})
    ids = parse_layer_ids(collections)
    return await _tile_response(
        request, settings, asked.key(ids or EVERY_LAYER), layers_of(ids), asked.params
    )


# -- metadata ---------------------------------------------------------------------------------


def _tms_link(base: str, tms: TileMatrixSet) -> dict[str, Any]:
    return link(f"{OGC_REL}tiling-scheme", f"{base}/tileMatrixSets/{tms.id}")


@router.get(
    "/tileMatrixSets",
    summary="The tile matrix sets tiles are offered in",
    responses=answers(TileMatrixSets, also=ALSO_HTML, errors_=()),
)
async def tile_matrix_sets(request: Request, fmt: FormatDep, lang: LangDep) -> Any:
    base = base_url(request)
    doc = {
        "tileMatrixSets": [
            {
                "id": t.id,
                "title": t.title,
                "uri": t.uri,
                "crs": t.crs_uri,
                "links": [link("self", f"{base}/tileMatrixSets/{t.id}")],
            }
            for t in TILE_MATRIX_SETS.values()
        ]
    }
    if fmt == "html":
        return tile_matrix_sets_page(request, lang, doc, f"{base}/tileMatrixSets?f=json")
    return doc


@router.get(
    "/tileMatrixSets/{tms_id}",
    summary="One tile matrix set's definition",
    responses=answers(TileMatrixSetDefinition, also=ALSO_HTML, errors_=(404,)),
)
async def tile_matrix_set(request: Request, tms_id: TmsId, fmt: FormatDep, lang: LangDep) -> Any:
    doc = get_tms(tms_id).description()
    if fmt == "html":
        json_href = f"{base_url(request)}/tileMatrixSets/{tms_id}?f=json"
        return tile_matrix_set_page(request, lang, doc, json_href)
    return doc


def _limits(
    tms: TileMatrixSet, layers: list[LayerEntry], minzoom: int, maxzoom: int
) -> list[dict[str, Any]]:
    """Per zoom, the rows and columns that hold data (from the layers' extents)."""
    boxes = [
        bbox_in(tms, tuple(layer.bbox_native))  # type: ignore[arg-type]
        for layer in layers
        if layer.bbox_native
    ]
    if not boxes:
        return []
    return tms.limits(union_of(boxes), minzoom, maxzoom)


def _zoom_range(layers: list[LayerEntry]) -> tuple[int, int]:
    settings = [layer.tiles for layer in layers]
    if not settings:
        return 0, 22
    return min(s.minzoom for s in settings), max(s.maxzoom for s in settings)


def _vector_layer(layer: LayerEntry) -> dict[str, Any]:
    settings = layer.tiles
    dimension = (
        0 if "Point" in layer.geometry_type else (1 if "LineString" in layer.geometry_type else 2)
    )
    return {
        "id": layer.id,
        "title": layer.display_title("en"),
        "dataType": "vector",
        "geometryDimension": dimension,
        "minTileMatrix": str(settings.minzoom),
        "maxTileMatrix": str(settings.maxzoom),
        "propertiesSchema": {
            "type": "object",
            "properties": {c.name: {"type": field_type(c.sql_type).lower()} for c in layer.columns},
        },
    }


def _tileset(
    base: str, path: str, tms: TileMatrixSet, layers: list[LayerEntry], title: str, query: str = ""
) -> dict[str, Any]:
    minzoom, maxzoom = _zoom_range(layers)
    template = f"{base}{path}/{tms.id}/{{tileMatrix}}/{{tileCol}}/{{tileRow}}{query}"
    return {
        "title": title,
        "dataType": "vector",
        "crs": tms.crs_uri,
        "tileMatrixSetURI": tms.uri or f"{base}/tileMatrixSets/{tms.id}",
        "tileMatrixSetLimits": _limits(tms, layers, minzoom, maxzoom),
        "layers": [_vector_layer(layer) for layer in layers],
        "links": [
            link("self", f"{base}{path}/{tms.id}"),
            _tms_link(base, tms),
            link("item", template, MVT, templated=True),
            link("describedby", f"{base}{path}/{tms.id}/tilejson.json{query}"),
        ],
    }


def _tilesets(base: str, path: str, title: str, query: str = "") -> dict[str, Any]:
    return {
        "tilesets": [
            {
                "title": f"{title} ({t.id})",
                "dataType": "vector",
                "crs": t.crs_uri,
                "tileMatrixSetURI": t.uri or f"{base}/tileMatrixSets/{t.id}",
                "links": [link("self", f"{base}{path}/{t.id}{query}"), _tms_link(base, t)],
            }
            for t in TILE_MATRIX_SETS.values()
        ]
    }


@router.get(
    "/collections/{collection_id}/tiles",
    summary="The tilesets of a collection",
    responses=answers(Tilesets, also=ALSO_HTML, errors_=CATALOG_ERRORS),
)
async def collection_tilesets(
    request: Request, layer: CatalogLayer, fmt: FormatDep, lang: LangDep
) -> Any:
    base = base_url(request)
    doc = _tilesets(base, f"/collections/{layer.id}/tiles", layer.display_title("en"))
    if fmt == "html":
        json_href = f"{base}/collections/{layer.id}/tiles?f=json"
        return tilesets_page(request, lang, layer.display_title(lang.code), doc, json_href)
    return doc


@router.get(
    "/collections/{collection_id}/tiles/{tms_id}",
    summary="A collection's tileset",
    responses=answers(Tileset, also=ALSO_HTML, errors_=CATALOG_ERRORS),
)
async def collection_tileset(
    request: Request, layer: CatalogLayer, tms_id: TmsId, fmt: FormatDep, lang: LangDep
) -> Any:
    base = base_url(request)
    doc = _tileset(
        base,
        f"/collections/{layer.id}/tiles",
        get_tms(tms_id),
        [layer],
        layer.display_title("en"),
    )
    if fmt == "html":
        json_href = f"{base}/collections/{layer.id}/tiles/{tms_id}?f=json"
        return tileset_page(request, lang, layer.display_title(lang.code), doc, json_href)
    return doc


async def _dataset_layers(conn: AsyncConnection, collections: str | None) -> list[LayerEntry]:
    return layers_by_ids(parse_layer_ids(collections), await list_layers(conn))


@router.get(
    "/tiles",
    summary="The dataset's tilesets (all collections in one tile)",
    responses=answers(Tilesets, also=ALSO_HTML, errors_=()),
)
async def dataset_tilesets(request: Request, fmt: FormatDep, lang: LangDep) -> Any:
    base = base_url(request)
    doc = _tilesets(base, "/tiles", "URBIS layers")
    if fmt == "html":
        what = text(lang.code, "tilesets.dataset")
        return tilesets_page(request, lang, what, doc, f"{base}/tiles?f=json")
    return doc


@router.get(
    "/tiles/{tms_id}",
    summary="The dataset's tileset",
    responses=answers(Tileset, also=ALSO_HTML, errors_=CATALOG_ERRORS),
)
async def dataset_tileset(
    request: Request,
    conn: ConnDep,
    tms_id: TmsId,
    fmt: FormatDep,
    lang: LangDep,
    collections: Collections = None,
) -> Any:
    layers = await _dataset_layers(conn, collections)
    query = f"?collections={','.join(layer.id for layer in layers)}" if collections else ""
    base = base_url(request)
    doc = _tileset(base, "/tiles", get_tms(tms_id), layers, "URBIS layers", query)
    if fmt == "html":
        json_href = f"{base}/tiles/{tms_id}{query or '?'}{'&' if query else ''}f=json"
        what = text(lang.code, "tilesets.dataset")
        return tileset_page(request, lang, what, doc, json_href)
    return doc


def _tilejson(base: str, tile_url: str, layers: list[LayerEntry], name: str) -> dict[str, Any]:
    extent = crs84_extent(layers)
    bounds = list(extent) if extent else [-180, -85.0511, 180, 85.0511]
    return {
        **tilejson_document(name, tile_url, _zoom_range(layers), bounds, opening_zoom=12),
        "crs": CRS84_URI,
        "vector_layers": vector_layers(layers),
    }


def _web_mercator_only(tms_id: str) -> None:
    if tms_id != "WebMercatorQuad":
        raise InvalidParameter(
            "tileMatrixSetId", "TileJSON describes Web Mercator tiles only; use WebMercatorQuad"
        )


@router.get(
    "/collections/{collection_id}/tiles/{tms_id}/tilejson.json",
    summary="TileJSON 3.0 of a collection's tiles",
    responses=answers(TileJson, errors_=CATALOG_ERRORS),
)
async def collection_tilejson(
    request: Request, layer: CatalogLayer, tms_id: TmsId
) -> dict[str, Any]:
    _web_mercator_only(tms_id)
    base = base_url(request)
    url = f"{base}/collections/{layer.id}/tiles/{tms_id}/{{z}}/{{x}}/{{y}}"
    return _tilejson(base, url, [layer], layer.display_title("en"))


@router.get(
    "/tiles/{tms_id}/tilejson.json",
    summary="TileJSON 3.0 of the dataset's tiles",
    responses=answers(TileJson, errors_=CATALOG_ERRORS),
)
async def dataset_tilejson(
    request: Request, conn: ConnDep, tms_id: TmsId, collections: Collections = None
) -> dict[str, Any]:
    _web_mercator_only(tms_id)
    layers = await _dataset_layers(conn, collections)
    base = base_url(request)
    query = f"?collections={','.join(layer.id for layer in layers)}" if collections else ""
    return _tilejson(
        base, f"{base}/tiles/{tms_id}/{{z}}/{{x}}/{{y}}{query}", layers, "URBIS layers"
    )
