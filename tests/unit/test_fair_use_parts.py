"""The rate limiter's buckets, the client's address behind proxies, the coding negotiated."""

from __future__ import annotations

import asyncio
import ipaddress

import brotli
import httpx
import pytest

from geoapi.client_address import client_address, is_loopback
from geoapi.compression import (
    BROTLI_QUALITY,
    Compress,
    CompressedBodies,
    compressible,
    negotiate,
    variant_etag,
)
from geoapi.media_types import MVT
from geoapi.public_url import parse_networks
from geoapi.rate_limit import Buckets
from urbis_core.errors import ConfigError
from urbis_core.settings import Compression, RateLimit, Settings

A = ipaddress.ip_address("203.0.113.1")


def test_a_bucket_gives_its_burst_then_its_rate():
    buckets = Buckets(RateLimit(rate=2, burst=3))
    verdicts = [buckets.take(A, now=100.0) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts[:3]] == [2, 1, 0]
    assert verdicts[3].retry_after == 1  # half a second to the next token, said as 1
    assert not buckets.take(A, now=100.4).allowed
    assert buckets.take(A, now=100.5).allowed  # one token back after 1/rate seconds
    slow = Buckets(RateLimit(rate=0.1, burst=1))
    slow.take(A, now=0.0)
    assert slow.take(A, now=1.0).retry_after == 9


