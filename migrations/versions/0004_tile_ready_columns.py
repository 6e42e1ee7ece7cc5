"""What each live layer table keeps ready for the tiles: Web Mercator geometry, size, measure.

The tables the sync makes from now on have the columns; this gives them to those made before,
filled with the expressions urbis_sync.tile_geometry uses (the sync fills only the rows its
runs write).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# urbis_core.catalog.TILE_COLUMNS when this was written
COLUMNS = {
    "geom_3857": "geometry(Geometry, 3857)",
    "geom_size": "double precision",
    "geom_measure": "double precision",
}


def _live_tables() -> list[str]:
    rows = op.get_bind().execute(
        sa.text(
            "SELECT c.table_name FROM urbis_meta.layer_catalog c JOIN information_schema.tables t "
            "ON t.table_schema = 'urbis' AND t.table_name = c.table_name"
        )
    )
    return [r[0] for r in rows]


def upgrade() -> None:
    for table in _live_tables():
        op.execute(
            sa.text(
                f'ALTER TABLE urbis."{table}" '
                + ", ".join(
                    f"ADD COLUMN IF NOT EXISTS {name} {sql_type}"
                    for name, sql_type in COLUMNS.items()
                )
            )
        )
        op.execute(
            sa.text(f"""
            UPDATE urbis."{table}" SET
                geom_3857 = ST_Transform(geom, 3857),
                geom_size = greatest(ST_XMax(geom) - ST_XMin(geom), ST_YMax(geom) - ST_YMin(geom)),
                geom_measure = CASE ST_Dimension(geom) WHEN 2 THEN ST_Area(geom)
                                                       WHEN 1 THEN ST_Length(geom) END""")
        )


def downgrade() -> None:
    for table in _live_tables():
        op.execute(
            sa.text(
                f'ALTER TABLE urbis."{table}" '
                + ", ".join(f"DROP COLUMN IF EXISTS {name}" for name in COLUMNS)
            )
        )
