"""Absolute links behind a reverse proxy (a real nginx), from trusted proxies only.

Every link a client follows (JSON, HTML, TileJSON, style, OpenAPI servers) must lead back
through the proxy; headers from peers that are not trusted proxies, and a forged Host, must
never end up in an answer another client could get.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import start_server
from tests.conftest import drop_database, synced_sample_database
from tests.support.nginx import NginxProxy

pytestmark = pytest.mark.api


def hrefs(doc: Any) -> list[str]:
    """Every absolute URL in a JSON document (links, tiles, sources, servers...)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str) and re.match(r"^https?://", node):
            found.append(node)

    walk(doc)
    return found


LINKED = [
    "/",
    "/collections",
    "/collections/addresses",
    "/collections/addresses/items?limit=5",
    "/collections/addresses/items/1115955",
    "/collections/addresses/queryables",
    "/collections/addresses/schema",
    "/collections/addresses/tiles",
    "/collections/addresses/tiles/WebMercatorQuad",
    "/tiles/WebMercatorQuad/tilejson.json",
    "/styles",
    "/styles/default/style.json",
    "/tileMatrixSets",
    "/openapi.json",
    "/collections/addresses/within?x=4.3458&y=50.8325&distance=50",
]
# links to other services that an answer may hold: not ours to rewrite
FOREIGN = ("http://www.opengis.net/", "https://json-schema.org/", "https://geojson.org/")


def our_links(doc: Any) -> list[str]:
    return [h for h in hrefs(doc) if not h.startswith(FOREIGN)]


def all_under(links: list[str], base: str) -> bool:
    """Whether there are links and each is `base` or below it."""
    return bool(links) and all(h == base or h.startswith(f"{base}/") for h in links)


@pytest.fixture(scope="module")
def proxied(api: str, tmp_path_factory) -> Iterator[NginxProxy]:
    """nginx publishing the API under /urbis/ (X-Forwarded-*) and under /rfc/ (Forwarded)."""
    locations = {
        "/urbis/": {
            "X-Forwarded-Proto": "http",
            "X-Forwarded-Host": "$proxy",
            "X-Forwarded-Prefix": "/urbis",
        },
        "/rfc/": {
            "Forwarded": 'for=192.0.2.60;proto=http;host="$proxy"',
            "X-Forwarded-Prefix": "/rfc",
        },
    }
    with NginxProxy(api, tmp_path_factory.mktemp("nginx"), locations) as proxy:
        yield proxy


@pytest.mark.parametrize("mount", ["/urbis", "/rfc"])
def test_every_link_leads_back_through_the_proxy(proxied, mount):
    public = f"{proxied.url}{mount}"
    with httpx.Client(timeout=30) as client:
        for path in LINKED:
            response = client.get(f"{public}{path}")
            assert response.status_code == 200, (path, response.text[:300])
            links = our_links(response.json())
            assert links, path
            assert all_under(links, public), (path, links[:3])
            # and each leads somewhere: follow the plain ones
            for href in {h for h in links if "{" not in h and h != public}:
                assert client.get(href).status_code in (200, 204), (path, href)


def test_html_pages_and_the_map_load_their_assets_through_the_proxy(proxied):
    public = f"{proxied.url}/urbis"
    with httpx.Client(timeout=30) as client:
        page = client.get(f"{public}/collections/addresses/items", params={"f": "html"}).text
        assets = re.findall(r'(?:href|src)="([^"]+)"', page)
        assert f"{public}/?f=html&amp;lang=en" in assets
        assert f"{public}/static/maplibre/maplibre-gl.css" in assets  # the little map's
        module = f'"{public}/static/maplibre/maplibre-gl.mjs"'
        assert module in page and f'"{public}/styles/default/style.json"' in page
        for href in assets:
            if href.startswith("http"):
                assert href.startswith(f"{public}/"), href
                assert client.get(href.replace("&amp;", "&")).status_code == 200, href
        map_page = client.get(f"{public}/map").text
        assert f'"{public}/styles/default/style.json"' in map_page
        assets = re.findall(r'(?:href|src)="(http[^"]+/static/[^"]+)"', map_page)
        # MapLibre's and our stylesheets, proj4, our module (which imports MapLibre's by a
        # relative path, so through the proxy's prefix as well)
        assert len(assets) == 4
        for href in [*assets, f"{public}/static/maplibre/maplibre-gl.mjs"]:
            assert href.startswith(f"{public}/") and client.get(href).status_code == 200
        docs = client.get(f"{public}/docs").text
        assert f"{public}/openapi.json" in docs


