"""Child processes of a server under test, read from /proc (Linux)."""

from __future__ import annotations

import contextlib
from pathlib import Path


def spawned_children(server_pid: int) -> set[int]:
    """The server's live child processes started by multiprocessing's spawn (jobs, decoders)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
            if int(fields[1]) == server_pid and b"spawn_main" in cmdline and fields[0] != "Z":
                found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs still (a zombie, ended but not yet reaped, does not count)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False
