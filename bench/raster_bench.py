"""Raster tile benchmark: our coverage tiles against TiTiler's, on the same COGs, in one run.

    python -m bench.raster_bench --json out.json     # 6000 x 5000 orthophoto, 4000 x 3200 DTM
    python -m bench.raster_bench --quick             # a tenth of the pixels a side

What it does, in order:
1. writes two deterministic rasters over Brussels in EPSG:31370 (cached under --workdir): an
   orthophoto-like RGB image (uint8; streets, roofs, parks, the canal, texture) over 6 x 5 km
   of the centre, and a float32 terrain model with nodata ponds and a strip over 20 x 16 km;
2. starts a throwaway PostgreSQL cluster and syncs both as raster layers with `urbis sync
   --once` (`type: raster`, `source: {kind: file, path: ...}`), which writes the COGs under
   URBIS_RASTER_DIR (<workdir>/raster-run/cogs); TiTiler is given those very files, the paths
   the catalog names;
3. draws one tile list on WebMercatorQuad (--seed): a planner looks at --places places, each
   zooming in from 12 to 18, panning a little at each zoom; at each zoom the map asks for
   every tile its 1280 x 800 window needs (nearest the centre first), the orthophoto as the
   background and the terrain as an overlay. Only tiles that meet the coverage are kept (off
   it, ours answers 204 and TiTiler 404), each once. Both servers get this list in this order;
4. for each server in turn (one process, never two at once):
   - cold: a fresh process answers the whole list once, --concurrency requests in flight as a
     browser keeps (ours with an empty tile cache and no disk tier; TiTiler has no tile cache);
   - warm: the same process answers the list again, round and round for --warm-seconds
     (ours from its cache; TiTiler draws every tile again);
   every answer must be a 200 with a PNG body, else it counts as an error;
5. fetches --compare tiles of each coverage from both servers, decodes them and reports the
   mean absolute difference of the RGBA values, so that both are shown doing the same work.

The same tiles on both (TILE_URLS below): PNG, 256 x 256, bilinear resampling; the orthophoto
as it is (RGB, transparent where nodata 0 or off the raster); the terrain through viridis over
TERRAIN_RESCALE, no hillshade (TiTiler has no ramp-with-hillshade). The client is
bench.rawhttp (keep-alive GETs). It prints (and with --json writes) tiles/s per server and
pass, latency p50/p95, the ratios ours/TiTiler, CPU per tile. Logs stay in
<workdir>/raster-run/.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import psycopg
import rasterio
from PIL import Image, ImageDraw
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds
from sqlalchemy import make_url

from bench import api_peers
from bench.api_bench import (
    HEADERS,
    CpuMeter,
    cpu_per_request,
    drive,
    fresh_folder,
    our_code,
    ratio,
    run_options,
    scratch_cluster,
    wait_for_quiet,
    warm_option,
    with_defaults,
    write_result,
)
from tiles.tms import get_tms
from urbis_core.pgcluster import free_port

TMS = "WebMercatorQuad"
COVERAGES = ("ortho", "terrain")
SERVERS = ("ours", "titiler")
ZOOMS = tuple(range(12, 19))
VIEWPORT = (1280, 800)  # a planner's map window, CSS pixels
TERRAIN_RESCALE = (10.0, 110.0)
TERRAIN_NODATA = -9999.0
COLORMAP = "viridis"  # the same ramp on both (ours: nine stops of matplotlib's)
TARGETS = {"cold": 1.0, "warm": 10.0}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Lambert 72 extents (left, bottom, right, top): fixed whatever the pixel counts, so the tile
# list does not depend on the size of the run.
EXTENTS = {
    "ortho": (147_000.0, 167_500.0, 153_000.0, 172_500.0),  # 6 x 5 km of the centre
    "terrain": (140_000.0, 162_000.0, 160_000.0, 178_000.0),  # 20 x 16 km: the region
}
TITLES = {
    "ortho": "{fr: Orthophoto (générée), nl: Orthofoto (gegenereerd), en: Orthophoto (generated)}",
    "terrain": "{fr: Terrain (généré), nl: Terrein (gegenereerd), en: Terrain (generated)}",
}


# -- the rasters -----------------------------------------------------------------------------


def shape_of(coverage: str, width: int) -> tuple[int, int, float]:
    """(rows, columns, pixel metres) of a coverage `width` pixels across its extent."""
    left, bottom, right, top = EXTENTS[coverage]
    pixel = (right - left) / width
    return round((top - bottom) / pixel), width, pixel


def smooth_noise(rng: np.random.Generator, rows: int, cols: int, cell: int) -> np.ndarray:
    """Noise varying over about `cell` pixels, -1..1 (a coarse random grid, resized bicubic)."""
    coarse = rng.uniform(-1, 1, (rows // cell + 2, cols // cell + 2)).astype(np.float32)
    image = Image.fromarray(coarse, "F").resize((cols, rows), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float32)


def ortho_array(width: int, seed: int) -> np.ndarray:
    """An orthophoto-like RGB picture (3, rows, cols) uint8, never 0 (0 is its nodata).

    Street blocks of an irregular grid filled with roofs and courtyards, a few parks with tree
    crowns, the canal; then lighting and sensor noise. Drawn in metres, so every size shows the
    same city.
    """
    rows, cols, pixel = shape_of("ortho", width)
    rng = np.random.default_rng(seed)
    picture = Image.new("RGB", (cols, rows), (112, 118, 96))
    draw = ImageDraw.Draw(picture)

    def px(metres: float) -> float:
        return metres / pixel

    span_x, span_y = cols * pixel, rows * pixel
    streets_x = np.cumsum(rng.uniform(70, 170, int(span_x / 70) + 2))
    streets_y = np.cumsum(rng.uniform(70, 170, int(span_y / 70) + 2))
    roofs = ((150, 72, 52), (92, 88, 96), (176, 170, 160), (128, 64, 48), (70, 74, 80))
    for x0, x1 in zip(streets_x[:-1], streets_x[1:], strict=True):
        for y0, y1 in zip(streets_y[:-1], streets_y[1:], strict=True):
            if x0 > span_x or y0 > span_y:
                continue
            road = rng.uniform(7, 14) / 2
            bx0, by0, bx1, by1 = x0 + road, y0 + road, x1 - road, y1 - road
            draw.rectangle((px(bx0), px(by0), px(bx1), px(by1)), fill=(84, 108, 64))  # yards
            depth = rng.uniform(10, 18)
            for edge in range(4):  # houses along each side of the block
                along = (bx1 - bx0) if edge < 2 else (by1 - by0)
                position = 0.0
                while position < along:
                    front = rng.uniform(6, 22)
                    a, b = position, min(along, position + front)
                    if edge == 0:
                        box = (bx0 + a, by0, bx0 + b, by0 + depth)
                    elif edge == 1:
                        box = (bx0 + a, by1 - depth, bx0 + b, by1)
                    elif edge == 2:
                        box = (bx0, by0 + a, bx0 + depth, by0 + b)
                    else:
                        box = (bx1 - depth, by0 + a, bx1, by0 + b)
                    colour = tuple(int(c) for c in roofs[int(rng.integers(len(roofs)))])
                    draw.rectangle(tuple(px(v) for v in box), fill=colour)
                    position = b
    for _ in range(8):  # parks and their trees
        cx, cy = rng.uniform(0, span_x), rng.uniform(0, span_y)
        rx, ry = rng.uniform(120, 400), rng.uniform(100, 300)
        draw.ellipse((px(cx - rx), px(cy - ry), px(cx + rx), px(cy + ry)), fill=(72, 118, 56))
        for _ in range(int(rx * ry / 400)):
            tx, ty = cx + rng.uniform(-rx, rx) * 0.9, cy + rng.uniform(-ry, ry) * 0.9
            r = rng.uniform(3, 7)
            draw.ellipse((px(tx - r), px(ty - r), px(tx + r), px(ty + r)), fill=(38, 78, 40))
    canal = [(0.0, span_y * 0.15), (span_x * 0.45, span_y * 0.55), (span_x, span_y * 0.95)]
    draw.line([(px(x), px(y)) for x, y in canal], fill=(44, 72, 88), width=max(1, int(px(30))))

    out = np.empty((3, rows, cols), dtype=np.uint8)
    light = smooth_noise(rng, rows, cols, max(2, int(px(400)))) * 10
    drawn = np.asarray(picture)
    for band in range(3):
        values = drawn[..., band].astype(np.float32) + light
        values += rng.normal(0, 5, (rows, cols)).astype(np.float32)
        out[band] = np.clip(values, 1, 255).astype(np.uint8)
    return out


def terrain_array(width: int, seed: int) -> np.ndarray:
    """Heights (rows, cols) float32 in metres: the Senne valley between the western plateau and
    the Forest of Soignes, gentle undulations; ponds and a missing strip as nodata."""
    rows, cols, pixel = shape_of("terrain", width)
    left, _, _, top = EXTENTS["terrain"]
    rng = np.random.default_rng(seed + 1)
    x = (left + (np.arange(cols, dtype=np.float32) + 0.5) * pixel)[np.newaxis, :]
    y = (top - (np.arange(rows, dtype=np.float32) + 0.5) * pixel)[:, np.newaxis]
    # distance from the valley's axis, a line from the south-west to the north-east
    along = np.float32(math.cos(math.radians(60))), np.float32(math.sin(math.radians(60)))
    across = (x - 148_000) * along[1] - (y - 166_000) * along[0]
    height = 16 + 0.0035 * np.abs(across) + 0.0004 * (x - 140_000)
    height += 48 * np.exp(-((x - 156_500) ** 2 + (y - 164_500) ** 2) / (2 * 3_500.0**2))
    height += 22 * np.exp(-((x - 143_000) ** 2 + (y - 171_000) ** 2) / (2 * 2_500.0**2))
    height += 3 * np.sin(x / 700) * np.cos(y / 900)
    height = height.astype(np.float32)
    height += smooth_noise(rng, rows, cols, max(2, int(200 / pixel))) * 2.5
    height += rng.normal(0, 0.15, (rows, cols)).astype(np.float32)
    # ponds and a strip the survey missed
    rr, cc = np.mgrid[0:rows, 0:cols].astype(np.float32) * pixel
    for _ in range(12):
        pr, pc = rng.uniform(0, rows * pixel), rng.uniform(0, cols * pixel)
        radius = rng.uniform(40, 250)
        height[(rr - pr) ** 2 + (cc - pc) ** 2 < radius**2] = TERRAIN_NODATA
    strip = (rr > 0.7 * rows * pixel) & (rr < 0.7 * rows * pixel + 60) & (cc < 0.4 * cols * pixel)
    height[strip] = TERRAIN_NODATA
    return height


def write_source(path: Path, coverage: str, data: np.ndarray, nodata: float | None) -> None:
    """A plain tiled GeoTIFF (not yet a COG: the sync makes that), EPSG:31370."""
    bands = data if data.ndim == 3 else data[np.newaxis]
    _, cols, pixel = shape_of(coverage, data.shape[-1])
    left, _, _, top = EXTENTS[coverage]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=cols,
        height=bands.shape[1],
        count=bands.shape[0],
        dtype=bands.dtype,
        crs="EPSG:31370",
        transform=from_origin(left, top, pixel, pixel),
        nodata=nodata,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
        **({"photometric": "RGB"} if bands.shape[0] == 3 else {}),
    ) as dst:
        dst.write(bands)


def sources(workdir: Path, ortho_pixels: int, terrain_pixels: int, seed: int) -> dict[str, Path]:
    """The two source rasters, written on first use (their names say their size and seed)."""
    folder = workdir / "rasters"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "ortho": folder / f"ortho-{ortho_pixels}-s{seed}.tif",
        "terrain": folder / f"dtm-{terrain_pixels}-s{seed}.tif",
    }
    if not paths["ortho"].exists():
        print(f"generating {paths['ortho']} ...", file=sys.stderr)
        write_source(paths["ortho"], "ortho", ortho_array(ortho_pixels, seed), None)
    if not paths["terrain"].exists():
        print(f"generating {paths['terrain']} ...", file=sys.stderr)
        write_source(
            paths["terrain"], "terrain", terrain_array(terrain_pixels, seed), TERRAIN_NODATA
        )
    return paths


def layer_config(rundir: Path, files: dict[str, Path]) -> Path:
    path = rundir / "raster-bench.yaml"
    low, high = TERRAIN_RESCALE
    path.write_text(
        "layers:\n"
        "  ortho:\n"
        "    type: raster\n"
        f"    title: {TITLES['ortho']}\n"
        f"    source: {{kind: file, path: {files['ortho']}}}\n"
        "    nodata: 0  # the file declares none\n"
        "  terrain:\n"
        "    type: raster\n"
        f"    title: {TITLES['terrain']}\n"
        f"    source: {{kind: file, path: {files['terrain']}}}\n"
        f"    style: {{colormap: {COLORMAP}, rescale: [{low:g}, {high:g}], hillshade: false}}\n"
    )
    return path


def synced_database(admin: str, config: Path, raster_dir: Path) -> str:
    """A fresh database, migrated, with the raster layers synced by `urbis sync --once`."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS raster_bench WITH (FORCE)")
        conn.execute("CREATE DATABASE raster_bench")
    url = make_url(admin).set(database="raster_bench").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION postgis")
    env = {**sync_env(url, config, raster_dir)}
    for cmd in (["migrate"], ["sync", "--once"]):
        done = subprocess.run([str(api_peers.URBIS), *cmd], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"urbis {' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return url


def sync_env(url: str, config: Path, raster_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "URBIS_CONFIG": str(config),
        "URBIS_RASTER_DIR": str(raster_dir),
    }
    env.pop("URBIS_TILE_CACHE_DIR", None)  # no disk tier: cold is cold
    return env


@dataclass(frozen=True)
class Cog:
    """A coverage's COG as the catalog names it."""

    coverage: str
    path: str
    version: int
    bbox_native: tuple[float, float, float, float]
    width: int
    height: int
    resolution: float


def catalog_cogs(url: str) -> dict[str, Cog]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id, path, version, bbox_native, width, height, resolution "
            "FROM urbis_meta.coverage_catalog ORDER BY id"
        ).fetchall()
    cogs = {
        r[0]: Cog(r[0], r[1], int(r[2]), tuple(r[3]), int(r[4]), int(r[5]), float(min(r[6])))
        for r in rows
    }
    missing = set(COVERAGES) - set(cogs)
    if missing:
        raise SystemExit(f"the sync made no COG for {sorted(missing)}")
    return cogs