def test_gdal_reads_a_whole_layer_through_the_proxy(proxied):
    """GDAL's OAPIF driver follows `next` links: they must come back through the proxy."""
    done = subprocess.run(
        [
            "ogrinfo",
            "-ro",
            "-so",
            "-al",
            f"OAPIF:{proxied.url}/urbis",
            "addresses",
            "-oo",
            "PAGE_SIZE=100",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Feature Count: 666" in done.stdout, done.stdout[-2000:]
    counted = subprocess.run(
        ["ogrinfo", "-ro", "-q", f"OAPIF:{proxied.url}/urbis", "addresses", "-oo", "PAGE_SIZE=100"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.count("OGRFeature(addresses)") == 666


def test_links_vary_on_the_headers_they_came_from(client):
    direct = client.get("/collections")
    assert "host" in direct.headers["vary"].lower()
    forwarded = client.get(
        "/collections",
        headers={"X-Forwarded-Host": "maps.example.org", "X-Forwarded-Proto": "https"},
    )
    assert all_under(our_links(forwarded.json()), "https://maps.example.org")
    vary = forwarded.headers["vary"].lower()
    assert "x-forwarded-host" in vary and "x-forwarded-proto" in vary
    tile = client.get("/collections/addresses/tiles/WebMercatorQuad/15/16779/10994")
    assert tile.status_code == 200 and "host" not in tile.headers.get("vary", "").lower()


def test_each_answer_has_its_own_base_nothing_cached_across_hosts(client):
    """Documents built once (the OpenAPI definition) still take each request's base."""
    for host in ("a.example.org", "b.example.org", "a.example.org"):
        for path in (
            "/openapi.json",
            "/styles/default/style.json",
            "/tiles/WebMercatorQuad/tilejson.json",
            "/",
        ):
            doc = client.get(path, headers={"X-Forwarded-Host": host}).json()
            assert all_under(our_links(doc), f"http://{host}"), (host, path)


def test_a_forged_host_is_never_written_into_a_link(client):
    for forged in ('evil.example"><script>alert(1)</script>', "a/b", "x y", "[::1"):
        response = client.get("/collections/addresses", headers={"Host": forged})
        assert response.status_code == 200
        assert all_under(our_links(response.json()), str(client.base_url).rstrip("/"))
        page = client.get(
            "/collections/addresses", params={"f": "html"}, headers={"Host": forged}
        ).text
        assert "<script>alert" not in page and "evil.example" not in page
    for forged in ("https://x", "evil.example/<b>", "/other/../path"):
        doc = client.get(
            "/", headers={"X-Forwarded-Prefix": forged, "X-Forwarded-Proto": forged}
        ).json()
        assert all_under(our_links(doc), str(client.base_url).rstrip("/")), forged


@pytest.fixture(scope="module")
def configured(admin_url: str, synced_template_url: str) -> Iterator[dict[str, str]]:
    """Two servers on one database: one with URBIS_PUBLIC_URL, one trusting no local proxy."""
    name = f"px_{uuid.uuid4().hex[:10]}"
    url = synced_sample_database(admin_url, synced_template_url, name)
    public, public_base = start_server(url, URBIS_PUBLIC_URL="https://geo.example.org/urbis/")
    strict, strict_base = start_server(url, URBIS_TRUSTED_PROXIES="10.9.8.7,192.0.2.0/24")
    try:
        yield {"public": public_base, "strict": strict_base}
    finally:
        for proc in (public, strict):
            proc.terminate()
            proc.wait(timeout=10)
        drop_database(admin_url, name)


def test_the_public_url_wins_over_every_header(configured):
    headers = {
        "Host": "evil.example",
        "X-Forwarded-Host": "other.example",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Prefix": "/elsewhere",
        "Forwarded": "host=third.example;proto=http",
    }
    with httpx.Client(base_url=configured["public"], timeout=30) as client:
        for path in LINKED:
            response = client.get(path, headers=headers)
            assert all_under(our_links(response.json()), "https://geo.example.org/urbis"), path
            assert "host" not in response.headers.get("vary", "").lower(), path
        page = client.get("/collections", params={"f": "html"}, headers=headers).text
        assert 'href="https://geo.example.org/urbis/?f=html&amp;lang=en"' in page


def test_forwarded_headers_from_untrusted_peers_are_ignored(configured):
    with httpx.Client(base_url=configured["strict"], timeout=30) as client:
        doc = client.get(
            "/",
            headers={
                "X-Forwarded-Host": "evil.example",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Prefix": "/evil",
                "Forwarded": "host=evil.example;proto=https",
            },
        ).json()
        base = configured["strict"]
        assert all_under(our_links(doc), base)
        spec = client.get("/openapi.json", headers={"X-Forwarded-Host": "evil.example"}).json()
        assert spec["servers"] == [{"url": base, "description": "This service"}]


def test_the_settings_are_checked_at_start(synced_database_url):
    for name, value, words in (
        ("URBIS_PUBLIC_URL", "ftp://x", "URBIS_PUBLIC_URL"),
        ("URBIS_PUBLIC_URL", "https://a b", "URBIS_PUBLIC_URL"),
        ("URBIS_TRUSTED_PROXIES", "10.0.0.0/33", "URBIS_TRUSTED_PROXIES"),
    ):
        with pytest.raises(RuntimeError, match=words):
            start_server(synced_database_url, **{name: value})
