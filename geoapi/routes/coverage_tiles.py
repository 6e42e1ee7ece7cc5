"""Raster tiles of a coverage on our tile matrix sets (PNG, WebP, GeoTIFF values), TileJSON.

A tile is `/coverages/{id}/tiles/{tms}/{z}/{x}/{y}.png` (or `.webp`; `.tif` for the values), as
the vector tiles are: rows from the top, 404 outside the matrix, 204 with no body where the
tile does not meet the raster (MapLibre draws an empty raster tile for it), ETag and 304,
`X-Tile-Cache`. Its key in the app's tile cache holds the coverage's version and the style, so
a new version is never answered with an old tile; the sync's change notification
(`coverage:<id>`) drops the old ones as well.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from geoapi.coverage_entries import coverage_entry
from geoapi.coverage_tile_pages import coverage_tileset_page, coverage_tilesets_page
from geoapi.deps import CatalogCoverage, CoverageId, FormatDep, LangDep, SettingsDep, base_url
from geoapi.links import OGC_REL, link
from geoapi.offload import Workers, off_loop
from geoapi.params import reject_unknown
from geoapi.responses.coverages_tiles import RasterTileJson
from geoapi.responses.documented import ALSO_HTML, CATALOG_ERRORS, answers, errors
from geoapi.responses.tiles import Tileset, Tilesets
from geoapi.tile_answers import cache_control, tile_answer
from tiles.cache import TileCache
from tiles.keys import CachedTile, TileKey, bbox_in
from tiles.raster import RAMPS, RasterStyle, TileFormat
from tiles.raster_datasets import RasterDatasets
from tiles.raster_style import coverage_style, is_imagery
from tiles.tilejson import tilejson_document
from tiles.tms import TILE_MATRIX_SETS, TILE_PIXELS, TileMatrixSet, get_tms
from urbis_core.changes import coverage_layer
from urbis_core.coverages import CoverageEntry
from urbis_core.errors import InvalidParameter

router = APIRouter(tags=["Coverages"])

MEDIA_TYPES: dict[str, str] = {
    "png": "image/png",
    "webp": "image/webp",
    "tif": "image/tiff; application=geotiff",
}
STYLE_PARAMS = {"colormap", "rescale", "hillshade"}

TmsId = Annotated[str, Path(description="Tile matrix set: WebMercatorQuad or BelgianLambert72")]
Z = Annotated[int, Path(description="Zoom level (tile matrix)")]
X = Annotated[int, Path(description="Column, from the left (0-based)")]
Y = Annotated[int, Path(description="Row, from the top (0-based)")]
Fmt = Annotated[
    Literal["png", "webp", "tif"],
    Path(
        description="png or webp: a picture (RGBA, transparent where nodata); tif: the values "
        "(float32 GeoTIFF on the tile's grid, every band, the source's nodata)"
    ),
]
Colormap = Annotated[
    str | None,
    Query(
        description=f"Colour ramp of a single-band coverage: {', '.join(RAMPS)} (default: the "
        "layer's, else greys). Imagery is drawn as it is"
    ),
]
Rescale = Annotated[
    str | None,
    Query(
        description="`min,max`: the values put at the ramp's ends (default: the layer's, else "
        "the first band's minimum and maximum)",
        examples=["20,80"],
    ),
]
Hillshade = Annotated[
    Literal["true", "false"] | None,
    Query(description="Shade the relief of a single band (terrain); default: the layer's"),
]


@dataclass(frozen=True)
class StyleAsked:
    """A request's style parameters, as given (None: not given)."""

    colormap: str | None
    rescale: tuple[float, float] | None
    hillshade: bool | None

    def style(self, entry: CoverageEntry) -> RasterStyle:
        """The style the tiles are drawn with (a 400 naming a bad parameter)."""
        return coverage_style(
            entry, colormap=self.colormap, rescale=self.rescale, hillshade=self.hillshade
        )

    def query(self) -> str:
        """The parameters again, for the URL templates of the documents (`?...` or "")."""
        given: dict[str, str] = {}
        if self.colormap is not None:
            given["colormap"] = self.colormap
        if self.rescale is not None:
            given["rescale"] = f"{self.rescale[0]:g},{self.rescale[1]:g}"
        if self.hillshade is not None:
            given["hillshade"] = "true" if self.hillshade else "false"
        return "?" + urlencode(given, safe=",") if given else ""