def cog_facts(path: str) -> dict[str, Any]:
    with rasterio.open(path) as src:
        return {
            "path": path,
            "bytes": os.path.getsize(path),
            "size": [src.width, src.height],
            "bands": src.count,
            "dtype": src.dtypes[0],
            "nodata": src.nodata,
            "block": list(src.block_shapes[0]),
            "overviews": src.overviews(1),
            "compression": src.compression.name if src.compression else None,
        }


# -- the tile list ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TileAsk:
    coverage: str
    z: int
    x: int
    y: int

    def tile(self) -> str:
        return f"{self.z}/{self.x}/{self.y}"


def extent_3857(bbox_native: tuple[float, float, float, float]) -> tuple[float, ...]:
    return tuple(transform_bounds("EPSG:31370", "EPSG:3857", *bbox_native, densify_pts=21))


def viewport_tiles(z: int, centre: tuple[float, float]) -> list[tuple[int, int]]:
    """The tiles a VIEWPORT window centred there shows at zoom z, nearest the centre first."""
    tms = get_tms(TMS)
    half_w, half_h = (VIEWPORT[0] / 2) * tms.cell_size(z), (VIEWPORT[1] / 2) * tms.cell_size(z)
    cx, cy = centre
    columns, rows = tms.tiles_covering(z, (cx - half_w, cy - half_h, cx + half_w, cy + half_h))

    def distance(tile: tuple[int, int]) -> float:
        minx, miny, maxx, maxy = tms.bounds(z, *tile)
        return math.hypot((minx + maxx) / 2 - cx, (miny + maxy) / 2 - cy)

    return sorted(((c, r) for c in columns for r in rows), key=distance)


