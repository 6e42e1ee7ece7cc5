"""Vector tiles over HTTP: decoded (mapbox-vector-tile) and checked against PostGIS."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import mapbox_vector_tile
import psycopg
import pytest
import shapely.geometry
from pyproj import Transformer

from tests.api.conftest import (
    assert_problem,
    lambert_bounds,
    lambert_span,
    lambert_tile,
    sync_file_layer,
)
from tests.support.layers import file_layer, geojson_feature, point

pytestmark = pytest.mark.api

MVT = "application/vnd.mapbox-vector-tile"
EXTENT, BUFFER = 4096, 64
MERCATOR_HALF = 20037508.3427892
URBIS_WMTS_RESOLUTIONS = [
    1112.61305859375,
    556.306529296875,
    278.1532646484375,
    139.07663232421876,
    69.53831616210938,
    34.76915808105469,
    17.384579040527345,
    8.692289520263673,
    4.346144760131836,
    2.173072380065918,
    1.086536190032959,
    0.5432680950164795,
    0.2716340475082398,
    0.1358170237541199,
    0.06790851187705994,
    0.03395425593852997,
]
# Saint-Gilles, around the Barrière (the sample addresses) at zoom 15, and a tile far away
SAINT_GILLES_Z15 = (15, 16779, 10994)


def mercator_tile(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def mercator_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    span = 2 * MERCATOR_HALF / 2**z
    minx = -MERCATOR_HALF + x * span
    maxy = MERCATOR_HALF - y * span
    return minx, maxy - span, minx + span, maxy


def decode(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MVT
    return mapbox_vector_tile.decode(response.content)


def rows(database_url: str, query: str, *params) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, params).fetchall()


def expected_points(
    database_url: str, srid: int, bounds: tuple[float, float, float, float]
) -> dict[int, tuple[float, float]]:
    """Addresses PostGIS puts in the buffered tile, with their position in the tile's CRS."""
    minx, miny, maxx, maxy = bounds
    margin = (maxx - minx) * BUFFER / EXTENT
    found = rows(
        database_url,
        f"""
        SELECT "ID", ST_X(g), ST_Y(g) FROM (
            SELECT "ID", ST_Transform(geom, {srid}) g FROM urbis.addresses) a
        WHERE ST_Intersects(g, ST_MakeEnvelope(%s, %s, %s, %s, {srid}))""",
        minx - margin,
        miny - margin,
        maxx + margin,
        maxy + margin,
    )
    return {int(key): (x, y) for key, x, y in found}


def tile_position(feature: dict, bounds: tuple[float, float, float, float]) -> tuple[float, float]:
    """A decoded point back in the tile's CRS (the decoder's y runs up from the bottom)."""
    px, py = feature["geometry"]["coordinates"]
    minx, miny, maxx, maxy = bounds
    return minx + px / EXTENT * (maxx - minx), miny + py / EXTENT * (maxy - miny)


@pytest.fixture(scope="module")
def database(synced_database_url: str) -> str:
    return synced_database_url


def test_a_tile_holds_exactly_the_features_postgis_finds_with_ids_properties_positions(
    client, database
):
    z, x, y = SAINT_GILLES_Z15
    tile = decode(client.get(f"/collections/addresses/tiles/WebMercatorQuad/{z}/{x}/{y}"))
    assert set(tile) == {"addresses"} and tile["addresses"]["extent"] == EXTENT
    features = tile["addresses"]["features"]
    bounds = mercator_bounds(z, x, y)
    expected = expected_points(database, 3857, bounds)
    assert len(expected) > 300
    assert {f["id"] for f in features} == set(expected)  # the integer key is the MVT id
    unit = (bounds[2] - bounds[0]) / EXTENT
    stored = {
        r[0]: r
        for r in rows(database, 'SELECT "ID", "ADRN", "PW_NAME_FR", "ANGLE" FROM urbis.addresses')
    }
    for feature in features:
        ex, ey = expected[feature["id"]]
        tx, ty = tile_position(feature, bounds)
        assert abs(tx - ex) <= unit and abs(ty - ey) <= unit  # within one tile unit (0.3 m)
        _, adrn, street, angle = stored[feature["id"]]
        props = feature["properties"]  # MVT has no null: a null value is an absent property
        assert (props["ID"], props.get("ADRN"), props.get("PW_NAME_FR")) == (
            feature["id"],
            adrn,
            street,
        )
        assert props.get("ANGLE") == pytest.approx(angle)


