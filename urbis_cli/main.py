"""`urbis`: one entry point composing the core, the sync worker and the API.

Every error the service raises on purpose ends the command with a short message and exit code
2 (configuration) or 1 (anything else); no traceback for a user's mistake. The layer
configuration is `--config PATH`, else `URBIS_CONFIG`, else the bundled sample; commands that
take layers take them as `--layer a,b` or `--collections a,b` (the same option, repeatable).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from urbis_cli.output import ProgressLine, configure_logging, local_time
from urbis_core.config import ServiceConfig, load_config
from urbis_core.errors import ConfigError, UrbisError
from urbis_core.pgcluster import EmbeddedCluster
from urbis_core.settings import (
    LIMIT_VARIABLES,
    ApiSettings,
    DatabaseSettings,
    ServerLimits,
    SyncSettings,
    config_path,
)

if TYPE_CHECKING:
    from urbis_sync.run import RunReport

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            for line in str(exc).splitlines():
                click.echo(f"urbis: configuration error: {line}", err=True)
            sys.exit(2)
        except UrbisError as exc:
            click.echo(f"urbis: error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


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


@dataclass(frozen=True)
class Invocation:
    """What the `urbis` group's own options decided, for every command under it."""

    config: Path  # the layer configuration file


def _config_path() -> Path:
    invocation = click.get_current_context().find_object(Invocation)
    return invocation.config if invocation is not None else config_path()


