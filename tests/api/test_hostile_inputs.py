"""Hostile inputs (issue 12): numbers out of any range, deep nesting, points far outside a CRS.

Each gets a fast 4xx in the one error model, naming the parameter, or a correct answer; never
a 500. The exact requests of the issue come first, then their siblings on every endpoint that
takes the same parameter.
"""

from __future__ import annotations

import httpx
import pytest

from geoapi.params import MAX_OFFSET
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.api

FAST = 2.0  # seconds: what "a fast 4xx" means here, with room for a loaded test machine
POINT = "x=4.3445&y=50.8316"  # Saint-Gilles, CRS84
SINCE = "since=2000-01-01T00:00:00Z"
SQUARE = {"type": "Polygon", "coordinates": [[[4.34, 50.83], [4.35, 50.83], [4.35, 50.84],
                                               [4.34, 50.84], [4.34, 50.83]]]}
HUGE = "99999999999999999999"  # 10^20 - 1: past a bigint, a usual int in Python
MANY_DIGITS = "9" * 5000  # past Python's 4300-digit limit for int("...")


def _fast(response: httpx.Response) -> httpx.Response:
    assert response.elapsed.total_seconds() < FAST, (response.request.url, response.elapsed)
    return response


def _get(client: httpx.Client, path: str) -> httpx.Response:
    return _fast(client.get(path))


def _post(client: httpx.Client, path: str) -> httpx.Response:
    return _fast(client.post(path, json=SQUARE))


# --- offset ----------------------------------------------------------------------------------

# Every resource that pages with `offset`, and each way the items take it.
OFFSET_PATHS = [
    ("GET", "/collections/addresses/items?"),
    ("GET", "/collections/addresses/items?f=csv&"),
    ("GET", "/collections/addresses/items?f=gpkg&"),
    ("GET", "/collections/addresses/items?f=html&"),
    ("GET", "/collections/addresses/items?datetime=2030-01-01T00:00:00Z&"),
    ("GET", "/collections/addresses/items?datetime=2030-01-01T00:00:00Z&f=csv&"),
    ("GET", "/collections/addresses/items?PZNC=1060&"),
    ("GET", "/collections/addresses/items?bbox=4.3,50.8,4.4,50.9&"),
    ("GET", "/collections/addresses/items?filter=PZNC%3D'1060'&"),
    ("GET", f"/collections/addresses/changes?{SINCE}&"),
    ("GET", "/collections/addresses/quarantine?"),
    ("GET", f"/collections/addresses/within?{POINT}&distance=500&"),
    ("GET", "/collections/addresses/intersects?feature=municipalities/21013&"),
    ("POST", "/collections/addresses/intersects?"),
]


def _call(client: httpx.Client, method: str, url: str) -> httpx.Response:
    return _post(client, url) if method == "POST" else _get(client, url)


@pytest.mark.parametrize("offset", [str(2**63), str(2**63 - 1), str(2**64), HUGE,
                                    str(MAX_OFFSET + 1), MANY_DIGITS])
@pytest.mark.parametrize("method, path", OFFSET_PATHS)
def test_an_offset_past_what_the_database_takes_is_a_400_naming_it(client, method, path,
                                                                     offset):
    assert_problem(_call(client, method, f"{path}offset={offset}"), 400, "'offset'")


@pytest.mark.parametrize("method, path", OFFSET_PATHS)
def test_the_largest_offset_answers_an_empty_page(client, method, path):
    response = _call(client, method, f"{path}offset={MAX_OFFSET}&limit=10000")
    assert response.status_code == 200, response.text
    if "f=csv" in path:
        assert response.text.count("\n") == 1  # the header line alone
        assert response.headers["Number-Returned"] == "0"
    elif "f=gpkg" in path:
        assert response.headers["Number-Returned"] == "0"
    elif "f=html" in path:
        assert "0 of " in response.text
    elif "/changes" in path:
        assert response.json()["changes"] == []
    else:
        body = response.json()
        assert body["features"] == [] and body["numberReturned"] == 0
        prev = [lk["href"] for lk in body.get("links", []) if lk["rel"] == "prev"]
        assert all(f"offset={MAX_OFFSET - 10000}" in href for href in prev)


# --- limit, k --------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path", OFFSET_PATHS)
def test_a_huge_limit_is_reduced_not_refused(client, method, path):
    response = _call(client, method, f"{path}limit={HUGE}")
    assert response.status_code == 200, response.text


