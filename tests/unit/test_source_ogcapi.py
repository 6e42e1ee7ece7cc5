"""OGC API Features source over real HTTP: a loopback server serving JSON written in tmp_path."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pytest
import shapely
from pyproj import CRS

from urbis_core.config import OgcApiSource
from urbis_core.errors import SourceError
from urbis_sync.fingerprint import row_fingerprints
from urbis_sync.normalize import Normalizer
from urbis_sync.sources.http import HttpFetcher, RetryPolicy
from urbis_sync.sources.ogcapi import OgcApiReader, crs_identity, sql_type_from_json_schema

EPSG_31370 = "http://www.opengis.net/def/crs/EPSG/0/31370"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"


@dataclass
class Route:
    file: Path
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    failures: list[int] = field(default_factory=list)  # statuses answered before the file


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[tuple[str, str], Route]
    requests: list[tuple[str, dict[str, str]]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.server.requests.append((parts.path, query))
        route = self.server.routes.get((parts.path, query.get("page", "1")))
        if route is None:
            self._answer(404, b'{"code": "NotFound"}', "application/json", {})
        elif route.failures:
            self._answer(route.failures.pop(0), b"busy", "text/plain", {})
        else:
            self._answer(200, route.file.read_bytes(), route.content_type, route.headers)

    def _answer(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class FakeApi:
    """Routes (path, ?page=) to JSON files written in a folder; records every request."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.routes = {}
        self.server.requests = []
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/ogc"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def serve(self, path: str, doc: Any, page: str = "1", **route: Any) -> None:
        file = self.folder / f"{path.strip('/').replace('/', '_')}.{page}.json"
        file.write_text(json.dumps(doc), encoding="utf-8")
        self.server.routes[(f"/ogc{path}", page)] = Route(file, **route)

    def requests_to(self, path: str) -> list[dict[str, str]]:
        return [query for p, query in self.server.requests if p == f"/ogc{path}"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeApi]:
    api = FakeApi(tmp_path)
    yield api
    api.close()


def square(x: float, y: float, size: float) -> dict[str, Any]:
    ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


def feature(fid: str, geometry: dict[str, Any] | None, **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "id": fid, "geometry": geometry, "properties": properties}


def page(
    features: list[dict[str, Any]],
    matched: int | None,
    next_href: str | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": features,
        "numberReturned": len(features),
    }
    if matched is not None:
        doc["numberMatched"] = matched
    doc["links"] = [
        {"rel": "self", "type": "application/geo+json", "href": "items"},
        {"rel": "alternate", "type": "text/html", "href": "items?f=html"},
    ]
    if next_href is not None:
        doc["links"] += [
            {"rel": "next", "type": "text/html", "href": next_href + "&f=html"},
            {"rel": "next", "type": "application/geo+json", "href": next_href},
        ]
    return doc


def collection(
    name: str, crs: list[str] | None = None, storage: str | None = None, queryables: bool = False
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": name,
        "itemType": "feature",
        "links": [{"rel": "items", "type": "application/geo+json", "href": f"{name}/items"}],
    }
    if crs is not None:
        doc["crs"] = crs
    if storage is not None:
        doc["storageCrs"] = storage
    if queryables:
        doc["links"] += [
            {"rel": QUERYABLES_REL, "type": "text/html", "href": f"{name}/queryables?f=html"},
            {
                "rel": QUERYABLES_REL,
                "type": "application/schema+json",
                "href": f"{name}/queryables",
            },
        ]
    return doc


def read_all(reader: OgcApiReader) -> tuple[pa.Table, list[Any]]:
    batches = list(reader.batches())
    if not batches:
        return pa.table({}), []
    table = pa.concat_tables([b.attributes for b in batches])
    return table, [g for b in batches for g in b.geometries]