def test_buckets_stay_bounded_whatever_the_addresses():
    buckets = Buckets(RateLimit(rate=1, burst=5, max_clients=100))
    for n in range(10_000):
        buckets.take(ipaddress.ip_address(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"), 1.0)
    assert len(buckets) == 100
    # a bucket full again is forgotten as new requests come (5 s at 1 a second)
    for n in range(200):
        buckets.take(ipaddress.ip_address(f"192.0.2.{n % 200}"), now=10.0 + n * 0.001)
    assert len(buckets) == 100
    quiet = Buckets(RateLimit(rate=1, burst=5))
    for n in range(50):
        quiet.take(ipaddress.ip_address(f"198.51.100.{n}"), now=0.0)
    for step in range(30):
        quiet.take(A, now=6.0 + step)
    assert len(quiet) == 1  # only A is still counted


def _scope(peer: str, *forwarded: str) -> dict[str, object]:
    return {
        "client": (peer, 5000),
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
    }


LOOPBACK = parse_networks(["127.0.0.0/8", "::1/128"], "test")


@pytest.mark.parametrize(
    "peer,forwarded,trusted,client",
    [
        ("198.51.100.9", ("203.0.113.5",), LOOPBACK, "198.51.100.9"),  # not a proxy of ours
        ("127.0.0.1", ("203.0.113.5",), LOOPBACK, "203.0.113.5"),
        ("127.0.0.1", ("1.2.3.4, 203.0.113.5",), LOOPBACK, "203.0.113.5"),  # 1.2.3.4: forged
        (
            "127.0.0.1",
            ("203.0.113.5, 10.0.0.2",),
            parse_networks(["127.0.0.1", "10.0.0.0/8"], "t"),
            "203.0.113.5",
        ),
        (
            "127.0.0.1",
            ("203.0.113.5", "10.0.0.2"),
            parse_networks(["127.0.0.1", "10.0.0.0/8"], "t"),
            "203.0.113.5",
        ),
        ("127.0.0.1", ("not-an-address",), LOOPBACK, "127.0.0.1"),
        ("127.0.0.1", ("[2001:db8::1]:443",), LOOPBACK, "2001:db8::1"),
        ("127.0.0.1", ("203.0.113.5:8080",), LOOPBACK, "203.0.113.5"),
        ("127.0.0.1", (), LOOPBACK, "127.0.0.1"),
        ("::1", ("127.0.0.1",), LOOPBACK, "127.0.0.1"),  # every hop ours: the farthest
    ],
)
def test_the_client_is_the_first_address_no_trusted_proxy_wrote(peer, forwarded, trusted, client):
    assert client_address(_scope(peer, *forwarded), trusted) == ipaddress.ip_address(client)


def test_loopback_includes_mapped_ipv4():
    assert is_loopback(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert is_loopback(ipaddress.ip_address("::1"))
    assert not is_loopback(A)


@pytest.mark.parametrize(
    "header,coding",
    [
        (None, None),
        ("gzip, deflate, br", "br"),
        ("gzip;q=1, br;q=0.8", "gzip"),
        ("*", "br"),
        ("*;q=0", None),
        ("identity;q=0", None),
        ("gzip;q=0.5, identity", None),
        ("x-gzip", "gzip"),
        ("br;q=nonsense, gzip;q=0.1", "gzip"),
    ],
)
def test_the_coding_follows_the_q_values(header, coding):
    assert negotiate(header) == coding


def test_what_is_compressed_and_how_etags_change():
    for media in (
        "application/geo+json",
        "text/html; charset=utf-8",
        "text/csv",
        "application/vnd.mapbox-vector-tile",
        "application/problem+json",
    ):
        assert compressible(media), media
    for media in (
        "image/png",
        "image/webp",
        "image/tiff",
        "application/geopackage+sqlite3",
        "text/event-stream",
        None,
    ):
        assert not compressible(media), media
    assert variant_etag('"abc"', "gzip") == '"abc-gzip"'
    assert variant_etag('W/"abc"', "br") == 'W/"abc-br"'


def test_the_settings_are_read_and_checked():
    api = Settings.from_env(
        {
            "URBIS_RATE_LIMIT": "7.5",
            "URBIS_RATE_BURST": "30",
            "URBIS_RATE_LIMIT_LOOPBACK": "yes",
            "URBIS_COMPRESS": "0",
            "URBIS_COMPRESS_MIN_BYTES": "0",
        }
    ).api("postgresql://x")
    assert (api.rate_limit.rate, api.rate_limit.burst, api.rate_limit.loopback) == (7.5, 30, True)
    assert (api.compression.enabled, api.compression.min_bytes) == (False, 0)
    assert not Settings.from_env({"URBIS_RATE_LIMIT": "0"}).api("x").rate_limit.enabled
    for name, value in (
        ("URBIS_RATE_LIMIT", "-1"),
        ("URBIS_RATE_BURST", "0"),
        ("URBIS_COMPRESS_MIN_BYTES", "lots"),
    ):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: value})


def _compressing(bodies: dict[str, tuple[bytes, str]]) -> tuple[Compress, list[str]]:
    """Compress over a small ASGI app answering `bodies[path]` (bytes, ETag); paths it drew."""
    drawn: list[str] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        body, etag = bodies[scope["path"]]
        drawn.append(scope["path"])
        headers = [(b"content-type", MVT.encode()), (b"etag", etag.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return Compress(app, Compression()), drawn


def test_a_whole_answer_with_a_strong_etag_is_compressed_once_per_url_and_coding():
    tile = bytes(range(256)) * 40
    other = bytes(reversed(range(256))) * 40
    middleware, drawn = _compressing(
        {"/a": (tile, '"t.v1"'), "/b": (other, '"t.v1"'), "/w": (tile, 'W/"t.v1"')}
    )
    transport = httpx.ASGITransport(app=middleware)

    async def ask() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answers = []
            for path, coding in [("/a", "br"), ("/a", "br"), ("/b", "br"), ("/a", "gzip")]:
                answers.append(await client.get(path, headers={"Accept-Encoding": coding}))
            answers.append(await client.get("/w", headers={"Accept-Encoding": "br"}))
            return answers

    first, again, other_url, gzipped, weak = asyncio.run(ask())
    assert drawn == ["/a", "/a", "/b", "/a", "/w"]  # the app answers every time
    assert first.content == again.content == gzipped.content == tile  # decoded by httpx
    assert again.headers["etag"] == first.headers["etag"] == '"t.v1-br"'
    assert other_url.content == other  # the same ETag at another URL is another body
    assert weak.content == tile
    # kept: /a in br and in gzip, /b in br; not the weak ETag's answer
    assert len(middleware.kept) == 3
    assert middleware.kept.get(("/a", b"", '"t.v1"', "br")) == brotli.compress(
        tile, quality=BROTLI_QUALITY
    )


def test_the_kept_compressed_bodies_stay_within_their_bytes():
    kept = CompressedBodies(max_bytes=100)
    for n in range(10):
        kept.put((f"/{n}", b"", '"e"', "br"), bytes(30))
    assert kept.bytes <= 100 and len(kept) == 3
    assert kept.get(("/9", b"", '"e"', "br")) is not None
    assert kept.get(("/0", b"", '"e"', "br")) is None  # least recently used, gone first
    kept.put(("/big", b"", '"e"', "br"), bytes(101))  # larger than the whole budget: not kept
    assert kept.get(("/big", b"", '"e"', "br")) is None and kept.bytes <= 100
