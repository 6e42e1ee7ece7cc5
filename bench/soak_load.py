"""The light load the API carries during the soak: a few clients asking tiles, items, lookup.

Each client is a thread with its own keep-alive httpx client, going round its own shuffled
list of requests around real buildings, with a pause between requests. The tiles are the
ones the sync's changes fall in (the buildings are spread over the whole city, and so are a
1 % change's), so the listener's invalidation is exercised on every changed run: a tile asked
again after a change is drawn again. An answer other than 200 (204 for an empty tile) or a
failed connection is an error, counted per kind; the first few are kept to be read.
"""

from __future__ import annotations

import math
import random
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

OK = {200, 204}
KEPT_ERRORS = 10


def web_mercator_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The WebMercatorQuad column and row holding a CRS84 point."""
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def requests_around(points: Sequence[tuple[float, float]], layer: str) -> list[tuple[str, str]]:
    """(kind, path) for each point: its tiles at z14-16, a small bbox of items, a lookup."""
    out = []
    for lon, lat in points:
        for z in (14, 15, 16):
            x, y = web_mercator_tile(lon, lat, z)
            out.append(("tile", f"/collections/{layer}/tiles/WebMercatorQuad/{z}/{x}/{y}"))
        d = 0.0015
        out.append(
            (
                "items",
                f"/collections/{layer}/items?limit=50&bbox="
                f"{lon - d:.6f},{lat - d:.6f},{lon + d:.6f},{lat + d:.6f}",
            )
        )
        out.append(("lookup", f"/lookup?x={lon:.6f}&y={lat:.6f}&collections={layer}"))
    return out


@dataclass
class LoadFigures:
    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)

    def total(self) -> tuple[int, int]:
        return sum(self.requests.values()), sum(self.errors.values())


class LightLoad:
    """`clients` threads asking `requests` of the API at `base` until `stop`."""

    def __init__(
        self,
        base: str,
        requests: Sequence[tuple[str, str]],
        clients: int = 3,
        pause: float = 0.05,
        seed: int = 7,
        accept_encoding: str | None = None,
    ) -> None:
        self.base, self.requests, self.pause = base, list(requests), pause
        # None: what httpx asks by default (gzip, deflate, and br with brotli installed)
        self.headers = {"Accept-Encoding": accept_encoding} if accept_encoding else {}
        self.figures = LoadFigures()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(seed + i,), daemon=True, name=f"load-{i}")
            for i in range(clients)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.figures.total()

    def _client(self, seed: int) -> None:
        order = list(self.requests)
        random.Random(seed).shuffle(order)
        with httpx.Client(base_url=self.base, timeout=30, headers=self.headers) as client:
            i = 0
            while not self._stop.is_set():
                kind, path = order[i % len(order)]
                i += 1
                error = None
                try:
                    answer = client.get(path)
                    if answer.status_code not in OK:
                        error = f"{answer.status_code} {path}: {answer.text[:200]}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__} {path}: {exc}"
                with self._lock:
                    self.figures.requests[kind] += 1
                    if error is not None:
                        self.figures.errors[kind] += 1
                        if len(self.figures.first_errors) < KEPT_ERRORS:
                            self.figures.first_errors.append(error)
                self._stop.wait(self.pause)
