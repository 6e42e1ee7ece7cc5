"""URBIS download feeds over real HTTP: an Atom feed and its zips served from tmp_path."""

from __future__ import annotations

import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import geopandas as gpd
import pyarrow as pa
import pytest
import shapely

from urbis_core.errors import SourceError
from urbis_sync.sources.feed import (
    FeedEntry,
    entry_marker,
    feed_file_source,
    newest_entry,
    open_feed_source,
)
from urbis_sync.sources.file import FileReader, open_file_source
from urbis_sync.sources.http import HttpFetcher

ZIP_PATH = "/UrbIS/Vector/M8/UrbIS-Vector/GPKG/UrbISVector_31370_GPKG_04000_{}.zip"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    root: Path
    requests: list[str]
    failures: dict[str, list[int]]


class _Handler(BaseHTTPRequestHandler):
    """Serves the files under root by path; answers listed failure statuses first."""

    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = urlsplit(self.path).path
        self.server.requests.append(path)
        file = self.server.root / path.lstrip("/")
        pending = self.server.failures.get(path)
        if pending:
            status, body, kind = pending.pop(0), b"try later", "text/plain"
        elif file.is_file():
            status, body = 200, file.read_bytes()
            kind = "application/zip" if path.endswith(".zip") else "application/atom+xml"
        else:
            status, body, kind = 404, b"not found", "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.root = tmp_path / "site"
    server.root.mkdir()
    server.requests = []
    server.failures = {}
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def base(site: _Server) -> str:
    return f"http://127.0.0.1:{site.server_address[1]}"


def entry_xml(date: str, link: str) -> str:
    return (
        f"<entry><id>https://urbisdownload.datastore.brussels/UrbIS-Vector-{date}</id>"
        f"<title>UrbIS-Vector GPKG {date}</title><updated>{date[:4]}-{date[4:6]}-"
        f"{date[6:]}T00:00:00Z</updated>{link}</entry>"
    )


def atom(*entries: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="fr">'
        "<id>urn:uuid:3d7c1f2e-urbis-vector</id><title>UrbIS-Vector (GPKG)</title>"
        "<updated>2024-06-30T00:00:00Z</updated>" + "".join(entries) + "</feed>"
    )


def product_zip(target: Path) -> None:
    """A zip shaped like the URBIS product: gpkg/UrbISVector_04000.gpkg with two layers."""
    target.parent.mkdir(parents=True, exist_ok=True)
    gpkg = target.parent / "UrbISVector_04000.gpkg"
    municipalities = gpd.GeoDataFrame(
        {
            "NISCODE": ["21004", "21009"],
            "NAMEFRE": ["Bruxelles", "Ixelles"],
            "AREA": [100.0, 400.0],
        },
        geometry=[
            shapely.box(150000, 170000, 150010, 170010),
            shapely.box(151000, 168000, 151020, 168020),
        ],
        crs="EPSG:31370",
    )
    municipalities.to_file(gpkg, layer="Municipalities", engine="pyogrio")
    addresses = gpd.GeoDataFrame(
        {"INSPIRE_ID": ["a1"]}, geometry=[shapely.Point(150005, 170005)], crs="EPSG:31370"
    )
    addresses.to_file(gpkg, layer="Addresses", engine="pyogrio")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(gpkg, "gpkg/UrbISVector_04000.gpkg")
    gpkg.unlink()


def publish(site: _Server) -> str:
    """Three editions, listed out of date order; only the newest zip exists."""
    newest = ZIP_PATH.format("20240601")
    product_zip(site.root / newest.lstrip("/"))
    feed = atom(
        entry_xml("20231201", f'<link rel="enclosure" href="{ZIP_PATH.format("20231201")}"/>'),
        entry_xml(
            "20240601",
            '<link rel="alternate" type="text/html" href="https://example.invalid/page"/>'
            f'<link rel="enclosure" type="application/zip" href="{newest}"/>',
        ),
        entry_xml("20240301", f'<link href="{ZIP_PATH.format("20240301")}"/>'),
    )
    (site.root / "atomfeed").mkdir()
    (site.root / "atomfeed" / "urbis-vector-fr.xml").write_text(feed, encoding="utf-8")
    return f"{base(site)}/atomfeed/urbis-vector-fr.xml"


def test_newest_entry_is_downloaded_once_and_read_by_the_file_reader(
    site: _Server, http: HttpFetcher, tmp_path: Path
) -> None:
    feed_url = publish(site)
    entry = newest_entry(feed_url, http)
    assert entry.updated == datetime(2024, 6, 1, tzinfo=UTC)
    assert entry.title == "UrbIS-Vector GPKG 20240601"
    assert entry.href == base(site) + ZIP_PATH.format("20240601")
    assert entry_marker(entry) == (
        "https://urbisdownload.datastore.brussels/UrbIS-Vector-20240601@2024-06-01T00:00:00+00:00"
    )

    workdir = tmp_path / "work"
    workdir.mkdir()
    with open_feed_source(
        feed_url, "Municipalities", "municipalities", http, workdir, entry=entry
    ) as (got, path):
        assert got == entry
        assert path.parent == workdir and path.name.endswith("_20240601.zip")
        with open_file_source(
            feed_file_source(path, "Municipalities"), "municipalities"
        ) as dataset:
            reader = FileReader(dataset)
            table = pa.concat_tables([b.attributes for b in reader.batches()])
    assert table.column("NISCODE").to_pylist() == ["21004", "21009"]
    assert reader.schema.crs is not None and reader.schema.crs.to_epsg() == 31370
    assert list(workdir.iterdir()) == []  # the zip goes with the run
    assert site.requests.count(ZIP_PATH.format("20240601")) == 1
    assert not any("20231201" in r or "20240301" in r for r in site.requests)


