"""Jobs: work too long for a request, run in processes of their own; owned by the app's lifespan.

A submitted job is `accepted`; it is `running` once its process starts, at most `workers` at
once; then `successful` or `failed` (with the reason), or `dismissed` by a DELETE (a running
one is stopped). At most `queue` jobs wait for a worker; past that a submission is refused
(Unavailable: a 503 with Retry-After) rather than queued without end. A finished job and its
files are kept `ttl` seconds, then forgotten. Every step happens on the event loop, so the
counts cannot race; the processes report over pipes, read here without blocking.

Jobs live in this process's memory: a restart forgets them, which the README says. Their files
are in this process's own folder under the job folder (`<job dir>/<instance>/<job id>/`),
locked while it lives; `start` removes the folders of processes that ended. Each job's record
is written beside its files at each step (geoapi.job_records), so that other API processes
sharing the job folder answer for it too: they read it, serve its results, and ask this one
to dismiss it. The bounds (`workers`, `queue`) are this process's: with N API processes up to
N times as many jobs run.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import multiprocessing
import shutil
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import IO, Any

from geoapi.job_records import (
    JOB_ID,
    LOCK_NAME,
    JobRecord,
    ask_dismissal,
    dismissals_asked,
    find_elsewhere,
    owner_gone,
    records_elsewhere,
    write_record,
)
from geoapi.zonal_job import ZonalSpec
from geoapi.zonal_job import run as run_zonal
from urbis_core.errors import NotFound, Unavailable

log = logging.getLogger(__name__)

ACCEPTED, RUNNING, SUCCESSFUL, FAILED, DISMISSED = (
    "accepted",
    "running",
    "successful",
    "failed",
    "dismissed",
)
FINISHED = (SUCCESSFUL, FAILED)
POLL = 0.1  # seconds between two looks at a running job's pipe, or for dismissals asked
STOP_GRACE = 5.0  # seconds a stopped process has to end before it is killed
RETRY_AFTER = 30  # seconds: about what a job of the sample's size takes
DISMISS_WAIT = STOP_GRACE + 10.0  # seconds a DELETE waits for the job's owner to dismiss it
NEW_PREFIX = ".new-"  # a process's folder of jobs while it is being made
NEW_LEFT_AFTER = 60.0  # seconds after which such a folder was left by a process that died


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Job:
    """One job: what was asked, where it is, and its outcome."""

    id: str
    spec: ZonalSpec
    created: datetime = field(default_factory=_now)
    status: str = ACCEPTED
    started: datetime | None = None
    finished: datetime | None = None
    done: int = 0
    total: int | None = None
    error: str | None = None
    process: BaseProcess | None = None
    pipe: Connection | None = None
    finished_at: float | None = None  # monotonic, for the TTL
    stopping: bool = False  # a DELETE is ending its process: its outcome no longer counts

    @property
    def folder(self) -> Path:
        return self.spec.folder

    def record(self) -> JobRecord:
        spec = self.spec
        return JobRecord(
            id=self.id,
            coverage_id=spec.coverage_id,
            coverage_version=spec.coverage_version,
            collection=spec.layer.id,
            band=spec.band,
            percentiles=spec.percentiles,
            status=self.status,
            done=self.done,
            total=self.total,
            created=self.created,
            started=self.started,
            finished=self.finished,
            error=self.error,
            folder=self.folder,
        )

    def publish(self) -> None:
        """The job's record where the other API processes read it."""
        with contextlib.suppress(FileNotFoundError):  # its folder went: it is being forgotten
            write_record(self.record())


