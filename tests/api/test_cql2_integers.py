"""An integer property against a decimal number: the features a float8 comparison keeps."""

from __future__ import annotations

import operator

import pytest

from tests.api.conftest import sync_file_layer
from tests.support.layers import file_layer, geojson_feature, point

pytestmark = pytest.mark.api

FLOORS = [None, -3, -2, 0, 2, 3, 3, 7, 8, None, 2**60 + 1, -(2**60)]
COMPARE = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "=": operator.eq,
    "<>": operator.ne,
}


def ids(client, text: str) -> set[str]:
    response = client.get("/collections/floored/items", params={"filter": text, "limit": 100})
    assert response.status_code == 200, (text, response.text)
    body = response.json()
    assert body["numberMatched"] == body["numberReturned"], text
    return {f["id"] for f in body["features"]}


def test_decimal_bounds_keep_what_comparing_as_float8_keeps(client, synced_database_url, tmp_path):
    features = (
        geojson_feature({"FID": f"f{i}", "FLOORS": n}, point(148000 + i, 169000))
        for i, n in enumerate(FLOORS)
    )
    sync_file_layer(
        synced_database_url, file_layer(tmp_path, "floored", "FID", features), "floored"
    )
    values = {f"f{i}": n for i, n in enumerate(FLOORS)}
    checked = 0
    for number in (-2.5, -0.5, 2.5, 2.0, 3.0000001, 7.999, 1e6 + 0.5):
        for op, compare in COMPARE.items():
            kept = {k for k, v in values.items() if v is not None and compare(float(v), number)}
            assert ids(client, f"FLOORS {op} {number}") == kept, (op, number)
            mirrored = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
            assert ids(client, f"{number} {mirrored} FLOORS") == kept, (number, mirrored)
            # NULL stays NULL under NOT: a feature without FLOORS is in neither answer
            negated = {k for k, v in values.items() if v is not None} - kept
            assert ids(client, f"NOT (FLOORS {op} {number})") == negated, (op, number)
            checked += 1
        for high in (2.5, 3.0, 7.5, 8.5):
            inside = {k for k, v in values.items() if v is not None and number <= float(v) <= high}
            assert ids(client, f"FLOORS BETWEEN {number} AND {high}") == inside, (number, high)
            outside = {k for k, v in values.items() if v is not None} - inside
            assert ids(client, f"FLOORS NOT BETWEEN {number} AND {high}") == outside
    assert checked == 7 * 6
