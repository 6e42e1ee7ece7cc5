"""Schemas for staging and history; schema drift noted on runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Staging tables are unlogged scratch space of one run; history tables hold superseded rows.
    # Both are created per layer by the sync, like the layer tables in `urbis`.
    op.execute("CREATE SCHEMA IF NOT EXISTS urbis_staging")
    op.execute("CREATE SCHEMA IF NOT EXISTS urbis_history")
    op.add_column("sync_run", sa.Column("drift", sa.Text), schema="urbis_meta")
    op.add_column("sync_run", sa.Column("source_info", sa.Text), schema="urbis_meta")


def downgrade() -> None:
    op.drop_column("sync_run", "source_info", schema="urbis_meta")
    op.drop_column("sync_run", "drift", schema="urbis_meta")
    op.execute("DROP SCHEMA IF EXISTS urbis_history CASCADE")
    op.execute("DROP SCHEMA IF EXISTS urbis_staging CASCADE")
