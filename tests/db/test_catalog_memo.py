"""Layer entries kept between the API's snapshots while their catalog row is unchanged."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from geoapi.budgets import Budgets
from geoapi.db_health import DatabaseHealth
from tests.conftest import SAMPLE_CONFIG
from urbis_core.catalog import get_layer, list_layers
from urbis_core.config import load_config
from urbis_core.db import sqlalchemy_url
from urbis_core.errors import NotFound
from urbis_core.settings import ApiSettings
from urbis_sync.run import sync_layer


def test_an_entry_is_kept_until_its_row_changes_and_never_outlives_the_snapshot(
    database_url, engine
):
    config = load_config(SAMPLE_CONFIG)
    for layer_id in ("municipalities", "train_network"):
        assert sync_layer(engine, config, layer_id).status == "success"
    budgets = Budgets(ApiSettings(database_url=database_url), DatabaseHealth())

    async def run() -> None:
        api = create_async_engine(sqlalchemy_url(database_url))
        try:
            async with budgets.snapshot(api, "items") as conn:
                first = await get_layer(conn, "municipalities")
                assert [e.id for e in await list_layers(conn)] == [
                    "municipalities",
                    "train_network",
                ]
            async with budgets.snapshot(api, "items") as conn:
                assert await get_layer(conn, "municipalities") is first  # no row changed
                with pytest.raises(NotFound):
                    await get_layer(conn, "nope")
            with engine.begin() as writer:  # what a sync's catalog write does to the row
                writer.execute(
                    sa.text(
                        "UPDATE urbis_meta.layer_catalog SET feature_count = 7 "
                        "WHERE id = 'municipalities'"
                    )
                )
            async with budgets.snapshot(api, "items") as conn:
                changed = await get_layer(conn, "municipalities")
                assert changed is not first and changed.feature_count == 7
                assert (await list_layers(conn))[0] is changed
                kept = await get_layer(conn, "train_network")
                assert kept.feature_count == 8
            # outside a snapshot nothing is taken from the memo: the row is read
            async with api.connect() as conn:
                assert (await get_layer(conn, "municipalities")) == changed
                assert (await get_layer(conn, "municipalities")) is not changed
        finally:
            await api.dispose()

    asyncio.run(run())


def test_a_snapshot_that_began_before_a_change_keeps_seeing_its_own_entry(database_url, engine):
    """REPEATABLE READ: the memo never hands a request an entry newer than its rows."""
    config = load_config(SAMPLE_CONFIG)
    assert sync_layer(engine, config, "municipalities").status == "success"
    budgets = Budgets(ApiSettings(database_url=database_url), DatabaseHealth())

    async def run() -> None:
        api = create_async_engine(sqlalchemy_url(database_url))
        try:
            async with budgets.snapshot(api, "items") as before:
                async with budgets.snapshot(api, "items") as reader:
                    old = await get_layer(reader, "municipalities")
                    with engine.begin() as writer:
                        writer.execute(
                            sa.text(
                                "UPDATE urbis_meta.layer_catalog SET feature_count = 3 "
                                "WHERE id = 'municipalities'"
                            )
                        )
                    async with budgets.snapshot(api, "items") as after:
                        assert (await get_layer(after, "municipalities")).feature_count == 3
                    # the newer entry is in the memo now; this snapshot still sees its own
                    assert (await get_layer(reader, "municipalities")) == old
                    assert (await get_layer(before, "municipalities")).feature_count == 19
        finally:
            await api.dispose()

    asyncio.run(run())