def test_polygons_carry_a_hashed_id_for_text_keys_and_the_key_itself(client, database):
    z, x, y = mercator_tile(4.352, 50.846, 11)
    tile = decode(client.get(f"/collections/municipalities/tiles/WebMercatorQuad/{z}/{x}/{y}"))
    features = tile["municipalities"]["features"]
    minx, miny, maxx, maxy = mercator_bounds(z, x, y)
    margin = (maxx - minx) * BUFFER / EXTENT
    expected = dict(
        rows(
            database,
            """
        SELECT "NAT_CODE", abs(hashtextextended("NAT_CODE"::text, 0))
        FROM urbis.municipalities
        WHERE ST_Transform(geom, 3857) && ST_MakeEnvelope(%s, %s, %s, %s, 3857)""",
            minx - margin,
            miny - margin,
            maxx + margin,
            maxy + margin,
        )
    )
    assert len(expected) >= 10
    assert {f["properties"]["NAT_CODE"]: f["id"] for f in features} == expected
    assert all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in features)


def test_belgian_lambert_72_tiles_need_no_reprojection(client, database):
    # the tile of BelgianLambert72 zoom 13 holding the Barrière de Saint-Gilles (148384, 169116)
    z = 13
    span = lambert_span(z)
    x, y = lambert_tile(z, 148384, 169116)
    tile = decode(client.get(f"/collections/addresses/tiles/BelgianLambert72/{z}/{x}/{y}"))
    bounds = lambert_bounds(z, x, y)
    expected = expected_points(database, 31370, bounds)
    features = tile["addresses"]["features"]
    assert {f["id"] for f in features} == set(expected) and expected
    unit = span / EXTENT
    for feature in features:
        tx, ty = tile_position(feature, bounds)
        ex, ey = expected[feature["id"]]
        assert abs(tx - ex) <= unit and abs(ty - ey) <= unit


def test_dataset_tiles_put_several_layers_in_one_tile(client):
    z, x, y = SAINT_GILLES_Z15
    both = decode(
        client.get(
            f"/tiles/WebMercatorQuad/{z}/{x}/{y}",
            params={"collections": "municipalities,addresses"},
        )
    )
    alone = decode(client.get(f"/collections/addresses/tiles/WebMercatorQuad/{z}/{x}/{y}"))
    assert list(both) == ["municipalities", "municipalities_labels", "addresses"]
    # the same features (their order is free: a tile drawn under its size estimate comes in
    # priority order)
    assert sorted(both["addresses"]["features"], key=lambda f: f["id"]) == sorted(
        alone["addresses"]["features"], key=lambda f: f["id"]
    )


def test_each_polygon_has_one_label_point_in_the_one_tile_it_falls_in(client, database):
    z = 12
    columns, rows_ = range(2093, 2100), range(1369, 1377)  # the whole Region at zoom 12
    labels: dict[str, list] = {}
    for x in columns:
        for y in rows_:
            response = client.get(f"/collections/municipalities/tiles/WebMercatorQuad/{z}/{x}/{y}")
            if response.status_code == 204:
                continue
            for f in decode(response).get("municipalities_labels", {}).get("features", []):
                labels.setdefault(f["properties"]["NAT_CODE"], []).append((x, y, f))
    assert len(labels) == 19 and all(len(v) == 1 for v in labels.values())
    points = dict(
        rows(
            database,
            """
        SELECT "NAT_CODE", ST_AsText(ST_Transform(ST_PointOnSurface(geom), 3857))
        FROM urbis.municipalities""",
        )
    )
    for code, [(x, y, feature)] in labels.items():
        px, py = tile_position(feature, mercator_bounds(z, x, y))
        ex, ey = map(float, points[code][6:-1].split())
        unit = 2 * MERCATOR_HALF / 2**z / EXTENT
        assert abs(px - ex) <= unit and abs(py - ey) <= unit
        assert set(feature["properties"]) == {"NAT_CODE", "NAME_FRE", "NAME_DUT"}


