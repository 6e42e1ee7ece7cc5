"""FastAPI dependencies: a database connection per request, the settings, the output format."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Literal

from fastapi import Depends, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from geoapi.budgets import Budgets
from geoapi.header_values import weighted
from geoapi.i18n import LANG_DESCRIPTION, PageLanguage, choose_language
from geoapi.public_url import PublicUrl, record_vary
from geoapi.read_replicas import ReadEngines
from urbis_core.catalog import LayerEntry, get_layer
from urbis_core.coverages import CoverageEntry, get_coverage
from urbis_core.settings import ApiSettings


def _connection(kind: str) -> Callable[[Request], AsyncIterator[AsyncConnection]]:
    """A dependency: the request's connection, after its turn, under `kind`'s budget.

    From a read replica when there are some (geoapi.read_replicas), else from the primary.
    """

    async def connection(request: Request) -> AsyncIterator[AsyncConnection]:
        budgets: Budgets = request.app.state.budgets
        reads: ReadEngines = request.app.state.reads
        request.state.query_kind = kind  # for the error handler to name the limit
        async with budgets.turn(kind), reads.snapshot(kind) as conn:
            yield conn

    return connection


async def _settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    "json": ("application/geo+json", "application/json"),
    "html": ("text/html",),
    "csv": ("text/csv",),
    "gpkg": ("application/geopackage+sqlite3",),
}


def _accept_ranges(accept: str) -> list[tuple[str, float]]:
    """The media ranges of an Accept header with their quality (malformed entries dropped)."""
    ranges = []
    for media, quality in weighted(accept):
        if "/" in media and quality is not None and 0.0 <= quality <= 1.0:
            ranges.append((media.lower(), quality))
    return ranges


def negotiate(accept: str, offered: tuple[str, ...]) -> str:
    """The offered format the Accept header prefers; the first offered when none is named.

    Each media type takes the quality of the most specific range that matches it (RFC 9110);
    ties go to the earlier format in `offered`.
    """
    ranges = _accept_ranges(accept)
    best, best_q = offered[0], 0.0
    for fmt in offered:
        for media in MEDIA_TYPES[fmt]:
            kind = media.split("/")[0]
            matches = [
                (3 if r == media else 2 if r == f"{kind}/*" else 1, q)
                for r, q in ranges
                if r in (media, f"{kind}/*", "*/*")
            ]
            if matches and (q := max(matches)[1]) > best_q:
                best, best_q = fmt, q
    return best


def chosen_format(request: Request, f: str | None, offered: tuple[str, ...]) -> str:
    """`f` when given, else the offered format the Accept header prefers (said in Vary)."""
    if f is not None:
        return f
    record_vary(request, ["Accept"])
    return negotiate(request.headers.get("accept", ""), offered)


async def _output_format(
    request: Request,
    f: Annotated[
        Literal["json", "html"] | None,
        Query(
            description="Output format; without it the Accept header decides (JSON by default)",
        ),
    ] = None,
) -> str:
    return chosen_format(request, f, ("json", "html"))


async def _items_format(
    request: Request,
    f: Annotated[
        Literal["json", "html", "csv", "gpkg"] | None,
        Query(
            description="Output format: `json` (GeoJSON, a page at a time), `html`, `csv` (a "
            "header line, one row per feature, the geometry as WKT in the output crs) "
            "or `gpkg` (a GeoPackage file, layer named after the collection, in the "
            "output crs). CSV and GeoPackage hold every matching feature without "
            "`limit` (a 413 past the download maximum), the page with it. Without `f` "
            "the Accept header decides: application/geo+json, text/html, text/csv, "
            "application/geopackage+sqlite3 (GeoJSON by default)",
        ),
    ] = None,
) -> str:
    return chosen_format(request, f, ("json", "html", "csv", "gpkg"))


async def _page_language(
    request: Request,
    lang: Annotated[str | None, Query(description=LANG_DESCRIPTION)] = None,
) -> PageLanguage:
    """The language of an HTML page (geoapi.i18n); JSON answers do not read it."""
    return choose_language(lang, request.headers.get("accept-language", ""))


# The catalog's small reads (a collection's description, the list of collections) are not
# queued; the other kinds are (geoapi.budgets).
ConnDep = Annotated[AsyncConnection, Depends(_connection("catalog"))]
ItemsConnDep = Annotated[AsyncConnection, Depends(_connection("items"))]
SpatialConnDep = Annotated[AsyncConnection, Depends(_connection("spatial"))]
StatsConnDep = Annotated[AsyncConnection, Depends(_connection("stats"))]
GeocodeConnDep = Annotated[AsyncConnection, Depends(_connection("geocode"))]
SettingsDep = Annotated[ApiSettings, Depends(_settings)]
FormatDep = Annotated[str, Depends(_output_format)]
ItemsFormatDep = Annotated[str, Depends(_items_format)]
LangDep = Annotated[PageLanguage, Depends(_page_language)]


def base_url(request: Request) -> str:
    """The base of absolute links: the service's URL as the client sees it (`public_url`)."""
    public: PublicUrl = request.app.state.public_url
    return public.base(request)


CollectionId = Annotated[str, Path(description="Collection (layer) id, e.g. municipalities")]


async def _catalog_layer(conn: ConnDep, collection_id: CollectionId) -> LayerEntry:
    return await get_layer(conn, collection_id)


# The collection the path names, read on the catalog's connection (a 404 naming it if absent).
CatalogLayer = Annotated[LayerEntry, Depends(_catalog_layer)]


CoverageId = Annotated[str, Path(description="Coverage (raster layer) id, e.g. terrain")]


async def _catalog_coverage(conn: ConnDep, coverage_id: CoverageId) -> CoverageEntry:
    return await get_coverage(conn, coverage_id)


# The coverage the path names, from the coverage catalog (a 404 naming it and the known ones).
CatalogCoverage = Annotated[CoverageEntry, Depends(_catalog_coverage)]
