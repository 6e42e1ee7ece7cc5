"""numberMatched is remembered per layer version: right again after every sync."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.conftest import sync_file_layer

pytestmark = pytest.mark.api


def write_layer(folder: Path, names: list[str]) -> Path:
    source = folder / "counted.geojson"
    source.write_text(json.dumps({
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::31370"}},
        "features": [{"type": "Feature", "properties": {"CID": f"c{i}", "NAME": name},
                      "geometry": {"type": "Point", "coordinates": [148000 + i, 169000]}}
                     for i, name in enumerate(names)]}))
    config = folder / "counted.yaml"
    config.write_text(f"layers:\n  counted:\n    source: {{kind: file, path: {source}}}\n"
                      "    key: CID\n")
    return config


def matched(client, **params) -> int:
    response = client.get("/collections/counted/items", params=params)
    assert response.status_code == 200, response.text
    return response.json()["numberMatched"]


def test_filtered_counts_follow_the_data(client, synced_database_url, tmp_path):
    sync_file_layer(synced_database_url, write_layer(tmp_path, ["a", "b", "a"]), "counted")
    for page in range(3):  # the same filter on several pages: one count, remembered
        assert matched(client, filter="NAME = 'a'", limit=1, offset=page) == 2
    assert matched(client, NAME="b") == 1
    sync_file_layer(synced_database_url, write_layer(tmp_path, ["a", "b", "a", "a", "b"]),
                    "counted")
    assert matched(client, filter="NAME = 'a'", limit=1, offset=1) == 3
    assert matched(client, NAME="b") == 2
    assert matched(client, bbox="148000,169000,148002,169000", **{"bbox-crs": "EPSG:31370"}) == 3
