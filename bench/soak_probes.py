"""What the soak watches, read from outside the processes: /proc, pg_stat_activity, /metrics.

Nothing here asks a process about itself (a leaking process could also misreport); the
figures are the kernel's and the database server's. Linux only.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

SOAK_APPLICATION = "urbis-soak"  # this watcher's own session, left out of the counts


@dataclass(frozen=True)
class ProcessFigures:
    """A process and its descendants (spawned workers, decoders): summed, and how many."""

    rss_mib: float
    fds: int
    processes: int


def children(pid: int) -> list[int]:
    """The live children of `pid` (zombies left out: they hold no memory or descriptors)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(stat.parent.name))
    return found


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children(current))
    return tree


def rss_kib(pid: int) -> int:
    """Resident memory as the kernel counts it (VmRSS); 0 for a process gone meanwhile."""
    with contextlib.suppress(OSError):
        found = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
        return int(found.group(1)) if found else 0
    return 0


def open_fds(pid: int) -> int:
    """Open file descriptors (sockets, pipes and files alike); 0 for a process gone."""
    with contextlib.suppress(OSError):
        return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    return 0


def process_figures(pid: int) -> ProcessFigures:
    tree = descendants(pid)
    return ProcessFigures(
        rss_mib=sum(rss_kib(p) for p in tree) / 1024,
        fds=sum(open_fds(p) for p in tree),
        processes=len(tree),
    )


def connections(watcher: psycopg.Connection, dbname: str) -> dict[str, int]:
    """Sessions on `dbname` per role (the API's reader, the sync's writer), this one left out.

    `watcher` must be autocommit (pg_stat_activity is a snapshot per transaction) and see
    every session (a superuser or pg_read_all_stats).
    """
    rows = watcher.execute(
        "SELECT usename, count(*) FROM pg_stat_activity "
        "WHERE datname = %s AND backend_type = 'client backend' "
        "AND application_name IS DISTINCT FROM %s GROUP BY usename",
        (dbname, SOAK_APPLICATION),
    ).fetchall()
    return {str(role): int(count) for role, count in rows}


# `name value` lines of the Prometheus text format, without labels
_METRIC = re.compile(r"^(urbis_[a-z_]+) ([0-9.eE+-]+)$", re.MULTILINE)


def server_metrics(base: str) -> dict[str, float]:
    """The API's unlabelled `urbis_*` figures from its /metrics (tile cache, pool, ...)."""
    text = httpx.get(f"{base}/metrics", timeout=10).raise_for_status().text
    return {name: float(value) for name, value in _METRIC.findall(text)}


def load_average() -> float:
    """The machine's one-minute load: other work on the same cores slows the runs."""
    return float(Path("/proc/loadavg").read_text().split()[0])
