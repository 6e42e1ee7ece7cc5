"""A minimal HTTP/1.1 GET client on asyncio streams, for benchmarks whose server outruns httpx.

A cached tile costs our server about 0.3 ms of CPU and httpx about 0.7 ms to ask for it: on two
shared cores the client, not the server, would set the pace. This client does only what a
benchmark needs (keep-alive GETs to one host, Content-Length or chunked bodies) at a small
fraction of that cost. It has httpx's `AsyncClient.get` shape, so `bench.api_bench.drive` can use
either.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlsplit


@dataclass(frozen=True)
class RawResponse:
    status_code: int
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class RawClient:
    """Keep-alive GETs; one connection per request in flight, reused after it."""

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        self._headers = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()

    async def get(self, url: str) -> RawResponse:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if self._idle:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{self._headers}\r\n".encode())
        status, headers = await _head(reader)
        if status in (204, 304):
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _chunked(reader)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self._idle.append((reader, writer))
        return RawResponse(status, body, headers)


async def _head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while (size := int((await reader.readline()).split(b";")[0], 16)) > 0:
        chunks.append(await reader.readexactly(size))
        await reader.readline()
    await reader.readline()  # the blank line after the last chunk
    return b"".join(chunks)
