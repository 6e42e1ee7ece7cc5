"""Every database session the service opens has a bound: the sync's writer and the API's pool."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from tests.conftest import SAMPLE_CONFIG
from urbis_core.config import load_config
from urbis_core.db import create_sync_engine, session_options
from urbis_sync.run import sync_layer


def test_the_session_options_reach_postgresql(database_url):
    options = session_options(2.5, 120, "urbis-test", plan_cache_mode="force_custom_plan")
    with psycopg.connect(database_url, options=options) as conn:
        shown = [
            conn.execute(f"SHOW {name}").fetchone()[0]
            for name in (
                "statement_timeout",
                "idle_in_transaction_session_timeout",
                "application_name",
                "plan_cache_mode",
            )
        ]
    assert shown == ["2500ms", "2min", "urbis-test", "force_custom_plan"]


def test_a_statement_past_the_engines_timeout_is_cancelled(database_url):
    engine = create_sync_engine(database_url, statement_timeout=0.3)
    try:
        with engine.connect() as conn:
            with pytest.raises(OperationalError, match="statement timeout"):
                conn.execute(sa.text("SELECT pg_sleep(5)"))
    finally:
        engine.dispose()


def test_a_sync_blocked_past_its_timeout_fails_with_the_reason_and_keeps_the_data(database_url):
    config = load_config(SAMPLE_CONFIG)
    plain = create_sync_engine(database_url)
    bounded = create_sync_engine(database_url, statement_timeout=1)
    try:
        assert sync_layer(plain, config, "addresses").status == "success"
        with psycopg.connect(database_url) as holder:
            # a lock held as by a long transaction elsewhere: the sync's statements wait
            holder.execute("LOCK TABLE urbis.addresses IN ACCESS EXCLUSIVE MODE")
            report = sync_layer(bounded, config, "addresses")
            holder.rollback()
        assert report.status == "failed"
        assert "statement timeout" in (report.error or ""), report.error
        with plain.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM urbis.addresses")).scalar() == 666
    finally:
        plain.dispose()
        bounded.dispose()


def test_an_engines_sessions_carry_its_application_name_unless_the_url_names_one(database_url):
    def shown(url: str) -> str:
        engine = create_sync_engine(url, application_name="urbis-sync")
        try:
            with engine.connect() as conn:
                return str(conn.execute(sa.text("SHOW application_name")).scalar_one())
        finally:
            engine.dispose()

    assert shown(database_url) == "urbis-sync"
    assert shown(f"{database_url}?application_name=nightly-import") == "nightly-import"
