"""Telling a write that failed for want of space from other failures, to say so plainly."""

from __future__ import annotations

import errno
import sqlite3

_FULL = (errno.ENOSPC, errno.EDQUOT)


def out_of_space(exc: BaseException) -> bool:
    """Whether `exc` is a full disk (or quota); sqlite says it in words, not with an errno."""
    if isinstance(exc, OSError):
        return exc.errno in _FULL
    return isinstance(exc, sqlite3.Error) and "disk is full" in str(exc)
