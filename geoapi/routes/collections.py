"""Collections (one per URBIS layer), their items, and single features.

Over 400 lines: the routes of OGC API Features Part 1 (and the history and quarantine of a
collection) kept together, as the README's endpoint table lists them; the items route's
formats (GeoJSON, HTML, CSV, GeoPackage) share its parameters and its paging.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.background import BackgroundTask

from geoapi import html
from geoapi.cql2 import compile_filter, parse_language
from geoapi.crs import CRS84_URI, SUPPORTED, OutputCrs, parse_crs
from geoapi.deps import (
    MEDIA_TYPES,
    CatalogLayer,
    CollectionId,
    ConnDep,
    FormatDep,
    ItemsConnDep,
    ItemsFormatDep,
    LangDep,
    SettingsDep,
    base_url,
)
from geoapi.features import (
    GpkgWriter,
    ItemsPage,
    count_matched,
    csv_header,
    csv_lines,
    fetch_feature,
    fetch_items,
    key_filter,
    stream_rows,
    table_columns,
)
from geoapi.history import fetch_quarantine
from geoapi.html_map import feature_map
from geoapi.i18n import PageLanguage, number, text
from geoapi.items_form import filter_form
from geoapi.json_schema import QUERYABLES_REL, SCHEMA_MEDIA_TYPE, SCHEMA_REL
from geoapi.links import OGC_REL, collection_link, history_href, link
from geoapi.media_types import CSV, GEOJSON, GPKG, HTML
from geoapi.offload import json_text, off_loop
from geoapi.params import (
    Offset,
    parse_equals,
    parse_instant,
    parse_properties,
    parse_sortby,
    reject_unknown,
    sql_limit,
)
from geoapi.query_models import ItemsQuery
from geoapi.responses.common import Feature, FeatureCollection
from geoapi.responses.documented import ALSO_HTML, CATALOG_ERRORS, answers
from geoapi.responses.features import Changes, Collection, Collections, Quarantine
from urbis_core.bbox import parse_bbox
from urbis_core.catalog import ColumnInfo, LayerEntry, get_layer, list_layers
from urbis_core.changes import feature_changes
from urbis_core.errors import InvalidParameter, TooLarge
from urbis_core.names import feature_name, label_templates
from urbis_core.settings import MAX_ITEMS_LIMIT, ApiSettings

router = APIRouter(tags=["Data"])

QUERYABLES_TITLE = "Properties usable in filter (CQL2)"
SCHEMA_TITLE = "The schema of the features (JSON Schema)"
FORMAT_TITLES = {"json": "GeoJSON", "html": "HTML", "csv": "CSV", "gpkg": "GeoPackage"}
_FORMAT_OF_TYPE = {MEDIA_TYPES[f][0]: title for f, title in FORMAT_TITLES.items()}
ITEMS_PARAMS = {
    "limit",
    "offset",
    "bbox",
    "bbox-crs",
    "crs",
    "datetime",
    "f",
    "properties",
    "sortby",
    "filter",
    "filter-lang",
    "filter-crs",
    "lang",
}
CrsParam = Annotated[
    str | None,
    Query(
        description="Output CRS (URI): CRS84 (default), EPSG:4326 (lat/lon), EPSG:31370, EPSG:3857"
    ),
]
PropertiesParam = Annotated[
    str | None,
    Query(
        description="Only these properties, comma-separated, in this order (e.g. NAME_FRE,AREA); "
        "an empty value keeps none. The feature id stays the key; CSV and GeoPackage "
        "add the key column when it is not listed. Default: all"
    ),
]


def _epsg(srid: int) -> str:
    return f"http://www.opengis.net/def/crs/EPSG/0/{srid}"


def download_title(fmt: str, matched: int, maximum: int, filtered: bool = False) -> str:
    """What a whole download link gives, in words: 'All 666 features as CSV'."""
    what = f"{matched:,} {'matching ' if filtered else ''}feature{'s' if matched != 1 else ''}"
    name = {"csv": "CSV (WKT geometry)", "gpkg": "a GeoPackage"}[fmt]
    if matched > maximum:
        return (
            f"{name}: the {what} are more than one download holds ({maximum:,}); "
            "filter them or add limit and offset"
        )
    return f"All {what} as {name}"


def collection_doc(layer: LayerEntry, base: str, max_download: int) -> dict[str, Any]:
    href = f"{base}/collections/{layer.id}"
    count, most = layer.feature_count, max_download
    doc: dict[str, Any] = {
        "id": layer.id,
        "title": layer.display_title("en"),
        "titles": layer.title,
        "description": layer.description,
        "itemType": "feature",
        "crs": list(SUPPORTED),
        "storageCrs": _epsg(layer.srid),
        "keyField": layer.key_field,
        "geometryType": layer.geometry_type,
        "featureCount": layer.feature_count,
        "version": layer.version,
        "lastUpdated": layer.last_success.isoformat() if layer.last_success else None,
        "featureLabel": label_templates(layer),
        "links": [
            link("self", href),
            link("alternate", f"{href}?f=html", HTML),
            link("items", f"{href}/items", GEOJSON, "Features as GeoJSON"),
            link("items", f"{href}/items?f=html", HTML, "Features as HTML"),
            link("items", f"{href}/items?f=csv", CSV, download_title("csv", count, most)),
            link("items", f"{href}/items?f=gpkg", GPKG, download_title("gpkg", count, most)),
            link(QUERYABLES_REL, f"{href}/queryables", SCHEMA_MEDIA_TYPE, QUERYABLES_TITLE),
            link(SCHEMA_REL, f"{href}/schema", SCHEMA_MEDIA_TYPE, SCHEMA_TITLE),
            link(f"{OGC_REL}tilesets-vector", f"{href}/tiles", title="Vector tiles (MVT)"),
        ],
    }
    if layer.bbox_crs84:
        doc["extent"] = {"spatial": {"bbox": [list(layer.bbox_crs84)], "crs": CRS84_URI}}
    if layer.bbox_native:
        doc["storageCrsExtent"] = {"bbox": [list(layer.bbox_native)], "crs": _epsg(layer.srid)}
    return doc


@router.get(
    "/collections",
    summary="The collections (URBIS layers)",
    responses=answers(Collections, also=ALSO_HTML, errors_=(400, 503)),
)
async def collections(
    request: Request, conn: ConnDep, settings: SettingsDep, fmt: FormatDep, lang: LangDep
) -> Any:
    base = base_url(request)
    layers = await list_layers(conn)
    doc = {
        "collections": [
            collection_doc(layer, base, settings.download_max_features) for layer in layers
        ],
        "links": [
            link("self", f"{base}/collections"),
            link("alternate", f"{base}/collections?f=html", HTML),
        ],
    }
    if fmt == "html":
        code = lang.code
        rows = [
            [
                html.anchor(
                    f"{base}/collections/{lyr.id}?f=html&lang={code}", lyr.display_title(code)
                ),
                html.esc(lyr.id),
                html.esc(lyr.geometry_type),
                html.esc(number(lyr.feature_count, code)),
            ]
            for lyr in layers
        ]
        headers = ["col.title", "col.id", "col.geometry", "col.features"]
        return html.page(
            request,
            lang,
            text(code, "nav.collections"),
            html.table([text(code, h) for h in headers], rows),
            f"{base}/collections?f=json",
        )
    return doc


@router.get(
    "/collections/{collection_id}",
    summary="One collection",
    responses=answers(Collection, also=ALSO_HTML, errors_=CATALOG_ERRORS),
)
async def collection(
    layer: CatalogLayer, request: Request, settings: SettingsDep, fmt: FormatDep, lang: LangDep
) -> Any:
    base = base_url(request)
    doc = collection_doc(layer, base, settings.download_max_features)
    if fmt == "html":
        return html.page(
            request,
            lang,
            layer.display_title(lang.code),
            _collection_body(layer, base, doc, lang.code, settings.download_max_features),
            f"{base}/collections/{layer.id}?f=json",
        )
    return doc


def _collection_body(
    layer: LayerEntry, base: str, doc: dict[str, Any], lang: str, maximum: int
) -> str:
    href = f"{base}/collections/{layer.id}"
    extent = ", ".join(f"{v:.5f}" for v in layer.bbox_crs84) if layer.bbox_crs84 else ""
    facts = [
        (text(lang, "col.id"), layer.id),
        (text(lang, "col.key"), layer.key_field),
        (text(lang, "col.geometry"), layer.geometry_type),
        (text(lang, "col.features"), number(layer.feature_count, lang)),
        (text(lang, "col.version"), layer.version),
        (text(lang, "col.updated"), doc["lastUpdated"]),
        (text(lang, "col.extent"), extent),
    ]
    fields = [[html.esc(c.name), html.esc(c.sql_type)] for c in layer.columns]
    links = [
        (f"{href}/items?f=html&lang={lang}", text(lang, "col.items_html")),
        (f"{href}/items?f=json", text(lang, "col.items_json")),
        *_download_links(f"{href}/items", [], layer.feature_count, maximum, lang, False),
        (f"{href}/queryables?f=html&lang={lang}", text(lang, "col.queryables")),
        (f"{href}/schema?f=html&lang={lang}", text(lang, "col.schema")),
        (f"{href}/tiles?f=html&lang={lang}", text(lang, "col.tiles")),
        (f"{href}/quarantine?f=html&lang={lang}", text(lang, "col.quarantine")),
    ]
    description = f"<p>{html.esc(layer.description)}</p>" if layer.description else ""
    return (
        description
        + html.facts(facts)
        + f"<h2>{html.esc(text(lang, 'col.links'))}</h2>"
        + html.link_list(links)
        + f"<h2>{html.esc(text(lang, 'col.fields'))}</h2>"
        + html.table([text(lang, "col.name"), text(lang, "col.type")], fields)
    )


ITEMS_DESCRIPTION = f"""The features of a collection, a page at a time, as GeoJSON, HTML, CSV or
GeoPackage (`f`, or the Accept header).

