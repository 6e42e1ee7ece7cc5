"""Seeding tile archives: every tile of some collections over an area and a zoom range.

Each tile is the dataset tile the API serves at `/tiles/{tms}/{z}/{x}/{y}?collections=a,b`,
drawn by the same code (`tiles.mvt.render_tile`) on a few database connections at once, so
PostgreSQL, which does the drawing, works on every core. Empty tiles are left out of the
archive. The area is the layers' extents (each grown by the MVT buffer, whose features a tile
also carries) at the zooms their tile settings draw them, or a `bbox` given in CRS84.

Resumable: each tile rendered (an empty one as such) goes to a work file next to the archive,
`<out>.seeding` (sqlite), committed every second. A run that stops (Ctrl-C, kill, an error)
leaves it behind, and the same command continues from it. The archive is written from it at
the end under a temporary name and renamed over `out`, then the work file goes: an existing
`out` is a finished archive, left alone unless `force`. The work file remembers what it was
seeded for (collections, grid, zooms, bbox and the layers' versions): a run with other
arguments, or over layers a sync has changed since, starts over rather than mix two datasets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pyproj import Transformer
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tiles.archive import (
    TilesetInfo,
    archive_format,
    check_format_fits,
    compress_tile,
    open_archive,
    pmtiles_tile_id,
    write_mbtiles,
    write_pmtiles,
)
from tiles.keys import bbox_in
from tiles.mvt import BUFFER, EXTENT, DrawingMemory, TileRequest, render_tile
from tiles.tilejson import crs84_extent, vector_layers
from tiles.tms import MAX_ZOOM, WEB_MERCATOR_QUAD, TileMatrixSet, get_tms
from urbis_core.catalog import LayerEntry, list_layers
from urbis_core.db import sqlalchemy_url
from urbis_core.errors import InvalidParameter, NotFound, UrbisError

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
DEFAULT_CONCURRENCY = 4  # connections rendering at once: 2 per core keeps PostgreSQL busy
COMMIT_EVERY = 1.0  # seconds of rendering a kill can lose
LOG_EVERY = 10.0  # seconds between progress log records when no terminal shows a bar
MERCATOR_MAX_LAT = 85.05112878  # where Web Mercator ends


class SeedInterrupted(UrbisError):
    """The run stopped before the end; its tiles are kept for the next run."""


# -- the request --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedRequest:
    out: Path
    tms: TileMatrixSet
    zooms: range
    collections: tuple[str, ...] = ()  # empty: every synced layer
    bbox: Box | None = None  # CRS84 lon/lat; None: the layers' extent
    force: bool = False
    concurrency: int = DEFAULT_CONCURRENCY

    @property
    def format(self) -> str:
        return archive_format(self.out)

    @property
    def work_path(self) -> Path:
        return self.out.with_name(self.out.name + ".seeding")


def parse_zooms(text: str) -> range:
    """`10-16` or `14`: the zoom levels to seed, both ends included."""
    first, _, last = text.strip().partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise InvalidParameter(
            "--zooms", f"{text!r} is not a zoom (14) or a range (10-16)"
        ) from None
    if not 0 <= low <= high <= MAX_ZOOM:
        raise InvalidParameter(
            "--zooms",
            f"{text!r}: zooms run from 0 to {MAX_ZOOM}, the first no larger than the last",
        )
    return range(low, high + 1)


def _zooms_text(zooms: range) -> str:
    last = zooms.stop - 1
    return f"zoom {last}" if zooms.start == last else f"zooms {zooms.start}-{last}"


def parse_bbox(text: str) -> Box:
    """`minlon,minlat,maxlon,maxlat` in CRS84 (degrees, longitude first)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise InvalidParameter("--bbox", f"{text!r} is not minlon,minlat,maxlon,maxlat")
    west, south, east, north = values
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise InvalidParameter(
            "--bbox",
            f"{text!r} is not a lon/lat box (CRS84: longitude first, minimum before maximum)",
        )
    return west, south, east, north


def parse_collections(text: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c.strip() for c in (text or "").split(",") if c.strip()))


