import sqlalchemy as sa

from urbis_core import migrate
from urbis_core.catalog import metadata
from urbis_core.coverages import coverage_catalog
from urbis_core.db import create_sync_engine

SERVICE_TABLES = {"layer_catalog", "sync_run", "change_log", "quarantine", "coverage_catalog"}


def _schema_tables(url: str) -> dict[str, set[str]]:
    engine = create_sync_engine(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            schemas = set(inspector.get_schema_names())
            if "urbis_meta" not in schemas:
                return {}
            return {
                t: {c["name"] for c in inspector.get_columns(t, schema="urbis_meta")}
                for t in inspector.get_table_names(schema="urbis_meta")
            }
    finally:
        engine.dispose()


def test_upgrade_from_empty_downgrade_to_base_and_upgrade_again(empty_database_url):
    url = empty_database_url
    assert not migrate.is_current(url)
    migrate.upgrade(url)
    assert migrate.is_current(url)
    tables = _schema_tables(url)
    assert set(tables) == SERVICE_TABLES
    # The code's view of the schema (urbis_core.catalog) matches what the migration made.
    for table in [*metadata.tables.values(), coverage_catalog]:
        assert {c.name for c in table.columns} == tables[table.name], table.name

    migrate.downgrade(url, "base")
    assert not migrate.is_current(url)
    assert _schema_tables(url) == {}
    engine = create_sync_engine(url)
    with engine.connect() as conn:
        schemas = set(sa.inspect(conn).get_schema_names())
        version = conn.execute(sa.text("SELECT count(*) FROM urbis_alembic_version")).scalar()
    engine.dispose()
    assert not {"urbis", "urbis_meta", "urbis_staging", "urbis_history"} & schemas
    assert version == 0

    migrate.upgrade(url)
    assert set(_schema_tables(url)) == SERVICE_TABLES


def test_head_constant_is_the_newest_migration():
    """`urbis` checks a database against migrate.HEAD without loading alembic."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(migrate.alembic_config("postgresql://unused")).get_heads()
    assert heads == [migrate.HEAD]
