"""Fair use over HTTP on real servers: the rate per client, compressed answers, the limits.

A server with a low rate, loopback limited too (URBIS_RATE_LIMIT_LOOPBACK=1) and loopback
trusted as a proxy (the default), so that `X-Forwarded-For` makes other clients; one that trusts
no proxy here, so that the header is ignored; and the default server, which never limits
loopback. Compressed answers are read raw (no client decoding) and decoded here.
"""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Iterator

import brotli
import httpx
import pytest

from tests.api.conftest import assert_problem, start_server

pytestmark = pytest.mark.api

TOKEN = "fair-use-admin-token-0123456789"
RATE, BURST = 2, 5
SWAGGER_JS = "/static/swagger-ui/swagger-ui-bundle.js"
SWAGGER_PNG = "/static/swagger-ui/favicon-32x32.png"
ITEMS = "/collections/addresses/items"


def _server(database_url: str, **settings: str) -> Iterator[str]:
    proc, base = start_server(database_url, **settings)
    yield base
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def limited(synced_database_url: str) -> Iterator[str]:
    yield from _server(
        synced_database_url,
        URBIS_RATE_LIMIT=str(RATE),
        URBIS_RATE_BURST=str(BURST),
        URBIS_RATE_LIMIT_LOOPBACK="1",
        URBIS_ADMIN_TOKEN=TOKEN,
        URBIS_COMPRESS_MIN_BYTES="4096",
    )


@pytest.fixture(scope="module")
def untrusting(synced_database_url: str) -> Iterator[str]:
    yield from _server(
        synced_database_url,
        URBIS_RATE_LIMIT=str(RATE),
        URBIS_RATE_BURST=str(BURST),
        URBIS_RATE_LIMIT_LOOPBACK="1",
        URBIS_TRUSTED_PROXIES="10.9.9.9",
    )


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def _spend_burst(http: httpx.Client, headers: dict[str, str]) -> list[httpx.Response]:
    return [http.get("/conformance", headers=headers) for _ in range(BURST)]


# -- the rate -------------------------------------------------------------------------------


def test_past_the_burst_a_429_with_retry_after_then_served_again(limited):
    with httpx.Client(base_url=limited, timeout=30) as http:
        client = _from("203.0.113.10")
        answers = _spend_burst(http, client)
        assert [a.status_code for a in answers] == [200] * BURST
        assert answers[0].headers["ratelimit-limit"] == str(BURST)
        remaining = [int(a.headers["ratelimit-remaining"]) for a in answers]
        assert remaining[0] == BURST - 1 and remaining == sorted(remaining, reverse=True)
        refused = http.get("/conformance", headers=client)
        assert_problem(refused, 429, "too many requests from 203.0.113.10")
        assert refused.headers["content-type"] == "application/problem+json"
        wait = int(refused.headers["retry-after"])
        assert 1 <= wait <= 1 + 1 // RATE
        assert refused.headers["ratelimit-remaining"] == "0"
        assert "X-Request-Id".lower() in refused.headers  # observed like every answer
        time.sleep(wait)
        again = http.get("/conformance", headers=client)
        assert again.status_code == 200, again.text


def test_probes_and_metrics_are_never_limited(limited):
    with httpx.Client(base_url=limited, timeout=30) as http:
        client = _from("203.0.113.11")
        _spend_burst(http, client)
        assert http.get("/conformance", headers=client).status_code == 429
        for _ in range(3):
            for path in ("/healthz", "/readyz", "/metrics"):
                answer = http.get(path, headers=client)
                assert answer.status_code == 200, (path, answer.text)
                assert "ratelimit-limit" not in answer.headers
        metrics = http.get("/metrics").text
        refused = re.search(r"^urbis_rate_limited_total (\S+)$", metrics, re.M)
        assert refused is not None and float(refused.group(1)) >= 1
        # refused before any route is chosen: under the one label of unrouted requests
        assert re.search(
            r'^urbis_http_request_duration_seconds_count\{method="GET",'
            r'route="unmatched",status="429"\} [1-9]',
            metrics,
            re.M,
        )
        clients = re.search(r"^urbis_rate_limit_clients (\S+)$", metrics, re.M)
        assert clients is not None and float(clients.group(1)) >= 1


