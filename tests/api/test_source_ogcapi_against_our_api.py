"""The OGC API source reading our own `urbis serve`: two independent implementations agree."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest
import shapely

from urbis_core.config import OgcApiSource
from urbis_sync.sources.http import HttpFetcher, RetryPolicy
from urbis_sync.sources.ogcapi import OgcApiReader

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def http() -> Iterator[HttpFetcher]:
    fetcher = HttpFetcher(RetryPolicy(attempts=2, backoff=0.1, timeout=30))
    yield fetcher
    fetcher.close()


def read(
    api: str, http: HttpFetcher, collection: str, key: str, page_size: int
) -> tuple[OgcApiReader, pa.Table, list[shapely.Geometry]]:
    reader = OgcApiReader(
        OgcApiSource(kind="ogcapi", url=api, collection=collection),
        key,
        collection,
        http,
        page_size=page_size,
    )
    batches = list(reader.batches())
    reader.close()
    return (
        reader,
        pa.concat_tables([b.attributes for b in batches]),
        [g for b in batches for g in b.geometries],
    )


def test_municipalities_in_lambert72_with_their_areas(api: str, http: HttpFetcher) -> None:
    reader, table, geometries = read(api, http, "municipalities", "NAT_CODE", page_size=5)
    assert reader.schema.crs is not None and reader.schema.crs.to_epsg() == 31370
    assert reader.stats.pages == 4  # 5 + 5 + 5 + 4 through the server's next links
    codes = [str(c) for c in table.column("NAT_CODE").to_pylist()]
    assert sorted(codes) == [str(n) for n in range(21001, 21020)]
    assert any("numberMatched 19" in note for note in reader.stats.notes)
    areas = table.column("AREA").to_pylist()
    for code, geometry, area in zip(codes, geometries, areas, strict=True):
        assert shapely.area(geometry) == pytest.approx(float(area), abs=1.0), code


def test_addresses_all_arrive_once(api: str, http: HttpFetcher) -> None:
    reader, table, geometries = read(api, http, "addresses", "ID", page_size=250)
    assert reader.stats.pages == 3
    ids = table.column("ID").to_pylist()
    assert len(ids) == len(set(ids)) == 666
    assert {f.name for f in reader.schema.fields} >= {"ID"}
    assert all(g is not None and g.geom_type in ("Point", "MultiPoint") for g in geometries)
    x, y = shapely.get_coordinates(geometries).mean(axis=0)
    assert 140_000 < x < 160_000 and 160_000 < y < 180_000  # Saint-Gilles, in Lambert 72


def test_sources_check_reads_our_collection(api: str) -> None:
    from urbis_core.config import LayerConfig
    from urbis_core.settings import SyncSettings
    from urbis_sync.probe import probe_layer

    layer = LayerConfig.model_validate(
        {
            "source": {"kind": "ogcapi", "url": api, "collection": "municipalities"},
            "key": "NAT_CODE",
        }
    )
    probe = probe_layer("muni", layer, SyncSettings(http_attempts=2, http_backoff=0.1))
    assert probe.ok, probe.error
    facts = dict(probe.facts)
    assert facts["collection"] == (
        f"storageCrs EPSG:31370; OGC API {api}/collections/"
        "municipalities, EPSG:31370, types from queryables, limit 1000"
    )
    assert "NAT_CODE text" in facts["fields"]
    assert facts["numberMatched"] == "19 (the first page's)"
    assert facts["first page"].startswith("19 features read (page size 1000); NAT_CODE: ")
    missing = LayerConfig.model_validate(
        {"source": {"kind": "ogcapi", "url": api, "collection": "nope"}, "key": "ID"}
    )
    failed = probe_layer("nope", missing, SyncSettings(http_attempts=3, http_backoff=0.1))
    assert failed.error is not None and "HTTP 404" in failed.error and "gave up" not in failed.error
