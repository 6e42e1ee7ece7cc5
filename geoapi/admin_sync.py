"""Sync runs the admin API starts: each `urbis sync --once --layer X`, a process of its own.

The run writes, so it runs as the sync does, with the writer's URL (DATABASE_URL,
AdminSettings.database_url), never over the API's connections, which only read. Its own process
also keeps a long run's work off the API's event loop and out of its memory. The run's row in
urbis_meta.sync_run is written by that process; `start` waits until it appears, and answers its
id. A run still going when the API stops is stopped with it (SIGTERM; its row is said
interrupted when the layer next runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable

from urbis_core.errors import Conflict, SyncError
from urbis_core.settings import AdminSettings

log = logging.getLogger(__name__)

START_TIMEOUT = 120.0  # seconds for the process to start its run (it checks the sources first)
STOP_TIMEOUT = 10.0  # seconds a run has to end once told to stop, before it is killed
POLL = 0.1  # seconds between looks for the run's row
TAIL = 20  # lines of the process's output kept, to say why it did not start


class SyncRuns:
    """The sync processes this API started (one start at a time)."""

    def __init__(self, admin: AdminSettings) -> None:
        self._admin = admin
        self._processes: list[asyncio.subprocess.Process] = []
        self._watchers: set[asyncio.Task[None]] = set()
        self._starting = asyncio.Lock()  # one start at a time: two POSTs make one run

    def _environment(self) -> dict[str, str]:
        env = {
            **os.environ,
            "DATABASE_URL": self._admin.database_url,
            "URBIS_CONFIG": str(self._admin.config),
        }
        env.pop("URBIS_ADMIN_TOKEN", None)  # the sync has no use for it
        return env

    async def start(
        self,
        layer_id: str,
        newest_if_idle: Callable[[], Awaitable[int | None]],
        find_run: Callable[[int], Awaitable[int | None]],
    ) -> int:
        """Start a run of the layer; its run id once its row exists (`find_run(after)` looks).

        `newest_if_idle` gives the layer's newest run id, or None when a run is going: then a
        Conflict (asked once no other start here is under way, so that two requests at once
        make one run). Two API processes asked at once both start a process; the one that
        takes the layer's lock second finds the first one's run newer than the newest it was
        given (`--unless-run-after`) and does not run again, and both answers name that run.
        SyncError when the process ends without a run (the layer's source cannot be opened,
        the database refuses the writer), with its words.
        """
        async with self._starting:
            after = await newest_if_idle()
            if after is None:
                raise Conflict(
                    f"a sync of '{layer_id}' is going (a run, or the work that ends one); "
                    "/admin/runs shows its runs"
                )
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "urbis_cli",
                "sync",
                "--once",
                "--layer",
                layer_id,
                "--unless-run-after",
                str(after),
                env=self._environment(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            self._processes = [p for p in self._processes if p.returncode is None] + [process]
            tail: deque[str] = deque(maxlen=TAIL)
            watcher = asyncio.create_task(self._follow(layer_id, process, tail))
            self._watchers.add(watcher)
            watcher.add_done_callback(self._watchers.discard)
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                run_id = await find_run(after)
                if run_id is not None:
                    return run_id
                if watcher.done():
                    raise self._no_run(layer_id, process.returncode, list(tail))
                if time.monotonic() > deadline:
                    raise SyncError(
                        f"the sync of '{layer_id}' started no run within {START_TIMEOUT:g} s; "
                        "it goes on, and shows in /admin/runs once it does"
                    )
                await asyncio.sleep(POLL)

    @staticmethod
    def _no_run(layer_id: str, code: int | None, tail: list[str]) -> Exception:
        said = [line.removeprefix("urbis: ") for line in tail if line.strip()]
        if code == 0:  # `urbis sync` skips a layer another process holds, and says so
            return Conflict(f"another process is syncing '{layer_id}'; try again once it ends")
        why = "; ".join(said[-3:]) or f"it exited with code {code}"
        return SyncError(f"the sync of '{layer_id}' could not start a run: {why}")

    async def _follow(
        self, layer_id: str, process: asyncio.subprocess.Process, tail: deque[str]
    ) -> None:
        """Read the process's output to its end (a pipe left full would stop it), log it."""
        assert process.stderr is not None
        async for raw in process.stderr:
            line = raw.decode(errors="replace").rstrip()
            tail.append(line)
            log.info("sync of %s: %s", layer_id, line)
        code = await process.wait()
        log.info("sync of %s started by the admin API ended (exit code %s)", layer_id, code)

    async def close(self) -> None:
        """Stop the runs still going, and wait for their processes."""
        for process in self._processes:
            if process.returncode is None:
                process.terminate()
        for process in self._processes:
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
        for watcher in list(self._watchers):
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