Besides the parameters listed here, **every property of the collection is a filter**:
`<property>=<value>` keeps the features whose property equals the value (e.g.
`/collections/addresses/items?PZNC=1060&MU_NAME_FR=Saint-Gilles`). The value is read as the
property's type (integer, number, true/false, YYYY-MM-DD date, RFC 3339 date-time, text); a value
that is not one is a 400. Several filters, and `bbox`, are combined with AND; `numberMatched`
counts what they keep. `GET /collections/{{id}}` lists the properties and their types. Property
names are case-sensitive; where a property has the name of a parameter above, the parameter wins.

`filter` takes a CQL2 expression (OGC API Features Part 3), in `filter-lang` cql2-text (the
default) or cql2-json: comparisons (=, <>, <, <=, >, >=), LIKE, IN, BETWEEN, IS NULL, AND, OR,
NOT, and S_INTERSECTS, S_WITHIN, S_CONTAINS, S_DISJOINT, S_EQUALS, S_TOUCHES, S_CROSSES,
S_OVERLAPS between the geometry (`geom` or `geometry`) and a literal (WKT or BBOX() in text,
GeoJSON or {{"bbox": [...]}} in JSON) whose CRS is `filter-crs` (default CRS84), e.g.
`MU_NAME_FR LIKE 'Saint%' AND S_INTERSECTS(geom, POLYGON((4.3 50.8, 4.4 50.8, 4.4 50.9,
4.3 50.8)))`. `GET /collections/{{id}}/queryables` lists the properties it accepts.