def meets(z: int, x: int, y: int, extent: tuple[float, ...]) -> bool:
    """Whether the tile holds more than a pixel's row and column of the coverage: both servers
    draw it (at a mere touch, densified edges may differ between the two)."""
    tms = get_tms(TMS)
    minx, miny, maxx, maxy = tms.bounds(z, x, y)
    overlap = 2 * tms.cell_size(z)
    return (
        min(maxx, extent[2]) - max(minx, extent[0]) > overlap
        and min(maxy, extent[3]) - max(miny, extent[1]) > overlap
    )


def draw_tiles(extents: dict[str, tuple[float, ...]], places: int, seed: int) -> list[TileAsk]:
    """The planner's session: at each place, zooms 12 to 18, a small pan at each zoom; every
    tile of each window for each coverage (background, then overlay) that meets it, once."""
    rng = random.Random(seed)
    tms = get_tms(TMS)
    inner = extents["ortho"]  # where both coverages lie; places well inside it
    width, height = inner[2] - inner[0], inner[3] - inner[1]
    asks: dict[TileAsk, None] = {}
    for _ in range(places):
        x = rng.uniform(inner[0] + 0.2 * width, inner[2] - 0.2 * width)
        y = rng.uniform(inner[1] + 0.2 * height, inner[3] - 0.2 * height)
        for z in ZOOMS:
            pan = 0.3 * VIEWPORT[1] * tms.cell_size(z)
            centre = (x + rng.uniform(-pan, pan), y + rng.uniform(-pan, pan))
            for col, row in viewport_tiles(z, centre):
                for coverage in COVERAGES:
                    if meets(z, col, row, extents[coverage]):
                        asks[TileAsk(coverage, z, col, row)] = None
    return list(asks)