def test_feed_read_inside_the_context_and_download_retried(
    site: _Server, http: HttpFetcher, tmp_path: Path
) -> None:
    feed_url = publish(site)
    zip_path = ZIP_PATH.format("20240601")
    site.failures[zip_path] = [503]
    with open_feed_source(feed_url, "Addresses", "addresses", http, tmp_path) as (entry, path):
        assert entry.href.endswith(zip_path)
        assert zipfile.ZipFile(path).namelist() == ["gpkg/UrbISVector_04000.gpkg"]
        with open_file_source(feed_file_source(path, "Addresses"), "addresses") as dataset:
            assert FileReader(dataset).feature_count == 1
    assert site.requests.count("/atomfeed/urbis-vector-fr.xml") == 1
    assert site.requests.count(zip_path) == 2  # a 503, then the zip
    assert not path.exists()


def test_link_choice_and_relative_hrefs(site: _Server, http: HttpFetcher) -> None:
    cases = {
        "alternate.xml": (
            '<link rel="related" href="x.zip"/><link rel="alternate" href="files/alt.zip"/>',
            "/feeds/files/alt.zip",
        ),
        "default-rel.xml": ('<link rel="related" href="x.zip"/><link href="/d.zip"/>', "/d.zip"),
        "zip.xml": (
            '<link rel="related" href="notes.pdf"/><link rel="related" '
            'href="https://example.invalid/z.ZIP?x=1"/>',
            "https://example.invalid/z.ZIP?x=1",
        ),
    }
    (site.root / "feeds").mkdir()
    for name, (links, _) in cases.items():
        (site.root / "feeds" / name).write_text(atom(entry_xml("20240101", links)))
    for name, (_, expected) in cases.items():
        href = newest_entry(f"{base(site)}/feeds/{name}", http).href
        assert href == (expected if expected.startswith("https") else base(site) + expected)


def test_not_an_atom_feed(site: _Server, http: HttpFetcher) -> None:
    (site.root / "page.xml").write_text("<!DOCTYPE html><html><body>Maintenance<br></body>")
    (site.root / "html.xml").write_text("<html><body>Maintenance</body></html>")
    (site.root / "rss.xml").write_text('<rss version="2.0"><channel/></rss>')
    (site.root / "empty.xml").write_text(atom())
    (site.root / "nolink.xml").write_text(atom(entry_xml("20240101", "")))
    with pytest.raises(
        SourceError,
        match=r"layer 'x': feed http://.*/page.xml: not an Atom "
        r"feed: not XML .*starts with '<!DOCTYPE html>",
    ):
        newest_entry(f"{base(site)}/page.xml", http, layer_id="x")
    with pytest.raises(
        SourceError,
        match=r"html.xml: not an Atom feed: the root element is "
        r"<html>, expected <feed> in namespace "
        r"http://www.w3.org/2005/Atom",
    ):
        newest_entry(f"{base(site)}/html.xml", http)
    with pytest.raises(SourceError, match=r"rss.xml: not an Atom feed: the root element is <rss>"):
        newest_entry(f"{base(site)}/rss.xml", http)
    with pytest.raises(SourceError, match="the feed has no entries"):
        newest_entry(f"{base(site)}/empty.xml", http)
    with pytest.raises(SourceError, match=r"newest entry .* links no download"):
        newest_entry(f"{base(site)}/nolink.xml", http)
    assert site.requests.count("/page.xml") == 1  # not retried: it will not become a feed


def test_download_that_is_not_a_zip_or_missing(
    site: _Server, http: HttpFetcher, tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    (site.root / "files").mkdir()
    (site.root / "files" / "fake.zip").write_text("<html>login</html>")
    entry = FeedEntry("e1", datetime(2024, 1, 1, tzinfo=UTC), "t", f"{base(site)}/files/fake.zip")
    with pytest.raises(SourceError, match=r"layer 'l': download .*/fake.zip: not a zip archive"):
        with open_feed_source("feed", "L", "l", http, workdir, entry=entry):
            pass
    gone = FeedEntry("e2", entry.updated, "t", f"{base(site)}/files/gone.zip")
    with pytest.raises(SourceError, match=r"download .*gone.zip: HTTP 404 from"):
        with open_feed_source("feed", "L", "l", http, workdir, entry=gone):
            pass
    assert list(workdir.iterdir()) == []  # no partial download left behind


def test_sources_check_reads_the_feed_and_downloads_nothing(site: _Server) -> None:
    from urbis_core.config import LayerConfig
    from urbis_core.settings import SyncSettings
    from urbis_sync.probe import probe_layer

    feed_url = publish(site)
    layer = LayerConfig.model_validate(
        {"source": {"kind": "feed", "url": feed_url, "layer": "Municipalities"}, "key": "NISCODE"}
    )
    probe = probe_layer("municipalities", layer, SyncSettings(http_attempts=1))
    assert probe.ok, probe.error
    newest = f"{base(site)}{ZIP_PATH.format('20240601')}"
    assert probe.facts == [
        (
            "newest entry",
            "UrbIS-Vector GPKG 20240601 (https://urbisdownload.datastore.brussels/"
            "UrbIS-Vector-20240601), updated 2024-06-01T00:00:00+00:00",
        ),
        ("download", f"{newest} (not downloaded; layer Municipalities)"),
    ]
    assert site.requests == ["/atomfeed/urbis-vector-fr.xml"]