Paging: GeoJSON and HTML come a page at a time, `limit` (default 10, at most {MAX_ITEMS_LIMIT})
features from `offset`; the `next`/`prev` links carry every other parameter. The order is
`sortby`, then the key. CSV and GeoPackage without `limit` hold every matching feature (from
`offset`), streamed, up to the download maximum (`URBIS_DOWNLOAD_MAX_FEATURES`, default
1,000,000); past it the answer is a 413 that says how to narrow the request, never a part of it.
With `limit` they hold that page, and the `Link` header gives next/prev. `Number-Matched` and
`Number-Returned` headers say how many features matched and how many the file holds.
"""


def _selection_params(request: Request) -> list[tuple[str, str]]:
    """The request's parameters but its paging and format: what selects the features."""
    return [
        (k, v) for k, v in request.query_params.multi_items() if k not in ("offset", "f", "limit")
    ]


def _page_links(
    request: Request, href: str, query: ItemsQuery, returned: int, matched: int, fmt: str = "json"
) -> list[dict[str, Any]]:
    """The self and next/prev links in `fmt`, alternates in the others; parameters kept."""
    kept = urlencode([*_selection_params(request), ("limit", str(query.limit))])

    def page(rel: str, offset: int, f: str) -> dict[str, Any]:
        at = f"{kept}&offset={offset}&f={f}"  # a number and a format name: nothing to escape
        return link(rel, f"{href}?{at}", MEDIA_TYPES[f][0], f"{rel} ({FORMAT_TITLES[f]})")

    links = [page("self", query.offset, fmt)]
    links += [page("alternate", query.offset, f) for f in FORMAT_TITLES if f != fmt]
    if query.offset + returned < matched:
        links.append(page("next", query.offset + query.limit, fmt))
    if query.offset > 0:
        links.append(page("prev", max(0, query.offset - query.limit), fmt))
    return links