# -- the URLs --------------------------------------------------------------------------------


def tile_path(server: str, ask: TileAsk, cogs: dict[str, Cog]) -> str:
    """The tile's path and query on a server: the same picture asked of both."""
    low, high = TERRAIN_RESCALE
    tile = f"{TMS}/{ask.z}/{ask.x}/{ask.y}.png"
    if server == "ours":
        path = f"/coverages/{ask.coverage}/tiles/{tile}"
        if ask.coverage == "terrain":
            path += f"?colormap={COLORMAP}&rescale={low:g},{high:g}&hillshade=false"
        return path
    # TiTiler reads nearest by default; ours draws bilinear, so TiTiler is asked for bilinear
    path = (
        f"/cog/tiles/{tile}?url={quote(cogs[ask.coverage].path, safe='/')}"
        "&resampling=bilinear&reproject=bilinear"
    )
    if ask.coverage == "terrain":
        path += f"&bidx=1&colormap_name={COLORMAP}&rescale={low:g},{high:g}"
    return path


def is_png(body: bytes) -> bool:
    return body.startswith(PNG_SIGNATURE)


# -- measuring -------------------------------------------------------------------------------


@dataclass
class ServerTiles:
    passes: dict[str, dict[str, Any]]
    pictures: dict[TileAsk, bytes]
    warm_cache: dict[str, int]  # ours: X-Tile-Cache of a sample after the warm pass