def parcels(fake: FakeApi) -> list[dict[str, Any]]:
    """Three pages of parcels in Lambert 72, typed by queryables, with mixed next links."""
    fake.serve(
        "/collections/parcels",
        collection("parcels", [CRS84, EPSG_31370], EPSG_31370, queryables=True),
    )
    fake.serve(
        "/collections/parcels/queryables",
        {
            "$schema": "https://json-schema.org/draft/2019-09/schema",
            "type": "object",
            "properties": {
                "geometry": {"format": "geometry-multipolygon", "x-ogc-role": "primary-geometry"},
                "CAPAKEY": {"type": "string"},
                "AREA": {"type": "number"},
                "FLOORS": {"type": "integer"},
                "BUILT": {"type": "string", "format": "date"},
                "CHECKED": {"type": ["string", "null"], "format": "date-time"},
                "PUBLIC": {"type": "boolean"},
                "NOTE": {"type": "string"},
            },
        },
    )
    features = [
        feature(
            f"p{i}",
            square(150000.25 + 100 * i, 170000.125, 10 + i),
            CAPAKEY=f"21001A{i:04d}",
            AREA=(10 + i) ** 2,
            FLOORS=i,
            BUILT=f"199{i}-0{i + 1}-1{i}",
            CHECKED="2024-05-01T10:00:00Z",
            PUBLIC=i % 2 == 0,
        )
        for i in range(5)
    ]
    relative = "items?page=2&limit=2&crs=" + EPSG_31370
    absolute = f"{fake.base}/collections/parcels/items?page=3&limit=2&crs={EPSG_31370}"
    crs_header = {"Content-Crs": f"<{EPSG_31370}>"}
    fake.serve(
        "/collections/parcels/items",
        page(features[:2], 5, relative),
        content_type="application/geo+json",
        headers=crs_header,
    )
    fake.serve(
        "/collections/parcels/items",
        page(features[2:4], 5, absolute),
        page="2",
        content_type="application/geo+json",
        headers=crs_header,
    )
    fake.serve(
        "/collections/parcels/items",
        page(features[4:], 5),
        page="3",
        content_type="application/geo+json",
        headers=crs_header,
    )
    return features


def test_three_pages_in_lambert72_typed_by_queryables(fake: FakeApi, http: HttpFetcher) -> None:
    features = parcels(fake)
    source = OgcApiSource(kind="ogcapi", url=fake.base + "/", collection="parcels")
    reader = OgcApiReader(source, "CAPAKEY", "parcels", http, page_size=2)
    assert {f.name: f.sql_type for f in reader.schema.fields} == {
        "CAPAKEY": "text",
        "AREA": "double precision",
        "FLOORS": "bigint",
        "BUILT": "date",
        "CHECKED": "timestamptz",
        "PUBLIC": "boolean",
        "NOTE": "text",
    }
    assert reader.schema.crs is not None and reader.schema.crs.to_epsg() == 31370
    table, geometries = read_all(reader)

    first = fake.requests_to("/collections/parcels/items")[0]
    assert first == {"limit": "2", "crs": EPSG_31370}
    assert [q.get("page", "1") for q in fake.requests_to("/collections/parcels/items")] == [
        "1",
        "2",
        "3",
    ]
    assert reader.stats.pages == 3
    assert table.column_names == reader.schema.names
    assert table.column("CAPAKEY").to_pylist() == [f"21001A{i:04d}" for i in range(5)]
    assert table.column("NOTE").null_count == 5  # declared, never sent
    assert table.column("BUILT").to_pylist()[1] == "1991-02-11"  # the server's text, typed later
    # Coordinates are kept exactly as served in Lambert 72 (no lon/lat round trip).
    for served, got in zip(features, geometries, strict=True):
        assert shapely.get_coordinates(got).tolist() == served["geometry"]["coordinates"][0]
    assert [round(g.area, 6) for g in geometries] == table.column("AREA").to_pylist()

    # The batches are what the run needs: the normalizer turns them into COPY rows.
    normalizer = Normalizer(reader.schema, "CAPAKEY", reader.schema.crs, "parcels")
    batch = next(iter(OgcApiReader(source, "CAPAKEY", "parcels", http, page_size=2).batches()))
    fingerprints = row_fingerprints(batch.attributes, batch.wkb)
    prepared = normalizer.prepare(batch, fingerprints)
    assert prepared.rows == 2 and b"21001A0000" in prepared.csv


