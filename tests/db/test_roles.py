"""The reader and writer roles: made by the migrations when they may, given by an admin when not.

The second test follows README "Database roles" for an existing database step by step, with
the real `urbis migrate` and `urbis sync`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.api.conftest import URBIS
from tests.conftest import (
    ROLES,
    SAMPLE_CONFIG,
    SAMPLE_COUNTS,
    as_role,
    drop_database,
    reader_url,
    with_database,
)
from urbis_core import migrate
from urbis_core.roles import SERVER_ACCESS_ROLES, SERVICE_SCHEMAS
from urbis_core.settings import DatabaseRoles


def test_a_superuser_migration_makes_both_roles_plain(template_url: str):
    with psycopg.connect(template_url) as conn:
        roles = conn.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls "
            "FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname",
            ([ROLES.reader, ROLES.writer],),
        ).fetchall()
        assert roles == [
            (ROLES.reader, True, False, False, False, False),
            (ROLES.writer, True, False, False, False, False),
        ]
        server_roles = conn.execute(
            "SELECT s FROM unnest(%s::text[]) s WHERE pg_has_role(%s, s, 'MEMBER')",
            (list(SERVER_ACCESS_ROLES), ROLES.reader),
        ).fetchall()
        assert server_roles == []
        # The sync, as the writer, drops and swaps tables in these: they are the writer's.
        owners = dict(
            conn.execute(
                "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace "
                "WHERE nspname = ANY(%s)",
                (list(SERVICE_SCHEMAS),),
            ).fetchall()
        )
        assert owners == dict.fromkeys(SERVICE_SCHEMAS, ROLES.writer)


@pytest.fixture
def own_roles(admin_url: str) -> Iterator[DatabaseRoles]:
    """Roles of this test only (roles are the cluster's): dropped after it."""
    suffix = uuid.uuid4().hex[:8]
    roles = DatabaseRoles(reader=f"t_reader_{suffix}", writer=f"t_writer_{suffix}")
    yield roles
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for role in (roles.reader, roles.writer):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_an_existing_database_given_its_roles_by_an_admin(
    admin_url: str, own_roles: DatabaseRoles, caplog: pytest.LogCaptureFixture
):
    reader, writer = own_roles.reader, own_roles.writer
    name = f"t_{uuid.uuid4().hex[:12]}"
    writer_password, reader_password = uuid.uuid4().hex, uuid.uuid4().hex
    # README: as an admin, the writer, its database, PostGIS; the reader comes later.
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(writer), sql.Literal(writer_password)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(writer)
            )
        )
    database = with_database(admin_url, name)
    try:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        writer_url = as_role(database, writer, writer_password)

        # The writer may not create roles: the migration says so, and goes on to the head.
        with caplog.at_level(logging.WARNING, logger="urbis.roles"):
            migrate.upgrade(writer_url, roles=own_roles)
        assert migrate.is_current(writer_url)
        said = [r.getMessage() for r in caplog.records if r.name == "urbis.roles"]
        assert any(
            f"role {reader} does not exist and {writer} may not create roles" in line
            for line in said
        ), said

        # README: the admin makes the reader; `urbis migrate` (the writer) gives it its grants.
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(reader), sql.Literal(reader_password)
                )
            )
        env = {
            **os.environ,
            "DATABASE_URL": writer_url,
            "URBIS_DB_READER_ROLE": reader,
            "URBIS_DB_WRITER_ROLE": writer,
            "URBIS_CONFIG": str(SAMPLE_CONFIG),
        }
        for command in (["migrate"], ["sync", "--once"]):
            done = subprocess.run(
                [str(URBIS), *command], env=env, capture_output=True, text=True, timeout=300
            )
            assert done.returncode == 0, done.stderr

        # The tables the sync made as the writer are the reader's to read, and only that.
        reader_only = as_role(database, reader, reader_password)
        with psycopg.connect(reader_only, autocommit=True) as conn:
            tables = dict(
                conn.execute("SELECT id, table_name FROM urbis_meta.layer_catalog").fetchall()
            )
            for layer, table in tables.items():
                counted = conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("urbis", table))
                ).fetchone()
                assert counted == (SAMPLE_COUNTS[layer],), layer
            history = conn.execute(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                "WHERE schemaname = 'urbis_history'"
            ).fetchall()
            assert history
            for (table,) in history:
                conn.execute(f"SELECT count(*) FROM {table}")
            for statement in (
                sql.SQL("DELETE FROM {}").format(sql.Identifier("urbis", tables["buildings"])),
                sql.SQL("CREATE TABLE public.injected (v text)"),
                sql.SQL("CREATE TEMP TABLE injected (v text)"),
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
    finally:
        drop_database(admin_url, name)


def test_the_reader_of_a_test_database_is_the_api_role(database_url: str):
    """tests.conftest.reader_url is the role the migrations made, with the run's password."""
    with psycopg.connect(reader_url(database_url)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ROLES.reader,)