def measure_server(
    name: str,
    spec: api_peers.ServerSpec,
    asks: list[TileAsk],
    compared: list[TileAsk],
    cogs: dict[str, Cog],
    rundir: Path,
    postmaster: int,
    args: argparse.Namespace,
) -> ServerTiles:
    port = int(spec.cmd[spec.cmd.index("--port") + 1])
    urls = [f"http://127.0.0.1:{port}{tile_path(name, a, cogs)}" for a in asks]
    passes: dict[str, dict[str, Any]] = {}
    with api_peers.running(spec, port, rundir / f"{name}.log") as server:
        meter = CpuMeter(server.group, postmaster)
        for pass_name, seconds in (("cold", 0.0), ("warm", args.warm_seconds)):
            before = meter.sample()
            load = asyncio.run(drive(urls, args.concurrency, seconds, raw=True, valid=is_png))
            figures = load.figures()
            cpu = cpu_per_request(before, meter.sample(), load.ok, load.seconds)
            passes[pass_name] = {"tiles_per_s": figures.pop("requests_per_s"), **figures}
            passes[pass_name].update(
                {
                    "server_cpu_ms_per_tile": cpu["server_cpu_ms_per_request"],
                    "client_cpu_ms_per_tile": cpu["client_cpu_ms_per_request"],
                    "other_processes_cores": cpu["other_processes_cores"],
                }
            )
            print(
                f"  {name:7} {pass_name:5} {passes[pass_name]['tiles_per_s']:9.1f} tiles/s "
                f"p50 {figures.get('p50_ms')} ms p95 {figures.get('p95_ms')} ms "
                f"({load.ok} ok, {len(load.errors)} errors)",
                file=sys.stderr,
            )
        pictures: dict[TileAsk, bytes] = {}
        cache: dict[str, int] = {}
        with httpx.Client(base_url=server.base, headers=HEADERS, timeout=120.0) as client:
            for ask in compared:
                response = client.get(tile_path(name, ask, cogs))
                pictures[ask] = response.content if response.status_code == 200 else b""
                state = response.headers.get("x-tile-cache", "none")
                cache[state] = cache.get(state, 0) + 1
    return ServerTiles(passes, pictures, cache)


