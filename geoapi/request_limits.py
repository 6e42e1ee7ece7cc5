"""Limits on what one request may send, checked before any route runs (issue 12).

An ASGI middleware: the URL and the headers are measured (414, 431); path segments and query
parameters are refused when they are not UTF-8 once percent-decoded or hold control characters
(400 naming the parameter: PostgreSQL cannot store a NUL, and no id or value has one); the body
is counted while it is read, `Content-Length` or chunked alike, so an upload past the maximum is
a 413 after at most one piece past it, never held whole in memory, and a body trickling in is
cut off with a 408 once its deadline passes.

Starlette's own body limit (`FastAPI(max_body_size=...)`) is not used: it answers in plain
text when `Content-Length` is too large and has no deadline. Refusals are answered here in the
JSON error model (geoapi.errors.problem) with `Connection: close` when a body is left unread, so
the server does not go on reading and discarding it.
"""

from __future__ import annotations

import asyncio
import unicodedata
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import unquote, unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoapi.asgi import HttpMiddleware
from geoapi.errors import problem
from urbis_core.errors import InvalidParameter
from urbis_core.settings import ServerLimits

# Query values may span lines (a CQL2 filter written over several, tab-indented); names never.
ALLOWED_IN_VALUES = frozenset("\t\n\r")


@dataclass(frozen=True)
class Refusal:
    status: int
    detail: str


class BodyRefused(Exception):  # noqa: N818 - a signal, not a fault: RequestLimits answers it
    """Raised in the app from `receive` when the body passes its size or its deadline.

    Not an UrbisError on purpose: no handler of geoapi.errors maps it, so it travels up to
    RequestLimits, which answers with the refusal it carries.
    """

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.detail)
        self.refusal = refusal


class RequestLimits(HttpMiddleware):
    def __init__(self, app: ASGIApp, limits: ServerLimits) -> None:
        super().__init__(app)
        self.limits = limits

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = _Body(receive, self.limits, scope)
        refusal = _head_refusal(scope, self.limits) or body.refused_at_once()
        if refusal is not None:
            await _answer(send, refusal, close=body.expected and not body.complete)
            return
        started = False

        async def send_unless_refused(message: Message) -> None:
            nonlocal started
            if body.refusal is not None:
                # The app answered the refusal its own way (e.g. FastAPI turns any failure
                # while reading a body it parses into a 400): ours replaces it.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _answer(send, body.refusal, close=True)
                return
            if message["type"] == "http.response.start":
                started = True
                if body.expected and not body.complete:
                    # Answered before its body was read: end the connection rather than read
                    # and throw away whatever the client still sends.
                    message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        try:
            await self.app(scope, body.receive, send_unless_refused)
        except BodyRefused as refused:
            if started:  # the answer was under way: nothing to do but let uvicorn cut it
                raise
            await _answer(send, refused.refusal, close=True)


class _Body:
    """The request's `receive`, counting the body's bytes and watching its deadline."""

    def __init__(self, receive: Receive, limits: ServerLimits, scope: Scope) -> None:
        self._receive = receive
        self._limits = limits
        headers = dict(scope["headers"])
        self._length = _content_length(headers.get(b"content-length"))
        self.expected = bool(self._length) or b"transfer-encoding" in headers
        self.complete = not self.expected
        self._received = 0
        self._deadline: float | None = None
        self.refusal: Refusal | None = None

    def refused_at_once(self) -> Refusal | None:
        if self._length is not None and self._length > self._limits.max_body_bytes:
            return self._too_large()
        return None

    def _too_large(self) -> Refusal:
        return Refusal(
            413,
            f"the request body is larger than the "
            f"{self._limits.max_body_bytes:,} bytes this service accepts",
        )

    async def receive(self) -> Message:
        if self.complete:  # e.g. a streaming answer listening for the client to leave
            return await self._receive()
        loop = asyncio.get_running_loop()
        if self._deadline is None:
            # From the app's first read: time spent waiting for a database connection is
            # not the client's.
            self._deadline = loop.time() + self._limits.body_timeout
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            self._refuse(
                Refusal(
                    408, f"the request body did not arrive within {self._limits.body_timeout:g} s"
                )
            )
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._limits.max_body_bytes:
                self._refuse(self._too_large())
            self.complete = not message.get("more_body", False)
        return message

    def _refuse(self, refusal: Refusal) -> NoReturn:
        self.refusal = refusal
        raise BodyRefused(refusal)


