"""Each request's id: the client's `X-Request-Id` when it is sane, else a new one.

The id follows the request wherever its work goes on the event loop (a context variable:
asyncio copies it into the tasks a request starts), so the log lines written on its behalf
and the database sessions it uses carry it without being handed it.

A client's id is kept only if it is short and of plain characters: it is written into log
lines and into the database's `application_name` (printable ASCII, at most 63 bytes), and an
id that could hold a line break or a quote could forge a log line.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

HEADER = "X-Request-Id"
MAX_LENGTH = 48  # "urbis-api/" and the id stay within PostgreSQL's 63-byte application_name
_SANE = re.compile(rf"[A-Za-z0-9._:+=@-]{{1,{MAX_LENGTH}}}")

current: ContextVar[str | None] = ContextVar("request_id", default=None)


def accepted(raw: str | None) -> str | None:
    """The client's id if it is one this service passes on, else None."""
    return raw if raw is not None and _SANE.fullmatch(raw) else None


def new() -> str:
    return uuid.uuid4().hex


def application_name(base: str, request_id: str | None) -> str:
    """The session's `application_name` while it works for a request: `urbis-api/<id>`."""
    return base if request_id is None else f"{base}/{request_id}"
