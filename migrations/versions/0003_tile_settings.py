"""Per-layer vector tile settings in the catalog (written by the sync from the YAML config).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "layer_catalog",
        sa.Column("tiles", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        schema="urbis_meta",
    )


def downgrade() -> None:
    op.drop_column("layer_catalog", "tiles", schema="urbis_meta")
