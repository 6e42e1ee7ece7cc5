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


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
