"""HTTP for network sources: retries with exponential backoff on 5xx, timeouts, broken reads.

A response counts as received only when its whole body arrived and the caller's check of it
passed; anything else is retried, then reported with the URL and the last reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

from urbis_core.errors import SourceError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff: float = 1.0  # seconds before the 2nd attempt; doubles each time
    max_backoff: float = 30.0
    timeout: float = 60.0


class BadBody(Exception):
    """The body arrived but is not what the protocol promises (truncated, garbage)."""


class HttpFetcher:
    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.client = httpx.Client(timeout=policy.timeout, follow_redirects=True,
                                   headers={"User-Agent": "urbis-geoservice-sync"})

    def close(self) -> None:
        self.client.close()

    def get(self, url: str, params: dict[str, str] | None, parse: Callable[[httpx.Response], T],
            what: str) -> T:
        """GET and parse, retrying transient failures; SourceError when they do not pass."""
        reason = ""
        for attempt in range(1, self.policy.attempts + 1):
            try:
                response = self.client.get(url, params=params)
                if response.status_code >= 500 or response.status_code == 429:
                    reason = f"HTTP {response.status_code}"
                elif response.status_code >= 400:
                    raise SourceError(f"{what}: HTTP {response.status_code} from {response.url}: "
                                      f"{_excerpt(response.text)}")
                else:
                    return parse(response)
            except httpx.TimeoutException:
                reason = f"no answer within {self.policy.timeout:g} s"
            except httpx.TransportError as exc:
                reason = f"connection broken ({type(exc).__name__}: {exc})"
            except BadBody as exc:
                reason = f"unusable body: {exc}"
            if attempt < self.policy.attempts:
                pause = min(self.policy.backoff * 2 ** (attempt - 1), self.policy.max_backoff)
                log.warning("%s: %s; retrying in %.1f s (%d/%d)", what, reason, pause, attempt,
                            self.policy.attempts)
                time.sleep(pause)
        raise SourceError(f"{what}: gave up after {self.policy.attempts} attempts: {reason}")


def _excerpt(text: str, size: int = 300) -> str:
    flat = " ".join(text.split())
    return flat[:size] + ("..." if len(flat) > size else "")
