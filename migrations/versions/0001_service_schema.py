"""Service schema: layer catalog, sync runs, change log, quarantine.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

META = "urbis_meta"
NOW = sa.text("now()")


def _counts() -> list[sa.Column]:
    return [
        sa.Column(name, sa.BigInteger, nullable=False, server_default="0")
        for name in ("inserted", "updated", "deleted")
    ]


def _run_record() -> list[sa.Column]:
    """The first columns of a row a sync run writes about a layer."""
    return [
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("layer_id", sa.Text, nullable=False),
        sa.Column("run_id", sa.BigInteger, sa.ForeignKey(f"{META}.sync_run.id"), nullable=False),
    ]


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {META}")
    # Layer tables are created by the sync in schema `urbis`; alembic only makes the schema.
    op.execute("CREATE SCHEMA IF NOT EXISTS urbis")

    op.create_table(
        "layer_catalog",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("table_name", sa.Text, nullable=False, unique=True),
        sa.Column("title", JSONB, nullable=False, server_default="{}"),
        sa.Column("description", sa.Text),
        sa.Column("source", JSONB, nullable=False),
        sa.Column("key_field", sa.Text, nullable=False),
        sa.Column("geometry_type", sa.Text, nullable=False),
        sa.Column("srid", sa.Integer, nullable=False, server_default="31370"),
        sa.Column("columns", JSONB, nullable=False),
        sa.Column("feature_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("bbox_native", ARRAY(sa.Float)),
        sa.Column("bbox_crs84", ARRAY(sa.Float)),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_success", sa.DateTime(timezone=True)),
        sa.CheckConstraint("id ~ '^[a-z][a-z0-9_]{0,62}$'", name="layer_id_format"),
        schema=META,
    )
    op.create_table(
        "sync_run",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("layer_id", sa.Text, nullable=False),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("fetched", sa.BigInteger, nullable=False, server_default="0"),
        *_counts(),
        sa.Column("repaired", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("quarantined", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("version", sa.BigInteger),
        sa.Column("error", sa.Text),
        sa.CheckConstraint("status IN ('running', 'success', 'failed')", name="run_status"),
        schema=META,
    )
    op.create_index("sync_run_layer_started", "sync_run", ["layer_id", "started_at"], schema=META)
    op.create_table(
        "change_log",
        *_run_record(),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        *_counts(),
        sa.Column("bbox", Geometry("POLYGON", srid=31370, spatial_index=False)),
        schema=META,
    )
    op.create_index("change_log_layer_version", "change_log", ["layer_id", "version"], schema=META)
    op.create_table(
        "quarantine",
        *_run_record(),
        sa.Column("feature_key", sa.Text),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("properties", JSONB, nullable=False, server_default="{}"),
        sa.Column("geom", Geometry("GEOMETRY", srid=31370, spatial_index=False)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        schema=META,
    )
    op.create_index("quarantine_layer", "quarantine", ["layer_id"], schema=META)


def downgrade() -> None:
    for table in ("quarantine", "change_log", "sync_run", "layer_catalog"):
        op.drop_table(table, schema=META)
    op.execute(f"DROP SCHEMA IF EXISTS {META}")
    # The layer tables only make sense with their catalog: base means no service data at all.
    op.execute("DROP SCHEMA IF EXISTS urbis CASCADE")