def test_each_client_has_its_own_bucket_and_loopback_is_one_when_forced(limited):
    with httpx.Client(base_url=limited, timeout=30) as http:
        _spend_burst(http, _from("203.0.113.12"))
        assert http.get("/conformance", headers=_from("203.0.113.12")).status_code == 429
        # another client behind the same (trusted) proxy: untouched
        other = http.get("/conformance", headers=_from("2001:db8::7"))
        assert other.status_code == 200
        assert other.headers["ratelimit-remaining"] == str(BURST - 1)
        # the client's own entry is the rightmost address no trusted proxy wrote: what the
        # client put before it is not believed (a client cannot pass for another)
        spoofed = http.get("/conformance", headers=_from("198.51.100.1, 203.0.113.12, 127.0.0.1"))
        assert spoofed.status_code == 429
        # loopback itself, limited here as URBIS_RATE_LIMIT_LOOPBACK=1 asks
        statuses = [http.get("/conformance").status_code for _ in range(BURST + 1)]
        assert statuses[-1] == 429 and statuses.count(200) <= BURST


def test_a_peer_that_is_no_trusted_proxy_cannot_choose_its_address(untrusting):
    with httpx.Client(base_url=untrusting, timeout=30) as http:
        # a new X-Forwarded-For each time: ignored, every request is loopback's
        statuses = [
            http.get("/conformance", headers=_from(f"192.0.2.{n}")).status_code
            for n in range(BURST + 1)
        ]
        assert statuses[:BURST] == [200] * BURST
        assert statuses[BURST] == 429


def test_the_default_server_never_limits_loopback(client):
    # 300 at once: past the default burst (200) and rate (50 a second) were loopback counted
    answers = [client.get("/conformance") for _ in range(300)]
    assert {a.status_code for a in answers} == {200}
    assert "ratelimit-limit" not in answers[-1].headers


# -- compression ----------------------------------------------------------------------------


def raw(
    http: httpx.Client, path: str, encoding: str, **headers: str
) -> tuple[httpx.Response, bytes]:
    """The answer and its bytes as sent, not decoded."""
    with http.stream("GET", path, headers={"Accept-Encoding": encoding, **headers}) as answer:
        return answer, b"".join(answer.iter_raw())


def decoded(answer: httpx.Response, body: bytes) -> bytes:
    coding = answer.headers.get("content-encoding")
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "br":
        return bytes(brotli.decompress(body))
    assert coding is None, coding
    return body


def vary(answer: httpx.Response) -> set[str]:
    return {part.strip().lower() for part in answer.headers.get("vary", "").split(",")}


@pytest.mark.parametrize("coding", ["gzip", "br"])
@pytest.mark.parametrize(
    "path,media",
    [
        (f"{ITEMS}?limit=200&f=json", "application/geo+json"),
        ("/collections?f=html", "text/html"),
        ("/openapi.json", "application/json"),
        (f"{ITEMS}?f=csv", "text/csv"),
    ],
)
def test_json_html_and_csv_decode_to_the_identity_answer(client, path, media, coding):
    plain, plain_body = raw(client, path, "identity")
    packed, packed_body = raw(client, path, coding)
    for answer in (plain, packed):
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith(media)
        assert "accept-encoding" in vary(answer)
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == coding
    assert len(packed_body) < len(plain_body) / 2
    text = decoded(packed, packed_body)
    if media == "application/geo+json":  # each page says when it was made
        stamp = re.compile(rb'"timeStamp":\s*"[^"]*"')
        assert stamp.search(plain_body), "the page's timeStamp is where the test strips it"
        text, plain_body = (stamp.sub(b"", b) for b in (text, plain_body))
    assert text == plain_body
    if media == "text/csv":  # streamed, compressed piece by piece: no length known ahead
        assert "content-length" not in packed.headers
        assert packed.headers["transfer-encoding"] == "chunked"
    else:
        assert int(packed.headers["content-length"]) == len(packed_body)


def test_a_streamed_static_file_is_compressed_and_revalidates_with_its_own_etag(client):
    plain, plain_body = raw(client, SWAGGER_JS, "identity")
    packed, packed_body = raw(client, SWAGGER_JS, "gzip, deflate, br")
    assert packed.headers["content-encoding"] == "br"
    assert brotli.decompress(packed_body) == plain_body
    identity_tag, br_tag = plain.headers["etag"], packed.headers["etag"]
    assert br_tag != identity_tag and br_tag == identity_tag[:-1] + '-br"'
    # the browser revalidates the copy it holds, with the tag it was given
    same, _ = raw(client, SWAGGER_JS, "gzip, deflate, br", **{"If-None-Match": br_tag})
    assert same.status_code == 304 and same.headers["etag"] == br_tag
    assert "accept-encoding" in vary(same)
    plain_again, _ = raw(client, SWAGGER_JS, "identity", **{"If-None-Match": identity_tag})
    assert plain_again.status_code == 304 and plain_again.headers["etag"] == identity_tag
    # a brotli copy is not what a client that now takes gzip only would get
    other, other_body = raw(client, SWAGGER_JS, "gzip", **{"If-None-Match": br_tag})
    assert other.status_code == 200 and other.headers["etag"] == identity_tag[:-1] + '-gzip"'
    assert gzip.decompress(other_body) == plain_body
    head = client.head(SWAGGER_JS, headers={"Accept-Encoding": "br"})
    assert head.status_code == 200 and head.headers["content-encoding"] == "br"
    assert head.headers["etag"] == br_tag and "content-length" not in head.headers


