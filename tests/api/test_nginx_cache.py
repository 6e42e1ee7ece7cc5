"""The shipped nginx configuration (deploy/nginx/urbis.conf) in front of the API, for real.

nginx caches tiles, TileJSON and the style; after a sync, a changed tile comes fresh through it
(once its second of freshness is over nginx revalidates with the ETag), while an untouched one
is still nginx's copy (a 304 from the API). Links point at nginx; the admin API and features are
never answered from its cache.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import lambert_tile, start_server, sync_file_layer
from tests.support.layers import file_layer, geojson_feature, point
from tests.support.nginx import ShippedNginx

pytestmark = pytest.mark.api

BARRIERE, UCCLE = (148384.0, 169116.0), (148000.0, 163000.0)
TOKEN = "nginx-test-admin-token-0123456789"
FRESH_SECONDS = 1  # proxy_cache_valid in deploy/nginx/urbis.conf
# nginx counts it on whole seconds of its clock (valid until now + 1, `now` in seconds): a copy
# stored at 10.0 s is a HIT until 11.999 s, so up to twice that second
SERVED_FOR = 2 * FRESH_SECONDS


def tile_path(xy: tuple[float, float]) -> str:
    return "/collections/stored/tiles/BelgianLambert72/10/{}/{}".format(  # 278 m tiles
        *lambert_tile(10, *xy)
    )


def sync_points(database_url: str, folder: Path, points: dict[str, tuple[float, float]]) -> None:
    features = (geojson_feature({"SID": key}, point(*xy)) for key, xy in points.items())
    sync_file_layer(database_url, file_layer(folder, "stored", "SID", features), "stored")


def get(url: str, **headers: str) -> httpx.Response:
    response = httpx.get(url, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response


def tiles_drawn_or_sent(api: str) -> float:
    """The API's count of answered tile requests of the one-collection route (any status)."""
    total = 0.0
    for line in get(f"{api}/metrics").text.splitlines():
        if line.startswith("urbis_http_request_duration_seconds_count{") and (
            'route="/collections/{collection_id}/tiles/{tms_id}/{z}/{x}/{y}"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Behind:
    def __init__(self, server: subprocess.Popen[bytes], api: str, nginx: ShippedNginx) -> None:
        self.server, self.api, self.nginx = server, api, nginx


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture()
def behind(synced_database_url: str, tmp_path: Path) -> Iterator[Behind]:
    sync_points(synced_database_url, tmp_path, {"a": BARRIERE, "b": UCCLE})
    server, api = start_server(synced_database_url, URBIS_ADMIN_TOKEN=TOKEN)
    try:
        with ShippedNginx(api, tmp_path) as nginx:
            yield Behind(server, api, nginx)
    finally:
        stop(server)


def test_tiles_are_cached_and_a_changed_tile_comes_fresh_after_a_sync(
    behind: Behind, synced_database_url: str, tmp_path: Path
) -> None:
    api, nginx = behind.api, behind.nginx
    near, far = tile_path(BARRIERE), tile_path(UCCLE)
    first = {}
    for path in (near, far):
        first[path] = get(nginx.url + path)
        assert first[path].headers["x-cache-status"] == "MISS"
    asked = tiles_drawn_or_sent(api)
    for path in (near, far):
        again = get(nginx.url + path)
        assert again.headers["x-cache-status"] == "HIT"
        assert again.content == first[path].content
        assert again.headers["etag"] == first[path].headers["etag"]
    assert tiles_drawn_or_sent(api) == asked  # nginx answered alone

    # a client revalidating with nginx's ETag gets a 304 from nginx itself
    held = httpx.get(nginx.url + far, headers={"If-None-Match": first[far].headers["etag"]})
    assert held.status_code == 304

    sync_points(synced_database_url, tmp_path, {"a": (BARRIERE[0] + 30, BARRIERE[1]), "b": UCCLE})
    deadline = time.monotonic() + 15
    while get(api + near).content == first[near].content:  # the API drops it on the change
        assert time.monotonic() < deadline, "the API still answers the old tile"
        time.sleep(0.1)
    time.sleep(SERVED_FOR + 0.1)

    changed = get(nginx.url + near)
    assert changed.content == get(api + near).content != first[near].content
    assert changed.headers["etag"] != first[near].headers["etag"]
    assert changed.headers["x-cache-status"] == "EXPIRED"  # asked again, answered whole
    untouched = get(nginx.url + far)
    assert untouched.headers["x-cache-status"] == "REVALIDATED"  # a 304 from the API
    assert untouched.content == first[far].content
    assert get(nginx.url + near).headers["x-cache-status"] == "HIT"  # the new tile, kept


def test_links_point_at_nginx_and_documents_are_cached(
    behind: Behind,
) -> None:
    nginx = behind.nginx
    for path in ("/tiles/WebMercatorQuad/tilejson.json", "/styles/default/style.json"):
        doc = get(nginx.url + path)
        assert doc.headers["x-cache-status"] == "MISS"
        text = doc.text
        assert f"{nginx.url}/" in text and "127.0.0.1:8" not in text.replace(nginx.url, "")
        assert get(nginx.url + path).headers["x-cache-status"] == "HIT"
    tilejson = get(nginx.url + "/tiles/WebMercatorQuad/tilejson.json").json()
    assert all(t.startswith(f"{nginx.url}/tiles/WebMercatorQuad/") for t in tilejson["tiles"])


def test_admin_and_features_are_never_answered_from_the_cache(
    behind: Behind,
) -> None:
    nginx = behind.nginx
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(2):
        status = get(nginx.url + "/admin/status", **auth)
        assert "x-cache-status" not in status.headers
        assert status.headers["cache-control"] == "no-store"
    refused = httpx.get(nginx.url + "/admin/status")  # a cached answer would leak it
    assert refused.status_code == 401
    for _ in range(2):
        items = get(nginx.url + "/collections/stored/items?limit=1", **{"Accept-Encoding": "gzip"})
        assert "x-cache-status" not in items.headers
        assert items.json()["numberReturned"] == 1
        assert items.links.get("self", {}).get("url", nginx.url).startswith(nginx.url)


def test_the_last_tile_is_served_while_the_api_is_down(behind: Behind) -> None:
    nginx = behind.nginx
    near = tile_path(BARRIERE)
    kept = get(nginx.url + near)
    stop(behind.server)  # nothing answers on the API's port any more
    time.sleep(SERVED_FOR + 0.1)
    stale = get(nginx.url + near)
    assert stale.headers["x-cache-status"] == "STALE"
    assert stale.content == kept.content
    assert httpx.get(nginx.url + "/collections").status_code == 502  # not cached: an error
