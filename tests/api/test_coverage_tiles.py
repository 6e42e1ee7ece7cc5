"""Raster tiles of the coverages, against rasterio's own WarpedVRT read of the source files.

The reference is computed here from the source GeoTIFFs the sync was given (not its COGs), on a
tile grid computed here too (Web Mercator from the sphere's size, Lambert 72 from CIRB's
numbers in tests.api.conftest), never from the service's modules.

The tests that re-sync `terrain` come last: they change the module's server for the rest.
"""

from __future__ import annotations

import io
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import rasterio
from PIL import Image
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_bounds
from rasterio.vrt import WarpedVRT

from tests.api.conftest import (
    CoverageSources,
    assert_problem,
    lambert_bounds,
    lambert_tile,
    server_log,
    start_server,
)
from tests.support import rasters
from urbis_core.config import load_config
from urbis_core.db import create_sync_engine
from urbis_core.settings import SyncSettings
from urbis_sync.run import RunReport, sync_layer

HALF = math.pi * 6378137.0  # half the equator, Web Mercator metres
SIZE = 256
ATTRIBUTION = "Brussels UrbIS®© - Distribution & Copyright CIRB / Paradigm"
LAKE = (150_100.0, 170_400.0)  # Lambert 72 centre of the terrain's nodata lake
TO_MERCATOR = Transformer.from_crs(31370, 3857, always_xy=True)
TO_LONLAT = Transformer.from_crs(31370, 4326, always_xy=True)


