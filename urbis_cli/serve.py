"""`urbis serve` and `urbis up`: the API, with the limits on what a request may send."""

from __future__ import annotations

import logging.config
import os
import signal
import subprocess
import sys
from dataclasses import replace
from typing import Any

import click

from urbis_cli.common import (
    F,
    checked_config,
    config_file,
    handle_errors,
    prepare_database,
    settings,
)
from urbis_cli.supervisor import serve_processes
from urbis_cli.sync_commands import run_sync
from urbis_core.processes import die_with_parent
from urbis_core.settings import LIMIT_VARIABLES, MAX_WORKERS, ServerLimits


def _serve(
    api_url: str,
    writer_url: str,
    host: str | None,
    port: int | None,
    workers: int | None,
    limits: dict[str, Any],
) -> None:
    """The API, connected as the reader; the admin API's sync runs (with a token) as the writer.

    Its reads go to the replicas of DATABASE_URL_READ, as the reader there too. With more than
    one worker, urbis_cli.supervisor runs that many API processes on one socket.
    """
    from geoapi.logs import logging_config
    from urbis_core.db import resolve_read_database_urls

    read_urls = resolve_read_database_urls(settings().database().read_urls, api_url)
    api = settings().api(api_url, read_urls)
    api = replace(
        api,
        # the admin API's runs sync as the sync does, with the writer's URL
        admin=settings().admin(writer_url, config_file()),
        limits=replace(
            api.limits, **{name: value for name, value in limits.items() if value is not None}
        ),
    )
    host = host or api.host
    port = port or api.port
    workers = workers or settings().workers
    if workers > 1:
        logging.config.dictConfig(logging_config(api.log_format))
        click.echo(
            f"urbis: serving on http://{host}:{port}/ with {workers} processes (Ctrl-C to stop)",
            err=True,
        )
        serve_processes(api, host, port, workers)
        return
    import uvicorn

    from geoapi.app import create_app
    from geoapi.server import uvicorn_options

    click.echo(f"urbis: serving on http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    # proxy_headers off: the app believes X-Forwarded-* only from URBIS_TRUSTED_PROXIES and
    # needs the real peer to tell (geoapi.public_url); uvicorn would replace it.
    uvicorn.run(
        create_app(api),
        host=host,
        port=port,
        log_level="info",
        # geoapi.observing writes each request's line, with its id and route
        log_config=logging_config(api.log_format),
        access_log=False,
        proxy_headers=False,
        **uvicorn_options(api.limits),
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
    func = click.option(
        "--workers",
        type=click.IntRange(min=1, max=MAX_WORKERS),
        default=None,
        help="API processes serving the port, each with its own pool and tile cache "
        '(URBIS_WORKERS, default 1). README.md, "Several API processes", says what they share.',
    )(func)
    func = click.option("--port", type=int, default=None, help="Port (URBIS_PORT, default 8000).")(
        func
    )
    return click.option(
        "--host", default=None, help="Address to listen on (URBIS_HOST, 127.0.0.1)."
    )(func)


@click.command()
@server_options
@handle_errors
def serve(host: str | None, port: int | None, workers: int | None, **limits: Any) -> None:
    """Serve the API (the database must be migrated; `urbis up` does everything).

    The limits on requests and connections are described in README.md, "Limits and server
    settings", with the matching nginx directives.
    """
    from urbis_core.db import resolve_api_database_url, resolve_database_url

    database = settings().database()
    _serve(
        resolve_api_database_url(database),
        resolve_database_url(database),
        host,
        port,
        workers,
        limits,
    )


@click.command()
@server_options
@handle_errors
def up(host: str | None, port: int | None, workers: int | None, **limits: Any) -> None:
    """Start the database if needed, migrate, sync once, serve.

    The migrations and the sync run as the writer (DATABASE_URL), the API as the reader
    (DATABASE_URL_API).
    """
    from urbis_core.db import resolve_api_database_url

    config = checked_config()
    database = settings().database()
    url = prepare_database(database)
    api_url = resolve_api_database_url(database)
    if not run_sync(url, config, ()):
        click.echo("urbis: some layers failed to sync; serving the last good data", err=True)
    # The worker runs in its own process, so syncing never slows the API's event loop; it is
    # told to stop when `up` stops, and the kernel stops it if `up` dies without a word.
    worker = subprocess.Popen(
        [sys.executable, "-m", "urbis_cli", "sync"],
        env={**os.environ, "DATABASE_URL": url, "URBIS_CONFIG": str(config.path)},
        preexec_fn=die_with_parent,
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
        _serve(api_url, url, host, port, workers, limits)
    finally:
        stop_worker()