def _layer_ids(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    """`--layer a,b --layer c` -> ('a', 'b', 'c'): comma lists and repeats, in order, once."""
    ids = [part.strip() for value in values for part in value.split(",")]
    if any(not layer_id for layer_id in ids):
        raise click.BadParameter(f"an empty layer id in {' '.join(values)!r}")
    return tuple(dict.fromkeys(ids))


def layers_option(func: F) -> F:
    """The one way commands take layers: `--layer` and `--collections` are the same option."""
    return click.option(
        "--layer",
        "--collections",
        "layers",
        multiple=True,
        callback=_layer_ids,
        metavar="ID[,ID...]",
        help="Only these layers (collection ids): a comma-separated list, or the option "
        "repeated; --layer and --collections are the same. Default: all.",
    )(func)


def _cluster(settings: DatabaseSettings) -> EmbeddedCluster:
    return EmbeddedCluster(settings.home, allow_apt=settings.allow_apt)


def _checked_config(layer_ids: tuple[str, ...] = ()) -> ServiceConfig:
    """Load the config and check its sources before anything touches the database."""
    from urbis_sync.check import check_config

    return check_config(_config_path(), list(layer_ids))


def _prepare_database(settings: DatabaseSettings) -> str:
    """Start the embedded cluster when needed, make sure PostGIS exists, migrate."""
    from urbis_core import migrate
    from urbis_core.db import create_sync_engine, ensure_postgis, resolve_database_url

    url = resolve_database_url(settings)
    engine = create_sync_engine(url)
    try:
        ensure_postgis(engine)
    finally:
        engine.dispose()
    if not migrate.is_current(url):
        migrate.upgrade(url)
    return url


def _report(report: RunReport) -> None:
    """A summary line for people, and the same facts as a structured log record."""
    click.echo(
        f"{local_time(datetime.now(UTC))} {report.summary()}", err=report.status != "success"
    )
    logging.getLogger("urbis_sync.run").log(
        logging.INFO if report.status == "success" else logging.ERROR,
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


def _run_sync(url: str, config: ServiceConfig, layer_ids: tuple[str, ...]) -> bool:
    from urbis_core.db import create_sync_engine
    from urbis_sync.run import sync_layer

    settings = SyncSettings.from_env()
    engine = create_sync_engine(url, statement_timeout=settings.statement_timeout)
    progress = ProgressLine()
    ok = True
    try:
        for layer_id in list(layer_ids) or list(config.layers):
            report = sync_layer(engine, config, layer_id, settings, progress)
            progress.done()
            _report(report)
            ok = ok and report.status != "failed"
    finally:
        engine.dispose()
    return ok


def _run_continuously(url: str, config: ServiceConfig) -> None:
    from urbis_core.db import create_sync_engine
    from urbis_sync.schedule import run_continuously

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    settings = SyncSettings.from_env()
    engine = create_sync_engine(url, statement_timeout=settings.statement_timeout)
    click.echo(
        f"urbis: syncing {', '.join(config.layers)} on their schedules (Ctrl-C to stop)", err=True
    )
    try:
        run_continuously(engine, config, settings, stop, _report)
    finally:
        engine.dispose()


def _serve(url: str, host: str | None, port: int | None, limits: dict[str, Any]) -> None:
    import uvicorn

    from geoapi.app import create_app
    from geoapi.server import uvicorn_options

    settings = ApiSettings.from_env(url)
    settings = replace(
        settings,
        limits=replace(
            settings.limits, **{name: value for name, value in limits.items() if value is not None}
        ),
    )
    host = host or settings.host
    port = port or settings.port
    click.echo(f"urbis: serving on http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    # proxy_headers off: the app believes X-Forwarded-* only from URBIS_TRUSTED_PROXIES and
    # needs the real peer to tell (geoapi.public_url); uvicorn would replace it.
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        proxy_headers=False,
        **uvicorn_options(settings.limits),
    )


_LIMIT_HELP = {
    "max_body_bytes": "Request bodies past this many bytes are refused with a 413, as soon as "
    "Content-Length or the bytes received pass it",
    "body_timeout": "Seconds a request body may take to arrive once read; then a 408",
    "max_url_bytes": "URLs (path and query) past this many bytes are refused with a 414",
    "max_header_bytes": "Request headers past this many bytes (together) are refused with a 431",
    "header_timeout": "Seconds a request's line and headers may take to arrive (a new "
    "connection's first request too); then the connection is closed, with a "
    "408 if part of them came",
    "keep_alive_timeout": "Seconds an idle connection is kept open between requests",
}


def server_options(func: F) -> F:
    """Where `serve` and `up` listen and what a request may send; each flag over its variable."""
    defaults = ServerLimits()
    for name in reversed(list(_LIMIT_HELP)):
        default = getattr(defaults, name)
        kind = (
            click.FloatRange(min=0, min_open=True)
            if isinstance(default, float)
            else click.IntRange(min=1)
        )
        shown = f"{default:g} s" if isinstance(default, float) else f"{default:,}"
        func = click.option(
            f"--{name.replace('_', '-')}",
            name,
            type=kind,
            default=None,
            help=f"{_LIMIT_HELP[name]} ({LIMIT_VARIABLES[name]}, default {shown}).",
        )(func)
    func = click.option("--port", type=int, default=None, help="Port (URBIS_PORT, default 8000).")(
        func
    )
    return click.option(
        "--host", default=None, help="Address to listen on (URBIS_HOST, 127.0.0.1)."
    )(func)


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
    ctx.obj = Invocation(config=config_path(config_file))


# -- urbis db -------------------------------------------------------------------------------
@cli.group()
def db() -> None:
    """The embedded PostgreSQL + PostGIS cluster under .urbis/ (when DATABASE_URL is unset)."""


def _refuse_with_database_url(settings: DatabaseSettings, action: str) -> bool:
    if settings.url:
        click.echo(
            f"urbis: DATABASE_URL is set, so there is no embedded database to {action}", err=True
        )
        return True
    return False


@db.command("start")
@handle_errors
def db_start() -> None:
    """Create (first time) and start the embedded cluster."""
    settings = DatabaseSettings.from_env()
    if _refuse_with_database_url(settings, "start"):
        return
    state = _cluster(settings).start()
    click.echo(f"urbis: database running on 127.0.0.1:{state.port} (data in {state.data_dir})")


@db.command("stop")
@handle_errors
def db_stop() -> None:
    """Stop the embedded cluster (its data stays)."""
    settings = DatabaseSettings.from_env()
    if _refuse_with_database_url(settings, "stop"):
        return
    stopped = _cluster(settings).stop()
    click.echo("urbis: database stopped" if stopped else "urbis: database was not running")


@db.command("status")
@handle_errors
def db_status() -> None:
    """Say whether the database is running, and where. Exit code 3 when it is not."""
    settings = DatabaseSettings.from_env()
    if settings.url:
        click.echo("external database (DATABASE_URL)")
        return
    cluster = _cluster(settings)
    state = cluster.state()
    if state is None:
        click.echo(f"no embedded database yet under {settings.home} (`urbis db start`)")
        sys.exit(3)
    running = cluster.is_running()
    click.echo(
        f"{'running' if running else 'stopped'}: 127.0.0.1:{state.port}, data in {state.data_dir}"
    )
    if not running:
        sys.exit(3)


@db.command("url")
@handle_errors
def db_url() -> None:
    """Print the database URL (libpq form) the other commands use."""
    from urbis_core.db import resolve_database_url

    click.echo(resolve_database_url(DatabaseSettings.from_env(), start=False))


# -- urbis migrate / config -----------------------------------------------------------------
@cli.command()
@handle_errors
def migrate() -> None:
    """Create or upgrade the service schema (alembic upgrade head)."""
    _prepare_database(DatabaseSettings.from_env())
    click.echo("urbis: service schema is up to date")


@cli.group()
def config() -> None:
    """The layer configuration (--config, else URBIS_CONFIG, else config/urbis.yaml)."""


@config.command("check")
@handle_errors
def config_check() -> None:
    """Validate the configuration and open every file source; exit 2 on any problem.

    Every problem of the file is reported, one line each, including a declared srid that
    puts a file's data outside that CRS's area of use or outside Belgium.
    """
    cfg = _checked_config()
    click.echo(f"{cfg.path}: OK ({len(cfg.layers)} layers: {', '.join(cfg.layers)})")


# -- urbis sources --------------------------------------------------------------------------
@cli.group()
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

    config = load_config(_config_path())
    settings = SyncSettings.from_env()
    failed: list[str] = []
    checked = 0
    for layer_id in config.select(layers):
        probe = probe_layer(layer_id, config.layer(layer_id), settings)
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
@cli.command()
@click.option("--once", is_flag=True, help="Sync each layer once, then exit.")
@layers_option
@handle_errors
def sync(once: bool, layers: tuple[str, ...]) -> None:
    """Keep the configured layers in PostGIS: each on its schedule, or once with --once."""
    config = _checked_config(layers)
    url = _prepare_database(DatabaseSettings.from_env())
    if once:
        if not _run_sync(url, config, layers):
            sys.exit(1)
        return
    if layers:
        config = config.model_copy(update={"layers": {k: config.layers[k] for k in layers}})
    _run_continuously(url, config)


@cli.command()
@layers_option
@handle_errors
def status(layers: tuple[str, ...]) -> None:
    """Per layer: version, features, last success, last failure, next run, quarantined.

    Times are local, ISO 8601 with their UTC offset.
    """
    from urbis_core.db import create_sync_engine, resolve_database_url
    from urbis_sync.schedule import layer_status

    config = load_config(_config_path())
    wanted = config.select(layers)
    engine = create_sync_engine(resolve_database_url(DatabaseSettings.from_env()))
    try:
        rows = [s for s in layer_status(engine, config) if s.layer_id in wanted]
    finally:
        engine.dispose()

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
        if s.failure_reason and s.failures_in_a_row:
            click.echo(
                f"{s.layer_id}: failing ({s.failures_in_a_row} in a row): {s.failure_reason}"
            )


@cli.command()
@server_options
@handle_errors
def serve(host: str | None, port: int | None, **limits: Any) -> None:
    """Serve the API (the database must be migrated; `urbis up` does everything).

    The limits on requests and connections are described in README.md, "Limits and server
    settings", with the matching nginx directives.
    """
    from urbis_core.db import resolve_database_url

    _serve(resolve_database_url(DatabaseSettings.from_env()), host, port, limits)


@cli.command()
@server_options
@handle_errors
def up(host: str | None, port: int | None, **limits: Any) -> None:
    """Start the database if needed, migrate, sync once, serve."""
    config = _checked_config()
    url = _prepare_database(DatabaseSettings.from_env())
    if not _run_sync(url, config, ()):
        click.echo("urbis: some layers failed to sync; serving the last good data", err=True)
    # The worker runs in its own process, so syncing never slows the API's event loop; it is
    # told to stop when `up` stops, and the kernel stops it if `up` dies without a word.
    worker = subprocess.Popen(
        [sys.executable, "-m", "urbis_cli", "sync"],
        env={**os.environ, "DATABASE_URL": url, "URBIS_CONFIG": str(config.path)},
        preexec_fn=_die_with_parent,
    )

    def stop_worker(*_: object) -> None:
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()

    def stop_and_exit(*_: object) -> None:
        stop_worker()
        sys.exit(0)

    # uvicorn re-raises the SIGTERM/SIGINT it caught once it has shut down: stop the worker then.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop_and_exit)
    try:
        _serve(url, host, port, limits)
    finally:
        stop_worker()


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when its parent dies (Linux prctl)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


# -- urbis tiles ----------------------------------------------------------------------------
@cli.group("tiles")
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

    from tiles.seed import SeedInterrupted, SeedProgress, progress_bar, run_seed, seed_request
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
    url = _prepare_database(DatabaseSettings.from_env())
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
