"""Raster layers (coverages): list and metadata, values at a point, statistics over a geometry.

The numbers come from the coverage's COG through urbis_core.raster_values, read in a worker
thread (geoapi.offload) so that the event loop keeps answering meanwhile.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pyproj import Transformer
from rasterio.transform import from_origin, rowcol
from sqlalchemy.ext.asyncio import AsyncConnection

from geoapi.budgets import Budgets
from geoapi.coverage_areas import (
    check_area,
    check_cells,
    in_raster_crs,
    parse_percentiles,
    percentile_key,
    stored_area,
)
from geoapi.coverage_pages import coverage_page, coverages_page, point_page
from geoapi.crs import EPSG_URI, parse_crs
from geoapi.deps import (
    CatalogCoverage,
    ConnDep,
    CoverageId,
    FormatDep,
    LangDep,
    SettingsDep,
    base_url,
)
from geoapi.links import link
from geoapi.media_types import HTML, JSON
from geoapi.offload import in_process, off_loop
from geoapi.params import reject_unknown
from geoapi.posted_geometry import check_lists, parse_geometry
from geoapi.responses.coverages import Coverage, Coverages, CoverageStats, PointValues
from geoapi.responses.documented import (
    ALSO_HTML,
    CATALOG_ERRORS,
    answers,
    errors,
    geometry_body,
)
from geoapi.routes.spatial import Crs, X, Y, parse_point
from tiles.raster_style import coverage_style, is_imagery, ramp_stops
from tiles.tms import TILE_MATRIX_SETS
from urbis_core.coverages import BandInfo, CoverageEntry, get_coverage, list_coverages
from urbis_core.errors import InvalidParameter
from urbis_core.raster_values import LAYER_SRID, band_stats, values_at

router = APIRouter(tags=["Coverages"])

PNG = "image/png"


# -- the metadata document ----------------------------------------------------------------------


def _number(value: float | None) -> float | None:
    """A statistic as JSON holds it: NaN (which JSON cannot write) as null."""
    return value if value is not None and math.isfinite(value) else None


def _nodata(value: float | None) -> float | str | None:
    """A band's nodata value; NaN, which JSON cannot write, as "nan" (as the catalog holds it)."""
    return "nan" if value is not None and math.isnan(value) else value


def _band_doc(band: BandInfo) -> dict[str, Any]:
    return {
        "name": band.name,
        "dtype": band.dtype,
        "nodata": _nodata(band.nodata),
        "min": _number(band.min),
        "max": _number(band.max),
        "mean": _number(band.mean),
        "std": _number(band.std),
    }


def style_doc(entry: CoverageEntry) -> dict[str, Any]:
    """The style the tiles are drawn with by default (tiles.raster_style): the legend's source."""
    if is_imagery(entry):
        return {
            "colormap": None,
            "rescale": None,
            "hillshade": False,
            "ramp": None,
            "units": entry.style.get("units"),
        }
    style = coverage_style(entry)
    return {
        "colormap": style.colormap,
        "rescale": list(style.rescale) if style.rescale else None,
        "hillshade": style.hillshade,
        "ramp": [[where, colour] for where, colour in ramp_stops(style.colormap)],
        "units": entry.style.get("units"),
    }


def title_in(entry: CoverageEntry, language: str) -> str:
    return entry.title.get(language) or entry.title.get("en") or entry.id


def coverage_links(entry: CoverageEntry, base: str) -> list[dict[str, Any]]:
    href = f"{base}/coverages/{entry.id}"
    links = [
        link("self", href),
        link("alternate", f"{href}?f=html", HTML, "This coverage as HTML"),
    ]
    for tms in TILE_MATRIX_SETS:
        links.append(
            link(
                "item",
                f"{href}/tiles/{tms}/{{z}}/{{x}}/{{y}}.png",
                PNG,
                f"Map tiles (PNG) on {tms}",
                templated=True,
            )
        )
        links.append(
            link("describedby", f"{href}/tiles/{tms}/tilejson.json", JSON, f"TileJSON on {tms}")
        )
    links += [
        link(
            "related",
            f"{href}/point?x={{x}}&y={{y}}",
            JSON,
            "Every band's value at a point (GET; x, y in CRS84 unless crs=)",
            templated=True,
        ),
        link(
            "related",
            f"{href}/stats",
            JSON,
            "Statistics over an area (POST a GeoJSON polygon, or ?feature=<collection>/<key>)",
        ),
        link(
            "related",
            f"{href}/zonal?collection={{collection}}",
            JSON,
            "Statistics for each feature of a collection (POST: a job)",
            templated=True,
        ),
    ]
    return links


