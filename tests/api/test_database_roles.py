"""The API's database role reads and does nothing else (issue 16, item 1).

An injection that got past the API would run as this role: it must not write a layer or the
catalog, create anything anywhere, nor reach the server's files or programs.
"""

from __future__ import annotations

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.conftest import ROLES, SAMPLE_COUNTS, reader_url
from urbis_core import migrate


@pytest.fixture(scope="module")
def layer_table(synced_database_url: str) -> str:
    with psycopg.connect(synced_database_url) as conn:
        row = conn.execute(
            "SELECT table_name FROM urbis_meta.layer_catalog WHERE id = 'buildings'"
        ).fetchone()
    assert row is not None
    return f"urbis.{sql.Identifier(row[0]).as_string(None)}"


@pytest.fixture(scope="module")
def history_table(synced_database_url: str) -> str:
    with psycopg.connect(synced_database_url) as conn:
        row = conn.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
            "WHERE schemaname = 'urbis_history' ORDER BY tablename LIMIT 1"
        ).fetchone()
    assert row is not None, "the synced sample has history tables"
    return str(row[0])


# Each must fail for want of a privilege, whatever table it names.
FORBIDDEN = {
    "insert into a layer": "INSERT INTO {layer} DEFAULT VALUES",
    "update a layer": "UPDATE {layer} SET geom = geom",
    "delete from a layer": "DELETE FROM {layer}",
    "truncate a layer": "TRUNCATE {layer}",
    "drop a layer": "DROP TABLE {layer}",
    "alter a layer": "ALTER TABLE {layer} ADD COLUMN injected text",
    "insert into the history": "INSERT INTO {history} DEFAULT VALUES",
    "update the catalog": "UPDATE urbis_meta.layer_catalog SET feature_count = 0",
    "delete from the change log": "DELETE FROM urbis_meta.change_log",
    "insert a sync run": "INSERT INTO urbis_meta.sync_run (layer_id, mode, status) "
    "VALUES ('x', 'full', 'failed')",
    "move the schema version": "UPDATE public.urbis_alembic_version SET version_num = '0001'",
    "create a table in urbis": "CREATE TABLE urbis.injected (v text)",
    "create a table in urbis_meta": "CREATE TABLE urbis_meta.injected (v text)",
    "create a table in urbis_history": "CREATE TABLE urbis_history.injected (v text)",
    "create a table in urbis_staging": "CREATE TABLE urbis_staging.injected (v text)",
    "create a table in public": "CREATE TABLE public.injected (v text)",
    "create a view in public": "CREATE VIEW public.injected AS SELECT 1",
    "create a temporary table": "CREATE TEMP TABLE injected (v text)",
    "create a schema": "CREATE SCHEMA injected",
    "create a function": "CREATE FUNCTION public.injected() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "create a temporary function": "CREATE FUNCTION pg_temp.injected() RETURNS int "
    "LANGUAGE sql AS 'SELECT 1'",
    "create an extension": "CREATE EXTENSION postgis_topology",
    "read a server file": "SELECT pg_read_file('/etc/passwd')",
    "read a server file as bytes": "SELECT pg_read_binary_file('PG_VERSION')",
    "list a server folder": "SELECT pg_ls_dir('.')",
    "import a server file": "SELECT lo_import('/etc/passwd')",
    "copy from a server file": "COPY urbis_meta.layer_catalog FROM '/etc/passwd'",
    "copy to a server file": "COPY (SELECT 1) TO '/tmp/urbis-injected'",
    "copy to a program": "COPY (SELECT 1) TO PROGRAM 'touch /tmp/urbis-injected'",
    "copy from a program": "COPY urbis_meta.layer_catalog FROM PROGRAM 'true'",
    "read the staging schema": "SELECT count(*) FROM pg_tables, urbis_staging.anything",
    "grant itself more": f"GRANT pg_read_server_files TO {ROLES.reader}",
    "change a setting of the server": "ALTER SYSTEM SET log_statement = 'none'",
}


@pytest.mark.parametrize("what", list(FORBIDDEN))
def test_the_api_role_cannot_write_create_or_reach_the_server(
    what: str, synced_database_url: str, layer_table: str, history_table: str
):
    statement = FORBIDDEN[what].format(layer=layer_table, history=history_table)
    # autocommit: ALTER SYSTEM would be refused inside a transaction, for another reason
    with psycopg.connect(reader_url(synced_database_url), autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ROLES.reader,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute(statement)
    assert refused.value.sqlstate == "42501", refused.value


def test_ending_another_session_is_refused(synced_database_url: str):
    """Not even a denial of service: the admin's session stays."""
    with psycopg.connect(synced_database_url, autocommit=True) as victim:
        victim_pid = victim.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        with psycopg.connect(reader_url(synced_database_url)) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT pg_terminate_backend(%s)", (victim_pid,))
        assert victim.execute("SELECT 1").fetchone() == (1,)


def test_nothing_forbidden_happened(synced_database_url: str, layer_table: str):
    """After the attempts, as the admin: the data and the schemas are as the sync left them."""
    with psycopg.connect(synced_database_url) as conn:
        assert conn.execute(f"SELECT count(*) FROM {layer_table}").fetchone() == (
            SAMPLE_COUNTS["buildings"],
        )
        made = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'injected'"
        ).fetchall()
        assert made == []
        version = conn.execute("SELECT version_num FROM public.urbis_alembic_version")
        assert version.fetchall() == [(migrate.HEAD,)]


def test_the_api_role_reads_the_layers_the_history_and_the_catalog(
    synced_database_url: str, layer_table: str, history_table: str
):
    with psycopg.connect(reader_url(synced_database_url), autocommit=True) as conn:
        counts = dict(
            conn.execute("SELECT id, feature_count FROM urbis_meta.layer_catalog").fetchall()
        )
        assert counts == SAMPLE_COUNTS
        assert conn.execute(f"SELECT count(*) FROM {layer_table}").fetchone() == (
            SAMPLE_COUNTS["buildings"],
        )
        conn.execute(f"SELECT count(*) FROM {history_table}")
        conn.execute("SELECT count(*) FROM urbis_meta.change_log")
        conn.execute("SELECT version_num FROM public.urbis_alembic_version")
        conn.execute("LISTEN urbis_layer_changed")  # the API follows the sync's changes


def test_the_served_api_connects_as_the_reader(synced_database_url: str, client: httpx.Client):
    """The test server (tests.api.conftest.start_server) is the API of every API test."""
    assert client.get("/collections/buildings/items", params={"limit": 2}).status_code == 200
    dbname = psycopg.conninfo.conninfo_to_dict(synced_database_url)["dbname"]
    with psycopg.connect(synced_database_url, autocommit=True) as conn:
        users = conn.execute(
            "SELECT application_name, usename FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            (dbname,),
        ).fetchall()
    # The pool's sessions (urbis-api) and the change listener's: each the reader's.
    assert any(app == "urbis-api" for app, _ in users), users
    assert {user for _, user in users} == {ROLES.reader}, users