def _link_header(links: list[dict[str, Any]]) -> str:
    """RFC 8288 `Link` header (for CSV and GeoPackage, which have no place for links)."""
    return ", ".join(f'<{lk["href"]}>; rel="{lk["rel"]}"; type="{lk["type"]}"' for lk in links)


def _download_name(layer: LayerEntry, suffix: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", layer.id) + suffix


@router.get(
    "/collections/{collection_id}/items",
    summary="Features of a collection",
    description=ITEMS_DESCRIPTION,
    response_class=Response,
    responses=answers(
        FeatureCollection,
        GEOJSON,
        also={HTML: {}, CSV: {}, GPKG: {}},
        errors_=(*CATALOG_ERRORS, 413),
    ),
)
async def items(
    collection_id: CollectionId,
    request: Request,
    conn: ItemsConnDep,
    settings: SettingsDep,
    fmt: ItemsFormatDep,
    lang: LangDep,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            description=f"Features per page (default 10; at most {MAX_ITEMS_LIMIT}, "
            "larger values are reduced to it). CSV and GeoPackage: without "
            "limit, every matching feature (up to the download maximum, "
            "URBIS_DOWNLOAD_MAX_FEATURES, past which the answer is a 413); "
            "with it, that page",
        ),
    ] = None,
    offset: Offset = 0,
    bbox: Annotated[
        str | None,
        Query(
            description="minx,miny,maxx,maxy in bbox-crs (default CRS84, lon/lat), "
            "e.g. 4.34,50.83,4.36,50.84"
        ),
    ] = None,
    bbox_crs: Annotated[
        str | None, Query(alias="bbox-crs", description="CRS of bbox (URI), same choices as crs")
    ] = None,
    crs: CrsParam = None,
    datetime_: Annotated[
        str | None,
        Query(
            alias="datetime",
            description="The layer as it was at this instant (RFC 3339, e.g. "
            "2026-11-28T12:00:00Z), from the sync's history",
        ),
    ] = None,
    properties: PropertiesParam = None,
    sortby: Annotated[
        str | None,
        Query(
            description="Sort order: comma-separated properties, each prefixed with + (ascending, "
            "the default) or - (descending), e.g. +NAME_FRE,-AREA (a + may arrive as a "
            "space). The key is always the last tie-breaker, so pages never overlap. "
            "Features without a value come last. Default: the key"
        ),
    ] = None,
    filter_: Annotated[
        str | None,
        Query(
            alias="filter",
            description="CQL2 filter (OGC API Features Part 3), e.g. "
            "PZNC = '1060' AND S_INTERSECTS(geom, POINT(4.35 50.83))",
        ),
    ] = None,
    filter_lang: Annotated[
        str | None, Query(alias="filter-lang", description="cql2-text (default) or cql2-json")
    ] = None,
    filter_crs: Annotated[
        str | None,
        Query(
            alias="filter-crs",
            description="CRS of the geometry literals in filter (URI), same "
            "choices as crs; default CRS84",
        ),
    ] = None,
) -> Response:
    layer = await get_layer(conn, collection_id)
    reject_unknown(request.query_params.keys(), ITEMS_PARAMS, layer)
    bbox_crs_ = parse_crs(bbox_crs, "bbox-crs")
    filter_crs_ = parse_crs(filter_crs, "filter-crs")
    language = parse_language(filter_lang)
    cql = (
        None
        if filter_ is None
        else await off_loop(request, compile_filter, filter_, language, filter_crs_, layer)
    )
    query = ItemsQuery(
        limit=min(limit or settings.default_limit, settings.max_limit),
        offset=offset,
        bbox=parse_bbox(bbox, bbox_crs_),
        bbox_crs=bbox_crs_,
        crs=parse_crs(crs, "crs"),
        as_of=parse_instant(datetime_, "datetime"),
        properties=parse_properties(properties, layer),
        sortby=parse_sortby(sortby, layer),
        equals=parse_equals(request.query_params.multi_items(), layer, ITEMS_PARAMS),
        cql=cql,
    )
    base = base_url(request)
    href = f"{base}/collections/{layer.id}/items"
    content_crs = {"Content-Crs": f"<{query.crs.uri}>"}
    if fmt in ("csv", "gpkg"):
        return await _table_download(
            conn, layer, query, limit, fmt, request, href, content_crs, settings
        )
    page = await fetch_items(conn, layer, query, request.app.state.match_counts)
    links = [
        *_page_links(request, href, query, len(page.features), page.number_matched),
        collection_link(base, layer),
    ]
    meta: dict[str, object] = {
        "numberMatched": page.number_matched,
        "numberReturned": len(page.features),
        "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "links": links,
    }
    if not query.crs.geographic:
        # GeoJSON readers (GDAL, geopandas) assume WGS 84 unless told otherwise.
        meta["crs"] = {
            "type": "name",
            "properties": {"name": f"urn:ogc:def:crs:EPSG::{query.crs.srid}"},
        }
    if fmt == "html":
        # tens of milliseconds to seconds for a page of thousands of features
        return await off_loop(
            request,
            _items_page,
            request,
            layer,
            query,
            page,
            href,
            links[0]["href"],
            settings,
            lang,
        )
    body = (
        '{"type":"FeatureCollection","features":['
        + ",".join(page.features)
        + "],"
        + json.dumps(meta)[1:]
    )
    return Response(body, media_type=GEOJSON, headers=content_crs)