def coverage_doc(entry: CoverageEntry, base: str) -> dict[str, Any]:
    return {
        "id": entry.id,
        "title": title_in(entry, "en"),
        "titles": entry.title,
        "description": entry.description,
        "bands": [_band_doc(b) for b in entry.bands],
        "width": entry.width,
        "height": entry.height,
        "resolution": list(entry.resolution),
        "extent": {
            "crs84": list(entry.bbox_crs84),
            "native": {"crs": EPSG_URI.format(entry.srid), "bbox": list(entry.bbox_native)},
        },
        "version": entry.version,
        "checksum": entry.checksum,
        "lastSuccess": entry.last_success.isoformat() if entry.last_success else None,
        "imagery": is_imagery(entry),
        "style": style_doc(entry),
        "links": coverage_links(entry, base),
    }


# -- values at a point ----------------------------------------------------------------------------


@functools.cache
def _to_storage(srid: int) -> Transformer:
    return Transformer.from_crs(f"EPSG:{srid}", f"EPSG:{LAYER_SRID}", always_xy=True)


def off_grid(entry: CoverageEntry, x: float, y: float, srid: int) -> bool:
    """Whether the point (x/y in EPSG:`srid`, easting first) falls in no cell of the raster.

    The cell is found as values_at finds it (rasterio's rowcol, the floor of the inverse
    transform) on the grid the catalog describes, so the two agree on which points are in.
    """
    px, py = _to_storage(srid).transform(x, y)
    if not (math.isfinite(px) and math.isfinite(py)):
        return True
    minx, _, _, maxy = entry.bbox_native
    grid = from_origin(minx, maxy, entry.resolution[0], entry.resolution[1])
    row, col = rowcol(grid, px, py, op=math.floor)
    return not (0 <= row < entry.height and 0 <= col < entry.width)


def point_values(entry: CoverageEntry, x: float, y: float, srid: int) -> list[dict[str, Any]]:
    outside = off_grid(entry, x, y, srid)
    values = [None] * len(entry.bands) if outside else values_at(entry.path, x, y, srid)
    return [
        {
            "band": n,
            "name": band.name,
            "value": value,
            "nodata": value is None and not outside,
            "outside": outside,
        }
        for n, (band, value) in enumerate(zip(entry.bands, values, strict=True), start=1)
    ]


# -- endpoints ------------------------------------------------------------------------------------


@router.get(
    "/coverages",
    summary="The coverages (raster layers)",
    responses=answers(Coverages, also=ALSO_HTML, errors_=(400, 503)),
    description=(
        "Every raster layer the sync keeps (orthophotos, terrain models), with its bands, grid, "
        "extent, version and default style; empty before any raster layer has been synced."
    ),
)
async def coverages(request: Request, conn: ConnDep, fmt: FormatDep, lang: LangDep) -> Any:
    base = base_url(request)
    entries = await list_coverages(conn)
    doc = {
        "coverages": [coverage_doc(entry, base) for entry in entries],
        "links": [
            link("self", f"{base}/coverages"),
            link("alternate", f"{base}/coverages?f=html", HTML, "The coverages as HTML"),
        ],
    }
    if fmt == "html":
        return coverages_page(request, lang, doc)
    return doc


@router.get(
    "/coverages/{coverage_id}",
    summary="One coverage",
    responses=answers(Coverage, also=ALSO_HTML, errors_=CATALOG_ERRORS),
    description=(
        "A raster layer's metadata: bands (type, nodata, statistics), grid size and cell size, "
        "extent in CRS84 and EPSG:31370, version, the default style of its tiles (with the "
        "colour ramp as legend stops), and links to its tiles, TileJSON, point values and "
        "statistics."
    ),
)
async def coverage(entry: CatalogCoverage, request: Request, fmt: FormatDep, lang: LangDep) -> Any:
    doc = coverage_doc(entry, base_url(request))
    if fmt == "html":
        return coverage_page(request, lang, doc)
    return doc


