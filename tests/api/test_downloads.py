"""CSV and GeoPackage downloads are whole, or a 413 that says why: never a silent part.

Expected answers come from the sample files read independently with geopandas; the large layer
is written by the test, synced by the real sync, and downloaded from a real `urbis serve` whose
memory is watched in /proc while the body streams.
"""

from __future__ import annotations

import csv
import io
import re
import threading
import uuid
from pathlib import Path

import geopandas as gpd
import httpx
import numpy as np
import pyogrio
import pytest
import shapely

from tests.api.conftest import assert_problem, rss_mib, start_server, sync_file_layer
from tests.conftest import SAMPLE_DIR, drop_database, synced_sample_database

pytestmark = pytest.mark.api

ADDR = "/collections/addresses/items"


@pytest.fixture(scope="module")
def addresses() -> gpd.GeoDataFrame:
    frame = gpd.read_file(
        f"/vsizip/{SAMPLE_DIR / 'UrbAdm_AdPt_sample.zip'}/shp/UrbAdm_AdPt.shp",
        columns=["ID", "PZNC", "PW_NAME_FR"],
    )
    frame["ID"] = frame["ID"].astype("int64")
    return frame


def csv_ids(text: str) -> list[int]:
    return [int(row["ID"]) for row in csv.DictReader(io.StringIO(text))]


def gpkg_ids(content: bytes, folder: Path) -> list[int]:
    path = folder / f"{uuid.uuid4().hex}.gpkg"
    path.write_bytes(content)
    return pyogrio.read_dataframe(path, layer="addresses", columns=["ID"])["ID"].tolist()


def test_without_limit_csv_and_geopackage_hold_every_feature(client, addresses, tmp_path):
    everything = sorted(addresses.ID)
    assert len(everything) == 666
    csv_answer = client.get(ADDR, params={"f": "csv"})
    assert csv_answer.status_code == 200, csv_answer.text
    assert csv_ids(csv_answer.text) == everything  # in key order, each once
    assert csv_answer.headers["number-matched"] == csv_answer.headers["number-returned"] == "666"
    assert 'rel="next"' not in csv_answer.headers["link"]
    gpkg = client.get(ADDR, params={"f": "gpkg"})
    assert gpkg.status_code == 200, gpkg.text
    assert sorted(gpkg_ids(gpkg.content, tmp_path)) == everything


def test_without_limit_a_filtered_download_holds_every_match(client, addresses, tmp_path):
    wanted = sorted(addresses[addresses.PZNC == "1060"].ID)
    assert 10 < len(wanted) < 666
    params = {"PZNC": "1060"}
    assert csv_ids(client.get(ADDR, params={**params, "f": "csv"}).text) == wanted
    gpkg = client.get(ADDR, params={**params, "f": "gpkg"})
    assert sorted(gpkg_ids(gpkg.content, tmp_path)) == wanted
    by_filter = client.get(ADDR, params={"filter": "PZNC = '1060'", "f": "csv"})
    assert csv_ids(by_filter.text) == wanted


def test_with_limit_they_hold_that_page(client, addresses, tmp_path):
    everything = sorted(addresses.ID)
    page = client.get(ADDR, params={"f": "csv", "limit": 100, "offset": 600})
    assert csv_ids(page.text) == everything[600:666]
    assert page.headers["number-returned"] == "66"
    assert 'rel="prev"' in page.headers["link"] and 'rel="next"' not in page.headers["link"]
    first = client.get(ADDR, params={"f": "gpkg", "limit": 25})
    assert sorted(gpkg_ids(first.content, tmp_path)) == everything[:25]
    assert 'rel="next"' in first.headers["link"]
    # a page larger than the JSON maximum is not cut: a file holds what it says
    wide = client.get(ADDR, params={"f": "csv", "limit": 20_000})
    assert len(csv_ids(wide.text)) == 666


def test_an_offset_without_limit_gives_the_rest(client, addresses):
    rest = client.get(ADDR, params={"f": "csv", "offset": 650})
    assert csv_ids(rest.text) == sorted(addresses.ID)[650:]
    past = client.get(ADDR, params={"f": "csv", "offset": 5000})
    assert past.status_code == 200 and csv_ids(past.text) == []
    assert past.text.startswith("ID,")  # still a CSV with its header


def test_geojson_pages_by_the_standard(client):
    body = client.get(ADDR).json()
    assert body["numberReturned"] == 10 and body["numberMatched"] == 666
    assert any(link["rel"] == "next" for link in body["links"])
    capped = client.get(ADDR, params={"limit": 50_000}).json()
    assert capped["numberReturned"] == 666  # at most 10,000 a page; all 666 fit


def test_html_pages_say_what_each_link_downloads(client):
    page = client.get("/collections/addresses", params={"f": "html"}).text
    assert re.search(
        r'href="[^"]*/collections/addresses/items\?f=csv">All 666 features as CSV', page
    )
    assert "All 666 features as a GeoPackage" in page
    items = client.get(ADDR, params={"f": "html", "PZNC": "1060"}).text
    assert re.search(r'items\?PZNC=1060&amp;f=csv">All 418 matching features as CSV', items)
    assert "This page (CSV)" in items
    # how GeoJSON pages, and how to read a whole layer into geopandas
    assert "default 10, at most 10,000" in items
    assert 'read_file("OAPIF:http://127.0.0.1:' in items
    doc = client.get("/collections/addresses").json()
    titles = {link["type"]: link.get("title") for link in doc["links"] if link["rel"] == "items"}
    assert titles["text/csv"] == "All 666 features as CSV (WKT geometry)"


