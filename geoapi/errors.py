"""One error model for every 4xx/5xx (status, title, detail), mapped from the domain errors here.

Only real server faults (5xx) are logged with their traceback; a user's bad input is not news.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from urbis_core.errors import DatabaseError, InvalidParameter, NotFound, TooLarge, UrbisError

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[UrbisError], int] = {
    InvalidParameter: 400,
    NotFound: 404,
    TooLarge: 413,
    DatabaseError: 503,
}


def problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse(
        {"status": status, "title": HTTPStatus(status).phrase, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


def _status_of(exc: UrbisError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


async def _on_urbis_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UrbisError)
    status = _status_of(exc)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    return problem(status, str(exc))


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"] if p not in ("query", "path", "body"))
        parts.append(f"parameter '{where}': {error['msg']}")
    return problem(400, "; ".join(parts) or "invalid request")


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no resource at {request.url.path}; the landing page / lists what exists"
    return problem(exc.status_code, detail)


async def _on_database_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s: database error", request.method, request.url.path, exc_info=exc)
    if isinstance(exc, OperationalError):
        return problem(503, "the database is not reachable right now; try again shortly")
    return problem(500, "the database could not answer this request")


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed unexpectedly", request.method, request.url.path, exc_info=exc)
    return problem(500, "internal error; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(UrbisError, _on_urbis_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(DBAPIError, _on_database_error)
    app.add_exception_handler(Exception, _on_unexpected)