def test_collection_without_lambert72_is_read_as_crs84_with_inferred_types(
    fake: FakeApi, http: HttpFetcher
) -> None:
    fake.serve(
        "/collections/stops",
        collection("stops", [CRS84, "http://www.opengis.net/def/crs/EPSG/0/4326"]),
    )
    served = [
        feature(
            f"s{i}",
            {"type": "Point", "coordinates": [4.35 + i / 100, 50.84]},
            STOP_ID=i + 1,
            NAME=f"Stop {i}",
            HEIGHT=float(i) + 0.5,
            OPENED="2020-01-0" + str(i + 1),
            LINES=["3", "4"],
            META={"a": i},
        )
        for i in range(3)
    ]
    fake.serve("/collections/stops/items", page(served, 3))
    source = OgcApiSource(kind="ogcapi", url=fake.base, collection="stops")
    reader = OgcApiReader(source, "STOP_ID", "stops", http)
    assert "crs" not in fake.requests_to("/collections/stops/items")[0]
    assert fake.requests_to("/collections/stops/items")[0]["limit"] == "1000"
    assert reader.schema.crs is not None and reader.schema.crs.equals(CRS("OGC:CRS84"))
    assert reader.schema.crs.axis_info[0].direction == "east"  # lon/lat
    assert {f.name: f.sql_type for f in reader.schema.fields} == {
        "STOP_ID": "bigint",
        "NAME": "text",
        "HEIGHT": "double precision",
        "OPENED": "date",
        "LINES": "text",
        "META": "text",
    }  # no "id": GDAL's column for the feature id is dropped
    table, geometries = read_all(reader)
    assert [shapely.get_coordinates(g).tolist()[0] for g in geometries] == [
        f["geometry"]["coordinates"] for f in served
    ]
    assert json.loads(table.column("LINES").to_pylist()[0]) == ["3", "4"]

    normalizer = Normalizer(reader.schema, "STOP_ID", reader.schema.crs, "stops")
    again = OgcApiReader(source, "STOP_ID", "stops", http)
    batch = next(iter(again.batches()))
    prepared = normalizer.prepare(batch, row_fingerprints(batch.attributes, batch.wkb))
    assert prepared.rows == 3
    normalizer.check_plausible()  # lon/lat became Lambert 72 inside Belgium


def test_number_matched_must_equal_the_distinct_keys_received(
    fake: FakeApi, http: HttpFetcher
) -> None:
    fake.serve("/collections/short", collection("short"))
    served = [
        feature(str(i), {"type": "Point", "coordinates": [4.35, 50.84]}, K=i) for i in range(3)
    ]
    fake.serve("/collections/short/items", page(served[:2], 4, "items?page=2"))
    # Page 2 repeats key 1 (an offset that slipped): 4 features arrive, 3 distinct.
    fake.serve("/collections/short/items", page(served[1:], 4), page="2")
    reader = OgcApiReader(
        OgcApiSource(kind="ogcapi", url=fake.base, collection="short"), "K", "short", http
    )
    with pytest.raises(
        SourceError,
        match=r"layer 'short'.*announced 4 features.*numberMatched"
        r".*4 arrived with 3 distinct keys.*nothing was applied",
    ):
        list(reader.batches())


def test_empty_collection_yields_nothing_and_succeeds(fake: FakeApi, http: HttpFetcher) -> None:
    fake.serve("/collections/none", collection("none", [CRS84, EPSG_31370]))
    fake.serve("/collections/none/items", page([], 0))
    reader = OgcApiReader(
        OgcApiSource(kind="ogcapi", url=fake.base, collection="none"), "K", "none", http
    )
    assert list(reader.batches()) == []
    assert reader.schema.names == ["K"]
    assert reader.stats.pages == 1
    reader.close()


