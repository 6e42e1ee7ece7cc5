"""Sync from a real WFS 2.0 server (MapServer), paging, both formats, and faults on the way.

For each fault the live layer must afterwards be exactly the last good state or the new one,
and the run row must say what happened.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from urllib.parse import parse_qsl

import geopandas as gpd
import psycopg
import pytest
import sqlalchemy as sa
from shapely.geometry import Polygon

from tests.conftest import wait_for_blocked_update
from tests.support.mapserver import (
    MapServerWfs,
    WfsLayer,
    write_sample_address_points,
    write_sample_municipalities,
)
from urbis_core.config import load_config
from urbis_core.db import create_sync_engine
from urbis_core.settings import SyncSettings
from urbis_sync.run import sync_layer

FAST_RETRIES = SyncSettings(http_attempts=3, http_backoff=0.05, http_timeout=5)


def rows(engine: sa.Engine, query: str) -> list:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(query)))


def live_state(engine: sa.Engine, table: str, key: str) -> list:
    return rows(engine, f'SELECT "{key}", row_hash FROM urbis.{table} ORDER BY 1')


def live_content(engine: sa.Engine, table: str, key: str) -> list:
    """Every stored value but the source fingerprint (which follows the source's bytes)."""
    return rows(
        engine,
        f"SELECT \"{key}\", valid_from, (to_jsonb(t) - 'row_hash' - 'geom'), "
        f"ST_AsEWKB(geom) FROM urbis.{table} t ORDER BY 1",
    )


def write_config(
    tmp_path: Path,
    url: str,
    typename: str,
    key: str,
    fmt: str | None = None,
    layer_id: str = "muni",
    extra: str = "",
) -> Path:
    """A one-layer config; `fmt` None leaves the format to the server's capabilities."""
    path = tmp_path / f"{layer_id}-{fmt or 'auto'}.yaml"
    forced = f", format: {fmt}" if fmt else ""
    path.write_text(
        f"layers:\n  {layer_id}:\n    source: {{kind: wfs, url: '{url}', "
        f"typename: '{typename}'{forced}{extra}}}\n    key: {key}\n"
    )
    return path


@pytest.fixture
def municipalities_wfs(tmp_path):
    gpkg = write_sample_municipalities(tmp_path / "municipalities.gpkg")
    with MapServerWfs(
        [WfsLayer("Municipalities", gpkg, key="NAT_CODE")], tmp_path / "ms", page_size=5
    ) as wfs:
        yield wfs


def sync(engine, config_path: Path, layer_id: str = "muni"):
    return sync_layer(engine, load_config(config_path), layer_id, FAST_RETRIES)


def sync_with_faults(engine, wfs, tmp_path: Path, *faults: str):
    """A run of the municipalities from `wfs`, its GetFeature requests meeting `faults`."""
    config = write_config(tmp_path, wfs.url, "urbis:Municipalities", "NAT_CODE")
    wfs.inject(*faults)
    return sync(engine, config)


@pytest.mark.parametrize("fmt", ["geojson", "gml"])
def test_pages_through_the_whole_layer(engine, municipalities_wfs, tmp_path, fmt):
    config = write_config(tmp_path, municipalities_wfs.url, "urbis:Municipalities", "NAT_CODE", fmt)
    report = sync(engine, config)
    assert report.status == "success", report.error
    assert (report.fetched, report.inserted) == (19, 19)
    pages = [q for q in municipalities_wfs.getfeature_requests]
    assert len(pages) == 5  # 4 pages of at most 5 (the server's CountDefault) + the empty one
    assert all("SORTBY=NAT_CODE" in q for q in pages)
    worst = rows(engine, 'SELECT max(abs(ST_Area(geom) - "AREA")) FROM urbis.muni')[0][0]
    assert worst < 1.0
    types = {
        c["name"]: c["type"]
        for c in rows(engine, "SELECT columns FROM urbis_meta.layer_catalog")[0][0]
    }
    assert types["NAT_CODE"] == "text" and types["ID"] == "bigint"
    assert types["BEGIN_LIFE"] == "timestamptz"
    begin = rows(engine, 'SELECT "BEGIN_LIFE" FROM urbis.muni WHERE "NAT_CODE" = \'21009\'')
    assert begin[0][0] is not None


def test_geojson_and_gml_give_the_same_rows(engine, municipalities_wfs, tmp_path):
    url = municipalities_wfs.url
    assert (
        sync(
            engine, write_config(tmp_path, url, "urbis:Municipalities", "NAT_CODE", "geojson")
        ).status
        == "success"
    )
    before = live_content(engine, "muni", "NAT_CODE")
    again = sync(engine, write_config(tmp_path, url, "urbis:Municipalities", "NAT_CODE", "gml"))
    assert (again.status, again.inserted, again.updated, again.deleted) == ("success", 0, 0, 0)
    assert live_content(engine, "muni", "NAT_CODE") == before
    assert rows(engine, "SELECT count(*) FROM urbis_history.muni")[0][0] == 0


def test_many_pages_of_addresses(engine, tmp_path):
    gpkg = write_sample_address_points(tmp_path / "addresses.gpkg")
    with MapServerWfs(
        [WfsLayer("AddressPoints", gpkg, key="ID", geometry_type="POINT")],
        tmp_path / "ms",
        page_size=100,
    ) as wfs:
        config = write_config(tmp_path, wfs.url, "urbis:AddressPoints", "ID", "gml", "addresses")
        report = sync(engine, config, "addresses")
    assert report.status == "success", report.error
    assert (report.fetched, report.inserted) == (666, 666)
    assert rows(engine, 'SELECT count(DISTINCT "ID") FROM urbis.addresses')[0][0] == 666


@pytest.mark.parametrize(
    "faults",
    [
        ["http_500", "http_500"],
        ["pass", "drop"],
        ["pass", "pass", "truncate"],
        ["garbage"],
        ["pass", "truncate_silent"],
    ],
)
def test_transient_faults_are_retried(engine, municipalities_wfs, tmp_path, faults):
    report = sync_with_faults(engine, municipalities_wfs, tmp_path, *faults)
    assert report.status == "success", report.error
    assert report.inserted == 19
    assert not municipalities_wfs.pending_faults


@pytest.mark.parametrize(
    "fault, words",
    [
        ("http_500", "HTTP 500"),
        ("drop", "connection broken"),
        ("garbage", "unusable body"),
    ],
)
def test_persistent_faults_fail_the_run_and_keep_the_last_good_layer(
    engine, municipalities_wfs, tmp_path, fault, words
):
    config = write_config(tmp_path, municipalities_wfs.url, "urbis:Municipalities", "NAT_CODE")
    assert sync(engine, config).status == "success"
    good = live_state(engine, "muni", "NAT_CODE")
    municipalities_wfs.inject("pass", *[fault] * FAST_RETRIES.http_attempts)
    report = sync(engine, config)
    assert report.status == "failed"
    assert words in (report.error or "") and "GetFeature from 5" in (report.error or "")
    assert live_state(engine, "muni", "NAT_CODE") == good
    run = rows(engine, "SELECT status, error FROM urbis_meta.sync_run ORDER BY id DESC LIMIT 1")
    assert run[0].status == "failed" and run[0].error == report.error
    assert rows(engine, "SELECT version FROM urbis_meta.layer_catalog")[0][0] == 1


def test_source_changing_while_paging_fails_the_run(engine, municipalities_wfs, tmp_path):
    config = write_config(tmp_path, municipalities_wfs.url, "urbis:Municipalities", "NAT_CODE")
    assert sync(engine, config).status == "success"
    good = live_state(engine, "muni", "NAT_CODE")
    smaller = gpd.read_file(municipalities_wfs.layers[0].path)
    smaller = smaller[smaller["NAT_CODE"] != "21004"]
    smaller.to_file(tmp_path / "smaller.gpkg", layer="Municipalities", driver="GPKG")
    # Slow the second page down, and swap the data while it waits.
    municipalities_wfs.inject("pass", "delay:1.5")
    result: dict = {}
    worker = threading.Thread(target=lambda: result.setdefault("report", sync(engine, config)))
    worker.start()
    deadline = time.monotonic() + 10
    while len(municipalities_wfs.getfeature_requests) < 7 and time.monotonic() < deadline:
        time.sleep(0.05)
    municipalities_wfs.set_path("Municipalities", tmp_path / "smaller.gpkg")
    worker.join(30)
    report = result["report"]
    assert report.status == "failed"
    assert "numberMatched changed from 19 to 18" in (report.error or "")
    assert live_state(engine, "muni", "NAT_CODE") == good


def test_duplicate_keys_and_invalid_geometries(engine, tmp_path):
    gpkg = write_sample_municipalities(tmp_path / "m.gpkg")
    frame = gpd.read_file(gpkg)
    bowtie = Polygon(
        [(150000, 170000), (150100, 170100), (150100, 170000), (150000, 170100), (150000, 170000)]
    )
    frame.loc[frame["NAT_CODE"] == "21011", "geometry"] = bowtie  # self-intersecting
    twin = frame[frame["NAT_CODE"] == "21013"].copy()
    frame = gpd.GeoDataFrame(gpd.pd.concat([frame, twin], ignore_index=True), crs=31370)
    frame.to_file(tmp_path / "bad.gpkg", layer="Municipalities", driver="GPKG")
    with MapServerWfs(
        [WfsLayer("Municipalities", tmp_path / "bad.gpkg", key="NAT_CODE")],
        tmp_path / "ms",
        page_size=5,
    ) as wfs:
        report = sync(engine, write_config(tmp_path, wfs.url, "urbis:Municipalities", "NAT_CODE"))
    assert report.status == "success", report.error
    assert (report.fetched, report.inserted, report.repaired, report.quarantined) == (20, 18, 1, 2)
    reasons = rows(engine, "SELECT feature_key, reason FROM urbis_meta.quarantine")
    assert {tuple(r) for r in reasons} == {("21013", "duplicate key NAT_CODE=21013 (2 features)")}
    assert len(reasons) == 2
    assert rows(engine, "SELECT ST_IsValid(geom) FROM urbis.muni WHERE \"NAT_CODE\" = '21011'") == [
        (True,)
    ]


def test_database_connection_lost_mid_apply(engine, database_url, municipalities_wfs, tmp_path):
    config = write_config(tmp_path, municipalities_wfs.url, "urbis:Municipalities", "NAT_CODE")
    assert sync(engine, config).status == "success"
    good = live_state(engine, "muni", "NAT_CODE")
    changed = gpd.read_file(municipalities_wfs.layers[0].path)
    changed["NAME_FRE"] = changed["NAME_FRE"] + " (v2)"
    changed.to_file(tmp_path / "v2.gpkg", layer="Municipalities", driver="GPKG")
    municipalities_wfs.set_path("Municipalities", tmp_path / "v2.gpkg")

    blocker = create_sync_engine(database_url)
    with blocker.connect() as conn:
        # A reader holding a row lock makes the apply wait; then its connection is killed.
        conn.execute(sa.text("SELECT 1 FROM urbis.muni WHERE \"NAT_CODE\" = '21001' FOR UPDATE"))
        result: dict = {}
        worker = threading.Thread(target=lambda: result.setdefault("r", sync(engine, config)))
        worker.start()
        pid = wait_for_blocked_update(database_url)
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        worker.join(30)
        conn.rollback()
    blocker.dispose()
    report = result["r"]
    assert report.status == "failed"
    assert (report.error or "").startswith("database error, nothing applied:")
    assert "connection" in (report.error or "")
    assert live_state(engine, "muni", "NAT_CODE") == good
    assert rows(engine, "SELECT count(*) FROM urbis_history.muni")[0][0] == 0
    assert (
        rows(engine, "SELECT status FROM urbis_meta.sync_run ORDER BY id DESC LIMIT 1")[0][0]
        == "failed"
    )
    # The next run, with the database reachable, applies the new state.
    after = sync(engine, config)
    assert (after.status, after.updated) == ("success", 19)


@pytest.mark.parametrize("fmt", ["geojson", "gml"])
def test_axis_order_when_asking_for_epsg_4326(engine, municipalities_wfs, tmp_path, fmt):
    """EPSG:4326 is lat/lon in WFS 2.0 GML and lon/lat in GeoJSON; either way the stored
    Lambert 72 polygons must be where they were (areas equal to AREA)."""
    config = tmp_path / f"wgs84-{fmt}.yaml"
    url = municipalities_wfs.url
    config.write_text(
        f"layers:\n  muni:\n    source: {{kind: wfs, url: '{url}', "
        f"typename: 'urbis:Municipalities', format: {fmt}, srid: 4326}}\n"
        "    key: NAT_CODE\n"
    )
    report = sync(engine, config)
    assert report.status == "success", report.error
    assert all(
        "SRSNAME=EPSG%3A4326" in q or "SRSNAME=EPSG:4326" in q
        for q in municipalities_wfs.getfeature_requests
    )
    # A swapped axis would put Brussels in Somalia (and fail the run's plausibility check).
    x0, y0, x1, y1 = rows(
        engine,
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
        "(SELECT ST_Extent(geom) e FROM urbis.muni) s",
    )[0]
    assert 141_000 < x0 < x1 < 158_100 and 161_400 < y0 < y1 < 178_200
    # MapServer writes degrees with fewer decimals in GML than in GeoJSON: areas within 0.01 %.
    worst = rows(engine, 'SELECT max(abs(ST_Area(geom) - "AREA") / "AREA") FROM urbis.muni')[0][0]
    assert worst < 1e-4


# -- servers as they are: no GeoJSON, refusals that retrying cannot fix ------------------------


def asked(wfs: MapServerWfs) -> list[dict[str, str]]:
    """Every request the server received, as upper-case parameters."""
    return [{k.upper(): v for k, v in parse_qsl(q)} for q in wfs.requests]


def requests_of(wfs: MapServerWfs, operation: str) -> list[dict[str, str]]:
    return [p for p in asked(wfs) if p.get("REQUEST") == operation]


@pytest.fixture
def gml_only_wfs(tmp_path):
    """The municipalities on a MapServer configured without any GeoJSON output format."""
    gpkg = write_sample_municipalities(tmp_path / "municipalities.gpkg")
    with MapServerWfs(
        [WfsLayer("Municipalities", gpkg, key="NAT_CODE")],
        tmp_path / "ms",
        page_size=5,
        geojson=False,
    ) as wfs:
        yield wfs


def test_server_without_geojson_syncs_through_gml32(engine, gml_only_wfs, tmp_path):
    config = write_config(tmp_path, gml_only_wfs.url, "urbis:Municipalities", "NAT_CODE")
    report = sync(engine, config)
    assert report.status == "success", report.error
    assert (report.fetched, report.inserted) == (19, 19)
    assert len(requests_of(gml_only_wfs, "GetCapabilities")) == 1  # once per run
    pages = requests_of(gml_only_wfs, "GetFeature")
    assert len(pages) == 5
    # The exact string the server advertises, not one of the spellings it would refuse.
    assert {p["OUTPUTFORMAT"] for p in pages} == {"application/gml+xml; version=3.2"}
    source_info = rows(engine, "SELECT source_info FROM urbis_meta.sync_run")[0][0]
    assert "GML 3.2, the server offers no GeoJSON" in source_info
    # The right features with their typed values: those of the file the server serves.
    served = gpd.read_file(gml_only_wfs.layers[0].path).set_index("NAT_CODE")
    stored = {
        r.NAT_CODE: r
        for r in rows(
            engine,
            'SELECT "NAT_CODE", "ID", "NAME_FRE", "AREA", "BEGIN_LIFE", '
            "ST_Area(geom) AS area FROM urbis.muni",
        )
    }
    assert sorted(stored) == sorted(served.index) == [str(c) for c in range(21001, 21020)]
    for code, row in stored.items():
        assert row.ID == served.loc[code, "ID"] and isinstance(row.ID, int)
        assert row.NAME_FRE == served.loc[code, "NAME_FRE"]
        assert row.AREA == pytest.approx(served.loc[code, "AREA"])
        assert abs(row.area - row.AREA) < 1.0
        assert row.BEGIN_LIFE.date() == served.loc[code, "BEGIN_LIFE"].date()
    types = {
        c["name"]: c["type"]
        for c in rows(engine, "SELECT columns FROM urbis_meta.layer_catalog")[0][0]
    }
    assert (types["ID"], types["AREA"], types["BEGIN_LIFE"]) == (
        "bigint",
        "double precision",
        "timestamptz",
    )


def test_forced_geojson_on_a_server_without_it_fails_at_once(engine, gml_only_wfs, tmp_path):
    config = write_config(tmp_path, gml_only_wfs.url, "urbis:Municipalities", "NAT_CODE", "geojson")
    report = sync(engine, config)
    assert report.status == "failed"
    assert report.error == (
        "layer 'muni': format: geojson, but the server does not offer GeoJSON (it offers: "
        "application/gml+xml; version=3.2, text/xml; subtype=gml/3.2.1, "
        "text/xml; subtype=gml/3.1.1, text/xml; subtype=gml/2.1.2); remove `format` (or set "
        "`format: gml`) to use GML 3.2"
    )
    assert [p["REQUEST"] for p in asked(gml_only_wfs)] == ["GetCapabilities"]


def test_a_type_without_geojson_on_a_server_with_it_is_read_as_gml(engine, tmp_path):
    gpkg = write_sample_municipalities(tmp_path / "municipalities.gpkg")
    points = write_sample_address_points(tmp_path / "addresses.gpkg")
    with MapServerWfs(
        [
            WfsLayer("Municipalities", gpkg, key="NAT_CODE", geojson=False),
            WfsLayer("AddressPoints", points, key="ID", geometry_type="POINT"),
        ],
        tmp_path / "ms",
        page_size=200,
    ) as wfs:
        muni = sync(engine, write_config(tmp_path, wfs.url, "Municipalities", "NAT_CODE"))
        addresses = sync(
            engine,
            write_config(tmp_path, wfs.url, "urbis:AddressPoints", "ID", layer_id="addresses"),
            "addresses",
        )
        formats = {p["TYPENAMES"]: p["OUTPUTFORMAT"] for p in requests_of(wfs, "GetFeature")}
    assert (muni.status, muni.inserted) == ("success", 19), muni.error
    assert (addresses.status, addresses.inserted) == ("success", 666), addresses.error
    assert formats == {
        "Municipalities": "application/gml+xml; version=3.2",
        "urbis:AddressPoints": "application/json",
    }


@pytest.mark.parametrize("server", ["gml_only_wfs", "municipalities_wfs"])
def test_unknown_type_name_fails_at_once_naming_the_closest(engine, request, tmp_path, server):
    wfs = request.getfixturevalue(server)
    config = write_config(tmp_path, wfs.url, "urbis:Municipalites", "NAT_CODE")
    report = sync(engine, config)
    assert report.status == "failed"
    assert report.error == (
        "layer 'muni': the server has no feature type "
        "'urbis:Municipalites' (closest of the 1 it offers: "
        "urbis:Municipalities)"
    )
    assert [p["REQUEST"] for p in asked(wfs)] == ["GetCapabilities"]
    assert rows(engine, "SELECT status, error FROM urbis_meta.sync_run")[0] == (
        "failed",
        report.error,
    )


def test_unknown_type_among_several_lists_the_closest_first(engine, tmp_path):
    gpkg = write_sample_municipalities(tmp_path / "m.gpkg")
    layers = [
        WfsLayer(name, gpkg, key="NAT_CODE")
        for name in (
            "Buildings",
            "StreetAxes",
            "Municipalities",
            "StreetSurfaces",
            "Blocks",
            "Addresses",
            "CadastralParcels",
        )
    ]
    with MapServerWfs(layers, tmp_path / "ms") as wfs:
        report = sync(engine, write_config(tmp_path, wfs.url, "urbis:StreetAxis", "NAT_CODE"))
        assert len(wfs.requests) == 1
    assert report.status == "failed"
    assert "(closest of the 7 it offers: urbis:StreetAxes, urbis:StreetSurfaces, " in (
        report.error or ""
    )


@pytest.mark.parametrize(
    "fault, words",
    [
        ("http:404", "HTTP 404 from"),
        ("http:400", "HTTP 400 from"),
        (
            "exception:InvalidParameterValue",
            "the server says (HTTP 200): InvalidParameterValue: msWFSGetFeature(): injected fault",
        ),
        ("exception:OperationNotSupported", "OperationNotSupported"),
    ],
)
@pytest.mark.parametrize("server", ["gml_only_wfs", "municipalities_wfs"])  # GML, GeoJSON asked
def test_answers_retrying_cannot_fix_fail_at_once(engine, request, tmp_path, fault, words, server):
    wfs = request.getfixturevalue(server)
    report = sync_with_faults(engine, wfs, tmp_path, "pass", fault, "pass", "pass")
    assert report.status == "failed"
    assert (report.error or "").startswith("layer 'muni': GetFeature from 5: ")
    assert words in (report.error or "") and "gave up" not in (report.error or "")
    assert len(wfs.getfeature_requests) == 2  # page 1, then the refusal: no retry
    assert len(wfs.pending_faults) == 2


def test_real_refusal_with_geojson_asked_fails_at_once_in_the_servers_words(
    engine, municipalities_wfs, tmp_path
):
    """GeoJSON asked, an XML ExceptionReport with HTTP 400 answered (an SRS MapServer does not
    offer): the server's code, locator and text, after one request."""
    config = write_config(
        tmp_path, municipalities_wfs.url, "urbis:Municipalities", "NAT_CODE", extra=", srid: 3812"
    )
    report = sync(engine, config)
    assert report.status == "failed"
    assert report.error == (
        "layer 'muni': GetFeature from 0: the server says (HTTP 400): InvalidParameterValue "
        "(locator srsname): msWFSGetFeature(): WFS server error. Invalid GetFeature Request:"
        "Invalid SRS. Please check the capabilities and reformulate your request."
    )
    assert len(municipalities_wfs.getfeature_requests) == 1


@pytest.mark.parametrize(
    "faults",
    [
        ["http:503", "http:502"],
        ["pass", "http:408"],
        ["pass", "http:429"],
        ["pass", "exception:NoApplicableCode", "exception:NoApplicableCode"],
    ],
)
def test_transient_answers_are_still_retried(engine, gml_only_wfs, tmp_path, faults):
    report = sync_with_faults(engine, gml_only_wfs, tmp_path, *faults)
    assert report.status == "success", report.error
    assert report.inserted == 19
    retries = len([f for f in faults if f != "pass"])
    assert len(gml_only_wfs.getfeature_requests) == 5 + retries


def test_a_transient_exception_that_persists_fails_with_the_servers_words(
    engine, municipalities_wfs, tmp_path
):
    report = sync_with_faults(
        engine,
        municipalities_wfs,
        tmp_path,
        *["exception:NoApplicableCode"] * FAST_RETRIES.http_attempts,
    )
    assert report.status == "failed"
    assert report.error == (
        "layer 'muni': GetFeature from 0: gave up after 3 attempts: the server says (HTTP 200): "
        "NoApplicableCode: msWFSGetFeature(): injected fault"
    )
    assert len(municipalities_wfs.getfeature_requests) == 3