def test_properties_and_cql2_filter_on_tiles(client, database):
    z, x, y = SAINT_GILLES_Z15
    path = f"/collections/addresses/tiles/WebMercatorQuad/{z}/{x}/{y}"
    slim = decode(client.get(path, params={"properties": "ADRN"}))["addresses"]["features"]
    assert {tuple(sorted(f["properties"])) for f in slim} == {("ADRN", "ID")}  # key kept
    filtered = decode(client.get(path, params={"filter": "PW_NAME_FR = 'Rue de la Victoire'"}))
    bounds = mercator_bounds(z, x, y)
    inside = expected_points(database, 3857, bounds)
    victoire = {
        r[0]
        for r in rows(
            database,
            'SELECT "ID" FROM urbis.addresses '
            """WHERE "PW_NAME_FR" = 'Rue de la Victoire'""",
        )
    }
    assert {f["id"] for f in filtered["addresses"]["features"]} == set(inside) & victoire
    assert victoire & set(inside)


def test_empty_tiles_are_204_and_outside_the_matrix_is_404(client):
    empty = client.get("/collections/addresses/tiles/WebMercatorQuad/15/1/1")
    assert empty.status_code == 204 and empty.content == b"" and "etag" in empty.headers
    assert_problem(
        client.get("/collections/addresses/tiles/WebMercatorQuad/15/32768/0"),
        404,
        "columns run 0-32767",
    )
    assert_problem(
        client.get("/collections/addresses/tiles/WebMercatorQuad/25/0/0"), 404, "zoom 25"
    )
    assert_problem(client.get("/collections/addresses/tiles/Mars/1/0/0"), 404, "Mars")
    assert_problem(
        client.get("/collections/nowhere/tiles/WebMercatorQuad/15/16779/10994"), 404, "nowhere"
    )
    bad = client.get(
        "/collections/addresses/tiles/WebMercatorQuad/15/16779/10994", params={"properties": "NOPE"}
    )
    assert_problem(bad, 400, "NOPE")
    assert "cache-control" not in bad.headers  # caching headers only on successes
    assert_problem(
        client.get(
            "/collections/addresses/tiles/WebMercatorQuad/15/16779/10994",
            params={"filter": "ADRN ="},
        ),
        400,
        "filter",
    )


def test_etag_304_cache_hits_and_cors(client):
    path = "/collections/municipalities/tiles/WebMercatorQuad/{}/{}/{}".format(
        *mercator_tile(4.352, 50.846, 12)
    )
    first = client.get(path, headers={"Origin": "https://apps.example.brussels"})
    again = client.get(path)
    assert first.status_code == again.status_code == 200
    assert again.headers["x-tile-cache"] == "hit" and again.content == first.content
    assert first.headers["access-control-allow-origin"] == "*"
    assert "etag" in first.headers["access-control-expose-headers"].lower()
    assert first.headers["cache-control"] == "public, max-age=0, must-revalidate"
    etag = first.headers["etag"]
    not_modified = client.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200


