"""How uvicorn serves the app: deadlines and sizes for connections (issue 12, slowloris).

uvicorn has no deadline for a request's head: a client sending half a request line, or a byte of
headers now and then, holds its connection (and a file descriptor) for ever, and a thousand such
clients held every one of theirs. `GuardedHttpToolsProtocol` gives each request head
`header_timeout` seconds from its first byte (a new connection's from when it opens): then the
connection is closed, with a 408 when part of a head came. Between requests uvicorn's keep-alive
timeout applies.

uvicorn's httptools protocol (llhttp, in C) rather than its h11 one: the same app answers a
feature by key about 17 % faster with it (bench/README.md, issue 18). llhttp keeps no limit on a
request head; `max_head_bytes` is set above the URL and header limits of geoapi.request_limits,
so that those answer (414, 431, in the JSON error model) for sizes between the two, and a head
still incomplete past it is refused as soon as that much came: a 431, and the connection closed.
llhttp, as httptools builds it, refuses a request target holding anything but visible ASCII, as
h11 did (a 400; tests/api/test_edge_limits.py): geoapi.request_limits relies on it.
"""

from __future__ import annotations

import asyncio
import sys
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from geoapi.errors import problem
from urbis_core.settings import ServerLimits

HEAD_SLACK_BYTES = 1024  # the method, the version and line ends around URL and headers


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol: a deadline and a size bound per head, JSON errors."""

    header_timeout = 10.0  # both set per server by protocol_class
    max_head_bytes = 41_984

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_head = False  # part of a request head came, not all of it
        self._in_body = False  # a head came whole, its message not yet
        self._head_bytes = 0  # bytes received since the last head came whole (or the start)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_body:
            self._head_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():  # answered already (a 400 for what llhttp refused)
            return
        if self._in_head and self._head_bytes > self.max_head_bytes:
            self._answer_and_close(
                431,
                f"the request line and headers are longer than the {self.max_head_bytes:,} "
                "bytes this service reads",
            )

    # llhttp's callbacks, in the order a request makes them

    def on_message_begin(self) -> None:
        self._in_head = True
        self._start_head_timer()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._in_body = True
        self._head_bytes = 0
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    # the head's deadline

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self._in_body:
            return
        if self._in_head:  # part of a head came: say why the connection ends
            self._answer_and_close(
                408, f"the request line and headers did not arrive within {self.header_timeout:g} s"
            )
        else:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this while handling llhttp's error, which says what is wrong.
        reason = str(sys.exc_info()[1] or msg).strip() or msg
        self._answer_and_close(400, f"not a valid HTTP/1.1 request: {reason}")

    def _answer_and_close(self, status: int, detail: str) -> None:
        """Answer `status` with `detail` in the JSON model, unless an answer is under way."""
        self._stop_head_timer()
        if self.cycle is None or self.cycle.response_complete:
            response = problem(status, detail)
            head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()]
            head += [name + b": " + value + b"\r\n" for name, value in response.raw_headers]
            head.append(b"connection: close\r\n\r\n")
            self.transport.write(b"".join(head) + bytes(response.body))
        self.transport.close()


def protocol_class(limits: ServerLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol uvicorn builds per connection (it takes a class), with these limits."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout": limits.header_timeout,
            "max_head_bytes": limits.max_url_bytes + limits.max_header_bytes + HEAD_SLACK_BYTES,
        },
    )


def uvicorn_options(limits: ServerLimits) -> dict[str, Any]:
    """The uvicorn.run keywords for these limits.

    No `limit_concurrency`: uvicorn counts open connections against it, and answers a 503 to
    the next *complete* request once they pass it, so clients holding half-sent requests would
    turn every real request away while costing nothing themselves; the head deadline frees
    their connections instead, and the app bounds its own work.
    """
    return {
        "http": protocol_class(limits),
        "timeout_keep_alive": limits.keep_alive_timeout,
    }
