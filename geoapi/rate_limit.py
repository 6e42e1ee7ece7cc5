"""A request rate per client: a token bucket each, a 429 with Retry-After past it.

Each client (geoapi.client_address: the peer, or behind a trusted proxy the address it
forwarded for) has a bucket of `burst` tokens refilled at `rate` a second; a request takes one,
and finds none: a 429 in the JSON error model, `Retry-After` the whole seconds until a token is
back. Answers to limited clients carry `RateLimit-Limit`, `RateLimit-Remaining` and
`RateLimit-Reset` (IETF draft-ietf-httpapi-ratelimit-headers-07) so that a polite client can slow
down before it is refused.

Memory is bounded whatever the clients: a bucket idle long enough to be full again is the same
as none and is dropped, and past `max_clients` buckets the least recently seen goes (a flood of
addresses then only forgets the oldest clients' debts, it cannot grow the table). The probes and
the metrics (`/healthz`, `/readyz`, `/metrics`) are never limited: a supervisor or Prometheus
polling from behind the same address as busy clients must still see the truth.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoapi.asgi import HttpMiddleware
from geoapi.client_address import IpAddress, client_address, is_loopback
from geoapi.errors import problem
from geoapi.metrics import Metrics
from geoapi.public_url import IpNetwork
from urbis_core.settings import RateLimit

UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Buckets looked at for idleness per request: enough to keep pace with new clients.
SWEEP_PER_REQUEST = 2


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    remaining: int  # whole tokens left after this request
    retry_after: int  # seconds until a token is back (0 when allowed)
    reset: int  # seconds until the bucket is full again


@dataclass
class _Bucket:
    tokens: float
    updated: float


class Buckets:
    """Every client's bucket, the least recently seen first."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._buckets: OrderedDict[IpAddress, _Bucket] = OrderedDict()
        self._refill_seconds = limit.burst / limit.rate if limit.enabled else 0.0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: IpAddress, now: float | None = None) -> Verdict:
        now = time.monotonic() if now is None else now
        self._sweep(now)
        limit = self.limit
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = _Bucket(float(limit.burst), now)
            while len(self._buckets) > limit.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
            bucket.tokens = min(
                float(limit.burst), bucket.tokens + (now - bucket.updated) * limit.rate
            )
            bucket.updated = now
        allowed = bucket.tokens >= 1
        if allowed:
            bucket.tokens -= 1
        retry_after = 0 if allowed else max(1, math.ceil((1 - bucket.tokens) / limit.rate))
        reset = math.ceil((limit.burst - bucket.tokens) / limit.rate)
        return Verdict(allowed, int(bucket.tokens), retry_after, reset)

    def _sweep(self, now: float) -> None:
        """Drop the oldest buckets that are full again: keeping them changes nothing."""
        for _ in range(SWEEP_PER_REQUEST):
            if not self._buckets:
                return
            client, bucket = next(iter(self._buckets.items()))
            if now - bucket.updated < self._refill_seconds:
                return
            del self._buckets[client]


class RateLimits(HttpMiddleware):
    def __init__(
        self,
        app: ASGIApp,
        limit: RateLimit,
        trusted_proxies: tuple[IpNetwork, ...],
        metrics: Metrics,
    ) -> None:
        super().__init__(app)
        self.limit = limit
        self.trusted_proxies = trusted_proxies
        self.buckets = Buckets(limit)
        self.metrics = metrics
        metrics.count_rate_limit_clients(lambda: len(self.buckets))

    def _limited_client(self, scope: Scope) -> IpAddress | None:
        if not self.limit.enabled or scope["path"] in UNLIMITED_PATHS:
            return None
        client = client_address(scope, self.trusted_proxies)
        if client is None or (is_loopback(client) and not self.limit.loopback):
            return None
        return client

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = self._limited_client(scope)
        if client is None:
            await self.app(scope, receive, send)
            return
        verdict = self.buckets.take(client)
        headers = {
            "RateLimit-Limit": str(self.limit.burst),
            "RateLimit-Remaining": str(verdict.remaining),
            "RateLimit-Reset": str(verdict.reset),
        }
        if not verdict.allowed:
            self.metrics.rate_limited.inc()
            refusal = problem(
                429,
                f"too many requests from {client}: this service answers each client "
                f"{self.limit.rate:g} requests a second on average, {self.limit.burst} at "
                f"most at once; try again in {verdict.retry_after} s",
            )
            refusal.headers.update({**headers, "Retry-After": str(verdict.retry_after)})
            await refusal(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)
