"""A small tmpfs folder for tests of a full disk: mounted, filled, and unmounted after.

Mounting needs root (CAP_SYS_ADMIN); where it is refused the test is skipped, saying why.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FILLER = ".filler"


@contextmanager
def small_disk(size: str) -> Iterator[Path]:
    """A fresh tmpfs of `size` (mount's syntax: 4m, 512k), unmounted and removed after."""
    folder = Path(tempfile.mkdtemp(prefix="urbis-small-disk-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs to fill: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)
        folder.rmdir()


def free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def fill(folder: Path, leave: int = 0) -> Path:
    """Take the folder's free space with a file, but for about `leave` bytes (whole pages)."""
    filler = folder / FILLER
    with filler.open("ab") as out:
        chunk = b"\0" * 65536
        while (room := free_bytes(folder) - leave) > 0:
            try:
                out.write(chunk[: min(room, len(chunk))])
                out.flush()
            except OSError:
                break
    return filler


def temporary_files(folder: Path) -> list[Path]:
    """What a write cut short could leave: the writers' temporary names."""
    return [p for p in folder.rglob("*") if p.name.startswith(".tmp-") or p.name.endswith(".tmp")]
