"""numberMatched is remembered per layer version: right again after every sync."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.api.conftest import sync_file_layer
from tests.support.layers import file_layer, geojson_feature, point

pytestmark = pytest.mark.api


def write_layer(folder: Path, names: list[str]) -> Path:
    features = (
        geojson_feature({"CID": f"c{i}", "NAME": name}, point(148000 + i, 169000))
        for i, name in enumerate(names)
    )
    return file_layer(folder, "counted", "CID", features)


def matched(client, **params) -> int:
    response = client.get("/collections/counted/items", params=params)
    assert response.status_code == 200, response.text
    return response.json()["numberMatched"]


def test_filtered_counts_follow_the_data(client, synced_database_url, tmp_path):
    sync_file_layer(synced_database_url, write_layer(tmp_path, ["a", "b", "a"]), "counted")
    for page in range(3):  # the same filter on several pages: one count, remembered
        assert matched(client, filter="NAME = 'a'", limit=1, offset=page) == 2
    assert matched(client, NAME="b") == 1
    before = datetime.now(UTC).isoformat()
    sync_file_layer(
        synced_database_url, write_layer(tmp_path, ["a", "b", "a", "a", "b"]), "counted"
    )
    assert matched(client, filter="NAME = 'a'", limit=1, offset=1) == 3
    assert matched(client, NAME="b") == 2
    assert matched(client, bbox="148000,169000,148002,169000", **{"bbox-crs": "EPSG:31370"}) == 3
    # the same filter as the layer was: a count of its own
    assert matched(client, filter="NAME = 'a'", datetime=before) == 2
    assert matched(client, filter="NAME = 'b'", datetime=before) == 1
    assert matched(client, filter="NAME = 'a'") == 3


def test_a_bbox_page_counts_right_whether_full_short_or_past_the_end(
    client, synced_database_url, tmp_path
):
    sync_file_layer(synced_database_url, write_layer(tmp_path, ["a", "b", "c", "d"]), "counted")
    bbox = {"bbox": "148000,169000,148002,169000", "bbox-crs": "EPSG:31370"}  # 3 of the 4
    for limit in (1, 2, 3, 4, 10):
        for offset in (0, 1, 2, 3, 4, 9):
            body = client.get(
                "/collections/counted/items", params={**bbox, "limit": limit, "offset": offset}
            ).json()
            assert body["numberMatched"] == 3, (limit, offset)
            assert body["numberReturned"] == len(body["features"]) == max(0, min(limit, 3 - offset))