@router.get(
    "/coverages/{coverage_id}/point",
    summary="Every band's value at a point",
    responses=answers(PointValues, also=ALSO_HTML, errors_=CATALOG_ERRORS),
    description=(
        "The value of each band in the cell under the point (x, y in `crs`, CRS84 by default). "
        "A cell holding the band's nodata value answers `value: null, nodata: true`; a point "
        "off the raster is not an error: every band answers `value: null, outside: true`."
    ),
)
async def coverage_point(
    entry: CatalogCoverage,
    request: Request,
    fmt: FormatDep,
    lang: LangDep,
    x: X,
    y: Y,
    crs: Crs = None,
) -> Any:
    reject_unknown(request.query_params.keys(), {"x", "y", "crs", "f", "lang"})
    given = parse_crs(crs, "crs")
    at = parse_point(x, y, given)
    values = await off_loop(request, point_values, entry, at.x, at.y, at.srid)
    doc = {
        "coverage": entry.id,
        "version": entry.version,
        "point": {"x": x, "y": y, "crs": given.uri},
        "values": values,
    }
    if fmt == "html":
        return point_page(request, lang, doc, title_in(entry, lang.code))
    return doc


@contextlib.asynccontextmanager
async def _catalog_read(request: Request) -> AsyncIterator[AsyncConnection]:
    """A connection for the catalog's reads only: given back before the raster is read.

    The statistics of a large area take a worker thread for seconds (queued behind the
    others, geoapi.offload); a connection held meanwhile would be one fewer for every other
    request, where geoapi.deps' dependencies hold theirs until the answer is sent.
    """
    budgets: Budgets = request.app.state.budgets
    request.state.query_kind = "catalog"  # for the error handler to name the limit
    async with (
        budgets.turn("catalog"),
        request.app.state.reads.snapshot("catalog") as conn,
    ):
        yield conn


_AREA_BODY = geometry_body(
    "A GeoJSON Polygon or MultiPolygon (or a Feature holding one) in `crs`; valid (no "
    "self-intersection). No body with `feature=`.",
    required=False,
)


@router.post(
    "/coverages/{coverage_id}/stats",
    summary="Statistics of a band over an area",
    responses={**answers(CoverageStats, errors_=CATALOG_ERRORS), **errors(413)},
    openapi_extra=_AREA_BODY,
    description=(
        "Count, nodata count, min, max, mean, std (population) and percentiles (`p`, numpy's "
        "linear interpolation) of one band over the cells whose centre lies inside the area: "
        "the posted GeoJSON polygon (in `crs`), or the stored feature `feature`. Cells holding "
        "nodata are counted in `nodataCount` and left out of the statistics. An area off the "
        "raster answers `count: 0` with null statistics. Points and lines hold no area: a 400 "
        "(ask /point for a point's values). An area over more cells than "
        "URBIS_MAX_STATS_CELLS (the window of the grid under its bounds) is a 413."
    ),
)
async def coverage_stats(
    coverage_id: CoverageId,
    request: Request,
    settings: SettingsDep,
    crs: Crs = None,
    p: Annotated[
        str | None,
        Query(description="Percentiles to compute, comma-separated numbers from 0 to 100"),
    ] = None,
    band: Annotated[
        int, Query(ge=1, description="The band, 1-based (default 1; see the coverage's bands)")
    ] = 1,
    feature: Annotated[
        str | None,
        Query(
            description=(
                "Take the area of this stored feature, <collection>/<key> (e.g. "
                "municipalities/21013), instead of a body"
            )
        ),
    ] = None,
) -> dict[str, Any]:
    reject_unknown(request.query_params.keys(), {"crs", "p", "band", "feature"})
    percentiles = parse_percentiles(p)
    body = await request.body()
    area = None
    async with _catalog_read(request) as conn:
        entry = await get_coverage(conn, coverage_id)
        if band > len(entry.bands):
            raise InvalidParameter(
                "band", f"band {band} is not in '{entry.id}' (bands 1 to {len(entry.bands)})"
            )
        if feature is not None:
            if body.strip():
                raise InvalidParameter("feature", "give the area either as a body or as feature=")
            if crs is not None:
                raise InvalidParameter("crs", "a stored feature's area needs no crs")
            area = await stored_area(conn, feature, entry.id)
    if area is None:
        given = parse_crs(crs, "crs")
        check_lists(body, settings.max_query_vertices)
        posted = await in_process(request, parse_geometry, body, given, settings.max_query_vertices)
        check_area(posted, "body", entry.id)
        area = await off_loop(request, in_raster_crs, posted, given.srid)
    check_cells(entry, area, settings.max_stats_cells)
    result = await off_loop(
        request,
        functools.partial(band_stats, percentiles=percentiles, band=band),
        entry.path,
        area,
        LAYER_SRID,
    )
    return {
        "coverage": entry.id,
        "version": entry.version,
        "band": band,
        "count": result["count"],
        "nodataCount": result["nodata_count"],
        "min": result["min"],
        "max": result["max"],
        "mean": result["mean"],
        "std": result["std"],
        "percentiles": {percentile_key(q): v for q, v in result["percentiles"].items()},
    }
