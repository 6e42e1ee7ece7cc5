"""Answers compressed as the client allows: brotli or gzip, for text of at least a size.

Starlette's GZipMiddleware is not used: it knows gzip alone, picks it whenever the word `gzip`
appears in Accept-Encoding (whatever its q-value, `gzip;q=0` included), and leaves ETags as they
are, so a compressed answer and an identity one share an ETag and a cache revalidating one gets
a 304 for the other. Here:

- The coding is negotiated from `Accept-Encoding` with its q-values (RFC 9110 12.5.3): `br` and
  `gzip` (or `*`) at their q, brotli on a tie; none when both are refused or when the client
  prefers `identity` outright.
- Compressed: text (`text/*` but event streams), JSON and XML of any kind (`+json`, `+xml`),
  JavaScript, SVG, and Mapbox vector tiles: protobuf of repeated keys and small integers, which
  shrink to a third or a half. Browsers decode `Content-Encoding` before MapLibre sees the
  bytes, as they do for every tile server that serves MVT gzipped, and only a client that
  says it decodes a coding gets it. Never images (PNG, WebP, TIFF are compressed already),
  GeoPackage, or an answer that has a `Content-Encoding` or is a range (206).
- Answers below `min_bytes` stay as they are: the framing would cost more than it saves.
- Every answer whose type is compressible says `Vary: Accept-Encoding`, small ones too.
- A compressed answer's ETag is the identity one with `-br` or `-gzip` inside its quotes (a
  strong ETag stays strong: the same bytes give the same compressed bytes). An `If-None-Match`
  naming the variant of the coding negotiated now is handed to the app as the identity ETag it
  knows, and its 304 carries the variant's ETag back, so revalidation works for both.
- A streamed answer (a CSV download, a static file) is compressed piece by piece, each piece
  flushed as it comes, never buffered whole; it goes without `Content-Length`. A whole answer
  gets the `Content-Length` of its compressed bytes. A HEAD says what its GET would: the
  coding, the ETag, and the compressed length when the app gave the body, none otherwise.
- Pieces of 128 KiB and more are compressed in a worker thread, off the event loop.
- A whole answer with a strong ETag is compressed once per coding: the compressed bytes are kept
  (`CompressedBodies`, least recently used out past `KEPT_BYTES`) under its path, query, ETag and
  coding, so a cached tile asked again is not compressed again on every request. A strong ETag
  promises the same bytes for the same URL, which is what makes the kept bytes right.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from typing import Protocol

import anyio.to_thread
import brotli
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoapi.asgi import HttpMiddleware
from geoapi.media_types import MVT
from urbis_core.settings import Compression

CODINGS = ("br", "gzip")  # preferred first, on equal q-values
GZIP_LEVEL = 6
BROTLI_QUALITY = 5  # about gzip's size at -9 for less time; 11 is for files compressed once
THREAD_MIN_BYTES = 128 * 1024
KEPT_BYTES = 32 * 1024 * 1024  # compressed whole answers kept per app (tiles, mostly)
_COMPRESSIBLE = frozenset(
    {
        "application/json",
        "application/javascript",
        "application/xml",
        "image/svg+xml",
        MVT,
        "application/x-protobuf",
    }
)
_NO_BODY_CHANGE = frozenset({204, 206, 304})


def compressible(content_type: str | None) -> bool:
    media = (content_type or "").partition(";")[0].strip().lower()
    if media.startswith("text/"):
        return media != "text/event-stream"  # each event must reach the client as it comes
    return media in _COMPRESSIBLE or media.endswith(("+json", "+xml"))


def negotiate(accept_encoding: str | None) -> str | None:
    """The coding to answer with (`br`, `gzip`), or None for the identity."""
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for element in accept_encoding.split(","):
        coding, *params = (part.strip() for part in element.split(";"))
        if not coding:
            continue
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    weight = 0.0  # a q-value we cannot read: not offered
        coding = coding.lower()
        weights[coding if coding != "x-gzip" else "gzip"] = weight
    anything = weights.get("*")
    best: str | None = None
    best_weight = 0.0
    for coding in CODINGS:
        weight = weights.get(coding, anything if anything is not None else 0.0)
        if weight > best_weight:
            best, best_weight = coding, weight
    # Unnamed, identity is merely acceptable: any coding offered comes first.
    identity = weights.get("identity", anything)
    if best is not None and identity is not None and identity > best_weight:
        return None
    return best


def variant_etag(etag: str, coding: str) -> str:
    """`"abc"` -> `"abc-gzip"`, `W/"abc"` -> `W/"abc-gzip"`."""
    if etag.endswith('"') and len(etag) >= 2:
        return f'{etag[:-1]}-{coding}"'
    return etag


def _identity_tags(if_none_match: str, coding: str) -> tuple[str, bool]:
    """If-None-Match with this coding's variants named as the identity ETags they come from."""
    suffix = f'-{coding}"'
    found = False
    tags = []
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag.endswith(suffix):
            tag = tag[: -len(suffix)] + '"'
            found = True
        tags.append(tag)
    return ", ".join(tags), found