def seed_request(
    out: Path,
    tms_id: str,
    zooms: str,
    collections: str | None = None,
    bbox: str | None = None,
    force: bool = False,
) -> SeedRequest:
    """The command line's options checked and parsed; InvalidParameter names the bad one."""
    try:
        tms = get_tms(tms_id)
    except NotFound as exc:
        raise InvalidParameter("--tms", str(exc)) from None
    check_format_fits(archive_format(out), tms)
    if not out.parent.is_dir():
        raise InvalidParameter("--out", f"there is no folder {out.parent}")
    return SeedRequest(
        out=out,
        tms=tms,
        zooms=parse_zooms(zooms),
        collections=parse_collections(collections),
        bbox=parse_bbox(bbox) if bbox else None,
        force=force,
    )


# -- which tiles --------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _from_crs84(srid: int) -> Transformer:
    return Transformer.from_crs("OGC:CRS84", srid, always_xy=True)


def crs84_bbox_in(tms: TileMatrixSet, bbox: Box) -> Box:
    """A lon/lat box in the set's CRS (edges densified, so the result still covers it)."""
    west, south, east, north = bbox
    if tms.srid == WEB_MERCATOR_QUAD.srid:  # the poles are infinitely far in Web Mercator
        south, north = max(south, -MERCATOR_MAX_LAT), min(north, MERCATOR_MAX_LAT)
    minx, miny, maxx, maxy = _from_crs84(tms.srid).transform_bounds(
        west, south, east, north, densify_pts=21
    )
    return minx, miny, maxx, maxy


def _intersection(a: Box, b: Box) -> Box | None:
    box = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return box if box[0] <= box[2] and box[1] <= box[3] else None


def _grown(box: Box, margin: float) -> Box:
    return box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin


def _merged(spans: list[tuple[int, int]]) -> list[range]:
    """Column ranges [start, stop) joined where they touch or overlap."""
    merged: list[list[int]] = []
    for start, stop in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return [range(start, stop) for start, stop in merged]


@dataclass(frozen=True)
class SeedPlan:
    """The tiles to render: per zoom, the boxes (in the set's CRS) whose tiles count."""

    tms: TileMatrixSet
    layers: list[LayerEntry]
    boxes: dict[int, list[Box]]
    bounds: Box | None  # CRS84, for the archive's metadata

    def rows(self, z: int) -> Iterator[tuple[int, list[range]]]:
        """(row, column ranges) of zoom `z`, top to bottom; overlapping boxes count once."""
        rects = [self.tms.tiles_covering(z, box) for box in self.boxes.get(z, [])]
        rects = [(cols, rows) for cols, rows in rects if cols and rows]
        if not rects:
            return
        for y in range(min(r.start for _, r in rects), max(r.stop for _, r in rects)):
            spans = [(c.start, c.stop) for c, r in rects if y in r]
            if spans:
                yield y, _merged(spans)

    def tiles(self, z: int) -> Iterator[tuple[int, int]]:
        for y, spans in self.rows(z):
            for cols in spans:
                for x in cols:
                    yield x, y

    def count(self, z: int) -> int:
        return sum(len(cols) for _, spans in self.rows(z) for cols in spans)

    @property
    def zooms(self) -> list[int]:
        return sorted(self.boxes)

    @property
    def total(self) -> int:
        return sum(self.count(z) for z in self.zooms)


def plan_tiles(request: SeedRequest, layers: list[LayerEntry]) -> SeedPlan:
    return plan_for(request.tms, request.zooms, layers, request.bbox)


def plan_for(
    tms: TileMatrixSet, zooms: Iterable[int], layers: list[LayerEntry], bbox: Box | None = None
) -> SeedPlan:
    """Per zoom, each layer drawn there contributes its extent (grown by the MVT buffer).

    Within `bbox` (CRS84) when given.
    """
    area = crs84_bbox_in(tms, bbox) if bbox else None
    boxes: dict[int, list[Box]] = {}
    for z in zooms:
        margin = tms.tile_span(z) * BUFFER / EXTENT
        for layer in layers:
            settings = layer.tiles
            if not layer.bbox_native or not settings.minzoom <= z <= settings.maxzoom:
                continue
            box: Box | None = _grown(bbox_in(tms, _box(layer.bbox_native)), margin)
            if area is not None and box is not None:
                box = _intersection(box, area)
            if box is not None:
                boxes.setdefault(z, []).append(box)
    return SeedPlan(tms, layers, boxes, _crs84_bounds(layers, bbox))