def _items_page(
    request: Request,
    layer: LayerEntry,
    query: ItemsQuery,
    page: ItemsPage,
    href: str,
    json_href: str,
    settings: ApiSettings,
    lang: PageLanguage,
) -> Response:
    base = base_url(request)
    code = lang.code
    features = [json.loads(f) for f in page.features]
    pages = _page_links(request, href, query, len(features), page.number_matched, "html")
    nav = html.link_list(
        [
            (lk["href"], text(code, f"items.{lk['rel']}"))
            for lk in pages
            if lk["rel"] in ("next", "prev")
        ]
    )
    count = text(
        code,
        "items.count",
        returned=number(len(features), code),
        matched=number(page.number_matched, code),
        first=number(query.offset + 1 if features else 0, code),
    )
    view = _view(request, query)
    body = (
        f"<p>{html.esc(count)}</p>"
        + nav
        + _map(request, features, query.crs, layer, code, view)
        + filter_form(request, layer, href, code, query.limit, view is not None)
        + html.features_table(features, layer, base, code)
        + nav
        + _downloads_html(request, href, pages, page.number_matched, settings, code)
    )
    title = text(code, "items.title", layer=layer.display_title(code))
    return html.page(request, lang, title, body, json_href)


def _view(request: Request, query: ItemsQuery) -> tuple[float, float, float, float] | None:
    """The box the page was asked for, in CRS84: where its map opens (None: fit the features)."""
    box = query.bbox
    if box is None or request.query_params.get("bbox-crs") not in (None, "", CRS84_URI):
        return None
    return (box[0], box[1], box[2], box[3])


def _download_links(
    href: str,
    kept: list[tuple[str, str]],
    matched: int,
    maximum: int,
    lang: str,
    filtered: bool,
) -> list[tuple[str, str]]:
    """The CSV and GeoPackage downloads of a selection, each saying what it holds."""
    links = []
    for fmt in ("csv", "gpkg"):
        name = text(lang, f"format.{fmt}")
        count = number(matched, lang)
        if matched > maximum:
            title = text(
                lang, "downloads.too_many", format=name, count=count, maximum=number(maximum, lang)
            )
        else:
            key = "downloads.all_matching" if filtered else "downloads.all"
            title = text(lang, key, count=count, format=name)
        links.append((f"{href}?{urlencode([*kept, ('f', fmt)])}", title))
    return links