def mercator_tile(z: int, x: float, y: float) -> tuple[int, int]:
    """The WebMercatorQuad column and row holding a Lambert 72 point."""
    mx, my = TO_MERCATOR.transform(x, y)
    span = 2 * HALF / 2**z
    return int((mx + HALF) // span), int((HALF - my) // span)


def mercator_bounds(z: int, col: int, row: int) -> tuple[float, float, float, float]:
    span = 2 * HALF / 2**z
    minx, maxy = -HALF + col * span, HALF - row * span
    return minx, maxy - span, minx + span, maxy


GRIDS = {
    "WebMercatorQuad": (3857, mercator_tile, mercator_bounds, 15),
    "BelgianLambert72": (31370, lambert_tile, lambert_bounds, 8),
}


def reference(
    source: str, tms: str, z: int, col: int, row: int, resampling: str = "bilinear"
) -> np.ma.MaskedArray:
    """rasterio's own read of the source over the tile: every band, masked where nodata."""
    srid, _, bounds, _ = GRIDS[tms]
    with (
        rasterio.open(source) as src,
        WarpedVRT(
            src,
            crs=CRS.from_epsg(srid),
            transform=from_bounds(*bounds(z, col, row), SIZE, SIZE),
            width=SIZE,
            height=SIZE,
            resampling=Resampling[resampling],
        ) as vrt,
    ):
        return vrt.read(masked=True)


def tile_at(tms: str, z: int, x: float, y: float) -> tuple[int, int]:
    return GRIDS[tms][1](z, x, y)


def rgba(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (SIZE, SIZE)
    return np.asarray(image.convert("RGBA"))


def ramp_colours(values: np.ndarray, low: float, high: float, stops: list) -> np.ndarray:
    """The colour each value takes on a ramp given as [[position, "#rrggbb"], ...]."""
    where = np.array([s[0] for s in stops])
    colours = np.array([[int(s[1][i : i + 2], 16) for i in (1, 3, 5)] for s in stops], float)
    t = np.clip((values - low) / (high - low), 0, 1)
    return np.stack([np.interp(t, where, colours[:, i]) for i in range(3)], axis=-1)


def terrain_stops() -> list:
    """The terrain ramp as the API documents it (tiles.raster_style.ramp_stops)."""
    from tiles.raster_style import ramp_stops

    return [list(s) for s in ramp_stops("terrain")]


# -- pictures and values against the reference -------------------------------------------------


@pytest.mark.parametrize("tms", list(GRIDS))
def test_a_terrain_tile_shows_the_sources_values_through_the_ramp(
    coverage_client: httpx.Client, coverage_sources: CoverageSources, tms: str
):
    z = GRIDS[tms][3]
    col, row = tile_at(tms, z, *LAKE)
    response = coverage_client.get(
        f"/coverages/terrain/tiles/{tms}/{z}/{col}/{row}.png",
        params={"colormap": "terrain", "rescale": "10,90", "hillshade": "false"},
    )
    assert response.headers["content-type"] == "image/png"
    picture = rgba(response)
    expected = reference(str(coverage_sources.terrain), tms, z, col, row)[0]
    valid = ~np.ma.getmaskarray(expected)
    assert 0.05 < valid.mean() < 1  # the lake (nodata) is in the tile, and so is terrain
    # nodata and outside: transparent; elsewhere opaque
    assert np.array_equal(picture[..., 3] == 255, valid)
    assert (picture[..., 3][~valid] == 0).all()
    colours = ramp_colours(expected.filled(0).astype(float), 10, 90, terrain_stops())
    difference = np.abs(picture[..., :3].astype(float) - colours)[valid]
    assert difference.max() <= 1.0


@pytest.mark.parametrize("tms", list(GRIDS))
def test_a_tif_tile_holds_the_sources_values(
    coverage_client: httpx.Client, coverage_sources: CoverageSources, tms: str
):
    z = GRIDS[tms][3]
    col, row = tile_at(tms, z, *LAKE)
    response = coverage_client.get(f"/coverages/terrain/tiles/{tms}/{z}/{col}/{row}.tif")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/tiff")
    expected = reference(str(coverage_sources.terrain), tms, z, col, row)
    with rasterio.MemoryFile(response.content) as memory, memory.open() as tile:
        assert tile.crs == CRS.from_epsg(GRIDS[tms][0])
        assert np.allclose(tuple(tile.bounds), GRIDS[tms][2](z, col, row), atol=1e-6)
        assert tile.nodata == rasters.TERRAIN_NODATA
        values = tile.read(masked=True)
    assert np.array_equal(np.ma.getmaskarray(values), np.ma.getmaskarray(expected))
    valid = ~np.ma.getmaskarray(expected)
    assert np.allclose(values.data[valid], expected.data[valid], atol=1e-3)


@pytest.mark.parametrize("tms", list(GRIDS))
def test_the_reprojected_terrain_agrees_with_its_lambert_2008_source(
    coverage_client: httpx.Client, coverage_sources: CoverageSources, tms: str
):
    """terrain_l08 was warped to Lambert 72 by the sync, then to the tile: close, not equal."""
    z = GRIDS[tms][3]
    col, row = tile_at(tms, z, 149_600.0, 170_100.0)
    response = coverage_client.get(f"/coverages/terrain_l08/tiles/{tms}/{z}/{col}/{row}.tif")
    expected = reference(str(coverage_sources.terrain_l08), tms, z, col, row)[0]
    with rasterio.MemoryFile(response.content) as memory, memory.open() as tile:
        values = tile.read(1, masked=True)
    both = ~np.ma.getmaskarray(values) & ~np.ma.getmaskarray(expected)
    disagree = np.ma.getmaskarray(values) != np.ma.getmaskarray(expected)
    assert both.mean() > 0.5 and disagree.mean() < 0.02
    # terrain slopes stay under 0.1 m per metre: two resamplings move a value by centimetres
    error = np.abs(values.data[both] - expected.data[both])
    assert np.percentile(error, 99) < 0.3 and error.max() < 1.0


@pytest.mark.parametrize("tms", list(GRIDS))
@pytest.mark.parametrize("ext", ["png", "webp"])
def test_imagery_keeps_its_colours_and_its_unflown_corner_is_transparent(
    coverage_client: httpx.Client, coverage_sources: CoverageSources, tms: str, ext: str
):
    # the top-left corner of the image: its 40 x 40 pixels of nodata, and the image beside
    corner = (rasters.ORIGIN[0] + 150.0, rasters.ORIGIN[1] - 150.0)
    z = GRIDS[tms][3]
    col, row = tile_at(tms, z, *corner)
    response = coverage_client.get(f"/coverages/imagery/tiles/{tms}/{z}/{col}/{row}.{ext}")
    assert response.headers["content-type"] == f"image/{ext}"
    picture = rgba(response)
    expected = reference(str(coverage_sources.imagery), tms, z, col, row)
    valid = ~np.ma.getmaskarray(expected).any(axis=0)
    assert 0.1 < valid.mean() < 0.9
    assert np.array_equal(picture[..., 3] == 255, valid)
    assert (picture[~valid] == 0).all()  # transparent pixels hold nothing
    difference = np.abs(picture[..., :3].astype(int) - np.moveaxis(expected.data, 0, -1))
    assert difference[valid].max() <= 1


def test_hillshade_darkens_the_ramp_and_is_the_layers_default(
    coverage_client: httpx.Client, coverage_sources: CoverageSources
):
    z = 15
    col, row = tile_at("WebMercatorQuad", z, 149_800.0, 170_000.0)
    path = f"/coverages/terrain/tiles/WebMercatorQuad/{z}/{col}/{row}.png"
    flat = rgba(coverage_client.get(path, params={"hillshade": "false"}))
    default = rgba(coverage_client.get(path))  # the layer's style says hillshade: true
    shaded = rgba(coverage_client.get(path, params={"hillshade": "true"}))
    assert np.array_equal(default, shaded)
    opaque = flat[..., 3] == 255
    assert (shaded[..., :3][opaque] <= flat[..., :3][opaque]).all()  # shade only darkens
    assert (shaded[..., :3][opaque] < flat[..., :3][opaque]).any()


def test_a_tile_away_from_the_raster_is_204_empty(coverage_client: httpx.Client):
    # over the sample's buildings, 7 km west of the rasters
    for tms in GRIDS:
        z = GRIDS[tms][3]
        col, row = tile_at(tms, z, 141_500.0, 167_000.0)
        for ext in ("png", "webp", "tif"):
            response = coverage_client.get(f"/coverages/terrain/tiles/{tms}/{z}/{col}/{row}.{ext}")
            assert response.status_code == 204 and response.content == b""
            assert response.headers["etag"]


# -- caching ------------------------------------------------------------------------------------


def test_a_second_request_is_a_cache_hit_and_an_etag_gives_304(coverage_client: httpx.Client):
    col, row = tile_at("BelgianLambert72", 7, *LAKE)
    path = f"/coverages/terrain/tiles/BelgianLambert72/7/{col}/{row}.webp"
    first = coverage_client.get(path, params={"colormap": "viridis"})
    second = coverage_client.get(path, params={"colormap": "viridis"})
    assert first.headers["x-tile-cache"] == "miss" and second.headers["x-tile-cache"] == "hit"
    assert first.content == second.content and first.headers["etag"] == second.headers["etag"]
    assert first.headers["cache-control"].startswith("public, max-age=")
    other = coverage_client.get(path, params={"colormap": "greys"})
    assert other.headers["x-tile-cache"] == "miss" and other.content != first.content
    assert other.headers["etag"] != first.headers["etag"]
    again = coverage_client.get(
        path, params={"colormap": "viridis"}, headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    stale = coverage_client.get(
        path, params={"colormap": "viridis"}, headers={"If-None-Match": '"something-else"'}
    )
    assert stale.status_code == 200 and stale.content == first.content


def test_the_tile_headers_are_readable_from_other_origins(coverage_client: httpx.Client):
    col, row = tile_at("WebMercatorQuad", 14, *LAKE)
    response = coverage_client.get(
        f"/coverages/terrain/tiles/WebMercatorQuad/14/{col}/{row}.png",
        headers={"Origin": "https://example.org"},
    )
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "etag" in exposed and "x-tile-cache" in exposed


# -- bad requests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"colormap": "rainbow"}, "colormap"),
        ({"rescale": "10"}, "rescale"),
        ({"rescale": "a,b"}, "rescale"),
        ({"rescale": "90,10"}, "rescale"),
        ({"rescale": "0,inf"}, "rescale"),
        ({"hillshade": "maybe"}, "hillshade"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_style_parameters_are_400_naming_them(
    coverage_client: httpx.Client, query: dict[str, str], parameter: str
):
    col, row = tile_at("WebMercatorQuad", 14, *LAKE)
    for path in (
        f"/coverages/terrain/tiles/WebMercatorQuad/14/{col}/{row}.png",
        "/coverages/terrain/tiles/WebMercatorQuad/tilejson.json",
    ):
        assert_problem(coverage_client.get(path, params=query), 400, parameter)


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("nothing/tiles/WebMercatorQuad/14/8000/5000.png", 404, "nothing"),
        ("terrain/tiles/Mercator/14/8000/5000.png", 404, "Mercator"),
        ("terrain/tiles/WebMercatorQuad/2/4/0.png", 404, "2/4/0"),
        ("terrain/tiles/WebMercatorQuad/25/0/0.png", 404, "25"),
        ("terrain/tiles/WebMercatorQuad/3/1/1.jpg", 400, "fmt"),
        ("terrain/tiles/WebMercatorQuad/a/1/1.png", 400, "z"),
        ("terrain/tiles/Mercator/tilejson.json", 404, "Mercator"),
        ("nothing/tiles/WebMercatorQuad/tilejson.json", 404, "nothing"),
    ],
)
def test_unknown_things_and_tiles_outside_the_matrix(
    coverage_client: httpx.Client, path: str, status: int, words: str
):
    assert_problem(coverage_client.get(f"/coverages/{path}"), status, words)


# -- the documents -------------------------------------------------------------------------------


def test_the_tilejson_describes_the_tiles_and_keeps_the_style(
    coverage_client: httpx.Client, coverage_sources: CoverageSources
):
    doc = coverage_client.get(
        "/coverages/terrain/tiles/WebMercatorQuad/tilejson.json",
        params={"colormap": "viridis", "rescale": "0,100"},
    ).json()
    assert doc["tilejson"] == "3.0.0" and doc["attribution"] == ATTRIBUTION
    (template,) = doc["tiles"]
    assert template.endswith(
        "/coverages/terrain/tiles/WebMercatorQuad/{z}/{x}/{y}.png?colormap=viridis&rescale=0,100"
    )
    # bounds: the source's extent in longitude, latitude
    with rasterio.open(coverage_sources.terrain) as src:
        west, south = TO_LONLAT.transform(src.bounds.left, src.bounds.bottom)
        east, north = TO_LONLAT.transform(src.bounds.right, src.bounds.top)
    assert np.allclose(doc["bounds"], [west, south, east, north], atol=2e-4)
    # maxzoom: the first zoom whose pixels on the ground (at Brussels) are no larger than 5 m
    ground = [2 * HALF / SIZE / 2**z * math.cos(math.radians(50.85)) for z in range(25)]
    assert ground[doc["maxzoom"]] <= rasters.PIXEL * 1.05 < ground[doc["maxzoom"] - 1]
    assert 0 <= doc["minzoom"] < doc["maxzoom"] - 3
    assert doc["bounds"][0] < doc["center"][0] < doc["bounds"][2]
    # the template answers, with the style asked
    col, row = tile_at("WebMercatorQuad", 15, *LAKE)
    url = template.format(z=15, x=col, y=row)
    direct = coverage_client.get(
        f"/coverages/terrain/tiles/WebMercatorQuad/15/{col}/{row}.png",
        params={"colormap": "viridis", "rescale": "0,100"},
    )
    assert coverage_client.get(url).content == direct.content
    plain = coverage_client.get("/coverages/terrain/tiles/WebMercatorQuad/tilejson.json").json()
    assert "?" not in plain["tiles"][0]


def test_the_lambert_tilejson_counts_zooms_of_its_own_grid(coverage_client: httpx.Client):
    doc = coverage_client.get("/coverages/terrain/tiles/BelgianLambert72/tilejson.json").json()
    assert doc["tiles"][0].endswith("/BelgianLambert72/{z}/{x}/{y}.png")
    cell = [284_828.943 / SIZE / 2**z for z in range(25)]
    assert cell[doc["maxzoom"]] <= rasters.PIXEL * 1.05 < cell[doc["maxzoom"] - 1]


def test_the_tilesets_link_each_grids_tiles_and_tilejson(coverage_client: httpx.Client):
    doc = coverage_client.get("/coverages/imagery/tiles").json()
    assert {t["crs"].rsplit("/", 1)[-1] for t in doc["tilesets"]} == {"3857", "31370"}
    for tileset in doc["tilesets"]:
        assert tileset["dataType"] == "map"
        links = {
            lk.get("type") if lk["rel"] == "item" else lk["rel"]: lk for lk in tileset["links"]
        }
        template = links["image/png"]["href"]
        assert links["image/png"]["templated"]
        assert "{tileMatrix}/{tileCol}/{tileRow}.png" in template
        described = coverage_client.get(links["describedby"]["href"])
        assert described.json()["tilejson"] == "3.0.0"
        one = coverage_client.get(links["self"]["href"]).json()
        assert one["dataType"] == "map"
        # the limits' middle tile at the deepest zoom holds imagery
        deepest = one["tileMatrixSetLimits"][-1]
        url = template.format(
            tileMatrix=deepest["tileMatrix"],
            tileCol=(deepest["minTileCol"] + deepest["maxTileCol"]) // 2,
            tileRow=(deepest["minTileRow"] + deepest["maxTileRow"]) // 2,
        )
        assert coverage_client.get(url).status_code == 200


@pytest.mark.parametrize("lang", ["fr", "nl", "en"])
def test_the_tilesets_page_in_each_language(coverage_client: httpx.Client, lang: str):
    page = coverage_client.get("/coverages/terrain/tiles", params={"f": "html", "lang": lang})
    assert page.status_code == 200 and page.headers["content-language"] == lang
    title = {"fr": "Modèle de terrain", "nl": "Terreinmodel", "en": "Terrain model"}[lang]
    assert title in page.text and "tilejson.json" in page.text
    one = coverage_client.get(
        "/coverages/terrain/tiles/BelgianLambert72", params={"f": "html", "lang": lang}
    )
    assert one.status_code == 200 and title in one.text


def test_the_documents_are_in_the_openapi_definition(coverage_client: httpx.Client):
    paths = coverage_client.get("/openapi.json").json()["paths"]
    tilejson = paths["/coverages/{coverage_id}/tiles/{tms_id}/tilejson.json"]["get"]
    schema = tilejson["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/RasterTileJson")
    tile = paths["/coverages/{coverage_id}/tiles/{tms_id}/{z}/{x}/{y}.{fmt}"]["get"]
    assert {"image/png", "image/webp"} <= set(tile["responses"]["200"]["content"])


# -- a new version of the raster ---------------------------------------------------------------


def _changes(client: httpx.Client) -> int:
    return int(client.get("/healthz").json()["tile_cache"]["changes"])


def _sync_terrain_layer(database_url: str, sources: CoverageSources) -> RunReport:
    """One run of the terrain layer, as configured in `sources`."""
    engine = create_sync_engine(database_url)
    try:
        return sync_layer(
            engine,
            load_config(sources.config),
            "terrain",
            SyncSettings(raster_dir=sources.raster_dir),
        )
    finally:
        engine.dispose()


def _sync_terrain(database_url: str, sources: CoverageSources, offset: float) -> None:
    """A new terrain file at the same path (heights + `offset`), synced."""
    rasters.write_terrain(sources.terrain, offset=offset)
    report = _sync_terrain_layer(database_url, sources)
    assert report.status == "success" and report.raster == "new COG written", report


def _resync(
    client: httpx.Client, database_url: str, sources: CoverageSources, offset: float
) -> None:
    """A new terrain synced; then wait for the API to hear of it."""
    seen = _changes(client)
    _sync_terrain(database_url, sources, offset)
    deadline = time.monotonic() + 20
    while _changes(client) == seen:
        assert time.monotonic() < deadline, "the API did not hear of the new version"
        time.sleep(0.05)


def test_a_new_version_is_drawn_at_once_and_the_old_tiles_go(
    coverage_client: httpx.Client,
    coverage_sources: CoverageSources,
    coverage_database_url: str,
):
    tms, z = "WebMercatorQuad", 15
    col, row = tile_at(tms, z, *LAKE)
    path = f"/coverages/terrain/tiles/{tms}/{z}/{col}/{row}.tif"
    before = coverage_client.get(path)
    assert coverage_client.get(path).headers["x-tile-cache"] == "hit"
    version = coverage_client.get("/coverages/terrain/tiles/WebMercatorQuad/tilejson.json")
    # a vector tile of every layer, cached: a raster's change is none of its business
    vector = "/tiles/BelgianLambert72/10/{}/{}".format(*lambert_tile(10, *LAKE))
    coverage_client.get(vector)
    assert coverage_client.get(vector).headers["x-tile-cache"] == "hit"
    entries = coverage_client.get("/healthz").json()["tile_cache"]["entries"]

    _resync(coverage_client, coverage_database_url, coverage_sources, offset=100.0)
    stats = coverage_client.get("/healthz").json()["tile_cache"]
    assert stats["entries"] < entries  # the coverage's tiles were dropped
    after = coverage_client.get(path)
    assert after.headers["x-tile-cache"] == "miss"
    assert after.headers["etag"] != before.headers["etag"]
    expected = reference(str(coverage_sources.terrain), tms, z, col, row)
    with rasterio.MemoryFile(after.content) as memory, memory.open() as tile:
        values = tile.read(masked=True)
    valid = ~np.ma.getmaskarray(expected)
    assert np.allclose(values.data[valid], expected.data[valid], atol=1e-3)
    with rasterio.MemoryFile(before.content) as memory, memory.open() as tile:
        old = tile.read(masked=True)
    assert np.allclose(values.data[valid] - old.data[valid], 100.0, atol=1e-3)
    assert coverage_client.get(vector).headers["x-tile-cache"] == "hit"
    newer = coverage_client.get("/coverages/terrain/tiles/WebMercatorQuad/tilejson.json")
    assert int(newer.json()["version"]) == int(version.json()["version"]) + 1


def _decoded(response: httpx.Response) -> np.ndarray:
    with rasterio.MemoryFile(response.content) as memory, memory.open() as tile:
        return tile.read(1)


def test_tiles_read_during_a_swap_are_whole_tiles_of_one_version(
    coverage_client: httpx.Client,
    coverage_sources: CoverageSources,
    coverage_database_url: str,
):
    """Threads ask for tiles while the sync writes two new versions: never an error."""
    tiles = [
        (z, *tile_at("WebMercatorQuad", z, x, y))
        # zooms whose tiles read the full resolution, as the reference below does
        for z in (14, 15)
        for x, y in (LAKE, (148_500.0, 169_500.0), (150_700.0, 170_800.0))
    ]
    offsets = (200.0, 300.0)
    answers: list[tuple[int, int, int, httpx.Response]] = []
    stop = threading.Event()

    def read(client: httpx.Client) -> None:
        while not stop.is_set():
            for z, col, row in tiles:
                url = f"/coverages/terrain/tiles/WebMercatorQuad/{z}/{col}/{row}.tif"
                answers.append((z, col, row, client.get(url)))

    clients = [httpx.Client(base_url=str(coverage_client.base_url), timeout=30) for _ in range(4)]
    threads = [threading.Thread(target=read, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    try:
        for offset in offsets:
            _resync(coverage_client, coverage_database_url, coverage_sources, offset)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for client in clients:
            client.close()
    assert len(answers) > 3 * len(tiles)
    assert all(a[3].status_code == 200 for a in answers), {a[3].status_code for a in answers}
    # each answer is one of the versions, whole: the source's heights plus one of the offsets
    base = {
        (z, col, row): reference(
            str(rasters.write_terrain(coverage_sources.terrain.with_name("base.tif"))),
            "WebMercatorQuad",
            z,
            col,
            row,
        )[0]
        for z, col, row in tiles
    }
    seen: set[float] = set()
    for z, col, row, response in answers:
        values = _decoded(response)
        expected = base[(z, col, row)]
        valid = ~np.ma.getmaskarray(expected) & (values != rasters.TERRAIN_NODATA)
        shift = values[valid] - expected.data[valid]
        matches = [o for o in (100.0, *offsets) if np.allclose(shift, o, atol=0.5)]
        assert len(matches) == 1, (z, col, row, np.unique(np.round(shift)))
        seen.add(matches[0])
    assert seen >= {offsets[-1]}


def test_a_corrupt_source_fails_its_run_and_the_api_keeps_serving_the_version_before(
    coverage_client: httpx.Client,
    coverage_sources: CoverageSources,
    coverage_database_url: str,
):
    tms, z = "WebMercatorQuad", 15
    col, row = tile_at(tms, z, 149_300.0, 169_900.0)
    path = f"/coverages/terrain/tiles/{tms}/{z}/{col}/{row}.tif"
    point = "/coverages/terrain/point?x=149300&y=169900&crs=EPSG:31370"
    before = coverage_client.get(path)
    metadata = coverage_client.get("/coverages/terrain").json()
    value = coverage_client.get(point).json()
    changes = _changes(coverage_client)
    kept = coverage_sources.terrain.read_bytes()
    try:
        rasters.write_corrupt(coverage_sources.terrain)
        report = _sync_terrain_layer(coverage_database_url, coverage_sources)
        assert report.status == "failed"
        assert "cannot be converted to a COG" in (report.error or ""), report.error
        time.sleep(0.5)  # what a notification, had one been sent, would have taken to arrive
        assert _changes(coverage_client) == changes
        after = coverage_client.get(path)
        assert after.status_code == 200
        assert after.headers["etag"] == before.headers["etag"]
        assert after.content == before.content
        assert coverage_client.get("/coverages/terrain").json() == metadata
        assert coverage_client.get(point).json() == value
        # a tile not drawn before the failed run is drawn from the version still in the catalog
        fresh = tile_at(tms, z + 1, 149_300.0, 169_900.0)
        drawn = coverage_client.get(
            f"/coverages/terrain/tiles/{tms}/{z + 1}/{fresh[0]}/{fresh[1]}.tif"
        )
        assert drawn.status_code == 200 and drawn.headers["x-tile-cache"] == "miss"
        assert drawn.headers["etag"].startswith(f'"terrain.v{metadata["version"]}-')
    finally:
        coverage_sources.terrain.write_bytes(kept)


# -- in a browser: MapLibre and the empty (204) raster tiles ---------------------------------


def test_maplibre_draws_the_tiles_and_takes_the_empty_ones_in_its_stride(
    coverage_api: str, browser
):
    """The tilesets page's map, with the tiles also as a source without bounds (so MapLibre
    asks for tiles off the raster too), moved half off the raster: its 204s are no errors."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{coverage_api}/coverages/terrain/tiles?f=html&lang=en")
    WebDriverWait(browser, 30).until(
        lambda b: b.find_element("id", "map").get_attribute("data-state")
    )
    # the raster's east edge in the middle of the view: half the tiles are off it (MapLibre
    # asks for 256-pixel tiles one zoom deeper than the map's)
    east, middle = TO_LONLAT.transform(151_000.0, 170_000.0)
    template = f"{coverage_api}/coverages/terrain/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png"
    browser.execute_script(
        """
        const map = window.urbisCoverageMap;
        const el = document.getElementById("map");
        el.dataset.state = "";
        window.tileErrors = [];
        map.on("error", (event) => window.tileErrors.push(String(event.error)));
        map.addSource("bare", {type: "raster", tiles: [arguments[2]], tileSize: 256});
        map.addLayer({id: "bare", type: "raster", source: "bare"});
        map.jumpTo({center: [arguments[0], arguments[1]], zoom: 15});
        map.once("idle", () => { el.dataset.state = "idle"; });
        """,
        east,
        middle,
        template,
    )
    state = WebDriverWait(browser, 30).until(
        lambda b: b.find_element("id", "map").get_attribute("data-state")
    )
    assert state == "idle", state
    statuses = browser.execute_script(
        r"""
        return performance.getEntriesByType("resource")
          .filter((e) => /\/coverages\/terrain\/tiles\/WebMercatorQuad\/\d+\//.test(e.name))
          .map((e) => e.responseStatus);
        """
    )
    assert 200 in statuses and 204 in statuses, statuses
    assert browser.execute_script("return window.tileErrors") == []
    assert browser.execute_script("return window.urbisCoverageMap.isSourceLoaded('bare')")
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not [e for e in severe if "/coverages/" in e["message"]], severe


# -- the disk tier: a version synced while no API ran --------------------------------------------


def test_disk_tiles_of_an_old_version_go_when_the_api_starts(
    coverage_sources: CoverageSources, coverage_database_url: str, tmp_path
):
    """Raster tiles kept on disk stay across a restart, and are dropped at start when the
    coverage changed meanwhile (the change log has its rows); the vector tiles stay."""
    cache_dir = tmp_path / "tile-cache"
    tms, z = "WebMercatorQuad", 15
    col, row = tile_at(tms, z, *LAKE)
    raster = f"/coverages/terrain/tiles/{tms}/{z}/{col}/{row}.tif"
    vector = "/tiles/BelgianLambert72/10/{}/{}".format(*lambert_tile(10, *LAKE))  # every layer
    server, base = start_server(coverage_database_url, URBIS_TILE_CACHE_DIR=str(cache_dir))
    try:
        first = httpx.get(base + raster, timeout=30)
        assert first.headers["x-tile-cache"] == "miss"
        assert httpx.get(base + vector, timeout=30).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
    on_disk = {p.relative_to(cache_dir).parts[0] for p in cache_dir.rglob("*.mvt")}
    assert on_disk == {"coverage:terrain", "*"}

    # a restart with nothing changed keeps them (the coverage's version is the one recorded)
    server, base = start_server(coverage_database_url, URBIS_TILE_CACHE_DIR=str(cache_dir))
    try:
        kept = httpx.get(base + raster, timeout=30)
        assert kept.headers["x-tile-cache"] == "hit" and kept.content == first.content
    finally:
        server.terminate()
        server.wait(timeout=10)

    old = reference(str(coverage_sources.terrain), tms, z, col, row)
    _sync_terrain(coverage_database_url, coverage_sources, offset=400.0)
    server, base = start_server(coverage_database_url, URBIS_TILE_CACHE_DIR=str(cache_dir))
    try:
        on_disk = {p.relative_to(cache_dir).parts[0] for p in cache_dir.rglob("*.mvt")}
        assert on_disk == {"*"}  # dropped at start, before any request
        assert httpx.get(base + vector, timeout=30).headers["x-tile-cache"] == "hit"
        after = httpx.get(base + raster, timeout=30)
        assert after.headers["x-tile-cache"] == "miss"
        assert "Traceback" not in server_log(server)
    finally:
        server.terminate()
        server.wait(timeout=10)
    expected = reference(str(coverage_sources.terrain), tms, z, col, row)
    valid = ~np.ma.getmaskarray(expected)
    assert np.allclose(_decoded(after)[valid[0]], expected.data[0][valid[0]], atol=1e-3)
    assert np.allclose(_decoded(first)[valid[0]], old.data[0][valid[0]], atol=1e-3)
    assert not np.allclose(old.data[0][valid[0]], expected.data[0][valid[0]], atol=1.0)


# -- a layer's style changed in the configuration, the file not --------------------------------


def _sync_unchanged(database_url: str, sources: CoverageSources) -> None:
    report = _sync_terrain_layer(database_url, sources)
    assert report.raster == "source unchanged, nothing written", report


def test_a_new_style_in_the_configuration_is_drawn_at_once(
    coverage_client: httpx.Client, coverage_sources: CoverageSources, coverage_database_url: str
):
    col, row = tile_at("WebMercatorQuad", 15, *LAKE)
    path = f"/coverages/terrain/tiles/WebMercatorQuad/15/{col}/{row}.png"
    before = coverage_client.get(path)
    assert before.status_code == 200

    # a run with nothing new tells the API nothing
    seen = _changes(coverage_client)
    _sync_unchanged(coverage_database_url, coverage_sources)
    time.sleep(1.0)
    assert _changes(coverage_client) == seen
    assert coverage_client.get(path).content == before.content

    original = coverage_sources.config.read_text()
    configured = "style: {colormap: terrain, hillshade: true, units: m}"
    assert configured in original
    coverage_sources.config.write_text(
        original.replace(configured, "style: {colormap: viridis, units: m}")
    )
    try:
        _sync_unchanged(coverage_database_url, coverage_sources)
        deadline = time.monotonic() + 20
        while _changes(coverage_client) == seen:
            assert time.monotonic() < deadline, "the API did not hear of the new style"
            time.sleep(0.05)
        after = coverage_client.get(path)
        asked = coverage_client.get(path, params={"colormap": "viridis", "hillshade": "false"})
        assert after.content == asked.content != before.content
    finally:
        coverage_sources.config.write_text(original)
        _sync_unchanged(coverage_database_url, coverage_sources)


# -- more tiles asked than can be drawn ---------------------------------------------------------


def test_too_many_tiles_drawn_at_once_are_told_to_come_back(coverage_database_url: str):
    """One worker thread, a 50 ms queue: a burst of cold tiles gets 503s, never a broken tile."""
    server, base = start_server(
        coverage_database_url, URBIS_CPU_THREADS="1", URBIS_QUEUE_TIMEOUT="0.05"
    )
    try:
        c0, r0 = tile_at("WebMercatorQuad", 16, 148_200.0, 170_800.0)
        urls = [
            f"{base}/coverages/terrain/tiles/WebMercatorQuad/16/{c0 + i}/{r0 + j}.png"
            for i in range(6)
            for j in range(4)
        ]
        # the coverage's catalog row, read once (then kept): the burst only waits for drawing
        assert httpx.get(urls[0], timeout=30).status_code == 200
        with ThreadPoolExecutor(len(urls)) as pool:
            responses = list(pool.map(lambda u: httpx.get(u, timeout=60), urls[1:]))
        statuses = {r.status_code for r in responses}
        assert statuses == {200, 503}, statuses
        busy = [(u, r) for u, r in zip(urls[1:], responses, strict=True) if r.status_code == 503]
        assert_problem(busy[0][1], 503, "too many raster tiles are being drawn")
        assert int(busy[0][1].headers["retry-after"]) > 0
        for url, _ in busy:  # nothing was kept of a refused tile: asked again, it is drawn
            again = httpx.get(url, timeout=30)
            assert again.status_code == 200 and again.headers["x-tile-cache"] == "miss"
            assert rgba(again)[..., 3].any()
    finally:
        server.terminate()
        server.wait(timeout=10)
