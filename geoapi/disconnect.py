"""A request whose client has gone is cancelled, and its database query with it.

Without this, a query goes on after the client has left (ASGI servers tell the app only when
it next reads or writes): a user who gave up on a slow map, or a crawler that hung up, would
keep a connection and a database backend busy to the end. Here the request runs as a task;
once its body is read, the server's next message can only be the disconnect, and on it the
task is cancelled. psycopg then asks PostgreSQL to cancel the statement under way, and the
connection goes back to the pool.

The task is cancelled once (asyncio's edge-triggered cancel, not a cancel scope): the
request's clean-up (rolling back, returning the connection, deleting a download's temporary
file) then runs to its end. A request whose answer is complete is left to finish its
background work.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import Message, Receive, Scope, Send

from geoapi.asgi import HttpMiddleware


class CancelOnDisconnect(HttpMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # One reader of the server's messages, one message ahead of the app at most (a body
        # is not read faster than the app takes it).
        messages: asyncio.Queue[Message] = asyncio.Queue(maxsize=1)
        answered = gone = False

        async def app_receive() -> Message:
            if gone and messages.empty():
                return {"type": "http.disconnect"}
            return await messages.get()

        async def app_send(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True
            await send(message)

        request = asyncio.ensure_future(self.app(scope, app_receive, app_send))

        async def read() -> None:
            nonlocal gone
            while True:
                try:
                    message = await receive()
                except Exception:  # noqa: BLE001 - the connection is lost all the same
                    message = {"type": "http.disconnect"}
                if message["type"] == "http.disconnect":
                    gone = True
                    if not answered:
                        request.cancel()
                await messages.put(message)
                if gone:
                    return

        reader = asyncio.ensure_future(read())
        try:
            await request
        except asyncio.CancelledError:
            if not gone:
                raise  # not the client: the server itself is stopping this request
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
