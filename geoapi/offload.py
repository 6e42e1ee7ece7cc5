"""CPU-bound steps off the event loop, so that it keeps answering other requests meanwhile.

Rendering a page of ten thousand features, formatting a download's batch, cutting a query
geometry to the CRS's area: each takes from milliseconds to seconds of CPU, and on the event
loop every other request would wait for it. Most run in the app's worker threads (at most
`URBIS_CPU_THREADS` at once, the others queued): GEOS and pyogrio let go of the interpreter
while they work, and it switches threads every few milliseconds for the rest. Decoding a
posted JSON body cannot share it (the decoder holds it for the whole document: 350 ms for
12 MB), so that runs in worker processes (`URBIS_CPU_PROCESSES`), which take the body and
give back the geometry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

import anyio.to_thread
from starlette.requests import Request

from geoapi.budgets import queued

T = TypeVar("T")

# Answers smaller than this are encoded on the loop: a thread hop costs more than they do.
LARGE_ANSWER = 200


class Workers:
    """The app's worker threads and processes, each bounded; owned by its lifespan."""

    def __init__(self, threads: int, processes: int, queue_timeout: float) -> None:
        self.threads = anyio.CapacityLimiter(threads)
        # spawned, not forked: the API process has threads and an event loop by then
        self.processes = ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("spawn")
        )
        # the pool's own queue is unbounded, and each waiting call holds its arguments
        self._process_turns = asyncio.Semaphore(processes * 2)
        # raster tiles drawn at once: every thread but one, left to the other requests' work
        self._tile_turns = asyncio.Semaphore(max(1, threads - 1))
        self.queue_timeout = queue_timeout

    def close(self) -> None:
        # Waited for: without it the interpreter can exit before the pool's manager thread
        # has told each worker to stop, and a worker left behind outlives the server (seen
        # under SIGTERM). What is waited for is at most one body's decoding per worker.
        self.processes.shutdown(wait=True, cancel_futures=True)

    def tile_turn(self) -> contextlib.AbstractAsyncContextManager[None]:
        """A raster tile's turn to be drawn, within the queue timeout (else a 503)."""
        return queued(
            (self._tile_turns,), self.queue_timeout, "too many raster tiles are being drawn"
        )

    def process_turn(self) -> contextlib.AbstractAsyncContextManager[None]:
        return queued(
            (self._process_turns,), self.queue_timeout, "too many posted geometries are being read"
        )


async def off_loop(request: Request, work: Callable[..., T], *args: object) -> T:
    """`work(*args)` in one of the app's worker threads."""
    workers: Workers = request.app.state.workers
    return await anyio.to_thread.run_sync(work, *args, limiter=workers.threads)


async def json_text(request: Request, doc: object, items: int) -> str:
    """`doc` as JSON; encoded in a worker thread when it holds more than LARGE_ANSWER items."""
    if items > LARGE_ANSWER:
        return await off_loop(request, json.dumps, doc)
    return json.dumps(doc)


async def in_process(request: Request, work: Callable[..., T], *args: object) -> T:
    """`work(*args)` in one of the app's worker processes (arguments and result pickled)."""
    workers: Workers = request.app.state.workers
    async with workers.process_turn():
        return await asyncio.get_running_loop().run_in_executor(workers.processes, work, *args)