def compared_tiles(asks: list[TileAsk], per_coverage: int, seed: int) -> list[TileAsk]:
    """`per_coverage` tiles of each coverage, spread over the zooms (drawn with the seed)."""
    rng = random.Random(seed + 7)
    out: list[TileAsk] = []
    for coverage in COVERAGES:
        mine = [a for a in asks if a.coverage == coverage]
        out += rng.sample(mine, min(per_coverage, len(mine)))
    return out


def rgba(body: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(body)) as image:
        return np.asarray(image.convert("RGBA"), dtype=np.int16)


def picture_difference(ours: bytes, theirs: bytes) -> dict[str, Any]:
    """Mean absolute difference of the colour channels where both tiles are opaque (0-255), and
    the share of pixels one shows and the other leaves transparent."""
    if not ours or not theirs:
        return {"decoded": False}
    a, b = rgba(ours), rgba(theirs)
    shown_a, shown_b = a[..., 3] > 0, b[..., 3] > 0
    both = shown_a & shown_b
    diff = np.abs(a[..., :3] - b[..., :3])[both]
    return {
        "decoded": True,
        "mean_abs_diff": round(float(diff.mean()), 2) if diff.size else None,
        "p99_abs_diff": round(float(np.percentile(diff, 99)), 1) if diff.size else None,
        "alpha_disagreement": round(float((shown_a != shown_b).mean()), 4),
        "opaque_share": round(float(both.mean()), 3),
    }


def comparison(runs: dict[str, ServerTiles]) -> dict[str, Any]:
    rows = []
    for ask, ours in runs["ours"].pictures.items():
        rows.append(
            {
                "coverage": ask.coverage,
                "tile": ask.tile(),
                **picture_difference(ours, runs["titiler"].pictures.get(ask, b"")),
            }
        )
    summary: dict[str, Any] = {}
    for coverage in COVERAGES:
        mine = [r for r in rows if r["coverage"] == coverage and r.get("mean_abs_diff") is not None]
        summary[coverage] = {
            "tiles": sum(r["coverage"] == coverage for r in rows),
            "decoded": len(mine),
            "mean_abs_diff": round(sum(r["mean_abs_diff"] for r in mine) / len(mine), 2)
            if mine
            else None,
            "max_tile_mean_abs_diff": max((r["mean_abs_diff"] for r in mine), default=None),
            "max_alpha_disagreement": max((r["alpha_disagreement"] for r in mine), default=None),
        }
    return {"summary": summary, "tiles": rows}


# -- report ----------------------------------------------------------------------------------


def report(
    args: argparse.Namespace,
    asks: list[TileAsk],
    cogs: dict[str, Cog],
    runs: dict[str, ServerTiles],
    started: float,
) -> dict[str, Any]:
    tps = {p: {s: runs[s].passes[p]["tiles_per_s"] for s in SERVERS} for p in ("cold", "warm")}
    ratios = {p: ratio(tps[p]["ours"], tps[p]["titiler"]) for p in ("cold", "warm")}
    per_zoom: dict[str, dict[int, int]] = {c: {} for c in COVERAGES}
    for ask in asks:
        per_zoom[ask.coverage][ask.z] = per_zoom[ask.coverage].get(ask.z, 0) + 1
    sample = asks[0] if asks else TileAsk("terrain", 15, 16782, 10992)
    terrain = next((a for a in asks if a.coverage == "terrain"), sample)
    return {
        "command": "python -m bench.raster_bench " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "busy_cores_before_start": args.busy_at_start,
        },
        "data": {c: cog_facts(cogs[c].path) for c in COVERAGES},
        "setup": {
            "concurrency": args.concurrency,
            "warm_seconds": args.warm_seconds,
            "places": args.places,
            "viewport": list(VIEWPORT),
            "tile_requests": len(asks),
            "requests_per_zoom": {c: dict(sorted(z.items())) for c, z in per_zoom.items()},
            "tms": TMS,
            "order": list(SERVERS),
            "urls": {
                s: {
                    "ortho": tile_path(s, TileAsk("ortho", sample.z, sample.x, sample.y), cogs),
                    "terrain": tile_path(s, terrain, cogs),
                }
                for s in SERVERS
            },
            "servers": {
                "ours": "urbis serve (uvicorn, one process), tile cache 256 MB in memory, "
                "no disk tier; cold in a fresh process",
                "titiler": api_peers.titiler_spec(Path("."), 0).notes[0],
            },
        },
        "versions": {
            "ours code": args.our_code,
            "titiler.application": api_peers.installed_version(
                args.peers / "titiler", "titiler.application"
            ),
            "rio-tiler": api_peers.installed_version(args.peers / "titiler", "rio-tiler"),
            "titiler rasterio": api_peers.installed_version(args.peers / "titiler", "rasterio"),
            "ours rasterio": rasterio.__version__,
            "GDAL (ours)": rasterio.__gdal_version__,
        },
        "tiles_per_s": tps,
        "ratios": ratios,
        "latency_ms": {
            p: {s: {k: runs[s].passes[p].get(k) for k in ("p50_ms", "p95_ms")} for s in SERVERS}
            for p in ("cold", "warm")
        },
        "targets": {
            "cold >= 1 x titiler": _met(ratios["cold"], TARGETS["cold"]),
            "warm >= 10 x titiler": _met(ratios["warm"], TARGETS["warm"]),
        },
        "every_tile_a_png": {
            s: {p: runs[s].passes[p]["errors"] == 0 for p in ("cold", "warm")} for s in SERVERS
        },
        "passes": {p: {s: runs[s].passes[p] for s in SERVERS} for p in ("cold", "warm")},
        "ours_cache_after_warm": runs["ours"].warm_cache,
        "pictures_compared": comparison(runs),
        "total_seconds": round(time.perf_counter() - started),
    }