def parse_rescale(raw: str | None) -> tuple[float, float] | None:
    if raw is None:
        return None
    parts = raw.split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise InvalidParameter(
            "rescale", f"two numbers min,max separated by a comma, not '{raw}'"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise InvalidParameter("rescale", f"two finite numbers min < max, not '{raw}'")
    return low, high


async def _style_asked(
    colormap: Colormap = None, rescale: Rescale = None, hillshade: Hillshade = None
) -> StyleAsked:
    if colormap is not None and colormap not in RAMPS:
        raise InvalidParameter(
            "colormap", f"unknown colour ramp '{colormap}'; one of {', '.join(RAMPS)}"
        )
    return StyleAsked(
        colormap, parse_rescale(rescale), None if hillshade is None else hillshade == "true"
    )


StyleDep = Annotated[StyleAsked, Depends(_style_asked)]

_TILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {media: {} for media in MEDIA_TYPES.values()},
        "description": "The tile: a picture (PNG, WebP) or the values (GeoTIFF)",
    },
    204: {"description": "An empty tile: it does not meet the raster"},
    304: {"description": "Not modified (If-None-Match matched the ETag)"},
}


def _variant(entry: CoverageEntry, fmt: str, style: RasterStyle) -> str:
    """What besides z/x/y names a tile: the coverage's version, the format, the style.

    The version is in it so that a tile of an older file can never answer for a newer one,
    whatever the change notifications did. Values (tif) and imagery do not depend on the style.
    """
    if fmt == "tif" or is_imagery(entry):
        drawn = "as-is"
    else:
        drawn = hashlib.sha1(repr(style).encode()).hexdigest()[:12]
    return f"v{entry.version}-{fmt}-{drawn}"


async def _draw(
    request: Request, entry: CoverageEntry, key: TileKey, fmt: TileFormat, style: RasterStyle
) -> CachedTile:
    """The tile drawn in one of the app's worker threads (the loop keeps answering)."""
    datasets: RasterDatasets = request.app.state.raster_datasets
    workers: Workers = request.app.state.workers
    async with workers.tile_turn():
        data = await off_loop(
            request,
            functools.partial(
                datasets.render,
                entry.id,
                entry.version,
                entry.path,
                get_tms(key.tms),
                key.z,
                key.x,
                key.y,
                fmt=fmt,
                style=style,
            ),
        )
    layer = coverage_layer(entry.id)
    return CachedTile(data or b"", f'"{entry.id}.{key.variant}"', ((layer, entry.version),))


@router.get(
    "/coverages/{coverage_id}/tiles/{tms_id}/{z}/{x}/{y}.{fmt}",
    summary="A raster tile of a coverage (PNG, WebP, or GeoTIFF values)",
    response_class=Response,
    responses={**_TILE_RESPONSES, **errors(*CATALOG_ERRORS)},
)
async def coverage_tile(
    request: Request,
    settings: SettingsDep,
    coverage_id: CoverageId,
    tms_id: TmsId,
    z: Z,
    x: X,
    y: Y,
    fmt: Fmt,
    asked: StyleDep,
) -> Response:
    reject_unknown(request.query_params.keys(), STYLE_PARAMS)
    tms = get_tms(tms_id)
    tms.check(z, x, y)
    # the row kept in memory: a cached tile is answered without the database
    entry = await coverage_entry(request, coverage_id)
    style = asked.style(entry)
    key = TileKey((coverage_layer(entry.id),), tms.id, z, x, y, _variant(entry, fmt, style))
    cache: TileCache = request.app.state.tile_cache
    tile, hit = await cache.get_or_render(
        key, functools.partial(_draw, request, entry, key, fmt, style)
    )
    headers = {
        "X-Tile-Cache": "hit" if hit else "miss",
        "Cache-Control": cache_control(settings),
    }
    return tile_answer(request, tile.data, tile.etag, MEDIA_TYPES[fmt], headers)


# -- the documents: TileJSON, tilesets ---------------------------------------------------------


def zoom_range(entry: CoverageEntry, tms: TileMatrixSet) -> tuple[int, int]:
    """(minzoom, maxzoom) worth asking for on `tms`.

    maxzoom: the first zoom whose pixels are no larger than the raster's on the ground (deeper,
    clients enlarge its tiles). minzoom: where the raster is about 16 pixels across; further
    out it is a speck.
    """
    resolution = min(entry.resolution)
    finest = math.log2(tms.ground_pixel(0) / resolution)
    maxzoom = max(0, min(24, math.ceil(finest - 0.05)))  # 5% coarser still counts as as fine
    width = max(entry.bbox_native[2] - entry.bbox_native[0], resolution)
    speck = math.log2(tms.ground_pixel(0) * TILE_PIXELS / width / 16)
    minzoom = max(0, min(maxzoom, math.floor(speck)))
    return minzoom, maxzoom


def _tile_template(base: str, entry: CoverageEntry, tms: TileMatrixSet, ext: str, q: str) -> str:
    return f"{base}/coverages/{entry.id}/tiles/{tms.id}/{{z}}/{{x}}/{{y}}.{ext}{q}"


def _ogc_template(base: str, entry: CoverageEntry, tms: TileMatrixSet, ext: str, q: str) -> str:
    return (
        f"{base}/coverages/{entry.id}/tiles/{tms.id}/{{tileMatrix}}/{{tileCol}}/{{tileRow}}"
        f".{ext}{q}"
    )


