"""The admin API's lock and its edge: a bearer token, answers no cache or other origin keeps.

The token (URBIS_ADMIN_TOKEN) is compared in constant time, so that how long a refusal takes
says nothing of how much of a guess was right. Admin answers are `Cache-Control: no-store`,
and never offered to a browser script of another origin: a preflight for /admin is refused
(the browser then sends nothing, token or not) and no admin answer carries CORS headers.
"""

from __future__ import annotations

import hmac

from fastapi import Request, Security
from fastapi.security import HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoapi.errors import problem
from urbis_core.errors import NotAuthorized
from urbis_core.settings import AdminSettings

ADMIN_PREFIX = "/admin"
REALM = 'Bearer realm="urbis-admin"'
# Only documents the scheme in /openapi.json: the header is read below, for clearer refusals.
BEARER = HTTPBearer(
    scheme_name="adminToken",
    description="The admin token, URBIS_ADMIN_TOKEN: `Authorization: Bearer <token>`",
    auto_error=False,
)


async def require_token(request: Request, _: object = Security(BEARER)) -> None:
    """Let the request through only with `Authorization: Bearer <URBIS_ADMIN_TOKEN>`."""
    admin: AdminSettings = request.app.state.settings.admin
    given = request.headers.get("authorization")
    if given is None:
        raise NotAuthorized(
            "the admin API needs the header `Authorization: Bearer <token>`, the token being "
            "the service's URBIS_ADMIN_TOKEN",
            REALM,
        )
    scheme, _, token = given.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthorized(
            "the Authorization header must be `Bearer <token>` (the Bearer scheme, then the "
            "token); no other scheme is accepted",
            f'{REALM}, error="invalid_request"',
        )
    # As bytes: compare_digest takes str only when ASCII, and a header may hold any latin-1.
    if not hmac.compare_digest(token.strip().encode(), admin.token.encode()):
        raise NotAuthorized(
            "the Bearer token is not the admin token (URBIS_ADMIN_TOKEN)",
            f'{REALM}, error="invalid_token"',
        )


def _is_admin(path: str) -> bool:
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


class AdminEdge:
    """Outermost middleware: no preflight for /admin, no CORS or cache on its answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_admin(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope["headers"]}
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            refusal = problem(
                403,
                "the admin API is not offered to web pages of other origins: call it from a "
                "program or from the command line (curl), with its bearer token",
            )
            await self._guarded(refusal, scope, receive, send)
            return
        await self._guarded(self.app, scope, receive, send)

    @staticmethod
    async def _guarded(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if not name.lower().startswith(b"access-control-")
                    and name.lower() != b"cache-control"
                ]
                message = {**message, "headers": [*kept, (b"cache-control", b"no-store")]}
            await send(message)

        await app(scope, receive, send_guarded)
