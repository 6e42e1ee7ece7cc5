"""Shared fixtures: a throwaway PostGIS cluster for the whole run, a fresh database per test.

Set URBIS_TEST_ADMIN_URL (a superuser URL of an existing PostGIS server) to use that server
instead of starting a cluster.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import psycopg.sql
import pytest
from sqlalchemy import Engine, make_url

from urbis_core import migrate
from urbis_core.db import create_sync_engine
from urbis_core.pgcluster import EmbeddedCluster
from urbis_core.settings import DatabaseRoles
from urbis_sync.sources.http import HttpFetcher, RetryPolicy

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CONFIG = ROOT / "config" / "urbis.yaml"
SAMPLE_DIR = ROOT / "data" / "sample"
# what a run leaves to look at (screenshots, notebook figures); git-ignored
ARTIFACTS = Path(os.environ.get("URBIS_TEST_ARTIFACTS") or ROOT / "test-artifacts")
# The bundled sample's layers, in config/urbis.yaml's order, and their features (the street
# axis and surface that two cells both hold are one feature each: data/sample/README.md).
SAMPLE_COUNTS = {
    "municipalities": 19,
    "addresses": 666,
    "current_municipalities": 12,
    "street_surfaces": 29,
    "buildings": 65,
    "street_axes": 10,
    "tram_network": 8,
    "train_network": 8,
}
SAMPLE_LAYERS = list(SAMPLE_COUNTS)
TEMPLATE_DB = "urbis_test_template"
SYNCED_TEMPLATE_DB = "urbis_test_synced"  # the template with the sample synced
# The service's roles (urbis_core.roles), made by the template's migration; the cluster's, so
# every test database has them. Their password is the run's own.
ROLES = DatabaseRoles()
ROLE_PASSWORD = secrets.token_urlsafe(18)


def with_database(url: str, dbname: str) -> str:
    return make_url(url).set(database=dbname).render_as_string(hide_password=False)


def as_role(url: str, role: str, password: str = ROLE_PASSWORD) -> str:
    """The same database, connecting as another role (by default one of the service's)."""
    return make_url(url).set(username=role, password=password).render_as_string(hide_password=False)


def reader_url(url: str) -> str:
    """The same database as the API's role: what `start_server` gives the API."""
    return as_role(url, ROLES.reader)


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    external = os.environ.get("URBIS_TEST_ADMIN_URL")
    if external:
        yield external
        return
    home = Path(tempfile.mkdtemp(prefix="urbis-test-cluster-"))
    home.chmod(0o755)
    # pg_stat_statements: the SQL-injection suite reads what the API really executed.
    cluster = EmbeddedCluster(home, durable=False, allow_apt=False, preload=("pg_stat_statements",))
    state = cluster.start()
    try:
        yield state.admin_url()
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)


def create_database(admin: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        suffix = f" TEMPLATE {template}" if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    url = with_database(admin, name)
    if template:
        # A copy keeps its tables' privileges, not the database's own (TEMP taken from PUBLIC):
        # as `urbis migrate` does on a database at the head, they are given again.
        migrate.ensure_roles(url, ROLES)
    return url


def synced_sample_database(admin: str, synced_template: str, name: str) -> str:
    """A new database holding the bundled sample, synced: a copy of `synced_template`, the
    `synced_template_url` fixture's database (asked for here, so that no caller can copy it
    before the fixture has made it).

    The sample is synced once per test process (into that template), not per module: a copy is
    the same tables, history, runs and catalog rows, made in a fraction of the time.
    """
    return create_database(admin, name, template=make_url(synced_template).database)


def drop_database(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def template_url(admin_url: str) -> Iterator[str]:
    """A database with PostGIS and the service schema, copied for each test."""
    drop_database(admin_url, TEMPLATE_DB)
    url = create_database(admin_url, TEMPLATE_DB)
    migrate.upgrade(url, roles=ROLES)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for role in (ROLES.reader, ROLES.writer):
            conn.execute(
                psycopg.sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    psycopg.sql.Identifier(role), psycopg.sql.Literal(ROLE_PASSWORD)
                )
            )
    yield url
    drop_database(admin_url, TEMPLATE_DB)


@pytest.fixture(scope="session")
def synced_template_url(admin_url: str, template_url: str) -> Iterator[str]:
    """The migrated template with the bundled sample synced into it (by `sync_once`, as
    `urbis sync --once` does): what `synced_sample_database` copies."""
    from urbis_core.config import load_config
    from urbis_sync.run import sync_once

    drop_database(admin_url, SYNCED_TEMPLATE_DB)
    url = create_database(admin_url, SYNCED_TEMPLATE_DB, template=TEMPLATE_DB)
    engine = create_sync_engine(url)
    try:
        config = load_config(SAMPLE_CONFIG)
        reports = sync_once(engine, config, list(config.layers))
    finally:
        engine.dispose()  # a template takes no copy while anyone is connected to it
    assert all(r.status == "success" for r in reports), [r.summary() for r in reports]
    yield url
    drop_database(admin_url, SYNCED_TEMPLATE_DB)


@pytest.fixture
def empty_database_url(admin_url: str) -> Iterator[str]:
    """A new database with nothing in it (not even PostGIS)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield create_database(admin_url, name)
    drop_database(admin_url, name)


@pytest.fixture
def database_url(admin_url: str, template_url: str) -> Iterator[str]:
    """A new, migrated database of the test's own."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield create_database(admin_url, name, template=TEMPLATE_DB)
    drop_database(admin_url, name)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A SQLAlchemy engine on the test's own database."""
    engine = create_sync_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def http() -> Iterator[HttpFetcher]:
    """An HTTP client for network sources that retries fast (tests serve on loopback)."""
    fetcher = HttpFetcher(RetryPolicy(attempts=3, backoff=0.01, timeout=5))
    yield fetcher
    fetcher.close()


def wait_for_blocked_update(url: str, seconds: float = 20) -> int:
    """The pid of a backend whose UPDATE waits on a lock (a sync's apply held up by a test)."""
    deadline = time.monotonic() + seconds
    # pg_stat_activity is a snapshot per transaction: watch it from an autocommit session.
    with psycopg.connect(url, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query ILIKE '%UPDATE%'"
            ).fetchall()
            if waiting:
                return int(waiting[0][0])
            time.sleep(0.05)
    raise AssertionError("the apply never reached the locked row")
