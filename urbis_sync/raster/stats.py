"""Band statistics of a COG: min, max, mean and standard deviation over the valid pixels.

Read block by block (a whole orthophoto does not fit in memory), partial results merged with
Chan's formula so the mean and variance stay exact in float64 whatever the number of blocks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import rasterio


def band_statistics(path: Path) -> list[dict[str, Any]]:
    """Per band: name, dtype, nodata, min, max, mean, std (population), from the data."""
    with rasterio.open(path) as ds:
        nodata = ds.nodata
        totals = [_Running() for _ in range(ds.count)]
        for _, window in ds.block_windows(1):
            for index, running in enumerate(totals, start=1):
                block = ds.read(index, window=window)
                valid = block[~_nodata_mask(block, nodata)]
                running.add(valid.astype(np.float64))
        return [
            {
                "name": _band_name(ds, index),
                "dtype": ds.dtypes[index - 1],
                "nodata": nodata,
                **running.result(),
            }
            for index, running in enumerate(totals, start=1)
        ]


def _nodata_mask(block: np.ndarray, nodata: float | None) -> np.ndarray:
    if nodata is None:
        return np.zeros(block.shape, dtype=bool)
    if isinstance(nodata, float) and math.isnan(nodata):
        return np.isnan(block)
    return (block == nodata) | (np.isnan(block) if block.dtype.kind == "f" else False)


def _band_name(ds: Any, index: int) -> str:
    """The band's description, else its colour (red, green, blue), else `band<n>`."""
    described = ds.descriptions[index - 1]
    if described:
        return str(described)
    colour = ds.colorinterp[index - 1].name
    return colour if colour not in ("gray", "undefined", "grey") else f"band{index}"


class _Running:
    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations from the mean
        self.low = math.inf
        self.high = -math.inf

    def add(self, values: np.ndarray) -> None:
        n = int(values.size)
        if n == 0:
            return
        mean = float(values.mean())
        m2 = float(((values - mean) ** 2).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))

    def result(self) -> dict[str, float | None]:
        if self.count == 0:
            return {"min": None, "max": None, "mean": None, "std": None}
        return {
            "min": self.low,
            "max": self.high,
            "mean": self.mean,
            "std": math.sqrt(self.m2 / self.count),
        }