def test_the_oapif_way_reads_the_whole_layer_into_geopandas(api):
    frame = gpd.read_file(f"OAPIF:{api}/collections/addresses")
    assert len(frame) == 666 and frame["ID"].is_unique


@pytest.fixture(scope="module")
def small_cap_api(admin_url: str, synced_template_url: str):
    """The sample behind a server whose downloads hold at most 300 features."""
    name = f"cap_{uuid.uuid4().hex[:10]}"
    url = synced_sample_database(admin_url, synced_template_url, name)
    proc, base = start_server(url, URBIS_DOWNLOAD_MAX_FEATURES="300")
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            yield client
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        drop_database(admin_url, name)


@pytest.mark.parametrize("fmt", ["csv", "gpkg"])
def test_past_the_maximum_a_download_is_a_413_that_says_how_to_narrow_it(
    small_cap_api, fmt, addresses
):
    response = small_cap_api.get(ADDR, params={"f": fmt})
    assert_problem(response, 413, "666 features of 'addresses'")
    detail = response.json()["detail"]
    assert "at most 300" in detail and "URBIS_DOWNLOAD_MAX_FEATURES" in detail
    assert "bbox" in detail and "limit=300&offset=0" in detail
    # narrowed by a filter or by a page, it is whole again
    in_1000 = int((addresses.PZNC == "1000").sum())
    assert 100 < in_1000 < 300
    narrowed = small_cap_api.get(ADDR, params={"f": fmt, "PZNC": "1000"})
    assert narrowed.status_code == 200 and narrowed.headers["number-returned"] == str(in_1000)
    paged = small_cap_api.get(ADDR, params={"f": fmt, "limit": 300, "offset": 300})
    assert paged.status_code == 200 and paged.headers["number-returned"] == "300"
    assert_problem(small_cap_api.get(ADDR, params={"f": fmt, "limit": 301}), 413, "301 features")


def test_past_the_maximum_the_pages_say_so(small_cap_api):
    page = small_cap_api.get("/collections/addresses", params={"f": "html"}).text
    assert "the 666 features are more than one download holds (300)" in page
    assert (
        "All 19 features as CSV"
        in small_cap_api.get("/collections/municipalities", params={"f": "html"}).text
    )


# --- constant memory ------------------------------------------------------------------------

BIG_FEATURES = 120_000
NOTE_CHARS = 1_000  # so the CSV is about 120 MB


def big_layer(folder: Path) -> Path:
    rng = np.random.default_rng(11)
    x = rng.uniform(145_000, 152_000, BIG_FEATURES)
    y = rng.uniform(167_000, 173_000, BIG_FEATURES)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz "))
    notes = ["".join(rng.choice(letters, NOTE_CHARS)) for _ in range(200)]
    frame = gpd.GeoDataFrame(
        {
            "BID": np.arange(BIG_FEATURES, dtype="int64"),
            "NOTE": [notes[i % 200] for i in range(BIG_FEATURES)],
        },
        geometry=shapely.points(x, y),
        crs=31370,
    )
    source = folder / "big.gpkg"
    frame.to_file(source, layer="big", driver="GPKG")
    config = folder / "big.yaml"
    config.write_text(
        f"layers:\n  big:\n    source: {{kind: file, path: {source}}}\n    key: BID\n"
    )
    return config


class PeakRss:
    """The largest resident size a process reaches while the block runs (sampled every 10 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = self.peak = rss_mib(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._done.wait(0.01):
            self.peak = max(self.peak, rss_mib(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    @property
    def growth(self) -> float:
        return self.peak - self.before


def download(client: httpx.Client, fmt: str, out: Path) -> None:
    with client.stream("GET", "/collections/big/items", params={"f": fmt}) as answer:
        assert answer.status_code == 200
        with out.open("wb") as sink:
            for chunk in answer.iter_bytes(1 << 20):
                sink.write(chunk)


def test_whole_downloads_stream_in_constant_memory(database_url, tmp_path):
    sync_file_layer(database_url, big_layer(tmp_path), "big")
    proc, base = start_server(database_url)
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            for fmt in ("csv", "gpkg"):  # warm up: modules loaded, pool filled
                client.get("/collections/big/items", params={"f": fmt, "limit": 10})
            with PeakRss(proc.pid) as csv_memory:
                download(client, "csv", tmp_path / "big.csv")
            with (tmp_path / "big.csv").open() as text:
                assert sum(1 for _ in csv.reader(text)) == BIG_FEATURES + 1
            with PeakRss(proc.pid) as gpkg_memory:
                download(client, "gpkg", tmp_path / "out.gpkg")
            assert pyogrio.read_info(tmp_path / "out.gpkg", layer="big")["features"] == BIG_FEATURES
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # the server held a few batches at a time, never the whole download
    csv_mib = (tmp_path / "big.csv").stat().st_size / 2**20
    gpkg_mib = (tmp_path / "out.gpkg").stat().st_size / 2**20
    assert csv_mib > 100 and gpkg_mib > 100
    assert csv_memory.growth < csv_mib / 4, (csv_memory.before, csv_memory.peak, csv_mib)
    assert gpkg_memory.growth < gpkg_mib / 4, (gpkg_memory.before, gpkg_memory.peak, gpkg_mib)
