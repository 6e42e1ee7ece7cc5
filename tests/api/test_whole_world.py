"""Whole-world and far-away queries, in every CRS the API reads (issue 11, item 7).

Query geometries are cut to EPSG:31370's area of use before they are transformed, so a bbox or
a shape of the whole world selects every address, one over part of the data exactly the
addresses it covers, and one far from Belgium nothing. The expected answers come from the
source shapefile, moved to each CRS here with pyproj.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import geopandas as gpd
import httpx
import mapbox_vector_tile
import pyproj
import pytest
import shapely

from tests.api.conftest import assert_problem
from tests.conftest import SAMPLE_DIR
from tests.db.test_reconcile import legacy_municipalities

pytestmark = pytest.mark.api

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRSS = [CRS84, "EPSG:4326", "EPSG:3857", "EPSG:31370"]
EPSG = {
    CRS84: "OGC:CRS84",
    "EPSG:4326": "OGC:CRS84",
    "EPSG:3857": "EPSG:3857",
    "EPSG:31370": "EPSG:31370",
}  # x/y always easting (longitude) first here
ADDR = "/collections/addresses/items"
MERCATOR_HALF = 20037508.3427892
# The whole world in each CRS, x/y with easting (longitude) first: Web Mercator's square, and
# in Lambert 72 a square as large as the API accepts in a body (±20,048,966 m).
WORLD = {
    CRS84: (-180.0, -90.0, 180.0, 90.0),
    "EPSG:4326": (-180.0, -90.0, 180.0, 90.0),
    "EPSG:3857": (-MERCATOR_HALF, -MERCATOR_HALF, MERCATOR_HALF, MERCATOR_HALF),
    "EPSG:31370": (-2e7, -2e7, 2e7, 2e7),
}
TOKYO = (139.5, 35.5, 140.0, 36.0)  # lon/lat
FAR = {
    CRS84: TOKYO,
    "EPSG:4326": TOKYO,
    "EPSG:3857": pyproj.Transformer.from_crs("OGC:CRS84", 3857, always_xy=True).transform_bounds(
        *TOKYO
    ),
    # Far north-east of Belgium's area of use, in Lambert 72's own numbers.
    "EPSG:31370": (1e6, 1e6, 2e6, 2e6),
}
PAST_SOUTH_POLE = (-180.0, -90.0, 180.0, -80.0)  # transformed to Lambert 72, it had no edge
TILE_Z15 = (15, 16779, 10994)  # WebMercatorQuad: Saint-Gilles, around the sample addresses
EXTENT, BUFFER = 4096, 64


# -- the source, moved to each CRS independently --------------------------------------------


@pytest.fixture(scope="module")
def addresses() -> gpd.GeoDataFrame:
    path = SAMPLE_DIR / "UrbAdm_AdPt_sample.zip"
    frame = gpd.read_file(f"/vsizip/{path}/shp/UrbAdm_AdPt.shp", columns=["ID"])
    frame["ID"] = frame["ID"].astype(int)
    frame = frame.set_crs(31370, allow_override=True).set_index("ID").sort_index()
    assert len(frame) == 666
    return frame


def positions(addresses: gpd.GeoDataFrame, crs: str) -> dict[int, tuple[float, float]]:
    """Each address as x/y (longitude or easting first) in `crs`."""
    move = pyproj.Transformer.from_crs(31370, EPSG[crs], always_xy=True)
    return {int(k): move.transform(p.x, p.y) for k, p in addresses.geometry.items()}


def cut(values: list[float]) -> float:
    """A value inside the data with no address close to it: the middle of the widest gap
    among the middle half of the sorted values (so the edge decides no address by a hair)."""
    ordered = sorted(values)
    n = len(ordered)
    gaps = [(ordered[i + 1] - ordered[i], i) for i in range(n // 4, 3 * n // 4)]
    _, i = max(gaps)
    return (ordered[i] + ordered[i + 1]) / 2


def quadrant(addresses: gpd.GeoDataFrame, crs: str) -> tuple[tuple[float, ...], set[int]]:
    """A box from far outside Belgium (south-west) to the middle of the data, and the
    addresses it covers."""
    at = positions(addresses, crs)
    cx, cy = cut([x for x, _ in at.values()]), cut([y for _, y in at.values()])
    inside = {k for k, (x, y) in at.items() if x <= cx and y <= cy}
    assert 50 < len(inside) < 600
    return (WORLD[crs][0], WORLD[crs][1], cx, cy), inside


def ordered(crs: str, x: float, y: float) -> tuple[float, float]:
    """A position in the axis order `crs` takes: EPSG:4326 is latitude first."""
    return (y, x) if crs == "EPSG:4326" else (x, y)


def bbox_param(crs: str, box: tuple[float, ...]) -> dict[str, str]:
    minx, miny, maxx, maxy = box
    numbers = [*ordered(crs, minx, miny), *ordered(crs, maxx, maxy)]
    return {"bbox": ",".join(repr(float(n)) for n in numbers), "bbox-crs": crs}


def ring(crs: str, box: tuple[float, ...], clockwise: bool = False) -> list[list[float]]:
    minx, miny, maxx, maxy = box
    corners = [(minx, miny), (maxx, miny), (maxx, maxy), (minx, maxy), (minx, miny)]
    if clockwise:
        corners.reverse()
    return [list(ordered(crs, x, y)) for x, y in corners]


def polygon_json(crs: str, box: tuple[float, ...], clockwise: bool = False) -> dict:
    return {"type": "Polygon", "coordinates": [ring(crs, box, clockwise)]}


def polygon_wkt(crs: str, box: tuple[float, ...], clockwise: bool = False) -> str:
    return "POLYGON((" + ", ".join(f"{x!r} {y!r}" for x, y in ring(crs, box, clockwise)) + "))"


def bbox_wkt(crs: str, box: tuple[float, ...]) -> str:
    minx, miny, maxx, maxy = box
    return "BBOX({}, {}, {}, {})".format(*ordered(crs, minx, miny), *ordered(crs, maxx, maxy))


def collection(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "FeatureCollection"
    assert body["numberReturned"] == len(body["features"])
    return body


def matched_ids(client: httpx.Client, path: str, **params: str) -> set[int]:
    """Every id an items query matches (one page of up to 1,000), checked with numberMatched."""
    body = collection(client.get(path, params={"limit": "1000", **params}))
    ids = [f["id"] for f in body["features"]]
    assert body["numberMatched"] == len(ids) == len(set(ids))
    return set(ids)


# -- items: bbox and bbox-crs -----------------------------------------------------------------


@pytest.mark.parametrize("crs", CRSS)
def test_a_world_bbox_selects_every_address(client, addresses, crs):
    assert matched_ids(client, ADDR, **bbox_param(crs, WORLD[crs])) == set(addresses.index)


@pytest.mark.parametrize("crs", ["EPSG:3857", "EPSG:31370"])
def test_a_bbox_far_larger_than_the_world_selects_every_address(client, addresses, crs):
    # In Web Mercator such a bbox was densified every 100 m (24 million vertices, 35-57 s);
    # cut to Belgium first, it answers at once (the client would give up after 30 s).
    huge = bbox_param(crs, (-3e8, -3e8, 3e8, 3e8))
    assert matched_ids(client, ADDR, **huge) == set(addresses.index)


@pytest.mark.parametrize("crs", CRSS)
def test_a_world_bbox_pages_through_every_address_once(client, addresses, crs):
    seen: list[int] = []
    url: str | None = ADDR
    params: dict[str, str] | None = {**bbox_param(crs, WORLD[crs]), "limit": "250"}
    while url is not None:
        body = collection(client.get(url, params=params))
        assert body["numberMatched"] == 666
        seen += [f["id"] for f in body["features"]]
        url = next((lk["href"] for lk in body["links"] if lk["rel"] == "next"), None)
        params = None
    assert len(seen) == 666 and set(seen) == set(addresses.index)


@pytest.mark.parametrize("crs", CRSS)
def test_a_bbox_from_far_away_to_the_middle_selects_exactly_what_it_covers(client, addresses, crs):
    box, inside = quadrant(addresses, crs)
    assert matched_ids(client, ADDR, **bbox_param(crs, box)) == inside


@pytest.mark.parametrize("crs", CRSS)
def test_a_bbox_far_from_belgium_selects_nothing(client, crs):
    assert matched_ids(client, ADDR, **bbox_param(crs, FAR[crs])) == set()


def test_a_bbox_around_the_south_pole_selects_nothing(client):
    assert matched_ids(client, ADDR, **bbox_param(CRS84, PAST_SOUTH_POLE)) == set()


def test_a_far_bbox_combines_with_other_filters(client):
    far = bbox_param(CRS84, TOKYO)
    assert matched_ids(client, ADDR, **far, PZNC="1060") == set()
    assert matched_ids(client, ADDR, **far, filter="PZNC = '1060'") == set()


@pytest.mark.parametrize("crs", CRSS)
def test_the_layer_as_it_was_with_a_world_bbox(client, addresses, crs):
    now = datetime.now(UTC).isoformat()
    assert matched_ids(client, ADDR, **bbox_param(crs, WORLD[crs]), datetime=now) == set(
        addresses.index
    )
    assert matched_ids(client, ADDR, **bbox_param(crs, FAR[crs]), datetime=now) == set()


@pytest.mark.parametrize(
    ("bbox", "crs", "words"),
    [
        ("170,-10,-170,10", CRS84, "antimeridian"),  # not supported: said so
        ("-10,170,10,-170", "EPSG:4326", "min <= max"),
        ("-181,-90,180,90", CRS84, "longitudes"),
        ("-180,-91,180,90", CRS84, "latitudes"),
    ],
)
def test_bboxes_that_are_not_bboxes_are_still_refused(client, bbox, crs, words):
    assert_problem(client.get(ADDR, params={"bbox": bbox, "bbox-crs": crs}), 400, words)


# -- CQL2 -------------------------------------------------------------------------------------


def cql_cases(addresses: gpd.GeoDataFrame, crs: str) -> list[tuple[str, str, dict, set[int]]]:
    """(name, cql2-text, cql2-json, expected ids) for the geometry literals in `crs`."""
    everything = set(addresses.index)
    box, inside = quadrant(addresses, crs)
    world, far = WORLD[crs], FAR[crs]
    geom = {"property": "geom"}

    def op(name: str, literal: dict) -> dict:
        return {"op": name, "args": [geom, literal]}

    def bbox_json(b: tuple[float, ...]) -> dict:
        return {"bbox": [*ordered(crs, b[0], b[1]), *ordered(crs, b[2], b[3])]}

    far_point = ordered(crs, (far[0] + far[2]) / 2, (far[1] + far[3]) / 2)
    mixed_wkt = (
        f"GEOMETRYCOLLECTION(POINT({far_point[0]!r} {far_point[1]!r}), "
        f"{polygon_wkt(crs, far)}, {polygon_wkt(crs, box)})"
    )
    mixed_json = {
        "type": "GeometryCollection",
        "geometries": [
            {"type": "Point", "coordinates": list(far_point)},
            polygon_json(crs, far),
            polygon_json(crs, box),
        ],
    }
    return [
        (
            "intersects world bbox",
            f"S_INTERSECTS(geom, {bbox_wkt(crs, world)})",
            op("s_intersects", bbox_json(world)),
            everything,
        ),
        (
            "intersects world polygon",
            f"S_INTERSECTS(geom, {polygon_wkt(crs, world)})",
            op("s_intersects", polygon_json(crs, world)),
            everything,
        ),
        (
            "intersects clockwise world polygon",
            f"S_INTERSECTS(geom, {polygon_wkt(crs, world, clockwise=True)})",
            op("s_intersects", polygon_json(crs, world, clockwise=True)),
            everything,
        ),
        (
            "within world polygon",
            f"S_WITHIN(geom, {polygon_wkt(crs, world)})",
            op("s_within", polygon_json(crs, world)),
            everything,
        ),
        (
            "disjoint from world polygon",
            f"S_DISJOINT(geom, {polygon_wkt(crs, world)})",
            op("s_disjoint", polygon_json(crs, world)),
            set(),
        ),
        (
            "intersects far bbox",
            f"S_INTERSECTS(geom, {bbox_wkt(crs, far)})",
            op("s_intersects", bbox_json(far)),
            set(),
        ),
        (
            "within far polygon",
            f"S_WITHIN(geom, {polygon_wkt(crs, far)})",
            op("s_within", polygon_json(crs, far)),
            set(),
        ),
        (
            "disjoint from far polygon",
            f"S_DISJOINT(geom, {polygon_wkt(crs, far)})",
            op("s_disjoint", polygon_json(crs, far)),
            everything,
        ),
        (
            "not intersecting far polygon",
            f"NOT S_INTERSECTS(geom, {polygon_wkt(crs, far)})",
            {"op": "not", "args": [op("s_intersects", polygon_json(crs, far))]},
            everything,
        ),
        (
            "intersects part bbox",
            f"S_INTERSECTS(geom, {bbox_wkt(crs, box)})",
            op("s_intersects", bbox_json(box)),
            inside,
        ),
        (
            "within part polygon",
            f"S_WITHIN(geom, {polygon_wkt(crs, box)})",
            op("s_within", polygon_json(crs, box)),
            inside,
        ),
        (
            "disjoint from part polygon",
            f"S_DISJOINT(geom, {polygon_wkt(crs, box)})",
            op("s_disjoint", polygon_json(crs, box)),
            everything - inside,
        ),
        (
            "intersects a collection near and far",
            f"S_INTERSECTS(geom, {mixed_wkt})",
            op("s_intersects", mixed_json),
            inside,
        ),
        (
            "or of far and part",
            f"S_INTERSECTS(geom, {polygon_wkt(crs, far)}) OR "
            f"S_INTERSECTS(geom, {polygon_wkt(crs, box)})",
            {
                "op": "or",
                "args": [
                    op("s_intersects", polygon_json(crs, far)),
                    op("s_intersects", polygon_json(crs, box)),
                ],
            },
            inside,
        ),
        # Two far literals meet each other: true for every feature, as it would be anywhere.
        (
            "far point in far bbox",
            f"S_INTERSECTS(POINT({far_point[0]!r} {far_point[1]!r}), {bbox_wkt(crs, far)})",
            {
                "op": "s_intersects",
                "args": [{"type": "Point", "coordinates": list(far_point)}, bbox_json(far)],
            },
            everything,
        ),
    ]


CQL_CASES = [
    "intersects world bbox",
    "intersects world polygon",
    "intersects clockwise world polygon",
    "within world polygon",
    "disjoint from world polygon",
    "intersects far bbox",
    "within far polygon",
    "disjoint from far polygon",
    "not intersecting far polygon",
    "intersects part bbox",
    "within part polygon",
    "disjoint from part polygon",
    "intersects a collection near and far",
    "or of far and part",
    "far point in far bbox",
]


@pytest.mark.parametrize("case", CQL_CASES)
@pytest.mark.parametrize("language", ["cql2-text", "cql2-json"])
@pytest.mark.parametrize("crs", CRSS)
def test_cql2_geometry_literals_are_cut_to_belgium(client, addresses, crs, language, case):
    cases = {name: rest for name, *rest in cql_cases(addresses, crs)}
    assert list(cases) == CQL_CASES
    text, document, expected = cases[case]
    raw = text if language == "cql2-text" else json.dumps(document)
    got = matched_ids(client, ADDR, **{"filter": raw, "filter-lang": language, "filter-crs": crs})
    assert got == expected


@pytest.mark.parametrize("crs", CRSS)
def test_cql2_and_bbox_of_the_world_together(client, addresses, crs):
    box, inside = quadrant(addresses, crs)
    got = matched_ids(
        client,
        ADDR,
        **bbox_param(crs, WORLD[crs]),
        filter=f"S_INTERSECTS(geom, {polygon_wkt(crs, box)})",
        **{"filter-crs": crs},
    )
    assert got == inside


def test_a_world_polygon_in_cql2_keeps_its_range_checks(client):
    bad = "S_INTERSECTS(geom, POLYGON((-181 -90, 180 -90, 180 90, -181 90, -181 -90)))"
    assert_problem(client.get(ADDR, params={"filter": bad}), 400, "out of range")
    across = "S_INTERSECTS(geom, BBOX(170, -10, -170, 10))"
    assert_problem(client.get(ADDR, params={"filter": across}), 400, "min <= max")


# -- tiles' filter ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def in_tile(addresses) -> set[int]:
    """The addresses in the buffered z15 tile around the sample (positions from pyproj)."""
    z, x, y = TILE_Z15
    span = 2 * MERCATOR_HALF / 2**z
    minx, maxy = -MERCATOR_HALF + x * span, MERCATOR_HALF - y * span
    margin = span * BUFFER / EXTENT
    found = {
        k
        for k, (px, py) in positions(addresses, "EPSG:3857").items()
        if minx - margin <= px <= minx + span + margin
        and maxy - span - margin <= py <= maxy + margin
    }
    assert 300 < len(found) < 666
    return found


def tile_ids(client: httpx.Client, **params: str) -> set[int]:
    z, x, y = TILE_Z15
    response = client.get(
        f"/collections/addresses/tiles/WebMercatorQuad/{z}/{x}/{y}", params=params
    )
    if response.status_code == 204:
        return set()
    assert response.status_code == 200, response.text
    layers = mapbox_vector_tile.decode(response.content)
    return {f["id"] for f in layers["addresses"]["features"]}


@pytest.mark.parametrize("crs", CRSS)
def test_tile_filters_with_world_part_and_far_geometries(client, addresses, in_tile, crs):
    box, inside = quadrant(addresses, crs)
    assert in_tile & inside and in_tile - inside
    for literal, expected in [
        (bbox_wkt(crs, WORLD[crs]), in_tile),
        (polygon_wkt(crs, WORLD[crs]), in_tile),
        (polygon_wkt(crs, box), in_tile & inside),
        (polygon_wkt(crs, FAR[crs]), set()),
    ]:
        got = tile_ids(client, filter=f"S_INTERSECTS(geom, {literal})", **{"filter-crs": crs})
        assert got == expected, literal
    disjoint = json.dumps(
        {"op": "s_disjoint", "args": [{"property": "geom"}, polygon_json(crs, WORLD[crs])]}
    )
    assert (
        tile_ids(client, filter=disjoint, **{"filter-lang": "cql2-json", "filter-crs": crs})
        == set()
    )


# -- POST /intersects -------------------------------------------------------------------------


def intersects(client: httpx.Client, collection: str, crs: str, body: dict, **params: str) -> dict:
    return collection_of(
        client.post(
            f"/collections/{collection}/intersects",
            params={"crs": crs, "limit": "1000", **params},
            json=body,
        )
    )


def collection_of(response: httpx.Response) -> dict:
    body = collection(response)
    assert body["numberMatched"] == body["numberReturned"]
    return body


@pytest.mark.parametrize("crs", CRSS)
def test_intersects_with_world_part_and_far_polygons(client, addresses, crs):
    box, inside = quadrant(addresses, crs)
    for body, expected in [
        (polygon_json(crs, WORLD[crs]), set(addresses.index)),
        (polygon_json(crs, WORLD[crs], clockwise=True), set(addresses.index)),
        (polygon_json(crs, box), inside),
        (polygon_json(crs, FAR[crs]), set()),
        (
            {"type": "MultiPolygon", "coordinates": [[ring(crs, FAR[crs])], [ring(crs, box)]]},
            inside,
        ),
    ]:
        found = intersects(client, "addresses", crs, body)
        assert {f["id"] for f in found["features"]} == expected, body


def test_a_world_polygon_measures_each_municipality_whole(client, tmp_path):
    municipalities = legacy_municipalities(tmp_path)
    areas = {
        str(k): g.area
        for k, g in zip(municipalities["NAT_CODE"], municipalities.geometry, strict=True)
    }
    for crs in CRSS:
        found = intersects(
            client, "municipalities", crs, polygon_json(crs, WORLD[crs]), measure="true"
        )
        got = {f["id"]: f["properties"]["intersection_area"] for f in found["features"]}
        assert got == pytest.approx(areas, abs=0.01), crs


def test_a_far_polygon_with_measure_still_says_points_have_no_area(client):
    response = client.post(
        "/collections/addresses/intersects",
        params={"measure": "true"},
        json=polygon_json(CRS84, TOKYO),
    )
    assert_problem(response, 400, "points")


# -- points: /within, /lookup, /nearest -------------------------------------------------------

FAR_POINTS = {
    CRS84: [(139.69, 35.69), (0.0, -90.0), (-180.0, 0.0)],
    "EPSG:4326": [(35.69, 139.69), (-90.0, 0.0)],
    "EPSG:3857": [(15_550_000.0, 4_257_000.0), (-20_000_000.0, -20_000_000.0)],
    "EPSG:31370": [(-1e6, -1e6), (1e7, 1e7)],
}  # as x, y in the CRS's axis order


@pytest.mark.parametrize("crs", CRSS)
def test_far_points_find_nothing(client, crs):
    for x, y in FAR_POINTS[crs]:
        point = {"x": repr(x), "y": repr(y), "crs": crs}
        within = collection(
            client.get("/collections/addresses/within", params={**point, "distance": "10000"})
        )
        assert within["features"] == [] and within["numberMatched"] == 0
        nearest = collection(
            client.get("/collections/addresses/nearest", params={**point, "k": "5"})
        )
        assert nearest["features"] == []
        lookup = client.get("/lookup", params=point)
        assert lookup.status_code == 200, lookup.text
        results = lookup.json()["results"]
        assert set(results) >= {"addresses", "municipalities"}
        assert all(found == [] for found in results.values())


def test_a_point_on_the_edge_of_belgiums_area_is_inside(client, addresses):
    # EPSG:31370's area of use is 2.5-6.4 E, 49.5-51.51 N; its edge belongs to it.
    to_lambert = pyproj.Transformer.from_crs("OGC:CRS84", 31370, always_xy=True)
    corner = shapely.Point(to_lambert.transform(2.5, 49.5))
    distances = addresses.distance(corner)
    nearest = collection(
        client.get("/collections/addresses/nearest", params={"x": "2.5", "y": "49.5"})
    )
    (feature,) = nearest["features"]
    assert feature["id"] == int(distances.idxmin())
    assert feature["properties"]["distance"] == pytest.approx(distances.min(), abs=0.01)
    assert 150_000 < distances.min() < 250_000  # from the far corner to Brussels
    outside = collection(
        client.get("/collections/addresses/nearest", params={"x": repr(2.5 - 1e-9), "y": "49.5"})
    )
    assert outside["features"] == []
