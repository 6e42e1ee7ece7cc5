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
`out` is a finished archive, left alone unless `force` (and served meanwhile: a forced run
replaces it only with a whole new one; cut short, the next run goes on from its work file,
`out` still the old one). A full disk stops the run saying so, the old archive kept. The
work file remembers what it was seeded for (collections, grid, zooms, bbox and the layers'
versions): a run with other arguments, or over layers a sync has changed since, starts over
rather than mix two datasets.

One module of about 420 lines: the plan, the rendering workers, the work file's resumption and
the archive's replacement are one run's steps, each needing what the one before decided.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tiles.archive import (
    TilesetInfo,
    compress_tile,
    open_archive,
    write_mbtiles,
    write_pmtiles,
)
from tiles.disk_space import out_of_space
from tiles.mvt import DrawingMemory, TileRequest, render_tile
from tiles.plan import MERCATOR_MAX_LAT, TilePlan, plan_for
from tiles.seed_progress import ProgressCallback, SeedProgress, Tally
from tiles.seed_request import SeedRequest, zooms_text
from tiles.seed_work import WorkFile
from tiles.tilejson import vector_layers
from urbis_core.catalog import LayerEntry, list_layers
from urbis_core.db import sqlalchemy_url
from urbis_core.errors import InvalidParameter, UrbisError
from urbis_core.layer_ids import layers_by_ids

log = logging.getLogger(__name__)


class SeedInterrupted(UrbisError):
    """The run stopped before the end; its tiles are kept for the next run."""


# -- which tiles --------------------------------------------------------------------------------


def plan_tiles(request: SeedRequest, layers: list[LayerEntry]) -> TilePlan:
    return plan_for(request.tms, request.zooms, layers, request.bbox)


# -- the work file ------------------------------------------------------------------------------


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


def _pending(
    plan: TilePlan, work: WorkFile, progress: SeedProgress
) -> Iterator[tuple[int, int, int]]:
    """The plan's tiles not yet in the work file, zoom by zoom."""
    for z in plan.zooms:
        done = work.done_at(z)
        log.info("zoom %d: %d tiles, %d of them rendered before", z, plan.count(z), len(done))
        progress.zoom = z
        for x, y in plan.tiles(z):
            if (x, y) not in done:
                yield z, x, y


async def _render_worker(
    engine: AsyncEngine,
    plan: TilePlan,
    pending: Iterator[tuple[int, int, int]],
    work: WorkFile,
    tally: Tally,
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
    plan: TilePlan,
    work: WorkFile,
    tally: Tally,
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


def tileset_info(plan: TilePlan, minzoom: int, maxzoom: int) -> TilesetInfo:
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


def _write_archive(request: SeedRequest, plan: TilePlan, work: WorkFile) -> int:
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
        synced = await list_layers(conn)
    if not synced:
        raise UrbisError("no layer is synced yet: run `urbis sync --once` first")
    return layers_by_ids(ids, synced, "--collections")


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
        # A finished archive, unless a run to replace it (forced) was cut short: that run
        # goes on, and its archive replaces this one only once whole.
        if not request.work_path.exists():
            return SeedResult(request.out, "already complete", bytes=request.out.stat().st_size)
    engine = create_async_engine(
        sqlalchemy_url(database_url),
        pool_size=request.concurrency,
        max_overflow=0,
        connect_args={"fallback_application_name": "urbis-seed"},
    )
    try:
        return await _seed(engine, request, on_progress, stop or asyncio.Event())
    finally:
        await engine.dispose()


def _kept(out: Path) -> str:
    if out.exists():
        return "the previous archive is kept as it was"
    return f"{out.name} was not written"


def _reuse_or_reset(work: WorkFile, request: SeedRequest, layers: list[LayerEntry]) -> str | None:
    """Keep an interrupted run's tiles when they fit this run; else why they were dropped."""
    fingerprint = _fingerprint(request, layers)
    before = work.seeded_for()
    started_over = None if request.force else _why_start_over(before, fingerprint)
    if request.force or started_over or before is None:
        # An existing archive stays, served, until the new one is renamed over it.
        work.start_over(fingerprint)
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
            f"data there at {zooms_text(request.zooms)} (see their "
            "tiles minzoom/maxzoom)",
        )
    work = WorkFile(request.work_path)  # locked first: a forced run never resets another's
    try:
        started_over = _reuse_or_reset(work, request, layers)
        progress = SeedProgress(total=plan.total, done=work.rendered())
        resumed = progress.done
        try:
            await _render_all(
                engine, plan, work, Tally(progress, on_progress), stop, request.concurrency
            )
        except (OSError, sqlite3.Error) as exc:
            if not out_of_space(exc):
                raise
            raise UrbisError(
                f"no space left on device in {request.out.parent} while keeping the tiles "
                f"drawn in {request.work_path.name} ({progress.done:,} of {plan.total:,}): "
                f"{_kept(request.out)}; free some space and run the same command to go on"
            ) from None
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
        try:
            written = _write_archive(request, plan, work)
        except OSError as exc:
            if not out_of_space(exc):
                raise
            raise UrbisError(
                f"no space left on device in {request.out.parent} while writing "
                f"{request.out.name}: {_kept(request.out)}; the tiles drawn are kept in "
                f"{request.work_path.name}: free some space and run the command again without "
                "--force to write it from them"
            ) from None
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
