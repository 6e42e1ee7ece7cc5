"""FastAPI dependencies: a database connection per request, the settings, the output format."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from urbis_core.settings import ApiSettings


async def _connection(request: Request) -> AsyncIterator[AsyncConnection]:
    engine: AsyncEngine = request.app.state.engine
    async with engine.connect() as conn:
        # One snapshot per request: the catalog row and the layer rows agree with each other.
        await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            yield conn


def _settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


def _output_format(
    request: Request,
    f: Annotated[Literal["json", "html"] | None, Query(
        description="Output format; without it the Accept header decides (JSON by default)",
    )] = None,
) -> str:
    if f is not None:
        return f
    accept = request.headers.get("accept", "")
    return "html" if "text/html" in accept and "json" not in accept else "json"


ConnDep = Annotated[AsyncConnection, Depends(_connection)]
SettingsDep = Annotated[ApiSettings, Depends(_settings)]
FormatDep = Annotated[str, Depends(_output_format)]


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")
