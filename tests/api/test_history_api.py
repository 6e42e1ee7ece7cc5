"""The layer as it was, what changed, and what was set aside: history over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import geopandas as gpd
import httpx
import pytest
import sqlalchemy as sa

from tests.api.conftest import start_server
from tests.conftest import TEMPLATE_DB, create_database, drop_database
from tests.db.test_reconcile import Layer, legacy_municipalities
from tests.support.layers import geojson_feature, point, write_geojson
from urbis_core.config import load_config
from urbis_core.db import create_sync_engine
from urbis_sync.run import sync_layer

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def history(admin_url, template_url, tmp_path_factory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("history")
    name = f"hist_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, name, template=TEMPLATE_DB)
    engine = create_sync_engine(url)
    frame = legacy_municipalities(tmp)
    layer = Layer(tmp, frame, "NAT_CODE")
    layer.sync(engine)
    with engine.connect() as conn:
        first = conn.execute(sa.text("SELECT max(valid_from) FROM urbis.muni")).scalar()
    changed = frame.copy()
    changed.loc[changed["NAT_CODE"] == "21007", "NAME_FRE"] = "Forest (renamed)"
    changed = changed[changed["NAT_CODE"] != "21011"]
    newcomer = frame[frame["NAT_CODE"] == "21013"].copy()
    newcomer["NAT_CODE"] = "21099"
    newcomer["geometry"] = newcomer.translate(xoff=30_000)
    layer.write(gpd.GeoDataFrame(gpd.pd.concat([changed, newcomer], ignore_index=True), crs=31370))
    layer.sync(engine)
    with engine.connect() as conn:
        second = conn.execute(sa.text("SELECT max(valid_from) FROM urbis.muni")).scalar()
    points = write_geojson(
        Path(tmp) / "p.geojson",
        [
            geojson_feature({"K": "a"}, point(148000, 169000)),
            geojson_feature({"K": None}, point(148001, 169001)),
        ],
    )
    config = Path(tmp) / "points.yaml"
    config.write_text(
        f"layers:\n  points:\n    source: {{kind: file, path: {points}}}\n    key: K\n"
    )
    assert sync_layer(engine, load_config(config), "points").status == "success"
    engine.dispose()
    proc, base = start_server(url)
    with httpx.Client(base_url=base, timeout=30) as client:
        yield {"client": client, "first": first, "second": second}
    proc.terminate()
    proc.wait(timeout=10)
    drop_database(admin_url, name)


def names_at(client: httpx.Client, instant: str) -> dict[str, str]:
    body = client.get("/collections/muni/items", params={"datetime": instant, "limit": 100}).json()
    assert body["numberMatched"] == len(body["features"])
    return {f["id"]: f["properties"]["NAME_FRE"] for f in body["features"]}


def test_items_as_they_were(history):
    client = history["client"]
    between = (history["first"] + (history["second"] - history["first"]) / 2).isoformat()
    before = names_at(client, between)
    assert len(before) == 19
    assert before["21007"] == "Forest" and before["21011"] == "Koekelberg"
    assert "21099" not in before
    now = names_at(client, (history["second"] + timedelta(seconds=1)).isoformat())
    assert len(now) == 19
    assert now["21007"] == "Forest (renamed)" and "21011" not in now and "21099" in now
    assert names_at(client, (history["first"] - timedelta(days=1)).isoformat()) == {}
    # The same instant written as a plain date works too (midnight UTC).
    assert (
        client.get("/collections/muni/items", params={"datetime": "2000-01-01"}).json()[
            "numberMatched"
        ]
        == 0
    )


def test_changes_since(history):
    client = history["client"]
    between = (history["first"] + (history["second"] - history["first"]) / 2).isoformat()
    body = client.get("/collections/muni/changes", params={"since": between}).json()
    events = {(c["id"], c["op"]) for c in body["changes"]}
    assert events == {("21007", "update"), ("21011", "delete"), ("21099", "insert")}
    assert {c["time"] for c in body["changes"]} == {history["second"].isoformat()}
    everything = client.get(
        "/collections/muni/changes",
        params={"since": (history["first"] - timedelta(seconds=1)).isoformat(), "limit": 100},
    ).json()
    ops = [c["op"] for c in everything["changes"]]
    assert ops.count("insert") == 20 and ops.count("update") == 1 and ops.count("delete") == 1


def test_one_features_changes_and_the_link_to_them(history):
    client = history["client"]
    epoch = "1970-01-01T00:00:00Z"

    def of(key: str, **params: object) -> dict:
        return client.get(
            "/collections/muni/changes", params={"since": epoch, "key": key, **params}
        ).json()

    first, second = history["first"].isoformat(), history["second"].isoformat()
    forest = [(c["op"], c["time"]) for c in of("21007")["changes"]]
    assert forest == [("insert", first), ("update", second)]
    assert [c["op"] for c in of("21011")["changes"]] == ["insert", "delete"]
    assert [c["op"] for c in of("21099")["changes"]] == ["insert"]
    assert of("21098")["changes"] == []  # a key that never was: nothing, not another's
    # one at a time: the next page keeps to the same feature
    page = of("21007", limit=1)
    (following,) = [lk["href"] for lk in page["links"] if lk["rel"] == "next"]
    assert "key=21007" in following
    assert [c["op"] for c in client.get(following).json()["changes"]] == ["update"]
    # the feature says where its history is
    links = client.get("/collections/muni/items/21007").json()["links"]
    (history_link,) = [lk["href"] for lk in links if lk["rel"] == "version-history"]
    assert [c["op"] for c in client.get(history_link).json()["changes"]] == ["insert", "update"]
    page = client.get("/collections/muni/items/21007", params={"f": "html", "lang": "fr"}).text
    assert "Ses modifications" in page and "key=21007" in page


def test_quarantine_lists_what_was_set_aside(history):
    body = history["client"].get("/collections/points/quarantine").json()
    assert body["numberMatched"] == 1
    feature = body["features"][0]
    assert feature["properties"]["reason"] == "no value for key K"
    assert feature["geometry"]["type"] == "Point"
    assert history["client"].get("/collections/muni/quarantine").json()["numberMatched"] == 0


@pytest.mark.parametrize(
    "path, words",
    [
        ("/collections/muni/items?datetime=yesterday", "not an RFC 3339"),
        ("/collections/muni/items?datetime=2026-01-01T00:00:00Z/..", "interval"),
        ("/collections/muni/items?datetime=2026-01-01T00:00:00", "time zone"),
        ("/collections/muni/changes", "since"),
        ("/collections/muni/changes?since=soon", "not an RFC 3339"),
        ("/collections/nope/quarantine", "no collection"),
    ],
)
def test_bad_history_requests(history, path, words):
    response = history["client"].get(path)
    assert response.status_code in (400, 404)
    assert words in response.json()["detail"]
