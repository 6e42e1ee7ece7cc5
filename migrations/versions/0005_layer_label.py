"""The fields that name a layer's features per language (`label:` in the YAML config).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "layer_catalog",
        sa.Column("label", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        schema="urbis_meta",
    )


def downgrade() -> None:
    op.drop_column("layer_catalog", "label", schema="urbis_meta")