class JobRunner:
    """The jobs of one API process: a bounded number running, a bounded number waiting."""

    def __init__(self, folder: Path, workers: int, queue: int, ttl: float) -> None:
        self.folder = folder
        self.workers = workers
        self.queue_size = queue
        self.ttl = ttl
        self.jobs: dict[str, Job] = {}
        self.waiting: deque[Job] = deque()
        self._watchers: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._dismissals: asyncio.Task[None] | None = None
        self._context = multiprocessing.get_context("spawn")
        self._own: Path | None = None  # this process's folder under `folder`
        self._lock: IO[str] | None = None

    # -- the lifespan ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Make and lock this process's folder of jobs; remove those of processes gone.

        Several API processes may share the job folder: each holds a lock on its own folder
        while it lives, so a folder whose lock can be taken was left by a process that ended.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        for leftover in self.folder.iterdir():
            if leftover.is_dir() and JOB_ID.match(leftover.name) and owner_gone(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
            elif leftover.name.startswith(NEW_PREFIX) and _older_than(leftover, NEW_LEFT_AFTER):
                shutil.rmtree(leftover, ignore_errors=True)  # a process died while starting
        # Made under a name no process looks at, locked, then renamed: another process starting
        # at the same time never finds it unlocked and takes it for a dead process's.
        making = self.folder / f"{NEW_PREFIX}{uuid.uuid4().hex}"
        making.mkdir()
        self._lock = (making / LOCK_NAME).open("w")
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        own = self.folder / uuid.uuid4().hex
        making.rename(own)
        self._own = own
        self._sweeper = asyncio.create_task(self._sweep_now_and_then())
        self._dismissals = asyncio.create_task(self._follow_dismissals())

    async def close(self) -> None:
        """Stop every running job's process (no orphans) and forget every job."""
        for task in (self._sweeper, self._dismissals):
            if task is not None:
                task.cancel()
        for watcher in list(self._watchers):
            watcher.cancel()
        running = [job for job in self.jobs.values() if job.status == RUNNING]
        await asyncio.gather(*(asyncio.to_thread(_stop, job) for job in running))
        self.jobs.clear()
        self.waiting.clear()
        if self._own is not None:
            shutil.rmtree(self._own, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()

    # -- what the routes ask ----------------------------------------------------------------------

    def new_id(self) -> str:
        return uuid.uuid4().hex

    def submit(self, make_spec: Callable[[str, Path], ZonalSpec]) -> JobRecord:
        """A new job, started at once if a worker is free, else queued (a 503 if full)."""
        self._expire()
        if self._running() >= self.workers and len(self.waiting) >= self.queue_size:
            raise Unavailable(
                f"{self._running()} job(s) running and {len(self.waiting)} waiting, as many as "
                f"this service takes (URBIS_JOB_WORKERS={self.workers}, URBIS_JOB_QUEUE="
                f"{self.queue_size}); submit it again later",
                RETRY_AFTER,
            )
        job_id = self.new_id()
        assert self._own is not None, "the runner is not started"
        job = Job(job_id, make_spec(job_id, self._own / job_id))
        job.folder.mkdir(parents=True)
        job.publish()
        self.jobs[job_id] = job
        if self._running() < self.workers:
            self._start(job)
        else:
            self.waiting.append(job)
        return job.record()

    def get(self, job_id: str) -> JobRecord:
        """The job's record: this process's own, else the one another process publishes."""
        self._expire()
        job = self.jobs.get(job_id)
        if job is not None:
            return job.record()
        assert self._own is not None, "the runner is not started"
        record = find_elsewhere(self.folder, self._own, job_id)
        if record is None or self._expired(record):
            raise NotFound(
                f"no job '{job_id}': it never existed, was dismissed, or finished more than "
                f"{self.ttl:g} s ago (URBIS_JOB_TTL); GET /jobs lists the jobs kept"
            )
        return record

    def list(self) -> list[JobRecord]:
        """Every job kept, by every API process sharing the job folder, oldest first."""
        self._expire()
        assert self._own is not None, "the runner is not started"
        elsewhere = records_elsewhere(self.folder, self._own)
        records = [job.record() for job in self.jobs.values()] + [
            record for record in elsewhere if not self._expired(record)
        ]
        return sorted(records, key=lambda record: record.created)

    def _expired(self, record: JobRecord) -> bool:
        """Whether another process's job finished over `ttl` ago (its owner sweeps it soon)."""
        finished = record.finished
        return finished is not None and (_now() - finished).total_seconds() > self.ttl

    async def dismiss(self, job_id: str) -> JobRecord:
        """Stop the job if it runs, drop it from the queue if it waits; its files go.

        Another process's job is dismissed by that process, asked through a marker file;
        this one waits until its folder is gone.
        """
        self._expire()
        if job_id not in self.jobs:
            return await self._dismiss_elsewhere(self.get(job_id))
        job = self.jobs[job_id]
        if job.status == ACCEPTED:
            self.waiting.remove(job)
        elif job.status == RUNNING:
            job.stopping = True
            await asyncio.to_thread(_stop, job)
        job.status = DISMISSED
        job.finished = job.finished or _now()
        del self.jobs[job_id]
        shutil.rmtree(job.folder, ignore_errors=True)
        self._start_waiting()
        return job.record()

    async def _dismiss_elsewhere(self, record: JobRecord) -> JobRecord:
        if not ask_dismissal(record):
            return self.get(record.id)  # gone meanwhile: a 404 saying why
        deadline = time.monotonic() + DISMISS_WAIT
        while record.folder.exists():
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"job '{record.id}' is being dismissed by the API process that runs it, "
                    f"which has not confirmed it within {DISMISS_WAIT:g} s; ask again",
                    RETRY_AFTER,
                )
            await asyncio.sleep(POLL)
        return replace(record, status=DISMISSED, finished=record.finished or _now())

    async def _follow_dismissals(self) -> None:
        """Dismiss this process's jobs that another process was asked to dismiss."""
        assert self._own is not None
        while True:
            for job_id in dismissals_asked(self._own):
                job = self.jobs.get(job_id)
                if job is not None:
                    if job.stopping:  # a DELETE here is dismissing it already
                        continue
                    try:
                        await self.dismiss(job_id)
                    except Exception:  # the next look tries again; the loop must go on
                        log.exception("dismissing job %s asked by another process", job_id)
                else:  # expired meanwhile: the marker's folder alone is left
                    shutil.rmtree(self._own / job_id, ignore_errors=True)
            await asyncio.sleep(POLL)

    # -- running ------------------------------------------------------------------------------

    def _running(self) -> int:
        return sum(1 for job in self.jobs.values() if job.status == RUNNING)

    def _start(self, job: Job) -> None:
        job.folder.mkdir(parents=True, exist_ok=True)
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=run_zonal, args=(job.spec, send), name=f"urbis-job-{job.id}", daemon=True
        )
        process.start()
        send.close()  # the child holds its end: the pipe ends when the child does
        job.process, job.pipe = process, receive
        job.status, job.started = RUNNING, _now()
        job.publish()
        watcher = asyncio.create_task(self._watch(job))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    def _start_waiting(self) -> None:
        while self.waiting and self._running() < self.workers:
            self._start(self.waiting.popleft())

    async def _watch(self, job: Job) -> None:
        """Read the job's reports until its process ends; then its outcome, and the next job."""
        assert job.process is not None and job.pipe is not None
        outcome: tuple[str, Any] | None = None
        try:
            while not job.stopping:
                seen = (job.done, job.total)
                outcome = _read(job) or outcome
                if (job.done, job.total) != seen:
                    job.publish()
                if outcome is not None or not job.process.is_alive():
                    break
                await asyncio.sleep(POLL)
            if not job.stopping:
                outcome = outcome or _read(job)
                await asyncio.to_thread(job.process.join, STOP_GRACE)
            if job.stopping:  # dismissed meanwhile: the DELETE says what became of it
                return
            if outcome is None:
                outcome = (
                    FAILED,
                    f"the job's process ended without a result (exit code {job.process.exitcode})",
                )
            job.status = outcome[0]
            if outcome[0] == FAILED:
                job.error = str(outcome[1])
                log.warning("job %s failed: %s", job.id, job.error)
            job.finished, job.finished_at = _now(), time.monotonic()
            job.pipe.close()
            job.publish()
        finally:
            self._start_waiting()

    # -- forgetting ---------------------------------------------------------------------------

    def _expire(self) -> None:
        now = time.monotonic()
        for job in list(self.jobs.values()):
            if job.finished_at is not None and now - job.finished_at > self.ttl:
                del self.jobs[job.id]
                shutil.rmtree(job.folder, ignore_errors=True)

    async def _sweep_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(min(60.0, self.ttl / 2))
            self._expire()


def _read(job: Job) -> tuple[str, Any] | None:
    """Take every report waiting in the job's pipe; the outcome if one came."""
    assert job.pipe is not None
    outcome = None
    with contextlib.suppress(EOFError, OSError):
        while job.pipe.poll():
            kind, value = job.pipe.recv()
            if kind == "total":
                job.total = int(value)
            elif kind == "done":
                job.done = int(value)
            else:
                outcome = (kind, value)
    return outcome


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except FileNotFoundError:
        return False


def _stop(job: Job) -> None:
    """End a running job's process: asked first, killed if it does not end in time."""
    process = job.process
    if process is None:
        return
    if process.is_alive():
        process.terminate()
        process.join(STOP_GRACE)
        if process.is_alive():
            process.kill()
            process.join()
    if job.pipe is not None:
        job.pipe.close()
