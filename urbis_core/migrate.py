"""Running the alembic migrations of the service schema from code (`urbis migrate`)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from urbis_core.paths import ALEMBIC_INI


def alembic_config(database_url: str) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def is_current(database_url: str) -> bool:
    """Tell whether the database is at the newest revision (cheaper than an upgrade)."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from urbis_core.db import create_sync_engine

    config = alembic_config(database_url)
    heads = set(ScriptDirectory.from_config(config).get_heads())
    engine = create_sync_engine(database_url)
    try:
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT to_regclass('public.urbis_alembic_version')")
                                  ).scalar()
            if exists is None:
                return False
            current = {r[0] for r in conn.execute(
                text("SELECT version_num FROM public.urbis_alembic_version"))}
    finally:
        engine.dispose()
    return current == heads


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
