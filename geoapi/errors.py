"""One error model for every 4xx/5xx (status, title, detail), mapped from the domain errors here.

Only real server faults (500) are logged with their traceback; a user's bad input is not news,
and a database outage is told once per change of state (geoapi.db_health), not per request.
Every 503 says when to come back (Retry-After).
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from psycopg.errors import QueryCanceled
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from geoapi.deps import chosen_format
from geoapi.html import error_page
from geoapi.i18n import choose_language
from urbis_core.db import first_line
from urbis_core.errors import (
    Conflict,
    DatabaseError,
    InvalidParameter,
    NotAuthorized,
    NotFound,
    TooLarge,
    Unavailable,
    UnknownCollection,
    UrbisError,
)
from urbis_core.settings import timeout_variable

log = logging.getLogger(__name__)

# The most specific class of an error that is listed decides (its MRO is walked).
STATUS_BY_ERROR: dict[type[UrbisError], int] = {
    UnknownCollection: 400,  # a listed id not there: the request's parameter is wrong
    InvalidParameter: 400,
    NotAuthorized: 401,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    DatabaseError: 503,
    Unavailable: 503,
}
OUTAGE_RETRY_AFTER = 5  # seconds: the database usually comes back within a few
TIMEOUT_RETRY_AFTER = 10


def problem(status: int, detail: str, retry_after: int = OUTAGE_RETRY_AFTER) -> JSONResponse:
    return JSONResponse(
        {"status": status, "title": HTTPStatus(status).phrase, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
        headers={"Retry-After": str(retry_after)} if status == 503 else None,
    )


def answer(
    request: Request, status: int, detail: str, retry_after: int = OUTAGE_RETRY_AFTER
) -> Response:
    """The problem as JSON, or as a page when a browser asked for one.

    A page when `f=html`, or without `f` when the Accept header prefers text/html.
    """
    if chosen_format(request, request.query_params.get("f"), ("json", "html")) != "html":
        return problem(status, detail, retry_after)
    lang = choose_language(
        request.query_params.get("lang"), request.headers.get("accept-language", "")
    )
    return error_page(request, lang, status, detail, retry_after if status == 503 else None)


def _status_of(exc: UrbisError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


async def _on_urbis_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UrbisError)
    status = _status_of(exc)
    if status == 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    if isinstance(exc, Unavailable):
        return answer(request, status, str(exc), exc.retry_after)
    if isinstance(exc, NotAuthorized):
        refused = problem(status, str(exc))  # for programs: no page, whatever Accept says
        refused.headers["WWW-Authenticate"] = exc.challenge
        return refused
    return answer(request, status, str(exc))


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"] if p not in ("query", "path", "body"))
        parts.append(f"parameter '{where}': {error['msg']}")
    return answer(request, 400, "; ".join(parts) or "invalid request")


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no resource at {request.url.path}; the landing page / lists what exists"
    return answer(request, exc.status_code, detail)


async def _on_database_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DBAPIError)
    if isinstance(exc.orig, QueryCanceled):
        return _timed_out(request)
    if isinstance(exc, OperationalError):
        request.app.state.db_health.failed(first_line(exc))
        return answer(request, 503, "the database is not reachable right now; try again shortly")
    log.error("%s %s: database error", request.method, request.url.path, exc_info=exc)
    return answer(request, 500, "the database could not answer this request")


def _timed_out(request: Request) -> Response:
    """A statement ran past its kind's timeout (geoapi.budgets) and PostgreSQL cancelled it."""
    kind = getattr(request.state, "query_kind", "catalog")
    budgets = request.app.state.budgets
    log.warning(
        "%s %s: cancelled after the %s timeout of %g s",
        request.method,
        request.url.path,
        kind,
        budgets.timeouts[kind],
    )
    return answer(
        request,
        503,
        f"this {kind} query took longer than the {budgets.timeouts[kind]:g} s "
        f"it may take ({timeout_variable(kind)}) and was stopped. Narrow it "
        "(a smaller area or geometry, fewer features, a filter), or try again "
        "later if the service is busy",
        TIMEOUT_RETRY_AFTER,
    )


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed unexpectedly", request.method, request.url.path, exc_info=exc)
    return answer(request, 500, "internal error; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(UrbisError, _on_urbis_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(DBAPIError, _on_database_error)
    app.add_exception_handler(Exception, _on_unexpected)
