"""What the `urbis` commands share: error handling, the settings, layers, the database.

Every error the service raises on purpose ends the command with a short message and exit code
2 (configuration) or 1 (anything else); no traceback for a user's mistake. The settings (every
`URBIS_*` variable, urbis_core.settings) are read once per command, inside its error handling,
so that a wrong variable is a configuration error naming it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from urbis_core.errors import ConfigError, UrbisError
from urbis_core.pgcluster import EmbeddedCluster
from urbis_core.settings import DatabaseSettings, Settings

if TYPE_CHECKING:
    from urbis_core.config import ServiceConfig

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


@dataclass(frozen=True)
class Invocation:
    """What the `urbis` group's own options decided, for every command under it."""

    config_option: Path | None  # --config


def settings() -> Settings:
    """The environment's settings, read once per command."""
    ctx = click.get_current_context()
    read = ctx.find_root().meta.get("urbis.settings")
    if read is None:
        read = ctx.find_root().meta["urbis.settings"] = Settings.from_env()
    return read


def config_file() -> Path:
    """The layer configuration: `--config`, else `URBIS_CONFIG`, else the sample's."""
    invocation = click.get_current_context().find_object(Invocation)
    option = invocation.config_option if invocation is not None else None
    return settings().config_path(option)


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


def cluster(database: DatabaseSettings) -> EmbeddedCluster:
    return EmbeddedCluster(database.home, allow_apt=database.allow_apt, roles=database.roles)


def checked_config(layer_ids: tuple[str, ...] = ()) -> ServiceConfig:
    """Load the config and check its sources before anything touches the database."""
    from urbis_sync.check import check_config

    return check_config(config_file(), list(layer_ids))


def prepare_database(database: DatabaseSettings) -> str:
    """Start the embedded cluster when needed, make sure PostGIS exists, migrate; the URL.

    The URL is the writer's: for the migrations and the sync.
    """
    from urbis_core import migrate
    from urbis_core.db import create_sync_engine, ensure_postgis, resolve_database_url

    url = resolve_database_url(database)
    engine = create_sync_engine(url, application_name="urbis-migrate")
    try:
        ensure_postgis(engine)
    finally:
        engine.dispose()
    if not migrate.is_current(url):
        migrate.upgrade(url, roles=database.roles)
    return url
