"""Zonal statistics over many small buildings: urbis_core.raster_values against rasterstats.

    python -m bench.zonal_bench [--buildings 100000] [--size 4000]
    python -m bench.zonal_bench --through-api [--wait-quiet 600] [--json out.json]

Writes a deterministic terrain model (float32 COG, EPSG:31370, 2 m cells over Brussels, nodata
holes) and as many small rotated rectangles ("buildings") scattered over it, then times one run
of each on the same data in this process: `zonal_stats` here, and `rasterstats.zonal_stats` with
the same statistics (count, nodata, min, max, mean, std, 5/50/95th percentiles; rasterstats'
default cells, centres inside). Checks that both give the same numbers, prints the ratio.

`--through-api` times what a user runs instead, the zonal job of the API over the same data
(bench.zonal_api says how).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import Polygon

from urbis_core.raster_values import zonal_stats

NODATA = -9999.0
PERCENTILES = (5, 50, 95)
RASTERSTATS = "count nodata min max mean std " + " ".join(f"percentile_{p}" for p in PERCENTILES)


def write_dtm(path: Path, size: int, cell: float) -> tuple[float, float, float, float]:
    rng = np.random.default_rng(15)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    height = 20 + 0.01 * cols + 0.005 * rows + 15 * np.sin(cols / 300) * np.cos(rows / 250)
    height += rng.normal(0, 0.3, height.shape).astype(np.float32)
    for _ in range(40):  # holes
        r, c, w = rng.integers(0, size, 2).tolist() + [int(rng.integers(10, 80))]
        height[r : r + w, c : c + w] = NODATA
    left, top = 146_000.0, 174_000.0
    with rasterio.open(
        path,
        "w",
        driver="COG",
        width=size,
        height=size,
        count=1,
        dtype="float32",
        crs="EPSG:31370",
        transform=from_origin(left, top, cell, cell),
        nodata=NODATA,
        blocksize=512,
        compress="deflate",
    ) as dst:
        dst.write(height.astype(np.float32), 1)
    return left, top - size * cell, left + size * cell, top


def buildings(count: int, bounds: tuple[float, float, float, float]) -> list[Polygon]:
    """Rotated rectangles 5-30 m by 5-20 m, 30 m or more inside the raster's edge.

    (rasterstats counts the cells of a polygon beyond the raster as nodata; we do not count them
    at all. Kept inside, both count the same cells.)
    """
    rng = np.random.default_rng(14)
    out = []
    for _ in range(count):
        cx = rng.uniform(bounds[0] + 30, bounds[2] - 30)
        cy = rng.uniform(bounds[1] + 30, bounds[3] - 30)
        w, h, a = rng.uniform(5, 30), rng.uniform(5, 20), rng.uniform(0, math.pi)
        c, s = math.cos(a), math.sin(a)
        ring = [
            (cx + x * c - y * s, cy + x * s + y * c)
            for x, y in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))
        ]
        out.append(Polygon(ring))
    return out


def time_rasterstats(path: str, shapes: list[Polygon]) -> tuple[list[dict[str, Any]], float]:
    """rasterstats' numbers for every shape (its defaults, our statistics) and its seconds."""
    import rasterstats  # the dev extra's reference

    start = time.perf_counter()
    theirs = rasterstats.zonal_stats(shapes, path, stats=RASTERSTATS)
    return theirs, time.perf_counter() - start


def agrees(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Whether one feature's statistics (as zonal_stats gives them) are rasterstats' ones."""
    same = ours["count"] == theirs["count"] and ours["nodata_count"] == int(theirs["nodata"] or 0)
    if ours["count"]:
        same = same and all(
            math.isclose(ours[k], theirs[k], rel_tol=1e-6, abs_tol=1e-6)
            for k in ("min", "max", "mean", "std")
        )
        same = same and all(
            math.isclose(ours["percentiles"][p], theirs[f"percentile_{p}"], rel_tol=1e-6)
            for p in PERCENTILES
        )
    return same


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--buildings", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=4000, help="raster cells across (2 m each)")
    parser.add_argument(
        "--through-api",
        action="store_true",
        help="time the API's zonal job (sync, urbis serve, POST, poll, download) instead",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="--through-api: first wait up to this long for the CPU to be idle",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/urbis-bench"),
        help="--through-api: where its files and logs go (<workdir>/zonal-run)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="--through-api: write the result here too"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.through_api:
        from bench import zonal_api

        return zonal_api.run(args)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dtm.tif"
        bounds = write_dtm(path, args.size, 2.0)
        shapes = buildings(args.buildings, bounds)
        print(f"{args.buildings:,} buildings over a {args.size} x {args.size} float32 COG (2 m)")

        start = time.perf_counter()
        ours = [r for _, r in zonal_stats(str(path), enumerate(shapes), PERCENTILES)]
        ours_s = time.perf_counter() - start

        theirs, theirs_s = time_rasterstats(str(path), shapes)

        mismatches = sum(not agrees(a, b) for a, b in zip(ours, theirs, strict=True))
        print(f"urbis_core.raster_values.zonal_stats: {ours_s:.2f} s")
        print(f"rasterstats.zonal_stats:              {theirs_s:.2f} s")
        print(f"ratio (rasterstats / ours):           {theirs_s / ours_s:.2f} x")
        print(f"features whose numbers differ:        {mismatches}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
