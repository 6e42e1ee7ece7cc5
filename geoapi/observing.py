"""Each request observed: its id, its time in the route's histogram, its access line.

The outermost middleware, so that the time counts the whole answer (a streamed download's
last byte too) and every answer, a refusal at the edge or an error's as well, carries the
request id. The route is the matched route's template (`/collections/{collection_id}/items`),
never the raw path: a label per path would grow without end.
"""

from __future__ import annotations

import logging
import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoapi import request_ids
from geoapi.asgi import HttpMiddleware
from geoapi.metrics import UNMATCHED, Metrics

log = logging.getLogger("geoapi.access")
# A client may send any token as its method: past these, one label, or the series would grow.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# nginx's status for a request whose client left before any answer (none was sent)
CLIENT_GONE = 499


def route_template(scope: Scope) -> str:
    """The template of the route that took the request (FastAPI puts it in the scope)."""
    route = scope.get("route")
    path = getattr(route, "path_format", None)  # `{feature_id}`, not `{feature_id:path}`
    if isinstance(path, str):
        return path
    # a mounted folder of static files: its prefix, not the file asked for
    root = scope.get("root_path", "")
    app_root = scope.get("app_root_path", "")
    if isinstance(root, str) and isinstance(app_root, str) and root != app_root:
        return f"{root.removeprefix(app_root)}/{{path}}"
    return UNMATCHED


class ObserveRequests(HttpMiddleware):
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        given = Headers(scope=scope).get(request_ids.HEADER)
        request_id = request_ids.accepted(given) or request_ids.new()
        token = request_ids.current.set(request_id)
        status = CLIENT_GONE  # unless an answer starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[request_ids.HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            if status == CLIENT_GONE:
                status = 500  # what the server answers for it
            raise
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.metrics.request_seconds.labels(method, route, str(status)).observe(seconds)
            log.info(
                "%s %s %d %.1f ms",
                scope["method"],
                scope["path"],
                status,
                seconds * 1000,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                },
            )
            request_ids.current.reset(token)