def test_concurrent_requests_for_a_tile_not_cached_draw_it_once(api, client):
    path = "/collections/municipalities/tiles/WebMercatorQuad/{}/{}/{}".format(
        *mercator_tile(4.40, 50.82, 14)
    )
    params = {"properties": "NAT_CODE"}  # a variant no other test asks for: not cached yet
    before = client.get("/healthz").json()["tile_cache"]

    def ask(_: int) -> httpx.Response:
        with httpx.Client(base_url=api, timeout=30) as own:
            return own.get(path, params=params)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(8)))
    after = client.get("/healthz").json()["tile_cache"]
    assert all(a.status_code == 200 for a in answers)
    assert len({a.content for a in answers}) == 1
    assert after["misses"] - before["misses"] == 1  # drawn once, for all eight
    assert sorted(a.headers["x-tile-cache"] for a in answers).count("miss") == 1


def test_tile_matrix_sets_tilesets_and_tilejson(client):
    sets = client.get("/tileMatrixSets").json()["tileMatrixSets"]
    assert {s["id"] for s in sets} == {"WebMercatorQuad", "BelgianLambert72"}
    mercator = client.get("/tileMatrixSets/WebMercatorQuad").json()
    assert mercator["crs"].endswith("3857") and mercator["tileMatrices"][0]["matrixWidth"] == 1
    assert mercator["tileMatrices"][0]["scaleDenominator"] == pytest.approx(559082264.0287178)
    lambert = client.get("/tileMatrixSets/BelgianLambert72").json()
    # URBIS' WMTS matrices EPSG:31370:0 to :15, tile for tile (resolutions as CIRB's map code
    # gives them), then halving on
    assert [m["cellSize"] for m in lambert["tileMatrices"][:16]] == pytest.approx(
        URBIS_WMTS_RESOLUTIONS, rel=1e-12
    )
    assert all(
        m["pointOfOrigin"] == [16478.795, 304073.871]
        and m["tileWidth"] == 256
        and m["matrixWidth"] == 2**z
        for z, m in enumerate(lambert["tileMatrices"])
    )
    assert lambert["tileMatrices"][16]["cellSize"] == URBIS_WMTS_RESOLUTIONS[15] / 2
    tilesets = client.get("/collections/addresses/tiles").json()["tilesets"]
    assert len(tilesets) == 2
    tileset = client.get("/collections/addresses/tiles/WebMercatorQuad").json()
    template = next(lk for lk in tileset["links"] if lk["rel"] == "item")["href"]
    assert template.endswith(
        "/collections/addresses/tiles/WebMercatorQuad/{tileMatrix}/{tileCol}/{tileRow}"
    )
    z15 = next(lim for lim in tileset["tileMatrixSetLimits"] if lim["tileMatrix"] == "15")
    assert z15["minTileCol"] <= SAINT_GILLES_Z15[1] <= z15["maxTileCol"]
    assert z15["minTileRow"] <= SAINT_GILLES_Z15[2] <= z15["maxTileRow"]
    tilejson = client.get(
        "/tiles/WebMercatorQuad/tilejson.json", params={"collections": "municipalities,addresses"}
    ).json()
    assert tilejson["tilejson"] == "3.0.0" and "UrbIS" in tilejson["attribution"]
    assert [v["id"] for v in tilejson["vector_layers"]] == [
        "municipalities",
        "municipalities_labels",
        "addresses",
    ]
    assert tilejson["tiles"][0].endswith(
        "/tiles/WebMercatorQuad/{z}/{x}/{y}?collections=municipalities,addresses"
    )
    west, south, east, north = tilejson["bounds"]
    assert 4.2 < west < east < 4.5 and 50.7 < south < north < 50.95
    assert_problem(client.get("/tiles/BelgianLambert72/tilejson.json"), 400, "WebMercatorQuad")


@pytest.fixture(scope="module")
def points_layer(api: str, synced_database_url: str, tmp_path_factory) -> Iterator[Path]:
    """A small point layer the test rewrites and syncs: near the Barrière, and in Uccle."""
    folder = tmp_path_factory.mktemp("moving")
    yield folder


def _square(x: float, y: float, side: float) -> list[list[float]]:
    return [[x, y], [x + side, y], [x + side, y + side], [x, y + side], [x, y]]


