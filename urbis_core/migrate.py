"""Running the alembic migrations of the service schema from code (`urbis migrate`).

Alembic is imported only when a migration runs: checking that a database is current is a
one-row query against `HEAD`, which every `urbis` command does at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection

from urbis_core.db import create_sync_engine
from urbis_core.paths import ALEMBIC_INI
from urbis_core.settings import DatabaseRoles

if TYPE_CHECKING:
    from alembic.config import Config

# The newest revision in migrations/versions (a test checks it against alembic's own view).
HEAD = "0007"
APPLICATION_NAME = "urbis-migrate"  # its sessions in pg_stat_activity


def alembic_config(database_url: str, roles: DatabaseRoles | None = None) -> Config:
    from alembic.config import Config

    config = Config(str(ALEMBIC_INI))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    config.attributes["roles"] = roles or DatabaseRoles()
    return config


def upgrade(database_url: str, revision: str = "head", roles: DatabaseRoles | None = None) -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url, roles), revision)


def downgrade(
    database_url: str, revision: str = "base", roles: DatabaseRoles | None = None
) -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url, roles), revision)


def ensure_roles(database_url: str, roles: DatabaseRoles | None = None) -> None:
    """Migration 0007's roles and privileges again, for a database already at the head.

    Roles an admin made since, tables made by hand, a database copied from a template (which
    keeps its tables' privileges but not the database's own): each gets what it should.
    """
    from urbis_core.roles import apply_roles

    engine = create_sync_engine(database_url, application_name=APPLICATION_NAME)
    try:
        with engine.begin() as conn:
            apply_roles(conn, roles or DatabaseRoles())
    finally:
        engine.dispose()


_VERSIONS = text("SELECT version_num FROM public.urbis_alembic_version")
_HAS_TABLE = text("SELECT to_regclass('public.urbis_alembic_version') IS NOT NULL")


def _revisions(conn: Connection) -> set[str]:
    if not conn.execute(_HAS_TABLE).scalar():
        return set()
    return {r[0] for r in conn.execute(_VERSIONS)}


def is_current(database_url: str) -> bool:
    """Tell whether the database is at the newest revision (cheaper than an upgrade)."""
    engine = create_sync_engine(database_url, application_name=APPLICATION_NAME)
    try:
        with engine.connect() as conn:
            current = _revisions(conn)
    finally:
        engine.dispose()
    return current == {HEAD}


async def revisions(conn: AsyncConnection) -> set[str]:
    """The revisions the database is at (empty: never migrated), for the API's readiness."""
    return await conn.run_sync(_revisions)
