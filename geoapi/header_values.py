"""The entries of a header listing values with q-values (Accept, Accept-Language)."""

from __future__ import annotations


def weighted(header: str) -> list[tuple[str, float | None]]:
    """Each value with its quality, in the header's order.

    The quality is 1 without `q`, None for a `q` that is not a number (the caller drops it).
    """
    entries: list[tuple[str, float | None]] = []
    for entry in header.split(","):
        value, *params = (p.strip() for p in entry.split(";"))
        quality: float | None = 1.0
        for param in params:
            name, _, number = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(number)
                except ValueError:
                    quality = None
        entries.append((value, quality))
    return entries