def _box(values: Sequence[float]) -> Box:
    return values[0], values[1], values[2], values[3]


def _crs84_bounds(layers: list[LayerEntry], bbox: Box | None) -> Box | None:
    bounds = crs84_extent(layers)
    if bounds is None:
        return bbox
    return _intersection(bounds, bbox) if bbox else bounds


# -- the work file ------------------------------------------------------------------------------

_WORK_SCHEMA = """
CREATE TABLE IF NOT EXISTS seeded_for (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tile (
    z INTEGER NOT NULL, x INTEGER NOT NULL, y INTEGER NOT NULL,
    tile_id INTEGER NOT NULL,  -- PMTiles' Hilbert id: the order its writer wants
    data BLOB,                 -- gzipped MVT; NULL: rendered empty
    PRIMARY KEY (z, x, y));
CREATE INDEX IF NOT EXISTS tile_by_id ON tile (tile_id);
"""


class WorkFile:
    """The tiles rendered so far (sqlite), and what they were rendered for."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # isolation_level=None: transactions are ours (BEGIN/COMMIT), batched by time.
            self._conn = sqlite3.connect(path, timeout=0, isolation_level=None)
        except sqlite3.OperationalError as exc:
            raise UrbisError(f"cannot create the work file {path}: {exc}") from None
        try:
            # Held from the first write to close: a second seeder of the same output stops at
            # once instead of interleaving with this one.
            self._conn.execute("PRAGMA locking_mode = EXCLUSIVE")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")  # WAL: a kill loses no commit
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executescript(_WORK_SCHEMA)  # its implicit COMMIT keeps the lock
        except sqlite3.OperationalError as exc:
            self._conn.close()
            if "locked" in str(exc):
                raise UrbisError(f"another `urbis tiles seed` is writing {path.name}") from None
            raise UrbisError(f"cannot use the work file {path}: {exc}") from None
        self._last_commit = time.monotonic()

    def seeded_for(self) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT value FROM seeded_for WHERE key = 'run'").fetchone()
        return json.loads(row[0]) if row else None

    def start_over(self, fingerprint: dict[str, Any]) -> None:
        self._conn.execute("DELETE FROM tile")
        self._conn.execute(
            "INSERT OR REPLACE INTO seeded_for VALUES ('run', ?)",
            (json.dumps(fingerprint, sort_keys=True),),
        )

    def rendered(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM tile").fetchone()[0])

    def done_at(self, z: int) -> set[tuple[int, int]]:
        return {(x, y) for x, y in self._conn.execute("SELECT x, y FROM tile WHERE z = ?", (z,))}

    def add(self, z: int, x: int, y: int, data: bytes | None) -> None:
        if not self._conn.in_transaction:
            self._conn.execute("BEGIN")
        self._conn.execute(
            "INSERT OR REPLACE INTO tile VALUES (?, ?, ?, ?, ?)",
            (z, x, y, pmtiles_tile_id(z, x, y), data),
        )
        if time.monotonic() - self._last_commit >= COMMIT_EVERY:
            self.commit()

    def commit(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")
        self._last_commit = time.monotonic()

    def zoom_range(self) -> tuple[int, int] | None:
        low, high = self._conn.execute(
            "SELECT min(z), max(z) FROM tile WHERE data IS NOT NULL"
        ).fetchone()
        return None if low is None else (int(low), int(high))

    def by_tile_id(self) -> Iterator[tuple[int, bytes]]:
        yield from self._conn.execute(
            "SELECT tile_id, data FROM tile WHERE data IS NOT NULL ORDER BY tile_id"
        )

    def by_zxy(self) -> Iterator[tuple[int, int, int, bytes]]:
        yield from self._conn.execute(
            "SELECT z, x, y, data FROM tile WHERE data IS NOT NULL ORDER BY z, x, y"
        )

    def close(self) -> None:
        self.commit()
        self._conn.close()


def _fingerprint(request: SeedRequest, layers: list[LayerEntry]) -> dict[str, Any]:
    return {
        "collections": [layer.id for layer in layers],
        "tms": request.tms.id,
        "zooms": [request.zooms.start, request.zooms.stop - 1],
        "bbox": list(request.bbox) if request.bbox else None,
        "versions": {layer.id: layer.version for layer in layers},
    }


def _why_start_over(before: dict[str, Any] | None, now: dict[str, Any]) -> str | None:
    """Why the tiles of an earlier run cannot be reused (None: they can, or there are none)."""
    if before is None or before == now:
        return None
    if {k: v for k, v in before.items() if k != "versions"} != {
        k: v for k, v in now.items() if k != "versions"
    }:
        return "the interrupted run had other arguments"
    changed = [
        f"{layer} v{version} -> v{now['versions'][layer]}"
        for layer, version in before["versions"].items()
        if now["versions"].get(layer) != version
    ]
    return f"layers changed since the interrupted run ({', '.join(changed)})"


# -- rendering ----------------------------------------------------------------------------------


@dataclass
class SeedProgress:
    """Where a run is; handed to the progress callback after each tile."""

    total: int  # tiles in the plan
    done: int  # rendered, by this run or by the interrupted ones before it
    rendered: int = 0  # by this run
    written: int = 0  # of those, tiles holding a feature
    bytes: int = 0  # their gzipped size
    zoom: int = 0
    tile: tuple[int, int, int] | None = None  # (z, x, y) of the tile just stored
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.rendered / max(self.seconds, 1e-6)


ProgressCallback = Callable[[SeedProgress], None]


def progress_bar(progress: SeedProgress, width: int = 30) -> str:
    """`[#########.....] 62% 1,234/2,000 tiles, z15, 142 tiles/s` for a terminal line."""
    share = progress.done / progress.total if progress.total else 1.0
    filled = int(share * width)
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {share:4.0%} {progress.done:,}/"
        f"{progress.total:,} tiles, z{progress.zoom}, {progress.rate:,.0f} tiles/s"
    )


def _pending(
    plan: SeedPlan, work: WorkFile, progress: SeedProgress
) -> Iterator[tuple[int, int, int]]:
    """The plan's tiles not yet in the work file, zoom by zoom."""
    for z in plan.zooms:
        done = work.done_at(z)
        log.info("zoom %d: %d tiles, %d of them rendered before", z, plan.count(z), len(done))
        progress.zoom = z
        for x, y in plan.tiles(z):
            if (x, y) not in done:
                yield z, x, y


