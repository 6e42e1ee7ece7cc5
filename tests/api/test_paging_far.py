"""Pages far into a layer (offset >= 1000: keys first, then rows) equal plain paging."""

from __future__ import annotations

import pytest

from tests.api.conftest import sync_file_layer
from tests.support.layers import file_layer, geojson_feature, point

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def many(client, synced_database_url, tmp_path_factory) -> list[dict]:
    """2,500 points with a key and a NAME that repeats (so sorting on it needs the key too)."""
    folder = tmp_path_factory.mktemp("many")
    rows = [
        {
            "KID": f"k{(i * 7919) % 2500:04d}",
            "NAME": f"n{i % 37:02d}",
            "xy": [147000 + i % 50 * 10, 168000 + i // 50 * 10],
        }
        for i in range(2500)
    ]
    features = (
        geojson_feature({"KID": r["KID"], "NAME": r["NAME"]}, point(*r["xy"])) for r in rows
    )
    config = file_layer(folder, "many", "KID", features)
    sync_file_layer(synced_database_url, config, "many")
    return rows


def ids(client, **params) -> list[str]:
    response = client.get("/collections/many/items", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    return [f["id"] for f in response.json()["features"]]


def test_far_pages_follow_the_key_order(client, many):
    expected = sorted(r["KID"] for r in many)
    pages = [ids(client, offset=offset) for offset in (0, 1000, 2000, 2400)]
    assert pages[0] + pages[1] + pages[2] == expected
    assert pages[3] == expected[2400:]


def test_far_pages_follow_sortby_and_filters(client, many):
    chosen = [r for r in many if r["NAME"] >= "n20"]
    assert len(chosen) > 1000
    ascending = [r["KID"] for r in sorted(chosen, key=lambda r: (r["NAME"], r["KID"]))]
    # NAME descending, the key (ascending) breaking ties: a stable sort over a key sort
    descending = [
        r["KID"]
        for r in sorted(
            sorted(chosen, key=lambda r: r["KID"]), key=lambda r: r["NAME"], reverse=True
        )
    ]
    params = {"filter": "NAME >= 'n20'"}
    assert ids(client, offset=1000, sortby="NAME", **params) == ascending[1000:2000]
    assert ids(client, offset=1000, sortby="-NAME", **params) == descending[1000:2000]
