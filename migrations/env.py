"""Alembic environment: online migrations only, on the URL the CLI (or DATABASE_URL) gives."""

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool

from urbis_core.db import create_sync_engine

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

url = config.attributes.get("database_url") or os.environ.get("DATABASE_URL")
if not url:
    raise SystemExit("alembic: set DATABASE_URL (or use `urbis migrate`)")

engine = create_sync_engine(url, application_name="urbis-migrate", poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        version_table=config.get_main_option("version_table", "alembic_version"),
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