def _content_length(raw: bytes | None) -> int | None:
    # The HTTP parser (llhttp) has already refused a malformed or repeated Content-Length.
    return int(raw) if raw is not None and raw.strip().isdigit() else None


def _head_refusal(scope: Scope, limits: ServerLimits) -> Refusal | None:
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope["query_string"]
    url_bytes = len(raw_path) + (len(query) + 1 if query else 0)
    if url_bytes > limits.max_url_bytes:
        return Refusal(
            414,
            f"the URL (path and query) is {url_bytes:,} bytes long; this "
            f"service accepts at most {limits.max_url_bytes:,}",
        )
    header_bytes = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
    if header_bytes > limits.max_header_bytes:
        return Refusal(
            431,
            f"the request headers are {header_bytes:,} bytes long; this "
            f"service accepts at most {limits.max_header_bytes:,}",
        )
    problem_text = _path_problem(raw_path) or _query_problem(query)
    return Refusal(400, problem_text) if problem_text else None


def _path_problem(raw_path: bytes) -> str | None:
    # Named 'path' with the segment shown: the route, which knows the segment's name (e.g. a
    # collection id), is not chosen yet.
    for raw in raw_path.decode("ascii", "replace").split("/"):
        reason = _text_problem(
            raw, plus_is_space=False, allowed=frozenset(), rule="path segments may hold none"
        )
        if reason is not None:
            return str(InvalidParameter("path", f"the segment '{_shown(raw)}' {reason}"))
    return None


def _query_problem(query: bytes) -> str | None:
    for pair in query.decode("ascii", "replace").split("&"):
        raw_name, _, raw_value = pair.partition("=")
        reason = _text_problem(
            raw_name, plus_is_space=True, allowed=frozenset(), rule="parameter names may hold none"
        )
        if reason is not None:
            return str(InvalidParameter(_shown(raw_name), f"the parameter's name {reason}"))
        reason = _text_problem(
            raw_value,
            plus_is_space=True,
            allowed=ALLOWED_IN_VALUES,
            rule="values may hold none but tab, line feed and carriage return",
        )
        if reason is not None:
            return str(
                InvalidParameter(
                    _shown(unquote(raw_name.replace("+", " "))), f"'{_shown(raw_value)}' {reason}"
                )
            )
    return None


def _text_problem(raw: str, plus_is_space: bool, allowed: frozenset[str], rule: str) -> str | None:
    """Why a percent-encoded piece of the URL cannot be an id, a name or a value, if it cannot."""
    if "%" not in raw:  # llhttp lets only visible ASCII through: nothing else to look at
        return None
    try:
        text = unquote_to_bytes(raw.replace("+", " ") if plus_is_space else raw).decode()
    except UnicodeDecodeError as exc:
        return (
            f"is not UTF-8 text once its %-escapes are decoded ({exc.reason} at byte {exc.start})"
        )
    for char in text:
        if char not in allowed and unicodedata.category(char) == "Cc":
            return f"holds the control character U+{ord(char):04X}; {rule}"
    return None


def _shown(raw: str) -> str:
    return raw if len(raw) <= 80 else raw[:77] + "..."


async def _answer(send: Send, refusal: Refusal, close: bool) -> None:
    response = problem(refusal.status, refusal.detail)
    if close:
        response.headers["connection"] = "close"
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    await send({"type": "http.response.body", "body": response.body})