def test_a_csv_page_with_a_huge_limit_holds_every_feature(client):
    """The CSV's limit goes to the database as it is: past an integer it used to fail there
    after the headers had gone (a 200 with `Number-Returned: 666` and no rows)."""
    for limit in (HUGE, str(2**31), str(2**63)):
        response = _get(client, f"/collections/addresses/items?f=csv&limit={limit}")
        assert response.status_code == 200
        assert response.headers["Number-Returned"] == "666"
        assert response.text.count("\n") == 667


@pytest.mark.parametrize("path, parameter", [
    (f"/geocode?q=rue&limit={HUGE}", "'limit'"),
    (f"/geocode?q=rue&limit={MANY_DIGITS}", "'limit'"),
    (f"/collections/addresses/items?limit={MANY_DIGITS}", "'limit'"),
    (f"/collections/addresses/within?{POINT}&distance=500&limit={MANY_DIGITS}", "'limit'"),
    (f"/collections/addresses/nearest?{POINT}&k={HUGE}", "'k'"),
    (f"/collections/addresses/nearest?{POINT}&k={2**63}", "'k'"),
    (f"/collections/addresses/nearest?{POINT}&k={MANY_DIGITS}", "'k'"),
])
def test_a_count_past_its_maximum_is_a_400_naming_it(client, path, parameter):
    assert_problem(_get(client, path), 400, parameter)


# --- distances and coordinates ---------------------------------------------------------------

@pytest.mark.parametrize("path, parameter", [
    (f"/collections/addresses/within?{POINT}&distance={HUGE}", "'distance'"),
    (f"/collections/addresses/within?{POINT}&distance=1e400", "'distance'"),
    (f"/collections/addresses/within?{POINT}&distance=NaN", "'distance'"),
    (f"/collections/addresses/within?{POINT}&distance={MANY_DIGITS}", "'distance'"),
    (f"/reverse?{POINT}&max_distance={HUGE}", "'max_distance'"),
    (f"/reverse?{POINT}&max_distance=1e400", "'max_distance'"),
    (f"/reverse?{POINT}&max_distance=-Infinity", "'max_distance'"),
    ("/geocode?q=rue&min_score=1e400", "'min_score'"),
    ("/lookup?x=1e20&y=1e20&crs=EPSG:3857", "'x'"),
    ("/lookup?x=4.3&y=1e400", "'y'"),
    (f"/lookup?x={MANY_DIGITS}&y=1", "'x'"),
    ("/collections/addresses/nearest?x=1e20&y=1e20&crs=EPSG:31370", "'x'"),
    ("/collections/addresses/within?x=1&y=-1e20&crs=EPSG:3857&distance=5", "'y'"),
    ("/reverse?x=1e20&y=0&crs=EPSG:3857", "'x'"),
])
def test_a_number_out_of_range_is_a_400_naming_it(client, path, parameter):
    assert_problem(_get(client, path), 400, parameter)


# --- tiles: z/x/y beyond the tile matrix set ------------------------------------------------

TILE_PREFIXES = ["/tiles/WebMercatorQuad", "/tiles/BelgianLambert72",
                 "/collections/addresses/tiles/WebMercatorQuad",
                 "/collections/municipalities/tiles/BelgianLambert72"]


@pytest.mark.parametrize("zxy, words", [
    ("25/0/0", "zoom 25 is not in"),
    (f"{HUGE}/0/0", "is not in"),
    (f"{2**63}/0/0", "is not in"),
    ("-1/0/0", "is not in"),
    (f"5/{HUGE}/0", "is outside"),
    (f"5/0/{HUGE}", "is outside"),
    ("5/32/0", "is outside"),
    ("5/0/-1", "is outside"),
    (f"{HUGE}/{HUGE}/{HUGE}", "is not in"),
])
@pytest.mark.parametrize("prefix", TILE_PREFIXES)
def test_a_tile_outside_the_matrix_set_is_a_404(client, prefix, zxy, words):
    """OGC API Tiles (/req/core/tc-error) answers a tile outside the matrices 404 (or 400)."""
    assert_problem(_get(client, f"{prefix}/{zxy}"), 404, words)


@pytest.mark.parametrize("prefix", TILE_PREFIXES)
def test_a_tile_address_that_is_no_integer_is_a_400(client, prefix):
    for zxy, parameter in [(f"{MANY_DIGITS}/0/0", "'z'"), ("1e3/0/0", "'z'"),
                           ("5/0.5/0", "'x'"), ("5/0/NaN", "'y'")]:
        assert_problem(_get(client, f"{prefix}/{zxy}"), 400, parameter)