def _downloads_html(
    request: Request,
    href: str,
    pages: list[dict[str, Any]],
    matched: int,
    settings: ApiSettings,
    lang: str,
) -> str:
    """The items page's downloads, each saying what it holds, and how GeoJSON pages."""
    kept = [(k, v) for k, v in _selection_params(request) if k != "lang"]
    filtered = any(k not in ("crs", "properties", "sortby") for k, _ in kept)
    links = _download_links(href, kept, matched, settings.download_max_features, lang, filtered)
    links += [
        (lk["href"], text(lang, "downloads.page", format=_FORMAT_OF_TYPE[lk["type"]]))
        for lk in pages
        if lk["rel"] == "alternate"
    ]
    whole = href.removesuffix("/items")
    note = text(
        lang,
        "downloads.note",
        default=number(settings.default_limit, lang),
        maximum=number(settings.max_limit, lang),
    )
    return (
        f"<h2>{html.esc(text(lang, 'downloads.title'))}</h2>"
        + html.link_list(links)
        + f'<p>{html.esc(note)} <code>geopandas.read_file("OAPIF:{html.esc(whole)}")</code></p>'
    )


def _map(
    request: Request,
    features: list[dict[str, Any]],
    crs: OutputCrs,
    layer: LayerEntry,
    lang: str,
    view: tuple[float, float, float, float] | None = None,
) -> str:
    """The page's map, when the features are in CRS84."""
    if not crs.geographic or crs.lat_first:
        return f"<p>{html.esc(text(lang, 'items.no_map'))}</p>"
    return feature_map(request, features, layer, lang, view)


async def _table_download(
    conn: AsyncConnection,
    layer: LayerEntry,
    query: ItemsQuery,
    limit: int | None,
    fmt: str,
    request: Request,
    href: str,
    headers: dict[str, str],
    settings: ApiSettings,
) -> Response:
    """CSV (WKT in the output crs) or GeoPackage of every matching feature, or of one page.

    Without `limit` the whole selection (from `offset`), streamed; with it, that page. Either
    way the answer holds all it says it holds: past the download maximum it is a 413 that says
    how to narrow the request, never a silent part of it.
    """
    matched = await count_matched(conn, layer, query, request.app.state.match_counts)
    remaining = max(0, matched - query.offset)
    returned = remaining if limit is None else min(limit, remaining)
    if returned > settings.download_max_features:
        raise TooLarge(_too_large(layer, returned, settings.download_max_features, fmt))
    query = replace(query, limit=sql_limit(returned if limit is None else limit))
    if limit is None:
        asked = urlencode(request.query_params.multi_items())
        links = [link("self", f"{href}?{asked}", MEDIA_TYPES[fmt][0])]
    else:
        links = _page_links(request, href, query, returned, matched, fmt)
    headers = headers | {
        "Link": _link_header(links),
        "Number-Matched": str(matched),
        "Number-Returned": str(returned),
    }
    columns = table_columns(layer, query.properties)
    if fmt == "csv":
        headers["Content-Disposition"] = f'inline; filename="{_download_name(layer, ".csv")}"'
        rows = stream_rows(conn, layer, query, columns, "wkt", matched)
        # the first batch read before the status is sent: a query that cannot start (past
        # its timeout, the database away) is then a 503, not a 200 cut short
        first: list[tuple[Any, ...]] = await anext(rows, [])
        return StreamingResponse(
            _csv_body(request, columns, first, rows),
            media_type="text/csv; charset=utf-8",
            headers=headers,
        )
    folder = Path(tempfile.mkdtemp(prefix="urbis-gpkg-"))
    path = folder / _download_name(layer, ".gpkg")
    writer = GpkgWriter(path, layer, columns, query.crs)
    try:
        async for batch in stream_rows(conn, layer, query, columns, "wkb", matched):
            await off_loop(request, writer.append, batch)
        await off_loop(request, writer.close)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        path,
        media_type=GPKG,
        filename=path.name,
        headers=headers,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


async def _csv_body(
    request: Request,
    columns: list[ColumnInfo],
    first: list[tuple[Any, ...]],
    batches: AsyncIterator[list[tuple[Any, ...]]],
) -> AsyncIterator[str]:
    yield csv_header(columns)
    yield await off_loop(request, csv_lines, first)
    async for rows in batches:
        yield await off_loop(request, csv_lines, rows)


