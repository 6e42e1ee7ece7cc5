"""Which filters are one range on one numeric property, and their count by binary search."""

from __future__ import annotations

import itertools
import operator
from typing import Any

import numpy as np
import pytest

from geoapi.column_ranges import ColumnRange, column_range
from geoapi.cql2 import CqlFilter, parse_filter
from geoapi.crs import CRS84_URI, SUPPORTED
from geoapi.query_models import ItemsQuery, PropertyFilter
from tests.support.layers import catalog_entry
from urbis_core.catalog import ColumnInfo

LAYER = catalog_entry(
    "layer",
    (
        ColumnInfo("ID", "bigint"),
        ColumnInfo("AREA", "double precision"),
        ColumnInfo("FLOORS", "integer"),
        ColumnInfo("NAME", "text"),
        ColumnInfo("BUILT", "date"),
    ),
)


def query(text: str, **options: Any) -> ItemsQuery:
    return ItemsQuery(
        limit=10,
        offset=0,
        cql=CqlFilter(parse_filter(text, "cql2-text"), SUPPORTED[CRS84_URI]),
        **options,
    )


@pytest.mark.parametrize(
    "text",
    [
        "AREA > 10",
        "AREA >= 10 AND AREA < 20",
        "10 < AREA",
        "AREA BETWEEN 1 AND 2",
        "AREA = 5.5",
        "FLOORS > 2 AND FLOORS <= 2 AND FLOORS > -3",
        "ID < 9007199254740991",
    ],
)
def test_one_range_on_one_numeric_property(text):
    assert column_range(LAYER, query(text)) is not None


@pytest.mark.parametrize(
    "text",
    [
        "AREA > 10 OR AREA < 2",  # two ranges
        "NOT AREA > 10",
        "AREA <> 10",
        "AREA NOT BETWEEN 1 AND 2",
        "AREA > 10 AND FLOORS > 2",  # two properties
        "NAME > 'a'",  # not a number
        "BUILT > DATE('2020-01-01')",
        "AREA > FLOORS",  # a property on both sides
        "ID > 9007199254740993",  # beyond what float8 holds exactly
        "AREA IS NULL",
        "AREA IN (1, 2)",
        "AREA > 1 AND S_INTERSECTS(geom, POINT(4.35 50.85))",
        "AREA > true",
    ],
)
def test_anything_else_is_counted_in_sql(text):
    assert column_range(LAYER, query(text)) is None


def test_other_selections_are_counted_in_sql():
    assert column_range(LAYER, query("AREA > 1", bbox=(4.3, 50.8, 4.4, 50.9))) is None
    assert column_range(LAYER, query("AREA > 1", equals=(PropertyFilter("NAME", "a"),))) is None
    assert column_range(LAYER, ItemsQuery(limit=10, offset=0)) is None


OPERATORS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "=": operator.eq,
}


def test_counts_agree_with_comparing_every_value():
    values = np.sort(np.array([-3.0, -0.0, 0.0, 0.5, 1.0, 1.0, 1.0, 2.0, 7.25, 7.25, 1e15]))
    points = [-4.0, -3.0, -0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 7.25, 8.0, 1e15, 2e15]
    checked = 0
    for (op1, a), (op2, b) in itertools.product(itertools.product(OPERATORS, points), repeat=2):
        span = ColumnRange("AREA").narrowed(op1, a).narrowed(op2, b)
        expected = sum(1 for v in values if OPERATORS[op1](v, a) and OPERATORS[op2](v, b))
        assert span.count(values) == expected, (op1, a, op2, b)
        checked += 1
    assert checked == (5 * len(points)) ** 2
    assert ColumnRange("AREA").count(values) == len(values)
    assert ColumnRange("AREA").narrowed(">", 0).count(np.empty(0)) == 0


@pytest.mark.parametrize(
    ("text", "sql"),
    [
        ("FLOORS > 2.5", "FLOORS >= 3"),
        ("FLOORS <= 2.5", "FLOORS <= 2"),
        ("2.5 < FLOORS", "FLOORS >= 3"),
        ("FLOORS = -2.5", "FLOORS > -3 AND FLOORS < -2"),
        ("FLOORS BETWEEN 1.5 AND 4.5", "FLOORS BETWEEN 2 AND 4"),
        ("FLOORS > 2", "FLOORS > 2"),
        ("AREA > 2.5", "AREA > 2.5"),  # a float8 column: as written
    ],
)
def test_an_integer_property_is_compared_with_integers(text, sql):
    """So that the property's index serves the comparison (cast to float8, it cannot)."""
    condition = query(text).cql.condition(LAYER, LAYER.table())  # type: ignore[union-attr]
    written = str(condition.compile(compile_kwargs={"literal_binds": True}))
    assert written.replace('"', "").replace("urbis.layer.", "") == sql