def _met(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


# -- the run ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ortho-pixels",
        type=int,
        default=None,
        help="orthophoto width in pixels over 6 km (default 6000: 1 m; 600 with --quick)",
    )
    parser.add_argument(
        "--terrain-pixels",
        type=int,
        default=None,
        help="terrain width in pixels over 20 km (default 4000: 5 m; 400 with --quick)",
    )
    parser.add_argument(
        "--places", type=int, default=None, help="places zoomed in on (default 4; 2 with --quick)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=6, help="requests in flight (a browser's 6 per host)"
    )
    warm_option(parser)
    parser.add_argument(
        "--compare", type=int, default=12, help="tiles of each coverage decoded and compared"
    )
    run_options(parser, "small rasters, fewer places")
    parser.add_argument(
        "--peers", type=Path, default=None, help="the peers' virtualenvs (default <workdir>/peers)"
    )
    args = parser.parse_args(argv)
    return with_defaults(
        args,
        {
            "ortho_pixels": 600 if args.quick else 6000,
            "terrain_pixels": 400 if args.quick else 4000,
            "places": 2 if args.quick else 4,
            "peers": args.workdir / "peers",
        },
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    args.busy_at_start = wait_for_quiet(args.wait_quiet)
    files = sources(args.workdir, args.ortho_pixels, args.terrain_pixels, args.seed)
    rundir = fresh_folder(args.workdir / "raster-run")
    raster_dir = rundir / "cogs"
    config = layer_config(rundir, files)
    titiler = api_peers.ensure_venv(args.peers, "titiler")
    with scratch_cluster("urbis-raster-bench-cluster-") as (admin, postmaster):
        print("syncing the raster layers with urbis sync ...", file=sys.stderr)
        url = synced_database(admin, config, raster_dir)
        cogs = catalog_cogs(url)
        extents = {c: extent_3857(cogs[c].bbox_native) for c in COVERAGES}
        asks = draw_tiles(extents, args.places, args.seed)
        compared = compared_tiles(asks, args.compare, args.seed)
        print(f"{len(asks)} tile requests", file=sys.stderr)
        specs: dict[str, Callable[[int], api_peers.ServerSpec]] = {
            "ours": lambda port: ours_spec(url, config, raster_dir, port),
            "titiler": lambda port: api_peers.titiler_spec(titiler, port),
        }
        runs = {}
        before = our_code()
        for name in SERVERS:
            print(f"{name} ...", file=sys.stderr)
            spec = specs[name](free_port())
            runs[name] = measure_server(name, spec, asks, compared, cogs, rundir, postmaster, args)
        args.our_code = before if before == our_code() else f"CHANGED during the run: {before}"
        result = report(args, asks, cogs, runs, started)
    write_result(result, args.json)
    return 0


def ours_spec(url: str, config: Path, raster_dir: Path, port: int) -> api_peers.ServerSpec:
    spec = api_peers.ours_spec(url, config, port, pool=4)
    spec.env = {**spec.env, **sync_env(url, config, raster_dir)}
    spec.env.pop("URBIS_TILE_CACHE_DIR", None)
    return spec


if __name__ == "__main__":
    raise SystemExit(main())