class _Encoder(Protocol):
    def piece(self, data: bytes) -> bytes: ...
    def finish(self, data: bytes) -> bytes: ...


class _Gzip:
    def __init__(self) -> None:
        # wbits 31: the gzip container, its header without a timestamp (same bytes each time)
        self._stream = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)

    def piece(self, data: bytes) -> bytes:
        return self._stream.compress(data) + self._stream.flush(zlib.Z_SYNC_FLUSH)

    def finish(self, data: bytes) -> bytes:
        return self._stream.compress(data) + self._stream.flush(zlib.Z_FINISH)


class _Brotli:
    def __init__(self) -> None:
        self._stream = brotli.Compressor(quality=BROTLI_QUALITY)

    def piece(self, data: bytes) -> bytes:
        return self._stream.process(data) + self._stream.flush()

    def finish(self, data: bytes) -> bytes:
        return self._stream.process(data) + self._stream.finish()


def _encoder(coding: str) -> _Encoder:
    return _Brotli() if coding == "br" else _Gzip()


async def _run(step: _Encoder, data: bytes, last: bool) -> bytes:
    work = step.finish if last else step.piece
    if len(data) >= THREAD_MIN_BYTES:
        return await anyio.to_thread.run_sync(work, data)
    return work(data)


BodyKey = tuple[str, bytes, str, str]  # path, query string, strong ETag, coding


class CompressedBodies:
    """Compressed whole answers by URL, ETag and coding, at most `max_bytes` of them."""

    def __init__(self, max_bytes: int = KEPT_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._kept: OrderedDict[BodyKey, bytes] = OrderedDict()

    def get(self, key: BodyKey) -> bytes | None:
        body = self._kept.get(key)
        if body is not None:
            self._kept.move_to_end(key)
        return body

    def put(self, key: BodyKey, body: bytes) -> None:
        if len(body) > self.max_bytes or key in self._kept:
            return
        self._kept[key] = body
        self.bytes += len(body)
        while self.bytes > self.max_bytes:
            _, dropped = self._kept.popitem(last=False)
            self.bytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._kept)


def _add_vary(message: Message) -> None:
    MutableHeaders(scope=message).add_vary_header("Accept-Encoding")


class Compress(HttpMiddleware):
    def __init__(self, app: ASGIApp, settings: Compression) -> None:
        super().__init__(app)
        self.settings = settings
        self.kept = CompressedBodies()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.settings.enabled:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        coding = negotiate(headers.get("accept-encoding"))
        if coding is None:

            async def send_with_vary(message: Message) -> None:
                if message["type"] == "http.response.start" and compressible(
                    Headers(raw=message.get("headers", [])).get("content-type")
                ):
                    _add_vary(message)
                await send(message)

            await self.app(scope, receive, send_with_vary)
            return
        revalidating = False
        raw_headers = list(scope["headers"])
        if "if-none-match" in headers:
            tags, revalidating = _identity_tags(headers["if-none-match"], coding)
            raw_headers = [(k, v) for k, v in raw_headers if k.lower() != b"if-none-match"]
            raw_headers.append((b"if-none-match", tags.encode("latin-1")))
        extensions = {
            name: value
            for name, value in scope.get("extensions", {}).items()
            if name != "http.response.pathsend"  # a file's bytes must pass through here
        }
        # Changed in place, not copied: what the router writes into the scope (the route the
        # metrics and the log name) must reach the middlewares outside this one.
        scope["headers"] = raw_headers
        scope["extensions"] = extensions
        answer = _Answer(coding, self.settings.min_bytes, scope["method"] == "HEAD", revalidating)
        answer.keep_in(self.kept, scope["path"], scope.get("query_string", b""))
        await self.app(scope, receive, answer.sender(send))


