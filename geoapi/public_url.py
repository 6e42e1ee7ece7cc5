"""The service's public base URL, as the client sees it, for every absolute link it writes.

Behind a reverse proxy the request the API receives is not the one the client sent: the proxy
may end TLS (`X-Forwarded-Proto`), answer on another host name (`X-Forwarded-Host`, RFC 7239
`Forwarded: host=...`), or publish the API under a path (`X-Forwarded-Prefix: /urbis`). Those
headers are believed only from the proxies `URBIS_TRUSTED_PROXIES` lists (loopback by default),
since anyone else could send them; `URBIS_PUBLIC_URL`, when set, wins over all of them and
over `Host`.

A link built from a request header makes the answer depend on that header: the header's name
is recorded, and `VaryMiddleware` names it in `Vary`, so that no shared cache hands one
client's host to another. Values that are not a plain scheme, host[:port] or path are ignored
(a forged `Host` cannot put markup or another path into a link).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from geoapi.asgi import HttpMiddleware
from urbis_core.errors import ConfigError

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::(\d{{1,5}}))?$")
_PREFIX = re.compile(r"^(?:/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$")
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_VARY_KEY = "link_vary"  # in the ASGI scope's state: the headers this answer's links came from


def parse_networks(raw: Iterable[str], setting: str) -> tuple[IpNetwork, ...]:
    try:
        return tuple(
            ipaddress.ip_network(part.strip(), strict=False) for part in raw if part.strip()
        )
    except ValueError as exc:
        raise ConfigError(
            f"{setting}: {exc}; expected addresses or networks such as 127.0.0.1, 10.0.0.0/8, ::1"
        ) from None


def parse_public_url(raw: str, setting: str) -> str:
    """`https://host[:port][/path]`, without a trailing slash."""
    match = re.match(r"^(https?)://([^/?#]+)(/[^?#]*)?$", raw.strip())
    if (
        not match
        or not _HOST.match(match.group(2))
        or (
            match.group(3)
            and match.group(3) != "/"
            and not _PREFIX.match(match.group(3).rstrip("/"))
        )
    ):
        raise ConfigError(
            f"{setting}={raw!r} is not a URL such as https://maps.example.org "
            "or https://example.org/urbis"
        )
    return f"{match.group(1)}://{match.group(2)}{(match.group(3) or '').rstrip('/')}"


def _first(value: str | None) -> str | None:
    """The first of a comma-separated header value (the one the client's side wrote)."""
    if value is None:
        return None
    first = value.split(",", 1)[0].strip()
    return first or None


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def forwarded_pairs(header: str) -> dict[str, str]:
    """The parameters of the first element of an RFC 7239 `Forwarded` header (lower-case names).

    The first element is the one the proxy nearest the client wrote: its `host` and `proto` are
    what the client asked for.
    """
    element = _split_outside_quotes(header, ",")[0]
    pairs: dict[str, str] = {}
    for pair in _split_outside_quotes(element, ";"):
        name, _, value = pair.strip().partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if name.strip():
            pairs.setdefault(name.strip().lower(), value)
    return pairs


@dataclass(frozen=True)
class PublicUrl:
    """How the base of absolute links is found: a fixed URL, or the request as proxies tell it."""

    fixed: str | None = None
    trusted_proxies: tuple[IpNetwork, ...] = ()

    def _trusts(self, request: Request) -> bool:
        peer = request.client.host if request.client else None
        if peer is None:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.trusted_proxies)

    def base(self, request: Request) -> str:
        if self.fixed is not None:
            return self.fixed
        used: list[str] = []
        proto = host = prefix = None
        headers = request.headers
        if self._trusts(request):
            if "forwarded" in headers:
                pairs = forwarded_pairs(headers["forwarded"])
                proto, host = pairs.get("proto"), pairs.get("host")
                used.append("Forwarded")
            for name in (
                "X-Forwarded-Proto",
                "X-Forwarded-Host",
                "X-Forwarded-Port",
                "X-Forwarded-Prefix",
            ):
                if name.lower() in headers:
                    used.append(name)
            proto = proto or _first(headers.get("x-forwarded-proto"))
            if host is None and (forwarded_host := _first(headers.get("x-forwarded-host"))):
                host = _with_port(
                    forwarded_host,
                    _first(headers.get("x-forwarded-port")),
                    (proto or request.url.scheme).lower(),
                )
            prefix = _first(headers.get("x-forwarded-prefix"))
        proto = proto.lower() if proto and proto.lower() in _DEFAULT_PORTS else None
        host = host if host and _HOST.match(host) else None
        prefix = prefix.rstrip("/") if prefix and _PREFIX.match(prefix.rstrip("/")) else ""
        if host is None:
            host = headers.get("host")
            used.append("Host")
            if not host or not _HOST.match(host):
                host = _socket_host(request.scope)
        scheme = proto or request.url.scheme
        record_vary(request, used)
        return f"{scheme}://{host}{prefix or request.scope.get('root_path', '').rstrip('/')}"


def _with_port(host: str, port: str | None, scheme: str) -> str:
    """A forwarded host with `X-Forwarded-Port` added, unless it has one or it is the default."""
    match = _HOST.match(host)
    if (
        port is None
        or not port.isdigit()
        or match is None
        or match.group(1) is not None
        or port == _DEFAULT_PORTS.get(scheme)
    ):
        return host
    return f"{host}:{port}"


def _socket_host(scope: Scope) -> str:
    """The address the server listens on: the host when the request's own Host is unusable."""
    server = scope.get("server")
    if not server:
        return "localhost"
    address, port = server[0], server[1]
    if ":" in str(address):
        address = f"[{address}]"
    return f"{address}:{port}" if port else str(address)


def record_vary(request: Request, names: list[str]) -> None:
    if names:
        recorded: list[str] = request.scope.setdefault("state", {}).setdefault(_VARY_KEY, [])
        recorded.extend(n for n in names if n not in recorded)


class VaryMiddleware(HttpMiddleware):
    """Names in `Vary` the request headers an answer's links were built from."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                names: list[str] = scope.get("state", {}).get(_VARY_KEY, [])
                if names:
                    message["headers"] = _add_vary(list(message.get("headers", [])), names)
            await send(message)

        await self.app(scope, receive, send_with_vary)


def _add_vary(headers: list[Any], names: list[str]) -> list[Any]:
    existing = [v.decode("latin-1") for k, v in headers if k.lower() == b"vary"]
    present = {p.strip().lower() for value in existing for p in value.split(",") if p.strip()}
    if "*" in present:
        return headers
    added = [n for n in names if n.lower() not in present]
    if not added:
        return headers
    kept = [(k, v) for k, v in headers if k.lower() != b"vary"]
    value = ", ".join([*existing, *added]) if existing else ", ".join(added)
    return [*kept, (b"vary", value.encode("latin-1"))]
