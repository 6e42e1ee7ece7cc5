"""A range on one numeric property counted from its sorted values: PostgreSQL's count, always."""

from __future__ import annotations

import asyncio
import itertools
import math
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from geoapi import column_ranges
from geoapi.budgets import Budgets
from geoapi.column_ranges import READ_AFTER, ColumnRange, SortedValues
from geoapi.db_health import DatabaseHealth
from tests.support.layers import file_layer, geojson_feature, point
from urbis_core.catalog import LayerEntry, get_layer
from urbis_core.config import load_config
from urbis_core.db import sqlalchemy_url
from urbis_core.settings import ApiSettings
from urbis_sync.run import sync_layer

BIG = 2**60  # an integer float8 cannot hold exactly


def write_layer(folder: Path, areas: list[float | None]) -> Path:
    """AREA as given; FLOORS an integer, NULL every seventh; BIG beyond 2^53; ODD with a NaN."""
    features = (
        geojson_feature(
            {
                "FID": i,
                "AREA": area,
                "FLOORS": None if i % 7 == 0 else i % 5 - 1,
                "BIG": BIG + i,
                "ODD": math.nan if i == 3 else float(i),
            },
            point(148000 + i, 169000),
        )
        for i, area in enumerate(areas)
    )
    return file_layer(folder, "ranged", "FID", features)


AREAS = [None, -2.5, 0.0, 0.5, 1.0, 1.0, 1.0, 3.25, None, 10.0, 10.0, 12.5, 100.0, 1e9]
POINTS = [-3.0, -2.5, 0.0, 0.75, 1.0, 3.25, 10.0, 11.0, 100.0, 1e9, 2e9]
OPERATORS = ("<", "<=", ">", ">=", "=")


async def sql_count(conn: AsyncConnection, layer: LayerEntry, span: ColumnRange) -> int:
    """The count as PostgreSQL gives it for the same comparisons, bound as the filter binds."""
    column = layer.table().c[span.name]
    conditions = []
    if span.low is not None:
        op = ">=" if span.low.included else ">"
        conditions.append(column.op(op)(sa.literal(span.low.value, sa.Float())))
    if span.high is not None:
        op = "<=" if span.high.included else "<"
        conditions.append(column.op(op)(sa.literal(span.high.value, sa.Float())))
    count = sa.select(sa.func.count()).select_from(layer.table()).where(*conditions)
    return int((await conn.execute(count)).scalar_one())


def test_counts_from_sorted_values_are_postgresqls_and_follow_each_version(
    database_url, engine, tmp_path
):
    assert sync_layer(engine, load_config(write_layer(tmp_path, AREAS)), "ranged").status == (
        "success"
    )
    budgets = Budgets(ApiSettings(database_url=database_url), DatabaseHealth())
    held = SortedValues()

    async def counts_agree(api: AsyncEngine, name: str) -> int:
        """Every pair of comparisons on `name`: held count == SQL count; how many compared."""
        compared = 0
        async with budgets.snapshot(api, "items") as conn:
            layer = await get_layer(conn, "ranged")
            for _ in range(READ_AFTER):  # counted in SQL until asked for more than once
                assert await held.count(conn, layer, ColumnRange(name)) is None
            for (op1, a), (op2, b) in itertools.product(
                itertools.product(OPERATORS, POINTS), repeat=2
            ):
                span = ColumnRange(name).narrowed(op1, a).narrowed(op2, b)
                from_values = await held.count(conn, layer, span)
                assert from_values is not None
                assert from_values == await sql_count(conn, layer, span), (op1, a, op2, b)
                compared += 1
        return compared

    async def run() -> None:
        api = create_async_engine(sqlalchemy_url(database_url))
        try:
            assert await counts_agree(api, "AREA") == (5 * len(POINTS)) ** 2
            await counts_agree(api, "FLOORS")  # an integer property, NULLs among its values
            async with budgets.snapshot(api, "items") as conn:
                layer = await get_layer(conn, "ranged")
                assert {c.name: c.sql_type for c in layer.columns}["BIG"] == "bigint"
                for name in ("BIG", "ODD"):  # values float8 cannot stand for: SQL counts
                    for _ in range(READ_AFTER + 2):
                        assert await held.count(conn, layer, ColumnRange(name)) is None
                # what the API would be asked: ODD's NaN is above every number for PostgreSQL
                odd = ColumnRange("ODD").narrowed(">", 5.0)
                assert await sql_count(conn, layer, odd) == 8 + 1  # 6 to 13, and the NaN

            # A sync changes the values: the held ones are not used for the new version.
            areas = [None if a == 1.0 else a for a in AREAS] + [1.0, 2.0]
            assert sync_layer(
                engine, load_config(write_layer(tmp_path, areas)), "ranged"
            ).status == ("success")
            # (counts_agree asserts that the first asks on the new version go to SQL)
            assert await counts_agree(api, "AREA") == (5 * len(POINTS)) ** 2
            async with budgets.snapshot(api, "items") as conn:
                layer = await get_layer(conn, "ranged")
                assert await held.count(conn, layer, ColumnRange("AREA").narrowed("=", 1.0)) == 1
        finally:
            await api.dispose()

    asyncio.run(run())


@pytest.mark.parametrize("feature_count", [10])
def test_a_layer_above_the_bound_is_counted_in_sql(database_url, engine, tmp_path, feature_count):
    assert sync_layer(engine, load_config(write_layer(tmp_path, AREAS)), "ranged").status == (
        "success"
    )
    budgets = Budgets(ApiSettings(database_url=database_url), DatabaseHealth())
    held = SortedValues(max_rows=feature_count)

    async def run() -> None:
        api = create_async_engine(sqlalchemy_url(database_url))
        try:
            async with budgets.snapshot(api, "items") as conn:
                layer = await get_layer(conn, "ranged")
                assert layer.feature_count > feature_count
                for _ in range(READ_AFTER + 2):
                    assert await held.count(conn, layer, ColumnRange("AREA")) is None
        finally:
            await api.dispose()

    asyncio.run(run())


def test_a_read_that_fails_leaves_the_version_to_sql_and_the_request_counting(
    database_url, engine, tmp_path, monkeypatch
):
    """A large layer under a short statement timeout: the read is cancelled, not the request."""
    assert sync_layer(engine, load_config(write_layer(tmp_path, AREAS)), "ranged").status == (
        "success"
    )
    budgets = Budgets(ApiSettings(database_url=database_url), DatabaseHealth())
    held = SortedValues()
    reads = 0

    async def slow_read(conn: AsyncConnection, layer: LayerEntry, name: str) -> None:
        nonlocal reads
        reads += 1
        await conn.execute(sa.text("SET LOCAL statement_timeout = '50ms'"))
        await conn.execute(sa.text("SELECT pg_sleep(2)"))  # cancelled by PostgreSQL

    monkeypatch.setattr(column_ranges, "_read_sorted", slow_read)

    async def run() -> None:
        api = create_async_engine(sqlalchemy_url(database_url))
        try:
            async with budgets.snapshot(api, "items") as conn:
                layer = await get_layer(conn, "ranged")
                span = ColumnRange("AREA").narrowed(">", 0.75)
                for _ in range(READ_AFTER + 3):
                    assert await held.count(conn, layer, span) is None
                assert reads == 1  # tried once for this version, then left to SQL
                # the request's transaction goes on: its own count is answered
                assert await sql_count(conn, layer, span) == 9
        finally:
            await api.dispose()

    asyncio.run(run())