class _Tally:
    """Counts each tile stored, calls back, and logs now and then (for logs, not terminals)."""

    def __init__(self, progress: SeedProgress, on_progress: ProgressCallback | None) -> None:
        self.progress = progress
        self.on_progress = on_progress
        self._last_log = time.monotonic()

    def count(self, tile: tuple[int, int, int], data: bytes | None) -> None:
        p = self.progress
        p.tile = tile
        p.done += 1
        p.rendered += 1
        if data:
            p.written += 1
            p.bytes += len(data)
        if time.monotonic() - self._last_log >= LOG_EVERY:
            self._last_log = time.monotonic()
            log.info(
                "seeding: %d/%d tiles, zoom %d, %.0f tiles/s",
                p.done,
                p.total,
                p.zoom,
                p.rate,
                extra={"status": "running", "seconds": round(p.seconds, 1)},
            )
        if self.on_progress is not None:
            self.on_progress(p)


async def _render_worker(
    engine: AsyncEngine,
    plan: SeedPlan,
    pending: Iterator[tuple[int, int, int]],
    work: WorkFile,
    tally: _Tally,
    stop: asyncio.Event,
    memory: DrawingMemory,
) -> None:
    """Takes tiles from the shared iterator until it is exhausted or `stop` is set."""
    async with engine.connect() as conn:
        # As the API draws a tile: its layers seen at one instant.
        await conn.execution_options(isolation_level="REPEATABLE READ")
        for z, x, y in pending:
            async with conn.begin():
                mvt = await render_tile(conn, memory, plan.layers, TileRequest(plan.tms, z, x, y))
            data = compress_tile(mvt) if mvt else None
            work.add(z, x, y, data)
            tally.count((z, x, y), data)
            if stop.is_set():
                return


