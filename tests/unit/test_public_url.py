"""The public base URL of links: header parsing and the settings it is built from."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from geoapi.public_url import (
    PublicUrl,
    forwarded_pairs,
    parse_networks,
    parse_public_url,
)
from urbis_core.errors import ConfigError

LOCAL = parse_networks(["127.0.0.0/8", "::1"], "test")


def request(headers: dict[str, str], peer: str = "127.0.0.1") -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "root_path": "",
            "scheme": "http",
            "server": ("127.0.0.1", 8000),
            "client": (peer, 5555),
            "query_string": b"",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            "for=192.0.2.60;proto=https;host=example.org",
            {"for": "192.0.2.60", "proto": "https", "host": "example.org"},
        ),
        (
            'For="[2001:db8::1]:4711";Host="a.example:8443", for=10.0.0.1;host=b.example',
            {"for": "[2001:db8::1]:4711", "host": "a.example:8443"},
        ),
        ('host="x\\"y";proto=http', {"host": 'x"y', "proto": "http"}),
        ('host="a,b";proto=https', {"host": "a,b", "proto": "https"}),
        ("", {}),
    ],
)
def test_forwarded_takes_the_first_element(header, expected):
    assert forwarded_pairs(header) == expected


@pytest.mark.parametrize(
    ("headers", "peer", "base"),
    [
        ({"host": "api.local:8000"}, "127.0.0.1", "http://api.local:8000"),
        (
            {
                "host": "a",
                "x-forwarded-host": "maps.example.org",
                "x-forwarded-proto": "https",
                "x-forwarded-prefix": "/urbis/",
            },
            "127.0.0.1",
            "https://maps.example.org/urbis",
        ),
        (
            {
                "host": "a",
                "x-forwarded-host": "m.example, proxy.local",
                "x-forwarded-port": "8443",
                "x-forwarded-proto": "https",
            },
            "::1",
            "https://m.example:8443",
        ),
        (
            {
                "host": "a",
                "x-forwarded-host": "m.example",
                "x-forwarded-port": "443",
                "x-forwarded-proto": "https",
            },
            "127.0.0.1",
            "https://m.example",
        ),
        (
            {
                "host": "a",
                "forwarded": 'proto=https;host="geo.example:444"',
                "x-forwarded-host": "ignored.example",
            },
            "127.0.0.1",
            "https://geo.example:444",
        ),
        # from a peer that is not a trusted proxy, forwarded headers are not believed
        (
            {
                "host": "a.example",
                "x-forwarded-host": "evil.example",
                "x-forwarded-proto": "https",
                "forwarded": "host=evil.example",
            },
            "192.0.2.7",
            "http://a.example",
        ),
        # values that are not a scheme, a host or a path are ignored
        ({"host": "bad host"}, "127.0.0.1", "http://127.0.0.1:8000"),
        (
            {
                "host": "a",
                "x-forwarded-proto": "javascript",
                "x-forwarded-host": "x/y",
                "x-forwarded-prefix": "//evil.example",
            },
            "127.0.0.1",
            "http://a",
        ),
    ],
)
def test_the_base_follows_trusted_proxies_only(headers, peer, base):
    assert PublicUrl(None, LOCAL).base(request(headers, peer)) == base


def test_a_fixed_public_url_wins_and_adds_no_vary():
    asked = request({"host": "evil.example", "x-forwarded-host": "other.example"})
    assert PublicUrl("https://geo.example/urbis", LOCAL).base(asked) == "https://geo.example/urbis"
    assert "state" not in asked.scope or not asked.scope["state"]


def test_the_headers_used_are_recorded_for_vary():
    asked = request({"host": "a", "x-forwarded-host": "b.example"})
    PublicUrl(None, LOCAL).base(asked)
    assert asked.scope["state"]["link_vary"] == ["X-Forwarded-Host"]
    plain = request({"host": "a"})
    PublicUrl(None, LOCAL).base(plain)
    assert plain.scope["state"]["link_vary"] == ["Host"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://maps.example.org", "https://maps.example.org"),
        ("https://maps.example.org/", "https://maps.example.org"),
        ("http://10.0.0.5:8080/urbis/api/", "http://10.0.0.5:8080/urbis/api"),
    ],
)
def test_public_url_setting(raw, expected):
    assert parse_public_url(raw, "URBIS_PUBLIC_URL") == expected


@pytest.mark.parametrize(
    "raw", ["maps.example.org", "ftp://x", "https://a b", "https://x/?q=1", "https://x/a//b"]
)
def test_a_bad_public_url_is_refused(raw):
    with pytest.raises(ConfigError, match="URBIS_PUBLIC_URL"):
        parse_public_url(raw, "URBIS_PUBLIC_URL")


def test_trusted_proxies_setting():
    networks = parse_networks(["10.0.0.0/8", " 192.0.2.1 ", "", "fd00::/8"], "X")
    assert [str(n) for n in networks] == ["10.0.0.0/8", "192.0.2.1/32", "fd00::/8"]
    with pytest.raises(ConfigError, match="URBIS_TRUSTED_PROXIES"):
        parse_networks(["10.0.0.0/33"], "URBIS_TRUSTED_PROXIES")
