"""Which client sent a request: the peer, or, from a trusted proxy, the one it forwarded for.

`X-Forwarded-For` lists the addresses a request passed through, each proxy appending the one it
heard from. Only the entries our trusted proxies (URBIS_TRUSTED_PROXIES) wrote can be believed:
read from the right, every trusted address is a proxy of ours and the first one that is not is
the client. Anything left of it was written by the client itself and could be anything, so a
client cannot pass for another by sending the header; from a peer that is not a trusted proxy
the header is not read at all.
"""

from __future__ import annotations

import ipaddress

from starlette.types import Scope

from geoapi.public_url import IpNetwork

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> IpAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_address(scope: Scope, trusted_proxies: tuple[IpNetwork, ...]) -> IpAddress | None:
    """The client's address; None when the server gave no peer (not over a socket)."""
    client = scope.get("client")
    if not client:
        return None
    address = _address(str(client[0]))
    if address is None:
        return None

    def trusted(candidate: IpAddress) -> bool:
        return any(candidate in network for network in trusted_proxies)

    if not trusted(address):
        return address
    forwarded = [
        value.decode("latin-1")
        for name, value in scope["headers"]
        if name.lower() == b"x-forwarded-for"
    ]
    # Several header lines count as one list, in their order.
    hops = [hop for line in forwarded for hop in line.split(",")]
    for hop in reversed(hops):
        candidate = _address(hop)
        if candidate is None:  # not an address: written by whoever our last proxy heard from
            return address
        address = candidate
        if not trusted(address):
            return address
    return address


def is_loopback(address: IpAddress) -> bool:
    # An IPv4 address mapped into IPv6 (::ffff:127.0.0.1) is loopback too.
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)