async def _render_all(
    engine: AsyncEngine,
    plan: SeedPlan,
    work: WorkFile,
    tally: _Tally,
    stop: asyncio.Event,
    concurrency: int,
) -> None:
    # One iterator shared by the workers: the event loop runs one of them at a time, so
    # each tile is handed out once.
    pending = _pending(plan, work, tally.progress)
    memory = DrawingMemory()  # what one worker learns, the others use
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(_render_worker(engine, plan, pending, work, tally, stop, memory))
    except BaseExceptionGroup as group_error:
        # One worker's error (or the progress callback's) stopped them all: raise it as is.
        raise group_error.exceptions[0] from None
    finally:
        work.commit()


# -- the archive --------------------------------------------------------------------------------


def tileset_info(plan: SeedPlan, minzoom: int, maxzoom: int) -> TilesetInfo:
    bounds = plan.bounds or (-180.0, -MERCATOR_MAX_LAT, 180.0, MERCATOR_MAX_LAT)
    ids = ", ".join(layer.id for layer in plan.layers)
    return TilesetInfo(
        name=f"URBIS layers: {ids}",
        tms=plan.tms,
        minzoom=minzoom,
        maxzoom=maxzoom,
        bounds=bounds,
        # The API's TileJSON centre: the middle, at zoom 12 when the archive has it.
        center=(
            (bounds[0] + bounds[2]) / 2,
            (bounds[1] + bounds[3]) / 2,
            max(minzoom, min(12, maxzoom)),
        ),
        vector_layers=vector_layers(plan.layers, minzoom, maxzoom),
        description=f"Vector tiles ({plan.tms.id}) of {ids}, seeded by urbis tiles seed",
    )


def _write_archive(request: SeedRequest, plan: SeedPlan, work: WorkFile) -> int:
    zooms = work.zoom_range()
    if zooms is None:
        raise UrbisError(
            f"none of the {plan.total:,} tiles holds a feature: {request.out.name} was not written"
        )
    info = tileset_info(plan, *zooms)
    if request.format == "pmtiles":
        return write_pmtiles(request.out, work.by_tile_id(), info)
    return write_mbtiles(request.out, work.by_zxy(), info)


# -- the run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedResult:
    out: Path
    status: str  # complete | already complete | interrupted
    planned: int = 0  # tiles in the plan
    rendered: int = 0  # by this run
    resumed: int = 0  # rendered by the interrupted runs before it
    tiles: int = 0  # in the archive (tiles holding a feature)
    bytes: int = 0  # the archive's size
    seconds: float = 0.0
    started_over: str | None = None  # why an earlier run's tiles were dropped
    changed_during_run: tuple[str, ...] = ()  # layers a sync changed while seeding

    @property
    def rate(self) -> float:
        return self.rendered / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        if self.status == "already complete":
            return f"{self.out} is already complete ({self.bytes:,} bytes); --force seeds it again"
        if self.status == "interrupted":
            return (
                f"interrupted after {self.resumed + self.rendered:,} of {self.planned:,} "
                f"tiles (kept in {self.out.name}.seeding): run the same command to go on"
            )
        resumed = f", {self.resumed:,} from the interrupted run" if self.resumed else ""
        return (
            f"{self.out}: {self.tiles:,} tiles, {self.bytes:,} bytes; {self.rendered:,} "
            f"rendered in {self.seconds:.1f} s ({self.rate:,.0f} tiles/s){resumed}; empty "
            f"tiles left out: {self.planned - self.tiles:,}"
        )


async def _load_layers(engine: AsyncEngine, ids: tuple[str, ...]) -> list[LayerEntry]:
    """The collections asked for, in that order (all of them, by id, when none is named)."""
    async with engine.connect() as conn:
        synced = {layer.id: layer for layer in await list_layers(conn)}
    if not synced:
        raise UrbisError("no layer is synced yet: run `urbis sync --once` first")
    unknown = [i for i in ids if i not in synced]
    if unknown:
        raise InvalidParameter(
            "--collections", f"no collection {', '.join(unknown)}; synced ones: {', '.join(synced)}"
        )
    return [synced[i] for i in ids] if ids else list(synced.values())


async def _changed_layers(engine: AsyncEngine, layers: list[LayerEntry]) -> tuple[str, ...]:
    now = {layer.id: layer for layer in await _load_layers(engine, ())}
    return tuple(
        layer.id
        for layer in layers
        if layer.id not in now or now[layer.id].version != layer.version
    )


