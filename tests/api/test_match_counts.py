"""numberMatched is remembered per layer version: right again after every sync."""

from __future__ import annotations

import itertools
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


def test_range_filters_count_right_once_counted_from_sorted_values(
    client, synced_database_url, tmp_path
):
    """After a few counts in SQL, ranges on one number are counted from its sorted values."""

    def write(sizes: list[float | None]) -> Path:
        features = (
            geojson_feature({"SID": f"s{i}", "SIZE": size}, point(148000 + i, 169000))
            for i, size in enumerate(sizes)
        )
        return file_layer(tmp_path, "sized", "SID", features)

    def expected(sizes: list[float | None], low: float, high: float) -> int:
        return sum(1 for s in sizes if s is not None and low < s <= high)

    sizes = [None, 1.5, 2.0, 2.0, 3.0, None, 7.5, 9.0, 9.0, 12.0]
    for changed in (False, True):
        if changed:
            sizes = [s if s != 9.0 else 8.0 for s in sizes] + [2.0, 100.0]
        sync_file_layer(synced_database_url, write(sizes), "sized")
        for low, high in itertools.product((0, 1.5, 2.0, 8.0, 9.0), (2.0, 9.0, 11.0, 1000)):
            for text in (f"SIZE > {low} AND SIZE <= {high}", f"{high} >= SIZE AND {low} < SIZE"):
                response = client.get("/collections/sized/items", params={"filter": text})
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["numberMatched"] == expected(sizes, low, high), (changed, text)
                assert body["numberReturned"] == body["numberMatched"]