def _write_points(folder: Path, points: dict[str, tuple[float, float]], **tiles) -> Path:
    features = (
        geojson_feature({"PID": key, "NAME": f"point {key}"}, point(*xy))
        for key, xy in points.items()
    )
    return file_layer(folder, "moving", "PID", features, tiles)


def _sync(client: httpx.Client, database_url: str, config: Path) -> None:
    """Sync, then wait until the API has applied the change notification to its tile cache."""
    seen = client.get("/healthz").json()["tile_cache"]["changes"]
    sync_file_layer(database_url, config, "moving")
    deadline = time.monotonic() + 20
    while client.get("/healthz").json()["tile_cache"]["changes"] == seen:
        assert time.monotonic() < deadline, "the API did not see the sync's notification"
        time.sleep(0.05)


def test_a_sync_drops_only_the_tiles_it_changed(client, points_layer, synced_database_url):
    barriere, uccle = (148384.0, 169116.0), (148000.0, 163000.0)
    _sync(client, synced_database_url, _write_points(points_layer, {"a": barriere, "b": uccle}))
    changed = "/collections/moving/tiles/BelgianLambert72/10/{}/{}"
    span = lambert_span(10)  # 278 m: the move below stays in its tile
    near = changed.format(*lambert_tile(10, *barriere))
    far = changed.format(*lambert_tile(10, *uccle))
    # the same tile of every layer together (the dataset tile without `collections`)
    every = near.replace("/collections/moving/tiles/", "/tiles/")
    before = {path: client.get(path) for path in (near, far, every)}
    assert all(r.status_code == 200 for r in before.values())
    assert client.get(far).headers["x-tile-cache"] == "hit"
    assert client.get(near).headers["x-tile-cache"] == "hit"

    moved = (barriere[0] + 30, barriere[1] + 20)  # point a moves by 36 m, within its tile
    _sync(client, synced_database_url, _write_points(points_layer, {"a": moved, "b": uccle}))
    after = client.get(near)
    assert after.headers["x-tile-cache"] == "miss"
    assert after.content != before[near].content
    assert after.headers["etag"] != before[near].headers["etag"]
    (feature,) = mapbox_vector_tile.decode(after.content)["moving"]["features"]
    bounds = lambert_bounds(10, *map(int, near.rsplit("/", 2)[1:]))
    x, y = tile_position(feature, bounds)
    assert abs(x - moved[0]) < span / EXTENT and abs(y - moved[1]) < span / EXTENT
    untouched = client.get(far)
    assert untouched.headers["x-tile-cache"] == "hit"  # far from the change: still cached
    assert untouched.content == before[far].content
    redrawn = client.get(every)
    assert redrawn.headers["x-tile-cache"] == "miss" and redrawn.content != before[every].content
    (feature,) = mapbox_vector_tile.decode(redrawn.content)["moving"]["features"]
    x, y = tile_position(feature, bounds)
    assert abs(x - moved[0]) < span / EXTENT and abs(y - moved[1]) < span / EXTENT


