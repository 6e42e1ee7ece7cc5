"""How uvicorn serves the app: deadlines and sizes for connections (issue 12, slowloris).

uvicorn has no deadline for a request's head: a client sending half a request line, or a byte of
headers now and then, holds its connection (and a file descriptor) for ever, and a thousand such
clients held every one of theirs. `GuardedH11Protocol` gives each request head `header_timeout`
seconds from its first byte (a new connection's from when it opens): then the connection is
closed, with a 408 when part of a head came. Between requests uvicorn's keep-alive timeout
applies.

Request heads are kept by h11 until complete; its limit on them (`h11_max_incomplete_event_size`)
is set above the URL and header limits of geoapi.request_limits, so that those answer (414, 431,
in the JSON error model) for sizes between the two. A head past h11's limit is refused by h11
itself as soon as that much is buffered: a 431 here (uvicorn would say 400 in plain text), and
the connection closed.
"""

from __future__ import annotations

import asyncio
import sys
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from geoapi.errors import problem
from urbis_core.settings import ServerLimits

HEAD_SLACK_BYTES = 1024  # the method, the version and line ends around URL and headers


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request head, errors in the JSON model."""

    header_timeout = 10.0  # set per server by protocol_class

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # h11 stays IDLE on the client's side until a whole request head is in.
        if self.conn.their_state is h11.IDLE:
            self._start_head_timer()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._stop_head_timer()

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:  # part of a head came: say why the connection ends
            self._answer_and_close(
                408, f"the request line and headers did not arrive within {self.header_timeout:g} s"
            )
        else:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this while handling h11's RemoteProtocolError, which carries the
        # status h11 suggests (431 for a head past its limit).
        error = sys.exc_info()[1]
        status = getattr(error, "error_status_hint", 400)
        if status == 431:
            detail = (
                f"the request line and headers are longer than the "
                f"{self.config.h11_max_incomplete_event_size or 0:,} bytes this service "
                "reads"
            )
        else:
            # h11 says what is wrong before a colon, and quotes the bytes after it.
            detail = f"not a valid HTTP/1.1 request: {str(error or msg).partition(':')[0]}"
        self._answer_and_close(status, detail)

    def _answer_and_close(self, status: int, detail: str) -> None:
        self._stop_head_timer()
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            response = problem(status, detail)
            headers = [*response.raw_headers, (b"connection", b"close")]
            for event in (
                h11.Response(
                    status_code=status, headers=headers, reason=HTTPStatus(status).phrase.encode()
                ),
                h11.Data(data=bytes(response.body)),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


def protocol_class(limits: ServerLimits) -> type[GuardedH11Protocol]:
    """The protocol uvicorn builds per connection (it takes a class), with this deadline."""
    return type(
        "GuardedH11Protocol", (GuardedH11Protocol,), {"header_timeout": limits.header_timeout}
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
        "h11_max_incomplete_event_size": limits.max_url_bytes
        + limits.max_header_bytes
        + HEAD_SLACK_BYTES,
    }
