"""Query geometries computed once per statement, not once per row.

psycopg prepares a statement after a few runs and PostgreSQL may then plan it once for any
values (a generic plan). In such a plan `ST_Transform(ST_MakeEnvelope($1, ...))` is no longer
folded to a constant: the index condition computes it once, but the exact test after it
(`_ST_Intersects(geom, ...)`, `ST_Distance(geom, ...)`) computes it again for every row. A
scalar subquery is an InitPlan: evaluated once per execution, and still usable by the GiST
index and the KNN operator.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement


def once(expr: ColumnElement[Any]) -> ColumnElement[Any]:
    """`expr` (which must not refer to any table) evaluated once per execution."""
    return sa.select(expr).scalar_subquery()
