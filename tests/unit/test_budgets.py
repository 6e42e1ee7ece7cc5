"""Requests wait their turn a bounded time; outages are told once; errors cross processes."""

from __future__ import annotations

import asyncio
import logging
import pickle

import pytest

from geoapi.budgets import Budgets
from geoapi.db_health import DatabaseHealth
from urbis_core.errors import ConfigError, InvalidParameter, Unavailable
from urbis_core.settings import ApiSettings, Settings


def budgets(**settings: object) -> Budgets:
    return Budgets(
        ApiSettings(database_url="postgresql://x@y/z", queue_timeout=0.1, **settings),
        DatabaseHealth(),
    )  # type: ignore[arg-type]


def test_a_request_past_its_kinds_bound_waits_then_is_told_to_come_back():
    async def run() -> None:
        b = budgets(concurrency={"stats": 1, "items": 5})
        async with b.turn("stats"):
            with pytest.raises(Unavailable, match="too many stats requests") as raised:
                async with b.turn("stats"):
                    pass
            assert raised.value.retry_after > 0
            async with b.turn("items"):  # another kind has its own bound
                pass
        async with b.turn("stats"):  # freed
            pass

    asyncio.run(run())


def test_the_bounded_kinds_together_leave_two_connections_to_the_catalog():
    async def run() -> None:
        b = budgets(pool_size=3, concurrency={"items": 5, "spatial": 5})
        async with b.turn("items"):
            with pytest.raises(Unavailable):
                async with b.turn("spatial"):
                    pass
            async with b.turn("catalog"), b.turn("catalog"), b.turn("catalog"):
                pass  # never queued

    asyncio.run(run())


def test_an_outage_is_logged_when_it_starts_and_ends(caplog):
    health = DatabaseHealth()
    with caplog.at_level(logging.INFO, logger="geoapi.db_health"):
        for _ in range(100):
            health.failed("connection refused")
        assert not health.reachable and health.last_error == "connection refused"
        for _ in range(100):
            health.answered()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "not reachable (connection refused)" in messages[0]
    assert "reachable again" in messages[1]


def test_an_invalid_parameter_raised_in_a_worker_process_comes_back_whole():
    error = pickle.loads(pickle.dumps(InvalidParameter("body", "too many vertices")))
    assert isinstance(error, InvalidParameter)
    assert (error.parameter, str(error)) == (
        "body",
        "Invalid value for parameter 'body': too many vertices",
    )


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("URBIS_TIMEOUT_ITEMS", "soon", "not a number of seconds"),
        ("URBIS_TIMEOUT_SPATIAL", "0", "more than 0"),
        ("URBIS_QUEUE_TIMEOUT", "-1", "more than 0"),
        ("URBIS_CONCURRENCY_STATS", "0", "at least 1"),
        ("URBIS_DB_POOL_SIZE", "2", "at least 3"),
    ],
)
def test_budget_settings_are_checked(name, value, words):
    with pytest.raises(ConfigError, match=words):
        Settings.from_env({name: value}).api("postgresql://x@y/z")


def test_budget_settings_are_read():
    settings = Settings.from_env(
        {
            "URBIS_TIMEOUT_STATS": "2.5",
            "URBIS_CONCURRENCY_TILES": "7",
            "URBIS_QUEUE_TIMEOUT": "3",
            "URBIS_IDLE_IN_TRANSACTION_TIMEOUT": "60",
            "URBIS_MAX_QUERY_VERTICES": "500",
        },
    ).api("postgresql://x@y/z")
    assert settings.statement_timeouts["stats"] == 2.5
    assert settings.statement_timeouts["items"] == 5.0
    assert settings.concurrency["tiles"] == 7
    assert (
        settings.queue_timeout,
        settings.idle_in_transaction_timeout,
        settings.max_query_vertices,
    ) == (3.0, 60.0, 500)
