"""Geocoding endpoints: `/geocode` (free text to addresses) and `/reverse` (a point to one)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from geoapi.catalog import list_layers
from geoapi.crs import parse_crs
from geoapi.deps import ConnDep
from geoapi.geocode import MAX_RESULTS, StreetIndexes, address_layer, geocode, label
from geoapi.params import reject_unknown
from geoapi.routes.spatial import (
    FEATURE_COLLECTION_RESPONSE,
    Crs,
    X,
    Y,
    feature_collection,
    parse_point,
)
from geoapi.spatial import nearest_features

router = APIRouter(tags=["Geocoding"])

Collection = Annotated[str | None, Query(description=(
    "The address collection (default: the first synced layer with URBIS address fields)"))]


def street_indexes(request: Request) -> StreetIndexes:
    indexes: StreetIndexes = request.app.state.street_indexes
    return indexes


@router.get("/geocode", summary="Addresses matching free text", response_class=Response,
            responses=FEATURE_COLLECTION_RESPONSE, description=(
                "Free text — street, house number, postcode, municipality, in French or Dutch, "
                "in any order and case, with or without accents, typos tolerated — to address "
                "points, best first. Each feature has `score` (0-1: how well the street name "
                "matches, times how well the house number fits: 1 exact, 0.9 same number with "
                "another suffix, 0.6 the nearest number on the street when the one asked for "
                "does not exist, 0.95 when no number was given), `label` and `language` (the "
                "language the query matched). No match is an empty collection."))
async def geocode_address(
    request: Request, conn: ConnDep,
    q: Annotated[str, Query(min_length=1, max_length=200, description=(
        "The address, e.g. 'Rue de la Victoire 2, 1060 Saint-Gilles' or "
        "'overwinningstraat 2 sint-gillis'"))],
    limit: Annotated[int, Query(ge=1, le=MAX_RESULTS, description=(
        f"How many addresses at most (default 10, at most {MAX_RESULTS})"))] = 10,
    crs: Crs = None, collection: Collection = None,
) -> Response:
    reject_unknown(request.query_params.keys(), {"q", "limit", "crs", "collection"})
    out = parse_crs(crs, "crs")
    layer, fields = address_layer(await list_layers(conn), collection)
    index = await street_indexes(request).get(conn, layer, fields)
    features = await geocode(conn, layer, fields, index, q, limit, out)
    return feature_collection(request, layer, out, features)


@router.get("/reverse", summary="The nearest address to a point", response_class=Response,
            responses=FEATURE_COLLECTION_RESPONSE, description=(
                "The address point nearest to (x, y), with `distance` (metres, planar in "
                "EPSG:31370, rounded to the mm) and `label` in the chosen language."))
async def reverse_geocode(
    request: Request, conn: ConnDep, x: X, y: Y, crs: Crs = None,
    lang: Annotated[Literal["fr", "nl"], Query(description="Language of `label`")] = "fr",
    collection: Collection = None,
) -> Response:
    reject_unknown(request.query_params.keys(), {"x", "y", "crs", "lang", "collection"})
    out = parse_crs(crs, "crs")
    point = parse_point(x, y, out)
    layer, fields = address_layer(await list_layers(conn), collection)
    features = await nearest_features(conn, layer, point, 1, out)
    for feature in features:
        feature["properties"]["label"] = label(feature["properties"], fields, lang)
    return feature_collection(request, layer, out, features)
