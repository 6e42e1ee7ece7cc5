"""`urbis db` (the embedded cluster) and `urbis migrate`."""

from __future__ import annotations

import sys

import click

from urbis_cli.common import cluster, handle_errors, prepare_database, settings
from urbis_core.settings import DatabaseSettings


@click.group()
def db() -> None:
    """The embedded PostgreSQL + PostGIS cluster under .urbis/ (when DATABASE_URL is unset)."""


def _refuse_with_database_url(database: DatabaseSettings, action: str) -> bool:
    if database.url:
        click.echo(
            f"urbis: DATABASE_URL is set, so there is no embedded database to {action}", err=True
        )
        return True
    return False


@db.command("start")
@handle_errors
def db_start() -> None:
    """Create (first time) and start the embedded cluster."""
    database = settings().database()
    if _refuse_with_database_url(database, "start"):
        return
    state = cluster(database).start()
    click.echo(f"urbis: database running on 127.0.0.1:{state.port} (data in {state.data_dir})")
    click.echo(
        f"urbis: roles {state.roles.writer} (migrations, sync) and {state.roles.reader} (the API);"
        " `urbis db url` and `urbis db url --api` print their URLs"
    )


@db.command("stop")
@handle_errors
def db_stop() -> None:
    """Stop the embedded cluster (its data stays)."""
    database = settings().database()
    if _refuse_with_database_url(database, "stop"):
        return
    stopped = cluster(database).stop()
    click.echo("urbis: database stopped" if stopped else "urbis: database was not running")


@db.command("status")
@handle_errors
def db_status() -> None:
    """Say whether the database is running, and where. Exit code 3 when it is not."""
    database = settings().database()
    if database.url:
        click.echo("external database (DATABASE_URL)")
        return
    embedded = cluster(database)
    state = embedded.state()
    if state is None:
        click.echo(f"no embedded database yet under {database.home} (`urbis db start`)")
        sys.exit(3)
    running = embedded.is_running()
    click.echo(
        f"{'running' if running else 'stopped'}: 127.0.0.1:{state.port}, data in {state.data_dir}"
    )
    if not running:
        sys.exit(3)


@db.command("url")
@click.option(
    "--api",
    is_flag=True,
    help="The reader's URL, the one the API connects with (DATABASE_URL_API), rather than "
    "the writer's.",
)
@handle_errors
def db_url(api: bool) -> None:
    """Print the database URL (libpq form) the migrations and the sync use (the writer's)."""
    from urbis_core.db import resolve_api_database_url, resolve_database_url

    resolve = resolve_api_database_url if api else resolve_database_url
    click.echo(resolve(settings().database(), start=False))


# -- urbis migrate ------------------------------------------------------------------------
@click.command()
@handle_errors
def migrate() -> None:
    """Create or upgrade the service schema (alembic upgrade head), and the roles' grants.

    The grants are given again even when nothing is left to migrate (a role an admin made
    since gets them). Only here: handing tables to the writer locks them, which no other
    command's start should do on a database being served.
    """
    from urbis_core.migrate import ensure_roles

    database = settings().database()
    ensure_roles(prepare_database(database), database.roles)
    click.echo("urbis: service schema is up to date")
