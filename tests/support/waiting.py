"""Waiting in tests for what a server or a worker does in its own time, within a bound."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(what: str, check: Callable[[], T], seconds: float, every: float = 0.2) -> T:
    """`check()`'s first truthy value, asked every `every` seconds for at most `seconds`.

    Past the bound, an AssertionError that says what did not happen.
    """
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {seconds:g} s: {what}")
        time.sleep(every)
