"""The raster layers' catalog: one row per coverage, naming the COG in use.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

META = "urbis_meta"


def upgrade() -> None:
    op.create_table(
        "coverage_catalog",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("title", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("description", sa.Text),
        # The COG readers open; the sync swaps it by writing a new file and this row.
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("checksum", sa.Text, nullable=False),  # sha256 of the source as read
        sa.Column("bands", JSONB, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("resolution", ARRAY(sa.Float), nullable=False),  # x, y in metres
        sa.Column("bbox_native", ARRAY(sa.Float), nullable=False),
        sa.Column("bbox_crs84", ARRAY(sa.Float), nullable=False),
        sa.Column("srid", sa.Integer, nullable=False),
        sa.Column("style", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("last_success", sa.DateTime(timezone=True)),
        sa.CheckConstraint("id ~ '^[a-z][a-z0-9_]{0,62}$'", name="coverage_id_format"),
        schema=META,
    )


def downgrade() -> None:
    op.drop_table("coverage_catalog", schema=META)
