"""Whether a figure sampled over the soak's cycles stays flat: start, end, max and slope.

The slope is a least-squares line over the samples after the warm-up, per 100 cycles; the
warm-up (caches filling, the pool opening its connections, the allocator settling after the
first load) is left out because it grows by design and then stops.

A figure grows when its slope passes its limit (memory: some MiB per 100 cycles), or, for
counts that must not drift at all (descriptors, connections), when the last third of the
samples reaches above anything the first third reached, plus a tolerance. The second rule
is the stricter one for counts: a leak of one descriptor every ten cycles shows in it long
before it moves a slope over noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Trend:
    name: str
    start: float  # the first sample after the warm-up
    end: float
    max: float
    slope_per_100: float  # least squares, per 100 cycles
    samples: int
    growing: bool
    why: str  # what made it growing; "" when flat

    def row(self) -> dict[str, object]:
        return {
            "name": self.name,
            "start": round(self.start, 1),
            "end": round(self.end, 1),
            "max": round(self.max, 1),
            "slope_per_100_cycles": round(self.slope_per_100, 2),
            "samples": self.samples,
            "growing": self.growing,
            "why": self.why,
        }


def slope(cycles: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of values against cycles (0 with fewer than two distinct cycles)."""
    n = len(cycles)
    if n < 2:
        return 0.0
    mean_x, mean_y = sum(cycles) / n, sum(values) / n
    spread = sum((x - mean_x) ** 2 for x in cycles)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(cycles, values, strict=True)) / spread


def trend(
    name: str,
    cycles: Sequence[int],
    values: Sequence[float],
    *,
    warm_up: int,
    max_slope_per_100: float | None = None,
    tolerance: float | None = None,
) -> Trend:
    """The figure over the cycles after `warm_up`.

    `max_slope_per_100`: growing when the slope passes it. `tolerance`: growing when the last
    third's highest sample passes the first third's highest by more than this (None: not
    checked; 0: not by one).
    """
    kept = [(c, v) for c, v in zip(cycles, values, strict=True) if c >= warm_up]
    if not kept:
        raise ValueError(f"{name}: no sample after the warm-up of {warm_up} cycles")
    xs, ys = [float(c) for c, _ in kept], [v for _, v in kept]
    per_100 = slope(xs, ys) * 100
    reasons = []
    if max_slope_per_100 is not None and per_100 > max_slope_per_100:
        reasons.append(f"slope {per_100:.2f} per 100 cycles > {max_slope_per_100}")
    if tolerance is not None and len(ys) >= 3:
        third = max(1, len(ys) // 3)
        early, late = max(ys[:third]), max(ys[-third:])
        if late > early + tolerance:
            reasons.append(f"last third reaches {late:g}, first third {early:g} (+{tolerance:g})")
    return Trend(
        name=name,
        start=ys[0],
        end=ys[-1],
        max=max(ys),
        slope_per_100=per_100,
        samples=len(ys),
        growing=bool(reasons),
        why="; ".join(reasons),
    )
