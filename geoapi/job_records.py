"""A job's state as every API process can read it: `status.json` in the job's folder.

Jobs run in the process that accepted them (geoapi.jobs), but with several API processes
(`urbis serve --workers N`) the next request for a job may reach another one. So the owner
writes the job's record into its folder, `<job dir>/<owner's folder>/<job id>/status.json`,
at each step (accepted, running, progress, outcome): written to a temporary file in that
folder and renamed over the old one, so that a reader sees the old record or the new one,
never a part. Any process finds a job by its id among the owners' folders, and trusts only
those whose owner is alive (it holds the lock on its folder).

A DELETE reaching another process leaves a `dismiss` marker in the job's folder: the owner,
which alone can stop the job's process, looks for markers a few times a second, dismisses
the job and removes its folder, which the other process waits for.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

JOB_ID = re.compile(r"^[0-9a-f]{32}$")  # what uuid4().hex gives: the only names removed
LOCK_NAME = ".owner.lock"
STATUS_NAME = "status.json"
DISMISS_NAME = "dismiss"
_TIMES = ("created", "started", "finished")


@dataclass(frozen=True)
class JobRecord:
    """What a job's document says: what was asked, where it is, its outcome, its folder."""

    id: str
    coverage_id: str
    coverage_version: int
    collection: str
    band: int
    percentiles: tuple[float, ...]
    status: str
    done: int
    total: int | None
    created: datetime
    started: datetime | None
    finished: datetime | None
    error: str | None
    folder: Path


def write_record(record: JobRecord) -> None:
    """The record into its folder, whole or not at all (a temporary file, then a rename)."""
    fields = asdict(record)
    del fields["folder"]
    fields["percentiles"] = list(record.percentiles)
    for name in _TIMES:
        value = fields[name]
        fields[name] = value.isoformat() if value is not None else None
    handle, temporary = tempfile.mkstemp(dir=record.folder, prefix=".status-")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(fields, out)
        os.replace(temporary, record.folder / STATUS_NAME)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_record(folder: Path) -> JobRecord | None:
    """The record in a job's folder; None once the folder or its record is gone."""
    try:
        fields: dict[str, Any] = json.loads((folder / STATUS_NAME).read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    for name in _TIMES:
        value = fields[name]
        fields[name] = datetime.fromisoformat(value) if value is not None else None
    fields["percentiles"] = tuple(fields["percentiles"])
    return JobRecord(**fields, folder=folder)


def owner_gone(folder: Path) -> bool:
    """Whether the API process that made this folder of jobs has ended (its lock is free)."""
    try:
        with (folder / LOCK_NAME).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
    except BlockingIOError:
        return False
    except OSError:
        return True  # no lock file at all: not a live process's folder


def others(root: Path, own: Path) -> list[Path]:
    """The folders of the other live API processes under the job folder."""
    folders = root.iterdir() if root.is_dir() else iter(())
    return [
        folder
        for folder in folders
        if folder != own and folder.is_dir() and JOB_ID.match(folder.name)
        if not owner_gone(folder)
    ]


def find_elsewhere(root: Path, own: Path, job_id: str) -> JobRecord | None:
    """The job's record if another live API process owns it."""
    if not JOB_ID.match(job_id):  # an id is never a path: nothing else is looked up
        return None
    for owner in others(root, own):
        record = read_record(owner / job_id)
        if record is not None:
            return record
    return None


def records_elsewhere(root: Path, own: Path) -> list[JobRecord]:
    """The records of every job the other live API processes own."""
    found = []
    for owner in others(root, own):
        for folder in owner.iterdir():
            if JOB_ID.match(folder.name):
                record = read_record(folder)
                if record is not None:
                    found.append(record)
    return found


def ask_dismissal(record: JobRecord) -> bool:
    """Leave the marker asking the owner to dismiss the job; False if its folder went."""
    try:
        (record.folder / DISMISS_NAME).touch()
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def dismissals_asked(own: Path) -> list[str]:
    """The ids of this process's jobs another process asked to dismiss."""
    return [marker.parent.name for marker in own.glob(f"*/{DISMISS_NAME}")]