def _too_large(layer: LayerEntry, returned: int, maximum: int, fmt: str) -> str:
    return (
        f"{returned:,} features of '{layer.id}' would be in this {FORMAT_TITLES[fmt]} "
        f"download; one download holds at most {maximum:,} (URBIS_DOWNLOAD_MAX_FEATURES). "
        "Narrow it with bbox, filter or <property>=<value>, or download it in parts with "
        f"limit and offset (limit={maximum}&offset=0, then offset={maximum}, ...)"
    )


@router.get(
    # `:path`, because current URBIS keys are URIs (INSPIRE_ID): their '/', percent-encoded in
    # the link, arrive decoded, and the id is the rest of the path.
    "/collections/{collection_id}/items/{feature_id:path}",
    summary="One feature by its key",
    response_class=Response,
    responses=answers(Feature, GEOJSON, also=ALSO_HTML, errors_=CATALOG_ERRORS),
)
async def feature(
    collection_id: CollectionId,
    feature_id: Annotated[
        str,
        PathParam(
            description="The feature's key value (e.g. a NIS code, or an INSPIRE_ID URI "
            "percent-encoded: https%3A%2F%2Fdatabrussels.be%2Fid%2Fbuilding%2F100207)"
        ),
    ],
    request: Request,
    conn: ItemsConnDep,
    fmt: FormatDep,
    lang: LangDep,
    crs: CrsParam = None,
    properties: PropertiesParam = None,
) -> Response:
    reject_unknown(request.query_params.keys(), {"crs", "f", "properties", "lang"})
    layer = await get_layer(conn, collection_id)
    output_crs = parse_crs(crs, "crs")
    found = await fetch_feature(
        conn, layer, feature_id, output_crs, parse_properties(properties, layer)
    )
    base = base_url(request)
    href = f"{base}/collections/{layer.id}/items/{quote(feature_id, safe='')}"
    if fmt == "html":
        return _feature_page(request, layer, json.loads(found), output_crs, f"{href}?f=json", lang)
    links = [
        link("self", f"{href}?f=json", GEOJSON),
        link("alternate", f"{href}?f=html", HTML),
        collection_link(base, layer),
        link("version-history", history_href(base, layer, feature_id)),
    ]
    body = found[:-1] + ',"links":' + json.dumps(links) + "}"
    return Response(body, media_type=GEOJSON, headers={"Content-Crs": f"<{output_crs.uri}>"})


def _feature_page(
    request: Request,
    layer: LayerEntry,
    one: dict[str, Any],
    crs: OutputCrs,
    json_href: str,
    lang: PageLanguage,
) -> Response:
    """A feature's page, titled by its name in the reader's language."""
    code = lang.code
    base = base_url(request)
    layer_title = layer.display_title(code)
    of = text(code, "feature.of", layer=layer_title, key=one["id"])
    collection_href = f"{base}/collections/{layer.id}?f=html&lang={code}"
    history = f"{history_href(base, layer, one['id'])}&f=html&lang={code}"
    body = (
        f'<p class="subtitle"><a href="{html.esc(collection_href)}">{html.esc(of)}</a></p>'
        + _map(request, [one], crs, layer, code)
        + html.feature_body(one, code)
        + html.link_list([(history, text(code, "feature.history"))])
    )
    return html.page(request, lang, feature_name(layer, one["properties"], code), body, json_href)