def test_a_vector_tile_is_compressed_and_its_304_keeps_the_variant_etag(client):
    tile = "/collections/municipalities/tiles/WebMercatorQuad/12/2097/1373"
    plain, plain_body = raw(client, tile, "identity")
    assert plain.status_code == 200 and len(plain_body) > 2048, len(plain_body)
    packed, packed_body = raw(client, tile, "gzip")
    assert packed.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert packed.headers["content-encoding"] == "gzip" and "accept-encoding" in vary(packed)
    assert gzip.decompress(packed_body) == plain_body
    assert len(packed_body) < len(plain_body)
    assert packed.headers["etag"] == plain.headers["etag"][:-1] + '-gzip"'
    again, again_body = raw(client, tile, "gzip", **{"If-None-Match": packed.headers["etag"]})
    assert again.status_code == 304 and again_body == b""
    assert again.headers["etag"] == packed.headers["etag"]
    # the identity copy's tag still revalidates the identity answer
    plain_again, _ = raw(client, tile, "identity", **{"If-None-Match": plain.headers["etag"]})
    assert plain_again.status_code == 304


def test_small_answers_and_images_are_left_as_they_are(client, limited):
    small, _ = raw(client, "/healthz", "gzip, br")
    assert small.status_code == 200 and "content-encoding" not in small.headers
    assert "accept-encoding" in vary(small)
    image, image_body = raw(client, SWAGGER_PNG, "gzip, br")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert "content-encoding" not in image.headers and image_body.startswith(b"\x89PNG")
    assert int(image.headers["content-length"]) == len(image_body)
    # the limited server's URBIS_COMPRESS_MIN_BYTES=4096: a 3 KB page stays whole there
    with httpx.Client(base_url=limited, timeout=30) as http:
        page, page_body = raw(http, f"{ITEMS}?limit=3", "gzip", **_from("203.0.113.20"))
        assert 1024 < len(page_body) < 4096, len(page_body)
        assert "content-encoding" not in page.headers
        default_page, _ = raw(client, f"{ITEMS}?limit=3", "gzip")
        assert default_page.headers["content-encoding"] == "gzip"


@pytest.mark.parametrize(
    "accept,chosen",
    [
        ("gzip;q=1, br;q=0.5", "gzip"),
        ("br;q=0, gzip", "gzip"),
        ("identity;q=0, *", "br"),
        ("gzip;q=0, br;q=0", None),
        ("*;q=0", None),
        ("gzip;q=0.4, identity", None),
        ("deflate", None),
        ("BR", "br"),
    ],
)
def test_accept_encoding_q_values_are_honoured(client, accept, chosen):
    answer, body = raw(client, f"{ITEMS}?limit=50", accept)
    assert answer.status_code == 200
    assert answer.headers.get("content-encoding") == chosen
    assert decoded(answer, body).startswith(b"{")


# -- the limits in one place ----------------------------------------------------------------


def test_admin_status_lists_the_limits_as_set(limited):
    with httpx.Client(base_url=limited, timeout=30) as http:
        status = http.get(
            "/admin/status",
            headers={"Authorization": f"Bearer {TOKEN}", **_from("203.0.113.30")},
        )
    assert status.status_code == 200, status.text
    limits = status.json()["limits"]
    assert limits["rate_limit"] == {
        "requests_per_second": RATE,
        "burst": BURST,
        "loopback": True,
        "max_clients": 100_000,
    }
    assert limits["compression"] == {"enabled": True, "min_bytes": 4096}
    assert limits["max_body_bytes"] == 10_000_000 and limits["max_url_bytes"] == 8192
    assert limits["max_header_bytes"] == 32_768 and limits["header_timeout"] == 10
    assert limits["statement_timeouts"]["stats"] == 10 and limits["concurrency"]["tiles"] == 4
    assert limits["queue_timeout"] == 5 and limits["download_max_features"] == 1_000_000
    assert limits["max_stats_cells"] == 25_000_000 and limits["max_items_per_page"] == 10_000
