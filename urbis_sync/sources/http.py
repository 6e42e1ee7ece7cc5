"""HTTP for network sources: transient faults are retried with backoff, permanent ones are not.

A response counts as received only when its whole body arrived and the caller's check of it
passed. What happens otherwise depends on whether asking again could give another answer:

- transient (retried with exponential backoff, then reported with the URL and the last reason):
  5xx, 408 (request timeout), 429 (too many requests), no answer in time, a broken connection,
  a truncated or garbled body (`BadBody`);
- permanent (`PermanentError`, the run fails at once): any other 4xx, and whatever the caller's
  check calls permanent (a server's refusal of a parameter, an unknown type name). Asking again
  would only get the same refusal five times, minutes later.

A `SourceError` raised by the caller's parser (the answer is well formed but says something
the run cannot use) is permanent too.
"""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

from urbis_core.errors import SourceError
from urbis_core.settings import SyncSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
# The 4xx answers that say "not now" rather than "not this request".
TRANSIENT_4XX = frozenset({408, 429})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff: float = 1.0  # seconds before the 2nd attempt; doubles each time
    max_backoff: float = 30.0
    timeout: float = 60.0

    @classmethod
    def from_settings(cls, settings: SyncSettings) -> RetryPolicy:
        return cls(
            attempts=settings.http_attempts,
            backoff=settings.http_backoff,
            timeout=settings.http_timeout,
        )


class TransientAnswer(Exception):
    """An answer that may be different if asked again later; the message says why."""


class BadBody(TransientAnswer):
    """The body arrived but is not what the protocol promises (truncated, garbage)."""


class PermanentError(SourceError):
    """An answer that asking again cannot change: the run fails at once, without retries."""


def is_transient_status(status: int) -> bool:
    """Whether an HTTP status may be different if the same request is sent again later."""
    return status >= 500 or status in TRANSIENT_4XX


# Sees every complete answer, whatever its status, before the status is judged: raises
# PermanentError or TransientAnswer for what it recognises (an OWS ExceptionReport), else
# nothing.
ResponseCheck = Callable[[httpx.Response], None]


class HttpFetcher:
    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.client = httpx.Client(
            timeout=policy.timeout,
            follow_redirects=True,
            headers={"User-Agent": "urbis-geoservice-sync"},
        )

    def close(self) -> None:
        self.client.close()

    def get(
        self,
        url: str,
        params: dict[str, str] | None,
        parse: Callable[[httpx.Response], T],
        what: str,
        check: ResponseCheck | None = None,
    ) -> T:
        """GET and parse, retrying transient failures; SourceError when they do not pass.

        PermanentError (a 4xx other than 408/429, or from `check`) and SourceError from
        `parse` end the call at once.
        """
        reason = ""
        for attempt in range(1, self.policy.attempts + 1):
            try:
                response = self.client.get(url, params=params)
                if check is not None:
                    check(response)
                if is_transient_status(response.status_code):
                    # the server's words too: `urbis status` shows them while the layer fails
                    words = _server_words(response)
                    reason = f"HTTP {response.status_code}" + (f": {words}" if words else "")
                elif response.status_code >= 400:
                    raise PermanentError(
                        f"{what}: HTTP {response.status_code} from "
                        f"{response.url}: {_excerpt(response.text)}"
                    )
                else:
                    return parse(response)
            except httpx.TimeoutException:
                reason = f"no answer within {self.policy.timeout:g} s"
            except httpx.TransportError as exc:
                reason = f"connection broken ({type(exc).__name__}: {exc})"
            except BadBody as exc:
                reason = f"unusable body: {exc}"
            except TransientAnswer as exc:
                reason = str(exc)
            if attempt < self.policy.attempts:
                pause = min(self.policy.backoff * 2 ** (attempt - 1), self.policy.max_backoff)
                log.warning(
                    "%s: %s; retrying in %.1f s (%d/%d)",
                    what,
                    reason,
                    pause,
                    attempt,
                    self.policy.attempts,
                )
                time.sleep(pause)
        raise SourceError(f"{what}: gave up after {self.policy.attempts} attempts: {reason}")


def _server_words(response: httpx.Response, size: int = 200) -> str:
    """What an error page says, without its markup (an HTML page, an XML exception)."""
    text = response.text
    if any(kind in response.headers.get("content-type", "") for kind in ("html", "xml")):
        text = html.unescape(re.sub(r"<[^>]*>", " ", text))
    return _excerpt(text, size)


def _excerpt(text: str, size: int = 300) -> str:
    flat = " ".join(text.split())
    return flat[:size] + ("..." if len(flat) > size else "")