def tilejson(base: str, entry: CoverageEntry, tms: TileMatrixSet, query: str) -> dict[str, Any]:
    document = tilejson_document(
        entry.title.get("en") or entry.id,
        _tile_template(base, entry, tms, "png", query),
        zoom_range(entry, tms),
        entry.bbox_crs84,
        opening_zoom=14,
    )
    return {
        **document,
        "description": entry.description,
        "version": str(entry.version),
        "tileMatrixSet": tms.uri or f"{base}/tileMatrixSets/{tms.id}",
        "tileSize": TILE_PIXELS,
        "format": MEDIA_TYPES["png"],
    }


def _tileset_links(
    base: str, entry: CoverageEntry, tms: TileMatrixSet, query: str
) -> list[dict[str, Any]]:
    path = f"{base}/coverages/{entry.id}/tiles/{tms.id}"
    return [
        link("self", f"{path}{query}"),
        link(f"{OGC_REL}tiling-scheme", f"{base}/tileMatrixSets/{tms.id}"),
        *(
            link("item", _ogc_template(base, entry, tms, ext, query), media, templated=True)
            for ext, media in MEDIA_TYPES.items()
        ),
        link("describedby", f"{path}/tilejson.json{query}", title="TileJSON"),
    ]


def tileset(base: str, entry: CoverageEntry, tms: TileMatrixSet, query: str) -> dict[str, Any]:
    minzoom, maxzoom = zoom_range(entry, tms)
    return {
        "title": f"{entry.title.get('en') or entry.id} ({tms.id})",
        "dataType": "map",
        "crs": tms.crs_uri,
        "tileMatrixSetURI": tms.uri or f"{base}/tileMatrixSets/{tms.id}",
        "tileMatrixSetLimits": tms.limits(bbox_in(tms, entry.bbox_native), minzoom, maxzoom),
        "layers": [
            {
                "id": entry.id,
                "title": entry.title.get("en") or entry.id,
                "dataType": "coverage",
                "minTileMatrix": str(minzoom),
                "maxTileMatrix": str(maxzoom),
            }
        ],
        "links": _tileset_links(base, entry, tms, query),
    }


def tilesets(base: str, entry: CoverageEntry, query: str) -> dict[str, Any]:
    return {
        "tilesets": [
            {
                "title": f"{entry.title.get('en') or entry.id} ({tms.id})",
                "dataType": "map",
                "crs": tms.crs_uri,
                "tileMatrixSetURI": tms.uri or f"{base}/tileMatrixSets/{tms.id}",
                "links": _tileset_links(base, entry, tms, query),
            }
            for tms in TILE_MATRIX_SETS.values()
        ]
    }


@router.get(
    "/coverages/{coverage_id}/tiles/{tms_id}/tilejson.json",
    summary="TileJSON 3.0 of a coverage's raster tiles (the style parameters kept)",
    responses=answers(RasterTileJson, errors_=CATALOG_ERRORS),
)
async def coverage_tilejson(
    request: Request, entry: CatalogCoverage, tms_id: TmsId, asked: StyleDep
) -> dict[str, Any]:
    reject_unknown(request.query_params.keys(), STYLE_PARAMS)
    tms = get_tms(tms_id)
    asked.style(entry)  # a bad combination is a 400 here, not in every tile
    return tilejson(base_url(request), entry, tms, asked.query())


@router.get(
    "/coverages/{coverage_id}/tiles",
    summary="The tilesets of a coverage (one per tile matrix set)",
    responses=answers(Tilesets, also=ALSO_HTML, errors_=CATALOG_ERRORS),
)
async def coverage_tilesets(
    request: Request, entry: CatalogCoverage, fmt: FormatDep, lang: LangDep, asked: StyleDep
) -> Any:
    reject_unknown(request.query_params.keys(), STYLE_PARAMS | {"f", "lang"})
    asked.style(entry)
    base = base_url(request)
    doc = tilesets(base, entry, asked.query())
    if fmt == "html":
        return coverage_tilesets_page(request, lang, entry, doc, asked.query())
    return doc


@router.get(
    "/coverages/{coverage_id}/tiles/{tms_id}",
    summary="A coverage's tileset on one tile matrix set",
    responses=answers(Tileset, also=ALSO_HTML, errors_=CATALOG_ERRORS),
)
async def coverage_tileset(
    request: Request,
    entry: CatalogCoverage,
    tms_id: TmsId,
    fmt: FormatDep,
    lang: LangDep,
    asked: StyleDep,
) -> Any:
    reject_unknown(request.query_params.keys(), STYLE_PARAMS | {"f", "lang"})
    tms = get_tms(tms_id)
    asked.style(entry)
    doc = tileset(base_url(request), entry, tms, asked.query())
    if fmt == "html":
        return coverage_tileset_page(request, lang, entry, doc, asked.query())
    return doc