class _Answer:
    """One answer on its way out: held at its start until its first piece decides."""

    def __init__(self, coding: str, min_bytes: int, head: bool, revalidating: bool) -> None:
        self.coding = coding
        self.min_bytes = min_bytes
        self.head = head
        self.revalidating = revalidating
        self.start: Message | None = None
        self.encoder: _Encoder | None = None
        self.passing = False  # sent as it is
        self.kept: CompressedBodies | None = None  # whole answers compressed before
        self.url: tuple[str, bytes] = ("", b"")

    def keep_in(self, kept: CompressedBodies, path: str, query: bytes) -> None:
        """Take a whole answer with a strong ETag from `kept`, or compress it into it."""
        self.kept, self.url = kept, (path, query)

    def sender(self, send: Send) -> Send:
        async def send_compressed(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self._started(message, send)
            elif message["type"] == "http.response.body":
                await self._body(message, send)
            else:
                await send(message)

        return send_compressed

    async def _started(self, message: Message, send: Send) -> None:
        headers = MutableHeaders(scope=message)
        status = message["status"]
        if status == 304:
            if self.revalidating and "etag" in headers:
                headers["etag"] = variant_etag(headers["etag"], self.coding)
                _add_vary(message)
            self.passing = True
            await send(message)
            return
        if not compressible(headers.get("content-type")):
            self.passing = True
            await send(message)
            return
        _add_vary(message)
        if status in _NO_BODY_CHANGE or status < 200 or "content-encoding" in headers:
            self.passing = True
            await send(message)
            return
        self.start = message  # until the first piece says how large the answer is

    async def _body(self, message: Message, send: Send) -> None:
        if self.passing:
            await send(message)
            return
        body: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        if self.start is not None:
            start, self.start = self.start, None
            headers = MutableHeaders(scope=start)
            declared = headers.get("content-length")
            size = int(declared) if declared and declared.isdigit() else None
            if not more and (not self.head or body):
                size = len(body)
            if size is not None and size < self.min_bytes:
                self.passing = True
                await send(start)
                await send(message)
                return
            headers["content-encoding"] = self.coding
            etag = headers.get("etag")
            if etag is not None:
                headers["etag"] = variant_etag(etag, self.coding)
            self.encoder = _encoder(self.coding)
            if not more and body:  # the whole answer at once: its compressed length is known
                compressed = await self._whole(body, etag)
                headers["content-length"] = str(len(compressed))
                await send(start)
                await send({**message, "body": b"" if self.head else compressed})
                self.passing = True
                return
            del headers["content-length"]
            await send(start)
        if self.head:  # the server sends no body for a HEAD: nothing to compress
            await send({**message, "body": b""})
            return
        assert self.encoder is not None
        out = await _run(self.encoder, body, last=not more)
        if out or not more:
            await send({**message, "body": out})

    async def _whole(self, body: bytes, etag: str | None) -> bytes:
        """A whole answer compressed, or as it was compressed before under the same strong ETag."""
        assert self.encoder is not None
        if etag is None or etag.startswith("W/") or self.kept is None:
            return await _run(self.encoder, body, last=True)
        key = (*self.url, etag, self.coding)
        compressed = self.kept.get(key)
        if compressed is None:
            compressed = await _run(self.encoder, body, last=True)
            self.kept.put(key, compressed)
        return compressed