def test_a_size_cap_keeps_the_features_of_highest_priority(
    client, points_layer, synced_database_url
):
    # 300 points in 76 m x 56 m, all inside one BelgianLambert72 zoom-9 tile (556 m)
    points = {f"p{i:03d}": (148100.0 + i % 20 * 4, 169000.0 + i // 20 * 4) for i in range(300)}
    _sync(
        client,
        synced_database_url,
        _write_points(points_layer, points, max_bytes=2000, priority="-PID"),
    )
    path = "/collections/moving/tiles/BelgianLambert72/9/{}/{}".format(
        *lambert_tile(9, 148100, 169000)
    )
    response = client.get(path)
    assert response.headers["x-tile-cache"] == "miss"
    assert len(response.content) <= 2000
    kept = sorted(
        f["properties"]["PID"]
        for f in mapbox_vector_tile.decode(response.content)["moving"]["features"]
    )
    assert 10 < len(kept) < 300
    assert kept == sorted(points)[-len(kept) :]  # the highest PIDs, as `priority: -PID` asks


def test_tiles_are_linked_from_the_landing_page_and_each_collection(client):
    landing = {lk["rel"]: lk["href"] for lk in client.get("/").json()["links"]}
    assert landing["http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"].endswith("/tiles")
    assert landing["http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"].endswith(
        "/tileMatrixSets"
    )
    collection = client.get("/collections/addresses").json()
    tiles = [
        lk
        for lk in collection["links"]
        if lk["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
    ]
    assert [lk["href"].rsplit("/", 2)[-2:] for lk in tiles] == [["addresses", "tiles"]]
    assert client.get(tiles[0]["href"]).status_code == 200
    conforms = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt" in conforms


def test_small_polygons_merge_into_squares_of_their_area_when_asked(
    client, synced_database_url, tmp_path
):
    # 100 buildings of 4 m x 4 m, 6 m apart, inside one zoom-11 tile (139 m), and one of
    # 200 m x 200 m beside them
    minx, _, _, maxy = lambert_bounds(11, *lambert_tile(11, 148100.0, 169000.0))
    x0, y0 = minx + 20, maxy - 80
    small = {f"s{i:03d}": (x0 + i % 10 * 6, y0 + i // 10 * 6, 4.0) for i in range(100)}
    squares = {**small, "big": (x0 + 300, y0, 200.0)}
    features = (
        geojson_feature({"BID": key}, {"type": "Polygon", "coordinates": [_square(x, y, side)]})
        for key, (x, y, side) in squares.items()
    )
    config = file_layer(tmp_path, "blocks", "BID", features, {"small": "merge"})
    sync_file_layer(synced_database_url, config, "blocks")

    # zoom 7: 8.7 m pixels, so the 4 m buildings are under half a pixel
    z = 7
    assert lambert_tile(z, x0, y0) == lambert_tile(z, x0 + 500, y0 + 200)  # all in one tile
    path = "/collections/blocks/tiles/BelgianLambert72/{}/{}/{}".format(z, *lambert_tile(z, x0, y0))
    features = decode(client.get(path))["blocks"]["features"]
    kept = [f for f in features if "merged" not in f["properties"]]
    merged = [f for f in features if "merged" in f["properties"]]
    assert [f["properties"]["BID"] for f in kept] == ["big"]
    assert sum(f["properties"]["merged"] for f in merged) == 100
    assert 1 < len(merged) < 100  # gathered per pixel, not all in one nor one each
    # no id (the decoder says 0 for an absent one) and no property but `merged`
    assert all(not f.get("id") and set(f["properties"]) == {"merged"} for f in merged)
    unit = lambert_span(z) / EXTENT
    area = sum(shapely.geometry.shape(f["geometry"]).area for f in merged) * unit**2
    assert area == pytest.approx(100 * 4.0**2, rel=0.3)  # their summed area, to the grid
    # zoom 11: 54 cm pixels, every building drawn as itself
    z = 11
    path = "/collections/blocks/tiles/BelgianLambert72/{}/{}/{}".format(z, *lambert_tile(z, x0, y0))
    features = decode(client.get(path))["blocks"]["features"]
    assert len(features) == 100 and not any("merged" in f["properties"] for f in features)
    # the same in Web Mercator (zoom 13: 12 m on the ground a pixel)
    lon, lat = Transformer.from_crs(31370, 4326, always_xy=True).transform(x0 + 30, y0 + 30)
    features = decode(
        client.get(
            "/collections/blocks/tiles/WebMercatorQuad/{}/{}/{}".format(
                *mercator_tile(lon, lat, 13)
            )
        )
    )["blocks"]["features"]
    assert sum(f["properties"].get("merged", 0) for f in features) == 100
    tilejson = client.get("/collections/blocks/tiles/WebMercatorQuad/tilejson.json").json()
    assert tilejson["vector_layers"][0]["fields"]["merged"] == "Integer"
