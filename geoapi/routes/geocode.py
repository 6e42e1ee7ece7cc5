"""Geocoding endpoints: `/geocode` (free text to addresses) and `/reverse` (a point to one)."""

from __future__ import annotations

import functools
from typing import Annotated, Literal, cast

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from geoapi.address_layers import address_layer, label
from geoapi.crs import parse_crs
from geoapi.deps import FormatDep, GeocodeConnDep, LangDep
from geoapi.geocode import DEFAULT_MIN_SCORE, MAX_RESULTS, geocode
from geoapi.offload import off_loop
from geoapi.params import reject_unknown
from geoapi.routes.spatial import (
    FEATURE_COLLECTION_RESPONSE,
    FEATURES_OR_PAGE,
    Crs,
    X,
    Y,
    feature_collection,
    parse_point,
)
from geoapi.spatial import MAX_DISTANCE_M, nearest_features
from geoapi.spatial_pages import geocode_page
from geoapi.street_index import StreetIndexes
from urbis_core.catalog import list_layers

router = APIRouter(tags=["Geocoding"])

Collection = Annotated[
    str | None,
    Query(
        description=(
            "The address collection (default: the first synced layer with URBIS address fields)"
        )
    ),
]


def street_indexes(request: Request) -> StreetIndexes:
    return cast(StreetIndexes, request.app.state.street_indexes)


@router.get(
    "/geocode",
    summary="What free text names: an address, a street, a place",
    response_class=Response,
    responses=FEATURES_OR_PAGE,
    description=(
        "Free text — street, house number and box, postcode, municipality, in French "
        "or Dutch, in any order and case, with or without accents, abbreviated (av., "
        "bd, chée, r., pl., str., ln, stwg...), with one typo — to what it names, best "
        "first. The street the query names comes first: its address with that number "
        "(and box: '12 bte 3', '12/3', '12 bus 3'); else its nearest existing numbers "
        "(`match`: nearest_number), then the street itself; without a number, the "
        "street itself (`match`: street: its middle address point, its extent as "
        "`bbox`, its fields with empty number fields). A query naming only a "
        "municipality or a postcode answers where its addresses lie (`match`: "
        "municipality or postcode). A street whose name scores under `min_score` is "
        "not an answer: when none reaches it, the collection is empty. Each feature "
        "has `score` (0-1: the street name's score, times 0.85 for a postcode or "
        "municipality that is not the street's, times what the number is worth: 1 as "
        "asked, 0.95 with another letter or box, 0.8 the nearest number, 0.7 the street "
        "only), `match` (exact, fuzzy, nearest_number, street, municipality, "
        "postcode), `compared` (what of the query was compared with what), `label` and "
        "`language`."
    ),
)
async def geocode_address(
    request: Request,
    conn: GeocodeConnDep,
    fmt: FormatDep,
    lang: LangDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            description=(
                "The address, e.g. 'Rue de la Victoire 2, 1060 Saint-Gilles' or "
                "'overwinningstraat 2 sint-gillis'"
            ),
        ),
    ],
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_RESULTS,
            description=(f"How many answers at most (default 10, at most {MAX_RESULTS})"),
        ),
    ] = 10,
    min_score: Annotated[
        float,
        Query(
            ge=0,
            le=1,
            allow_inf_nan=False,
            description=(
                "The least score (0-1) a street's name must reach to be an answer (default "
                f"{DEFAULT_MIN_SCORE}: a name with one typo scores 0.9, another street of the same "
                "kind much less, another kind of street ('Place' for 'Rue') 0.7 at most); lower it "
                "to see near misses"
            ),
        ),
    ] = DEFAULT_MIN_SCORE,
    crs: Crs = None,
    collection: Collection = None,
    complete: Annotated[
        bool,
        Query(
            description=(
                "For suggestions as one types: the last word may be unfinished ('Rue de la "
                "Vic'), so the query is also read with it completed into the words of the "
                "street and municipality names it begins (the five most used), the answers "
                "merged, best first"
            )
        ),
    ] = False,
) -> Response:
    reject_unknown(
        request.query_params.keys(),
        {"q", "limit", "min_score", "crs", "collection", "complete", "f", "lang"},
    )
    out = parse_crs(crs, "crs")
    layer, fields = address_layer(await list_layers(conn), collection)
    run = functools.partial(off_loop, request)
    index = await street_indexes(request).get(conn, layer, fields, run)
    features = await geocode(conn, layer, fields, index, q, limit, min_score, out, run, complete)
    if fmt == "html":
        return geocode_page(request, lang, layer, q, features, out)
    return await feature_collection(request, layer, out, features)


@router.get(
    "/reverse",
    summary="The nearest address to a point",
    response_class=Response,
    responses=FEATURE_COLLECTION_RESPONSE,
    description=(
        "The address point nearest to (x, y) within `max_distance`, with `distance` "
        "(metres, planar in EPSG:31370, rounded to the mm) and `label` in the chosen "
        "language; an empty collection when no address lies that near."
    ),
)
async def reverse_geocode(
    request: Request,
    conn: GeocodeConnDep,
    x: X,
    y: Y,
    crs: Crs = None,
    lang: Annotated[Literal["fr", "nl"], Query(description="Language of `label`")] = "fr",
    max_distance: Annotated[
        float,
        Query(
            gt=0,
            le=MAX_DISTANCE_M,
            allow_inf_nan=False,
            description=(
                "How far the address may lie, in metres: more than 0, at most "
                f"{MAX_DISTANCE_M:,.0f} (default 100)"
            ),
        ),
    ] = 100.0,
    collection: Collection = None,
) -> Response:
    reject_unknown(
        request.query_params.keys(), {"x", "y", "crs", "lang", "max_distance", "collection"}
    )
    out = parse_crs(crs, "crs")
    point = parse_point(x, y, out)
    layer, fields = address_layer(await list_layers(conn), collection)
    features = await nearest_features(conn, layer, point, 1, out, within=max_distance)
    for feature in features:
        feature["properties"]["label"] = label(feature["properties"], fields, lang)
    return await feature_collection(request, layer, out, features)
