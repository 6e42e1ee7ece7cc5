"""`urbis config check`, `urbis sources check`, `urbis sync` and `urbis status`."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from urbis_cli.common import (
    checked_config,
    config_file,
    handle_errors,
    layers_option,
    prepare_database,
    settings,
)
from urbis_cli.output import ProgressLine, local_time
from urbis_core.config import ServiceConfig, load_config

if TYPE_CHECKING:
    from urbis_sync.run import RunReport

SYNC_NAME = "urbis-sync"  # how the sync's sessions show in pg_stat_activity


def _report(report: RunReport) -> None:
    """A summary line for people, and the same facts as a structured log record."""
    click.echo(
        f"{local_time(datetime.now(UTC))} {report.summary()}", err=report.status != "success"
    )
    logging.getLogger("urbis_sync.run").log(
        logging.INFO if report.status in ("success", "superseded") else logging.ERROR,
        "run %s",
        report.status,
        extra={
            "layer": report.layer_id,
            "run": report.run_id,
            "status": report.status,
            "fetched": report.fetched,
            "inserted": report.inserted,
            "updated": report.updated,
            "deleted": report.deleted,
            "repaired": report.repaired,
            "quarantined": report.quarantined,
            "version": report.version,
            "seconds": round(report.seconds, 3),
            "error": report.error,
        },
    )


def run_sync(
    url: str,
    config: ServiceConfig,
    layer_ids: tuple[str, ...],
    unless_run_after: int | None = None,
) -> bool:
    from urbis_core.db import create_sync_engine
    from urbis_sync.run import sync_layer

    sync_settings = settings().sync()
    engine = create_sync_engine(
        url, statement_timeout=sync_settings.statement_timeout, application_name=SYNC_NAME
    )
    progress = ProgressLine()
    ok = True
    try:
        for layer_id in list(layer_ids) or config.all_ids():
            report = sync_layer(engine, config, layer_id, sync_settings, progress, unless_run_after)
            progress.done()
            _report(report)
            ok = ok and report.status != "failed"
    finally:
        engine.dispose()
    return ok


def _sync_on_schedules(url: str, config: ServiceConfig) -> None:
    from urbis_core.db import create_sync_engine
    from urbis_sync.schedule import run_continuously

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    sync_settings = settings().sync()
    engine = create_sync_engine(
        url, statement_timeout=sync_settings.statement_timeout, application_name=SYNC_NAME
    )
    click.echo(
        f"urbis: syncing {', '.join(config.all_ids())} on their schedules (Ctrl-C to stop)",
        err=True,
    )
    try:
        run_continuously(engine, config, sync_settings, stop, _report)
    finally:
        engine.dispose()


# -- urbis config ---------------------------------------------------------------------------
@click.group()
def config() -> None:
    """The layer configuration (--config, else URBIS_CONFIG, else config/urbis.yaml)."""


@config.command("check")
@handle_errors
def config_check() -> None:
    """Validate the configuration and open every file source; exit 2 on any problem.

    Every problem of the file is reported, one line each, including a declared srid that
    puts a file's data outside that CRS's area of use or outside Belgium.
    """
    cfg = checked_config()
    every = cfg.all_ids()
    click.echo(f"{cfg.path}: OK ({len(every)} layers: {', '.join(every)})")


# -- urbis sources --------------------------------------------------------------------------
@click.group()
def sources() -> None:
    """The layers' sources, asked over the network; nothing touches the database."""


@sources.command("check")
@layers_option
@handle_errors
def sources_check(layers: tuple[str, ...]) -> None:
    """Ask each network source what a sync would ask; exit 1 when one fails.

    WFS: capabilities (title, version), the type name, the formats offered and the one a sync
    would use, numberMatched, the fields and the first page. OGC API: the collection, its
    fields and first page. Feed: the newest entry. Failures are the server's own words.
    """
    from urbis_sync.probe import probe_layer

    config = load_config(config_file())
    sync_settings = settings().sync()
    failed: list[str] = []
    checked = 0
    for layer_id in config.select(layers):
        if layer_id in config.rasters:
            continue  # a raster layer's files are opened by `urbis config check`
        probe = probe_layer(layer_id, config.layer(layer_id), sync_settings)
        click.echo(f"{layer_id}: {probe.source}")
        width = max((len(name) for name, _ in probe.facts), default=0) + 1
        for name, value in probe.facts:
            click.echo(f"  {name + ':':<{width}} {value}")
        if probe.error is not None:
            click.echo(f"  FAILED: {probe.error}")
            failed.append(layer_id)
        elif probe.network:
            click.echo("  OK")
        checked += probe.network
    if failed:
        click.echo(
            f"urbis: {len(failed)} of {checked} sources failed their check: {', '.join(failed)}",
            err=True,
        )
        sys.exit(1)
    click.echo(f"urbis: {checked} source{'s' if checked != 1 else ''} checked, all OK")


# -- urbis sync / serve / up ----------------------------------------------------------------
@click.command()
@click.option("--once", is_flag=True, help="Sync each layer once, then exit.")
@layers_option
@click.option(
    "--unless-run-after",
    type=click.IntRange(min=0),
    metavar="RUN",
    help="With --once: skip a layer that has a run newer than run RUN (someone started one "
    "since RUN was its newest); the admin API passes it so that two requests at once make one run.",
)
@handle_errors
def sync(once: bool, layers: tuple[str, ...], unless_run_after: int | None) -> None:
    """Keep the configured layers in PostGIS: each on its schedule, or once with --once."""
    if unless_run_after is not None and not once:
        raise click.UsageError("--unless-run-after goes with --once")
    config = checked_config(layers)
    url = prepare_database(settings().database())
    if once:
        if not run_sync(url, config, layers, unless_run_after):
            sys.exit(1)
        return
    if layers:
        config = config.model_copy(
            update={
                "layers": {k: v for k, v in config.layers.items() if k in layers},
                "rasters": {k: v for k, v in config.rasters.items() if k in layers},
            }
        )
    _sync_on_schedules(url, config)


@click.command()
@layers_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="A JSON list, one object per layer (times in UTC), as GET /admin/status gives it.",
)
@handle_errors
def status(layers: tuple[str, ...], as_json: bool) -> None:
    """Per layer: version, features, last success, last failure, next run, quarantined.

    Times are local, ISO 8601 with their UTC offset.
    """
    from urbis_core.db import create_sync_engine, resolve_database_url
    from urbis_sync.schedule import layer_status

    config = load_config(config_file())
    wanted = config.select(layers)
    engine = create_sync_engine(
        resolve_database_url(settings().database()), application_name="urbis-status"
    )
    try:
        rows = [s for s in layer_status(engine, config) if s.layer_id in wanted]
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps([s.record() for s in rows], indent=2))
        return

    header = (
        "layer",
        "version",
        "features",
        "last success",
        "last failure",
        "next run",
        "quarantined",
    )
    table = [header] + [
        (
            s.layer_id,
            str(s.version or "-"),
            str(s.feature_count if s.feature_count is not None else "-"),
            local_time(s.last_success),
            local_time(s.last_failure) + (" (running)" if s.running else ""),
            local_time(s.next_run),
            str(s.quarantined),
        )
        for s in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    for s in rows:
        if s.failing_since is not None:
            runs = f"{s.failures_in_a_row} run{'s' if s.failures_in_a_row != 1 else ''}"
            click.echo(
                f"{s.layer_id}: failing since {local_time(s.failing_since)} ({runs}); last "
                f"success {local_time(s.last_success, 'never')}; last error: {s.failure_reason}"
            )
