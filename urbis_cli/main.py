"""`urbis`: one entry point composing the core, the sync worker and the API.

The commands live by what they work on (urbis_cli.database, .sync_commands, .serve,
.tiles_commands) and share urbis_cli.common. The layer configuration is `--config PATH`, else
`URBIS_CONFIG`, else the bundled sample; commands that take layers take them as `--layer a,b`
or `--collections a,b` (the same option, repeatable).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from urbis_cli.common import Invocation
from urbis_cli.database import db, migrate
from urbis_cli.output import configure_logging
from urbis_cli.serve import serve, up
from urbis_cli.sync_commands import config, sources, status, sync
from urbis_cli.tiles_commands import tiles_group


def main() -> None:
    """The `urbis` command.

    It leaves without the interpreter's teardown: unloading pandas, GDAL and Arrow takes a
    few tenths of a second per command, and every file, connection and child process the
    command opened has been closed by its own code when `cli` returns.
    """
    try:
        cli(prog_name="urbis")
        code = 0
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            code = done.code or 0
        else:
            click.echo(done.code, err=True)
            code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@click.group()
@click.version_option(
    package_name="urbis-geoservice", prog_name="urbis", message="%(prog)s %(version)s"
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="PATH",
    help="The layer configuration (default: URBIS_CONFIG, else config/urbis.yaml).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None, verbose: bool) -> None:
    """URBIS GeoService: keep URBIS layers in PostGIS and serve them as OGC APIs."""
    configure_logging(verbose)
    ctx.obj = Invocation(config_option=config_file)


for command in (db, migrate, config, sources, sync, status, serve, up, tiles_group):
    cli.add_command(command)
