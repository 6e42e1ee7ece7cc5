"""A tile as an HTTP answer: the same headers, revalidation and empty tile for every kind.

Vector tiles, raster tiles and archived tiles are drawn or read differently; what a browser,
a proxy or a map library sees of them is the same: an ETag it can revalidate with (304), a
Cache-Control from URBIS_TILE_MAX_AGE, 204 for a tile with nothing in it.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from urbis_core.settings import ApiSettings


def cache_control(settings: ApiSettings) -> str:
    # max-age 0 alone lets a cache serve a stale copy when we cannot be reached
    suffix = ", must-revalidate" if settings.tile_max_age == 0 else ""
    return f"public, max-age={settings.tile_max_age}{suffix}"


def revalidated(request: Request, etag: str) -> bool:
    """Whether the client already holds `etag` (If-None-Match, weak or strong, or a list)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    return etag in {tag.strip().removeprefix("W/") for tag in header.split(",")}


def tile_answer(
    request: Request,
    data: bytes | None,
    etag: str | None,
    media_type: str,
    headers: dict[str, str],
) -> Response:
    """`data` (None or empty: no tile there, 204) with `headers`, or 304 if the client has it."""
    if etag is not None:
        headers = {**headers, "ETag": etag}
        if revalidated(request, etag):
            return Response(status_code=304, headers=headers)
    if not data:
        return Response(status_code=204, headers=headers)
    return Response(data, media_type=media_type, headers=headers)