@router.get(
    "/collections/{collection_id}/changes",
    summary="What changed since an instant",
    response_class=Response,
    responses=answers(Changes, also=ALSO_HTML, errors_=CATALOG_ERRORS),
)
async def changes(
    collection_id: CollectionId,
    request: Request,
    conn: ItemsConnDep,
    settings: SettingsDep,
    fmt: FormatDep,
    lang: LangDep,
    since: Annotated[str, Query(description="RFC 3339 instant, e.g. 2026-11-28T12:00:00Z")],
    limit: Annotated[int | None, Query(ge=1, description="Changes per page (default 100)")] = None,
    offset: Offset = 0,
    key: Annotated[
        str | None, Query(description="Only the changes of the feature with this key (its id)")
    ] = None,
) -> Response:
    reject_unknown(request.query_params.keys(), {"since", "limit", "offset", "key", "f", "lang"})
    layer = await get_layer(conn, collection_id)
    instant = parse_instant(since, "since")
    if instant is None:
        raise InvalidParameter(
            "since", "required: an RFC 3339 instant such as 2026-11-28T12:00:00Z"
        )
    size = min(limit or 100, settings.max_limit)
    events = [
        {"id": change.key, "op": change.op, "time": change.at.isoformat()}
        for change in await feature_changes(
            conn, layer, instant, size, offset, None if key is None else key_filter(layer, key)
        )
    ]
    base = base_url(request)
    href = f"{base}/collections/{layer.id}/changes"
    one = {} if key is None else {"key": key}

    def at(start: int) -> str:
        return f"{href}?{urlencode({'since': since, **one, 'limit': size, 'offset': start})}"

    links = [link("self", at(offset)), collection_link(base, layer)]
    if len(events) == size:
        links.append(link("next", at(offset + size)))
    doc = {
        "collection": layer.id,
        "since": instant.isoformat(),
        "version": layer.version,
        "changes": events,
        "numberReturned": len(events),
        "links": links,
    }
    if fmt == "html":
        return _changes_page(request, layer, doc, lang, key)
    return Response(await json_text(request, doc, len(events)), media_type="application/json")


def _changes_page(
    request: Request, layer: LayerEntry, doc: dict[str, Any], lang: PageLanguage, key: str | None
) -> Response:
    code = lang.code
    base = base_url(request)
    rows = [
        [
            html.anchor(html.feature_href(base, layer, event["id"], code), event["id"])
            if event["op"] != "delete"
            else html.esc(event["id"]),
            html.esc(text(code, f"op.{event['op']}")),
            html.esc(event["time"]),
        ]
        for event in doc["changes"]
    ]
    headers = [text(code, k) for k in ("changes.feature", "changes.op", "changes.time")]
    body = html.table(headers, rows, none=text(code, "changes.none"))
    following = [
        (f"{lk['href']}&f=html&lang={code}", text(code, "items.next"))
        for lk in doc["links"]
        if lk["rel"] == "next"
    ]
    layer_title = layer.display_title(code)
    title = (
        text(code, "changes.title", layer=layer_title, since=doc["since"])
        if key is None
        else text(code, "changes.of", layer=layer_title, key=key, since=doc["since"])
    )
    json_href = doc["links"][0]["href"] + "&f=json"
    return html.page(request, lang, title, body + html.link_list(following), json_href)


@router.get(
    "/collections/{collection_id}/quarantine",
    summary="Features the sync set aside, with the reason",
    response_class=Response,
    responses=answers(Quarantine, GEOJSON, also=ALSO_HTML, errors_=CATALOG_ERRORS),
)
async def quarantined(
    collection_id: CollectionId,
    request: Request,
    conn: ItemsConnDep,
    settings: SettingsDep,
    fmt: FormatDep,
    lang: LangDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
    offset: Offset = 0,
) -> Response:
    reject_unknown(request.query_params.keys(), {"limit", "offset", "f", "lang"})
    layer = await get_layer(conn, collection_id)
    size = min(limit or 100, settings.max_limit)
    features, total = await fetch_quarantine(conn, layer, size, offset)
    body = {
        "type": "FeatureCollection",
        "features": features,
        "numberMatched": total,
        "numberReturned": len(features),
    }
    if fmt == "html":
        code = lang.code
        count = text(
            code,
            "quarantine.count",
            returned=number(len(features), code),
            matched=number(total, code),
        )
        # the source's row as it came: its key may be what was wrong, so no link is made
        rows = [
            [html.esc(f["properties"][k]) for k in ("key", "reason", "run", "runStarted")]
            + [f"<code>{html.esc(json.dumps(f['properties']['source']))}</code>"]
            for f in features
        ]
        headers = [
            text(code, k)
            for k in ("col.key", "quarantine.reason", "quarantine.run", "changes.time")
        ] + ["source"]
        page = f"<p>{html.esc(count)}</p>" + (html.table(headers, rows) if rows else "")
        title = text(code, "quarantine.title", layer=layer.display_title(code))
        json_href = f"{base_url(request)}/collections/{layer.id}/quarantine?f=json"
        return html.page(request, lang, title, page, json_href)
    return Response(await json_text(request, body, len(features)), media_type=GEOJSON)