def _check_finished(out: Path) -> None:
    """An existing output is taken for a finished archive: unless it is not one at all."""
    try:
        with open_archive(out) as archive:
            if "vector_layers" not in archive.metadata:
                raise ValueError("no vector_layers")
    except Exception as exc:  # whatever the file is, it is not ours to overwrite silently
        raise UrbisError(
            f"{out} exists and is not a tile archive ({type(exc).__name__}): "
            "remove it, or seed again with --force"
        ) from None


async def seed(
    database_url: str,
    request: SeedRequest,
    on_progress: ProgressCallback | None = None,
    stop: asyncio.Event | None = None,
) -> SeedResult:
    """Seed `request.out`; `stop` set (by a signal) ends the run early, tiles kept."""
    if request.out.exists() and not request.force:
        _check_finished(request.out)
        return SeedResult(request.out, "already complete", bytes=request.out.stat().st_size)
    engine = create_async_engine(
        sqlalchemy_url(database_url), pool_size=request.concurrency, max_overflow=0
    )
    try:
        return await _seed(engine, request, on_progress, stop or asyncio.Event())
    finally:
        await engine.dispose()


def _reuse_or_reset(work: WorkFile, request: SeedRequest, layers: list[LayerEntry]) -> str | None:
    """Keep an interrupted run's tiles when they fit this run; else why they were dropped."""
    fingerprint = _fingerprint(request, layers)
    before = work.seeded_for()
    started_over = None if request.force else _why_start_over(before, fingerprint)
    if request.force or started_over or before is None:
        work.start_over(fingerprint)
        request.out.unlink(missing_ok=True)  # only there when forced
    if started_over:
        log.warning("%s: starting over: %s", request.out.name, started_over)
    return started_over


async def _seed(
    engine: AsyncEngine,
    request: SeedRequest,
    on_progress: ProgressCallback | None,
    stop: asyncio.Event,
) -> SeedResult:
    layers = await _load_layers(engine, request.collections)
    plan = plan_tiles(request, layers)
    if plan.total == 0:
        raise InvalidParameter(
            "--bbox" if request.bbox else "--zooms",
            f"no tile to seed: {', '.join(x.id for x in layers)} have no "
            f"data there at {_zooms_text(request.zooms)} (see their "
            "tiles minzoom/maxzoom)",
        )
    work = WorkFile(request.work_path)  # locked first: a forced run never resets another's
    try:
        started_over = _reuse_or_reset(work, request, layers)
        progress = SeedProgress(total=plan.total, done=work.rendered())
        resumed = progress.done
        await _render_all(
            engine, plan, work, _Tally(progress, on_progress), stop, request.concurrency
        )
        if stop.is_set() and progress.done < plan.total:
            return SeedResult(
                request.out,
                "interrupted",
                plan.total,
                progress.rendered,
                resumed,
                seconds=progress.seconds,
                started_over=started_over,
            )
        changed = await _changed_layers(engine, layers)
        if changed:
            log.warning(
                "%s changed while seeding: the archive mixes their versions (seed "
                "again with --force for one version)",
                ", ".join(changed),
            )
        written = _write_archive(request, plan, work)
        seconds = progress.seconds
    finally:
        work.close()
    request.work_path.unlink(missing_ok=True)
    return SeedResult(
        request.out,
        "complete",
        plan.total,
        progress.rendered,
        resumed,
        written,
        request.out.stat().st_size,
        seconds,
        started_over,
        changed,
    )


def run_seed(
    database_url: str, request: SeedRequest, on_progress: ProgressCallback | None = None
) -> SeedResult:
    """`seed` for the command line, stopped by SIGINT/SIGTERM as a user means it.

    The first signal lets the tiles being drawn finish and stops; a second stops at once.
    Either way the next run goes on from there.
    """

    async def main() -> SeedResult:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal() -> None:
            if stop.is_set():
                task.cancel()
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal)
        try:
            return await seed(database_url, request, on_progress, stop)
        except asyncio.CancelledError:
            raise SeedInterrupted(
                f"stopped: the tiles rendered so far are kept in "
                f"{request.work_path.name}; run the same command to go on"
            ) from None
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    return asyncio.run(main())
