"""`urbis tiles seed`: PMTiles or MBTiles archives of the synced layers."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from urbis_cli.common import handle_errors, layers_option, prepare_database, settings


@click.group("tiles")
def tiles_group() -> None:
    """Vector tiles: seed PMTiles or MBTiles archives of the synced layers."""


@tiles_group.command("seed")
@layers_option
@click.option(
    "--tms",
    "tms_id",
    default="WebMercatorQuad",
    show_default=True,
    help="Tile matrix set: WebMercatorQuad, or BelgianLambert72 (MBTiles only).",
)
@click.option("--zooms", required=True, help="Zoom levels: a range (10-16) or one (14).")
@click.option(
    "--bbox",
    default=None,
    help="Only the tiles meeting minlon,minlat,maxlon,maxlat (CRS84 degrees); "
    "default: the layers' extent.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="The archive to write: a .pmtiles or .mbtiles file.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Start over: seed a finished archive again, drop an interrupted run's tiles.",
)
@handle_errors
def tiles_seed(
    layers: tuple[str, ...], tms_id: str, zooms: str, bbox: str | None, out: str, force: bool
) -> None:
    """Render every tile of the collections into a PMTiles or MBTiles archive.

    The tiles are those `/tiles/{tms}/{z}/{x}/{y}?collections=...` serves; empty ones are
    left out. Interrupted (Ctrl-C, kill)? Run the same command again: it goes on from there.
    """
    import time
    from typing import NoReturn

    from tiles.seed import SeedInterrupted, run_seed
    from tiles.seed_progress import SeedProgress, progress_bar
    from tiles.seed_request import seed_request
    from urbis_cli.output import interactive
    from urbis_core.errors import InvalidParameter

    def refuse(exc: InvalidParameter) -> NoReturn:
        click.echo(f"urbis: error: {exc}", err=True)
        sys.exit(2)

    on_terminal = interactive()
    last_drawn = [0.0]

    def draw(progress: SeedProgress) -> None:
        # A tenth of a second between redraws: the terminal is not the bottleneck.
        if time.monotonic() - last_drawn[0] >= 0.1 or progress.done == progress.total:
            last_drawn[0] = time.monotonic()
            sys.stderr.write(f"\r{progress_bar(progress)}   ")
            sys.stderr.flush()

    def clear_bar() -> None:
        if on_terminal and last_drawn[0]:
            sys.stderr.write("\r" + " " * 90 + "\r")
            sys.stderr.flush()

    try:
        request = seed_request(Path(out), tms_id, zooms, ",".join(layers) or None, bbox, force)
    except InvalidParameter as exc:
        refuse(exc)
    url = prepare_database(settings().database())
    try:
        try:
            result = run_seed(url, request, draw if on_terminal else None)
        finally:
            clear_bar()
    except InvalidParameter as exc:  # e.g. a collection that is not synced
        refuse(exc)
    except SeedInterrupted as exc:
        click.echo(f"urbis: {exc}", err=True)
        sys.exit(130)
    logging.getLogger("tiles.seed").info(
        "seed %s: %s",
        result.status,
        result.summary(),
        extra={"status": result.status, "seconds": round(result.seconds, 3)},
    )
    if result.status == "interrupted":
        click.echo(f"urbis: {result.summary()}", err=True)
        sys.exit(130)
    click.echo(f"urbis: {result.summary()}")
