"""Several API processes on one socket: `urbis serve --workers N` (issue 17).

The parent binds the listening socket, then starts N processes (multiprocessing's spawn
context: fresh interpreters, nothing of the parent's state copied); each builds its own app
(pool, tile cache, listener of the change messages) and serves the inherited socket with
`uvicorn.Server(config).run(sockets=[sock])`, the kernel handing each new connection to one of
them. The parent only watches: a process that ends while the service runs is started again,
after a pause that doubles (up to MAX_BACKOFF) while processes keep dying young, so that a
service failing at start does not spin; SIGTERM or SIGINT stops every process (SIGTERM, then
SIGKILL after STOP_GRACE seconds) and the parent returns. A process is told by the kernel to
stop when the parent dies, however it dies (PR_SET_PDEATHSIG), so none is left behind. A
process whose app cannot start (uvicorn's exit code 3: a setting the lifespan refuses) before
any process has served for YOUNG seconds stops them all with an error: starting it again would
fail the same way, as `urbis serve` with one process exits.

Ours rather than uvicorn's own `workers=`: that one takes the app as an import string and
pickles its Config to each process, and the protocol class carrying the request-head deadline
is made per limits (geoapi.server.protocol_class), so it cannot cross as it is; with our own,
each process makes its app and protocol class from the settings (plain, picklable values), as
`urbis serve` does with one process. uvicorn's supervisor would also give no restart backoff.

The parent makes a folder the processes share (ApiSettings.siblings_dir) and removes it at
the end (a killed supervisor's is removed by the next one to start). In it, `metrics/` holds
prometheus_client's multiprocess files, through which /metrics sums every process's figures
(PROMETHEUS_MULTIPROC_DIR, set before any process starts, since prometheus_client reads it on
import; a dead process's live gauges are marked gone), and `purges/` the tile purges one
process tells the others (geoapi.sibling_purges).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from urbis_core.errors import UrbisError
from urbis_core.processes import die_with_parent
from urbis_core.settings import ApiSettings

log = logging.getLogger("urbis.supervisor")

STOP_GRACE = 30.0  # seconds processes have to end once told to stop, then they are killed
MIN_BACKOFF = 0.5  # seconds before a dead process is started again...
MAX_BACKOFF = 30.0  # ...doubled each time one dies young, up to this
YOUNG = 10.0  # seconds: a process ending before this counts as dying young
WATCH = 0.2  # seconds between two looks at the stop flag
STARTUP_FAILURE = 3  # uvicorn's exit code when the app's lifespan fails at start
METRICS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
SIBLINGS_PREFIX = "urbis-serve-"  # then the supervisor's pid and a dash


@dataclass
class Worker:
    """One API process and when it started."""

    process: BaseProcess
    started: float


def serve_one(api: ApiSettings, sock: socket.socket, parent: int) -> None:
    """One API process: its own app and protocol class, serving the shared socket."""
    die_with_parent(parent)
    import uvicorn

    from geoapi.app import create_app
    from geoapi.logs import logging_config
    from geoapi.server import uvicorn_options

    config = uvicorn.Config(
        create_app(api),
        log_level="info",
        log_config=logging_config(api.log_format),
        access_log=False,
        proxy_headers=False,  # as `urbis serve` with one process: see urbis_cli.serve
        **uvicorn_options(api.limits),
    )
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    """N API processes on one socket, kept running until told to stop."""

    def __init__(self, api: ApiSettings, sock: socket.socket, workers: int) -> None:
        self.api = api
        self.sock = sock
        self.count = workers
        self.workers: dict[int, Worker] = {}
        self.stopping = False
        self.failed_start = False
        self.stopped_by: int | None = None
        self._served = False  # a process has lived YOUNG seconds: the app can start
        self._context = multiprocessing.get_context("spawn")
        self._backoff = MIN_BACKOFF
        self._due: list[float] = []  # when each process to start again may start

    def _spawn(self) -> None:
        process = self._context.Process(
            target=serve_one,
            args=(self.api, self.sock, os.getpid()),
            name="urbis-api",
        )
        process.start()
        assert process.pid is not None
        self.workers[process.pid] = Worker(process, time.monotonic())
        log.info("API process %d started", process.pid)

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        # only a flag: logging here could wait for a lock the interrupted code holds
        self.stopped_by = signum
        self.stopping = True

    def run(self) -> None:
        """Start the processes, keep them running, stop them all on SIGTERM or SIGINT."""
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for _ in range(self.count):
                self._spawn()
            while not self.stopping:
                self._watch()
        finally:
            if self.stopped_by is not None:
                log.info("%s: stopping the API processes", signal.Signals(self.stopped_by).name)
            self._stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _watch(self) -> None:
        sentinels = {w.process.sentinel: pid for pid, w in self.workers.items()}
        wait(list(sentinels), timeout=WATCH)
        now = time.monotonic()
        for pid, worker in list(self.workers.items()):
            if worker.process.is_alive() or self.stopping:
                self._served = self._served or now - worker.started >= YOUNG
                continue
            worker.process.join()
            del self.workers[pid]
            _forget_metrics(self.api.siblings_dir, pid)
            if worker.process.exitcode == STARTUP_FAILURE and not self._served:
                log.error("API process %d could not start its app: stopping", pid)
                self.failed_start = self.stopping = True
                return
            lived = now - worker.started
            self._backoff = min(self._backoff * 2, MAX_BACKOFF) if lived < YOUNG else MIN_BACKOFF
            log.warning(
                "API process %d ended (exit code %s) after %.0f s; another starts in %.1f s",
                pid,
                worker.process.exitcode,
                lived,
                self._backoff,
            )
            self._due = sorted([*self._due, now + self._backoff])
        while self._due and self._due[0] <= now and not self.stopping:
            self._due.pop(0)
            self._spawn()

    def _stop_all(self) -> None:
        for worker in self.workers.values():
            if worker.process.is_alive():
                worker.process.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for worker in self.workers.values():
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.warning("API process %d did not stop in time: killed", worker.process.pid)
                worker.process.kill()
                worker.process.join()
        self.workers.clear()


def _forget_metrics(siblings: Path | None, pid: int) -> None:
    """A dead process's live gauges no longer count (its counters and histograms still do)."""
    if siblings is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(siblings / "metrics"))


def bind(host: str, port: int) -> socket.socket:
    """The listening socket the processes share (IPv6 when the host is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UrbisError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _remove_orphaned_folders() -> None:
    """The shared folders of supervisors that were killed (they could not remove them)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SIBLINGS_PREFIX}*-*"):
        pid = folder.name.removeprefix(SIBLINGS_PREFIX).partition("-")[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running
        return True
    return True


def serve_processes(api: ApiSettings, host: str, port: int, workers: int) -> None:
    """`urbis serve --workers N` with N > 1: bind, supervise, clean up."""
    sock = bind(host, port)
    _remove_orphaned_folders()
    siblings = Path(tempfile.mkdtemp(prefix=f"{SIBLINGS_PREFIX}{os.getpid()}-"))
    for part in ("metrics", "purges"):
        (siblings / part).mkdir()
    os.environ[METRICS_VARIABLE] = str(siblings / "metrics")  # prometheus_client reads it
    supervisor = Supervisor(replace(api, siblings_dir=siblings), sock, workers)
    try:
        supervisor.run()
    finally:
        sock.close()
        shutil.rmtree(siblings, ignore_errors=True)
        os.environ.pop(METRICS_VARIABLE, None)
    if supervisor.failed_start:
        raise UrbisError("the API could not start: the reason is in its log above")