def test_server_error_is_retried(fake: FakeApi, http: HttpFetcher) -> None:
    fake.serve("/collections/flaky", collection("flaky"))
    served = [
        feature(str(i), {"type": "Point", "coordinates": [4.35, 50.84]}, K=i) for i in range(3)
    ]
    fake.serve("/collections/flaky/items", page(served[:2], 3, "items?page=2"))
    fake.serve("/collections/flaky/items", page(served[2:], 3), page="2", failures=[500])
    reader = OgcApiReader(
        OgcApiSource(kind="ogcapi", url=fake.base, collection="flaky"), "K", "flaky", http
    )
    table, _ = read_all(reader)
    assert table.column("K").to_pylist() == [0, 1, 2]
    assert [q.get("page", "1") for q in fake.requests_to("/collections/flaky/items")] == [
        "1",
        "2",
        "2",
    ]


def test_failures_name_the_layer_and_the_url(fake: FakeApi) -> None:
    fake.serve("/collections/down", collection("down"))
    fake.serve("/collections/down/items", page([], 0), failures=[503, 503])
    impatient = HttpFetcher(RetryPolicy(attempts=2, backoff=0.01, timeout=5))
    try:
        with pytest.raises(
            SourceError,
            match=r"layer 'down': OGC API items page 1 \(http://"
            r"127\.0\.0\.1:\d+/ogc/collections/down/items\)"
            r": gave up after 2 attempts: HTTP 503",
        ):
            OgcApiReader(
                OgcApiSource(kind="ogcapi", url=fake.base, collection="down"),
                "K",
                "down",
                impatient,
            )
        with pytest.raises(SourceError, match=r"layer 'gone'.*collections/gone.*HTTP 404"):
            OgcApiReader(
                OgcApiSource(kind="ogcapi", url=fake.base, collection="gone"),
                "K",
                "gone",
                impatient,
            )
    finally:
        impatient.close()


def test_a_server_that_ignores_crs_is_caught(fake: FakeApi, http: HttpFetcher) -> None:
    fake.serve("/collections/liar", collection("liar", [CRS84, EPSG_31370]))
    served = [feature("1", {"type": "Point", "coordinates": [4.35, 50.84]}, K=1)]
    fake.serve("/collections/liar/items", page(served, 1), headers={"Content-Crs": f"<{CRS84}>"})
    with pytest.raises(SourceError, match=r"sent <.*CRS84> coordinates but EPSG:31370"):
        OgcApiReader(
            OgcApiSource(kind="ogcapi", url=fake.base, collection="liar"), "K", "liar", http
        )


def test_configured_srid_the_collection_cannot_serve(fake: FakeApi, http: HttpFetcher) -> None:
    fake.serve("/collections/c", collection("c", [CRS84]))
    with pytest.raises(SourceError, match=r"source.srid is 31370 but collection 'c'.*CRS84"):
        OgcApiReader(
            OgcApiSource(kind="ogcapi", url=fake.base, collection="c", srid=31370), "K", "c", http
        )


def test_key_missing_from_the_properties(fake: FakeApi, http: HttpFetcher) -> None:
    fake.serve("/collections/c", collection("c"))
    fake.serve(
        "/collections/c/items",
        page([feature("1", {"type": "Point", "coordinates": [4.35, 50.84]}, A=1)], 1),
    )
    with pytest.raises(SourceError, match=r"key field 'K' is not among the properties.*\(A\)"):
        OgcApiReader(OgcApiSource(kind="ogcapi", url=fake.base, collection="c"), "K", "c", http)


def test_crs_and_type_helpers() -> None:
    assert crs_identity("<http://www.opengis.net/def/crs/EPSG/0/31370>") == "EPSG:31370"
    assert crs_identity("urn:ogc:def:crs:EPSG::31370") == "EPSG:31370"
    assert crs_identity("[OGC:CRS84]") == crs_identity(CRS84) == "CRS84"
    assert sql_type_from_json_schema({"$ref": "https://geojson.org/schema/Point.json"}) is None
    assert sql_type_from_json_schema({"type": ["integer", "null"]}) == "bigint"
    assert sql_type_from_json_schema({"type": "string", "format": "time"}) == "time"
    assert sql_type_from_json_schema({"type": "array", "items": {"type": "string"}}) == "text"
    assert sql_type_from_json_schema({"enum": ["a", "b"]}) == "text"
