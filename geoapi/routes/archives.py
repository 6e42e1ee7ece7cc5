"""Seeded tile archives (`urbis tiles seed`) served as they are: `URBIS_TILE_ARCHIVES`.

An archive is a frozen picture of the layers at the versions it was seeded from; the live
tiles (`/tiles/...`) follow the sync, an archive does not. Each is named by its file name.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from geoapi.deps import base_url
from geoapi.links import link
from geoapi.media_types import MVT
from geoapi.responses.documented import answers, errors
from geoapi.responses.tiles import Archives, TileJson
from geoapi.routes.tiles import X, Y, Z
from geoapi.tile_answers import cache_control, tile_answer
from tiles.archive import MBTilesArchive, PMTilesArchive
from tiles.tms import get_tms
from urbis_core.attribution import ATTRIBUTION
from urbis_core.errors import NotFound

router = APIRouter(tags=["Tiles"])
Archive = PMTilesArchive | MBTilesArchive


def _archive(request: Request, name: str) -> Archive:
    archives: dict[str, Archive] = request.app.state.tile_archives
    if name not in archives:
        known = ", ".join(archives) or "none (set URBIS_TILE_ARCHIVES)"
        raise NotFound(f"no tile archive '{name}'; served: {known}")
    return archives[name]


def _describe(base: str, name: str, archive: Archive) -> dict[str, Any]:
    meta = archive.metadata
    return {
        "name": name,
        "tileMatrixSet": meta.get("tile_matrix_set"),
        "minzoom": meta.get("minzoom"),
        "maxzoom": meta.get("maxzoom"),
        "links": [
            link("describedby", f"{base}/archives/{name}/tilejson.json"),
            link("item", f"{base}/archives/{name}/{{z}}/{{x}}/{{y}}", MVT, templated=True),
        ],
    }


@router.get(
    "/archives",
    summary="The seeded tile archives served",
    responses=answers(Archives, errors_=()),
)
async def archives(request: Request) -> dict[str, Any]:
    base = base_url(request)
    return {
        "archives": [
            _describe(base, name, archive)
            for name, archive in request.app.state.tile_archives.items()
        ]
    }


@router.get(
    "/archives/{name}/tilejson.json",
    summary="TileJSON 3.0 of a seeded archive",
    responses=answers(TileJson, errors_=(404,)),
)
async def archive_tilejson(request: Request, name: str) -> dict[str, Any]:
    archive = _archive(request, name)
    meta = archive.metadata
    return {
        "tilejson": "3.0.0",
        "name": name,
        "scheme": "xyz",
        "tiles": [f"{base_url(request)}/archives/{name}/{{z}}/{{x}}/{{y}}"],
        "minzoom": meta.get("minzoom"),
        "maxzoom": meta.get("maxzoom"),
        "bounds": meta.get("bounds"),
        "center": meta.get("center"),
        "attribution": ATTRIBUTION,
        "vector_layers": meta.get("vector_layers", []),
    }


@router.get(
    "/archives/{name}/{z}/{x}/{y}",
    summary="A tile of a seeded archive",
    response_class=Response,
    responses={
        200: {"content": {MVT: {}}},
        204: {"description": "No tile there"},
        **errors(400, 404),
    },
)
async def archive_tile(request: Request, name: str, z: Z, x: X, y: Y) -> Response:
    archive = _archive(request, name)
    get_tms(str(archive.metadata.get("tile_matrix_set"))).check(z, x, y)
    data = archive.get(z, x, y)
    settings = request.app.state.settings
    etag = None if data is None else '"' + hashlib.sha1(data).hexdigest()[:20] + '"'
    return tile_answer(request, data, etag, MVT, {"Cache-Control": cache_control(settings)})
