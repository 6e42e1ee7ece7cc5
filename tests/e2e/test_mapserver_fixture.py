"""The MapServer WFS fixture (tests/support/mapserver.py) seen over raw HTTP with httpx."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import pytest

from tests.support.mapserver import (
    Fault,
    MapServerWfs,
    WfsLayer,
    mapserver_wfs,  # noqa: F401  (the factory fixture, used through getfixturevalue below)
    write_sample_address_points,
    write_sample_municipalities,
)

NS = {
    "wfs": "http://www.opengis.net/wfs/2.0",
    "ows": "http://www.opengis.net/ows/1.1",
    "gml": "http://www.opengis.net/gml/3.2",
    "xsd": "http://www.w3.org/2001/XMLSchema",
    "xlink": "http://www.w3.org/1999/xlink",
}
URBIS = "{http://example.org/urbis-test}"
GML32 = "application/gml+xml; version=3.2"
NIS_CODES = [str(code) for code in range(21001, 21020)]
BASE = {"SERVICE": "WFS", "VERSION": "2.0.0"}


def get_feature(typename: str, **params: Any) -> dict[str, Any]:
    return {
        **BASE,
        "REQUEST": "GetFeature",
        "TYPENAMES": typename,
        "SRSNAME": "EPSG:31370",
        **params,
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("wfs-data")
    return {
        "mu": write_sample_municipalities(folder / "municipalities.gpkg"),
        "adpt": write_sample_address_points(folder / "address_points.gpkg"),
    }


def layers(data: dict[str, Path]) -> list[WfsLayer]:
    return [
        WfsLayer("Municipalities", data["mu"], key="NAT_CODE", source_layer="Municipalities"),
        WfsLayer(
            "AddressPoints",
            data["adpt"],
            key="ID",
            source_layer="AddressPoints",
            geometry_type="POINT",
        ),
    ]


@pytest.fixture(scope="module")
def wfs(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[MapServerWfs]:
    """One server for the read-only tests (no faults, no set_path)."""
    with MapServerWfs(layers(data), tmp_path_factory.mktemp("wfs"), page_size=5) as server:
        yield server


@pytest.fixture
def fresh_wfs(data: dict[str, Path], tmp_path: Path) -> Iterator[MapServerWfs]:
    """A server of the test's own, for faults and set_path."""
    with MapServerWfs(layers(data), tmp_path, page_size=5) as server:
        yield server


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=20) as c:
        yield c


def test_capabilities_advertise_paging_sorting_and_formats(
    wfs: MapServerWfs, client: httpx.Client
) -> None:
    r = client.get(wfs.url, params={**BASE, "REQUEST": "GetCapabilities"})
    assert r.status_code == 200
    root = ET.fromstring(r.content)
    names = [e.text for e in root.findall("wfs:FeatureTypeList/wfs:FeatureType/wfs:Name", NS)]
    assert names == ["urbis:Municipalities", "urbis:AddressPoints"]
    assert wfs.typename("Municipalities") == "urbis:Municipalities"
    feature_type = root.find("wfs:FeatureTypeList/wfs:FeatureType", NS)
    assert feature_type is not None
    assert feature_type.findtext("wfs:DefaultCRS", namespaces=NS) == "urn:ogc:def:crs:EPSG::31370"
    assert feature_type.findtext("wfs:OtherCRS", namespaces=NS) == "urn:ogc:def:crs:EPSG::4326"

    def constraint(name: str) -> str | None:
        return root.findtext(
            f"ows:OperationsMetadata/ows:Constraint[@name='{name}']/ows:DefaultValue", namespaces=NS
        )

    assert constraint("CountDefault") == "5"  # = page_size, from wfs_maxfeatures
    assert constraint("ImplementsResultPaging") == "TRUE"
    sorting = root.findtext(
        ".//{http://www.opengis.net/fes/2.0}Constraint[@name='ImplementsSorting']/ows:DefaultValue",
        namespaces=NS,
    )
    assert sorting == "TRUE"
    formats = [
        e.text
        for e in root.findall(
            "ows:OperationsMetadata/ows:Operation[@name='GetFeature']"
            "/ows:Parameter[@name='outputFormat']/ows:AllowedValues/ows:Value",
            NS,
        )
    ]
    assert "application/json" in formats and GML32 in formats
    hrefs = {e.get(f"{{{NS['xlink']}}}href") for e in root.iter(f"{{{NS['ows']}}}Get")}
    assert hrefs == {wfs.url + "?"}  # clients never see map=


def test_describe_feature_type_is_typed(wfs: MapServerWfs, client: httpx.Client) -> None:
    r = client.get(
        wfs.url,
        params={**BASE, "REQUEST": "DescribeFeatureType", "TYPENAMES": "urbis:Municipalities"},
    )
    assert r.status_code == 200
    root = ET.fromstring(r.content)
    types = {e.get("name"): e.get("type") for e in root.findall("xsd:complexType//xsd:element", NS)}
    assert types["GEOM"] == "gml:GeometryPropertyType"
    assert types["NAT_CODE"] == "string"
    assert types["AREA"] == "double"
    assert types["ID"] == "double"
    assert types["BEGIN_LIFE"] == "gml:TimeInstantType"


@pytest.mark.parametrize("output_format", ["geojson", "application/json"])
def test_geojson_pages_cover_all_municipalities_once(
    wfs: MapServerWfs, client: httpx.Client, output_format: str
) -> None:
    seen: list[str] = []
    sizes: list[int] = []
    start = 0
    while True:
        r = client.get(
            wfs.url,
            params=get_feature(
                "urbis:Municipalities",
                OUTPUTFORMAT=output_format,
                COUNT=5,
                STARTINDEX=start,
                SORTBY="NAT_CODE ASC",
            ),
        )
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        doc = r.json()
        assert doc["numberMatched"] == 19
        assert "numberReturned" not in doc and "totalFeatures" not in doc
        assert doc["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::31370"
        codes = [f["properties"]["NAT_CODE"] for f in doc["features"]]
        seen += codes
        sizes.append(len(codes))
        if len(codes) < 5:
            break
        start += len(codes)
    assert sizes == [5, 5, 5, 4]
    assert seen == NIS_CODES  # sorted, no duplicates, no gaps
    props = doc["features"][0]["properties"]
    assert isinstance(props["AREA"], float) and isinstance(props["NAT_CODE"], str)
    assert "END_LIFE" not in props  # null attributes are left out


def test_count_is_capped_at_page_size_and_sortby_variants(
    wfs: MapServerWfs, client: httpx.Client
) -> None:
    def codes(**params: Any) -> list[str]:
        r = client.get(
            wfs.url, params=get_feature("Municipalities", OUTPUTFORMAT="geojson", **params)
        )
        assert r.status_code == 200, r.text
        return [f["properties"]["NAT_CODE"] for f in r.json()["features"]]

    assert codes(COUNT=50, SORTBY="NAT_CODE") == NIS_CODES[:5]  # the cap, silently
    assert codes(SORTBY="NAT_CODE DESC") == NIS_CODES[::-1][:5]  # default COUNT = page_size
    assert codes(SORTBY="NAT_CODE D", STARTINDEX=15) == NIS_CODES[::-1][15:]
    assert codes(SORTBY="urbis:NAT_CODE A", STARTINDEX=5) == NIS_CODES[5:10]
    assert codes(SORTBY="NAT_CODE", STARTINDEX=19) == []
    bad = client.get(wfs.url, params=get_feature("Municipalities", SORTBY="NOPE ASC"))
    assert bad.status_code == 400 and b"SORTBY" in bad.content


def test_gml32_pages_carry_number_matched(wfs: MapServerWfs, client: httpx.Client) -> None:
    seen: list[str] = []
    for start, returned in [(0, 5), (5, 5), (10, 5), (15, 4)]:
        r = client.get(
            wfs.url,
            params=get_feature(
                "urbis:Municipalities",
                OUTPUTFORMAT=GML32,
                COUNT=5,
                STARTINDEX=start,
                SORTBY="NAT_CODE ASC",
            ),
        )
        assert r.status_code == 200
        assert r.headers["content-type"].startswith('text/xml; subtype="gml/3.2.1"')
        root = ET.fromstring(r.content)
        assert root.tag == f"{{{NS['wfs']}}}FeatureCollection"
        assert root.get("numberMatched") == "19"
        assert root.get("numberReturned") == str(returned)
        assert (root.get("next") is not None) == (start + returned < 19)
        assert "map=" not in (root.get("next") or "")
        members = root.findall(f"wfs:member/{URBIS}Municipalities", NS)
        codes = [m.findtext(f"{URBIS}NAT_CODE") for m in members]
        assert [m.get(f"{{{NS['gml']}}}id") for m in members] == [
            f"Municipalities.{c}" for c in codes
        ]
        assert all(m.find(f"{URBIS}GEOM") is not None for m in members)
        seen += [c for c in codes if c]
    assert seen == NIS_CODES


def test_address_points_sort_numerically_by_id(
    wfs: MapServerWfs, client: httpx.Client, data: dict[str, Path]
) -> None:
    ids = sorted(gpd.read_file(data["adpt"]).ID)
    assert len(ids) == 666
    for start in (0, 5, 330, 660, 665):
        r = client.get(
            wfs.url,
            params=get_feature(
                "urbis:AddressPoints",
                OUTPUTFORMAT="geojson",
                COUNT=5,
                STARTINDEX=start,
                SORTBY="ID ASC",
            ),
        )
        doc = r.json()
        assert doc["numberMatched"] == 666
        assert [f["properties"]["ID"] for f in doc["features"]] == ids[start : start + 5]


def test_axis_order_is_easting_northing_for_31370(
    wfs: MapServerWfs, client: httpx.Client, data: dict[str, Path]
) -> None:
    frame = gpd.read_file(data["adpt"]).sort_values("ID")
    x, y = frame.geometry.iloc[0].x, frame.geometry.iloc[0].y
    assert 140_000 < x < 160_000 and 160_000 < y < 180_000  # easting, northing
    params = get_feature("AddressPoints", COUNT=1, SORTBY="ID")
    doc = client.get(wfs.url, params={**params, "OUTPUTFORMAT": "geojson"}).json()
    assert doc["features"][0]["geometry"]["coordinates"] == pytest.approx([x, y], abs=1e-3)
    root = ET.fromstring(client.get(wfs.url, params={**params, "OUTPUTFORMAT": GML32}).content)
    pos = [float(v) for v in (root.findtext(".//gml:Point/gml:pos", namespaces=NS) or "").split()]
    assert pos == pytest.approx([x, y], abs=1e-3)
    # EPSG:4326 in WFS 2.0: lat/lon in GML, but lon/lat in MapServer's GeoJSON.
    params["SRSNAME"] = "EPSG:4326"
    root = ET.fromstring(client.get(wfs.url, params={**params, "OUTPUTFORMAT": GML32}).content)
    lat, lon = (float(v) for v in (root.findtext(".//gml:pos", namespaces=NS) or "").split())
    assert 50 < lat < 51 and 4 < lon < 5
    doc = client.get(wfs.url, params={**params, "OUTPUTFORMAT": "geojson"}).json()
    assert doc["features"][0]["geometry"]["coordinates"] == pytest.approx([lon, lat], abs=1e-5)


def test_plain_typename_works_and_client_map_parameter_is_dropped(
    wfs: MapServerWfs, client: httpx.Client
) -> None:
    r = client.get(
        wfs.url,
        params={**get_feature("Municipalities", OUTPUTFORMAT="geojson"), "map": "/etc/passwd"},
    )
    assert r.status_code == 200 and len(r.json()["features"]) == 5
    assert "map=%2Fetc%2Fpasswd" in wfs.requests[-1]  # recorded as received
    missing = client.get(wfs.url, params=get_feature("urbis:Nope"))
    assert missing.status_code == 400 and b"Nope" in missing.content
    assert client.get(wfs.url.replace("/wfs", "/other")).status_code == 404


def test_untyped_server_without_number_matched(
    data: dict[str, Path], tmp_path: Path, client: httpx.Client
) -> None:
    with MapServerWfs(
        layers(data), tmp_path, page_size=5, typed=False, number_matched=False
    ) as plain:
        first = client.get(
            plain.url,
            params=get_feature("urbis:Municipalities", OUTPUTFORMAT="geojson", SORTBY="NAT_CODE"),
        ).json()
        props = first["features"][0]["properties"]
        assert props["AREA"] == "17912379.1" and props["END_LIFE"] == ""  # all strings
        assert "numberMatched" not in first
        last = client.get(
            plain.url,
            params=get_feature(
                "urbis:Municipalities", OUTPUTFORMAT="geojson", SORTBY="NAT_CODE", STARTINDEX=15
            ),
        ).json()
        assert last["numberMatched"] == 19  # only once the page reaches the end
        gml = client.get(plain.url, params=get_feature("urbis:Municipalities", OUTPUTFORMAT=GML32))
        assert ET.fromstring(gml.content).get("numberMatched") == "unknown"


# -- faults ---------------------------------------------------------------------------------


def municipalities_page(wfs: MapServerWfs, start: int = 0) -> dict[str, Any]:
    return get_feature(
        "urbis:Municipalities",
        OUTPUTFORMAT="geojson",
        COUNT=5,
        STARTINDEX=start,
        SORTBY="NAT_CODE ASC",
    )


def test_faults_are_consumed_one_per_getfeature_in_order(
    fresh_wfs: MapServerWfs, client: httpx.Client
) -> None:
    fresh_wfs.inject("pass", Fault("http_500"))
    assert (
        client.get(fresh_wfs.url, params={**BASE, "REQUEST": "GetCapabilities"}).status_code == 200
    )  # not a GetFeature: unaffected
    assert (
        client.get(fresh_wfs.url, params={**BASE, "REQUEST": "DescribeFeatureType"}).status_code
        == 200
    )
    assert fresh_wfs.pending_faults == [Fault("pass"), Fault("http_500")]
    assert client.get(fresh_wfs.url, params=municipalities_page(fresh_wfs)).status_code == 200
    failed = client.get(fresh_wfs.url, params=municipalities_page(fresh_wfs, 5))
    assert failed.status_code == 500 and b"Internal Server Error" in failed.content
    assert client.get(fresh_wfs.url, params=municipalities_page(fresh_wfs, 5)).status_code == 200
    assert fresh_wfs.pending_faults == []
    assert len(fresh_wfs.requests) == 5 and len(fresh_wfs.getfeature_requests) == 3
    with pytest.raises(ValueError):
        fresh_wfs.inject("explode")


def test_drop_breaks_the_connection(fresh_wfs: MapServerWfs, client: httpx.Client) -> None:
    fresh_wfs.inject("drop")
    with pytest.raises(httpx.TransportError):
        client.get(fresh_wfs.url, params=municipalities_page(fresh_wfs))
    assert client.get(fresh_wfs.url, params=municipalities_page(fresh_wfs)).status_code == 200


def test_truncate_sends_half_of_the_announced_body(
    fresh_wfs: MapServerWfs, client: httpx.Client
) -> None:
    fresh_wfs.inject("truncate")
    received = b""
    with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
        with client.stream("GET", fresh_wfs.url, params=municipalities_page(fresh_wfs)) as r:
            assert r.status_code == 200
            announced = int(r.headers["content-length"])
            for chunk in r.iter_raw():
                received += chunk
    assert 0 < len(received) == announced // 2


def test_truncate_silent_gives_a_short_200(fresh_wfs: MapServerWfs, client: httpx.Client) -> None:
    full = client.get(fresh_wfs.url, params=municipalities_page(fresh_wfs)).content
    fresh_wfs.inject("truncate_silent")
    r = client.get(fresh_wfs.url, params=municipalities_page(fresh_wfs))
    assert r.status_code == 200 and "content-length" not in r.headers
    assert r.content == full[: len(full) // 2]
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_garbage_is_neither_json_nor_xml(fresh_wfs: MapServerWfs, client: httpx.Client) -> None:
    fresh_wfs.inject("garbage", "garbage")
    r = client.get(fresh_wfs.url, params=municipalities_page(fresh_wfs))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        json.loads(r.content)
    r = client.get(fresh_wfs.url, params={**municipalities_page(fresh_wfs), "OUTPUTFORMAT": GML32})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
    with pytest.raises(ET.ParseError):
        ET.fromstring(r.content)


def test_delay_triggers_client_timeouts(fresh_wfs: MapServerWfs, client: httpx.Client) -> None:
    fresh_wfs.inject("delay:1.5", Fault("delay", 0.4))
    with pytest.raises(httpx.ReadTimeout):
        client.get(fresh_wfs.url, params=municipalities_page(fresh_wfs), timeout=0.3)
    began = time.monotonic()
    r = client.get(fresh_wfs.url, params=municipalities_page(fresh_wfs), timeout=5)
    assert r.status_code == 200 and time.monotonic() - began >= 0.4
    assert str(Fault.parse("delay:2")) == "delay:2"


def test_set_path_changes_what_is_served_between_pages(
    fresh_wfs: MapServerWfs, client: httpx.Client, data: dict[str, Path], tmp_path: Path
) -> None:
    frame = gpd.read_file(data["mu"])
    smaller = frame[frame.NAT_CODE != "21001"].copy()  # one municipality gone ...
    smaller.loc[smaller.NAT_CODE == "21009", "NAME_FRE"] = "Bruxelles (renamed)"  # one changed
    changed = tmp_path / "changed.gpkg"
    smaller.to_file(changed, layer="Municipalities", driver="GPKG")

    first = client.get(fresh_wfs.url, params=municipalities_page(fresh_wfs, 0)).json()
    assert first["numberMatched"] == 19
    fresh_wfs.set_path("Municipalities", changed)
    second = client.get(fresh_wfs.url, params=municipalities_page(fresh_wfs, 5)).json()
    assert second["numberMatched"] == 18
    codes = [f["properties"]["NAT_CODE"] for f in second["features"]]
    assert codes == NIS_CODES[6:11]  # the shift a naive pager would miss
    names = {f["properties"]["NAT_CODE"]: f["properties"]["NAME_FRE"] for f in second["features"]}
    assert names["21009"] == "Bruxelles (renamed)"
    assert fresh_wfs.layers[0].path == changed.resolve()
    fresh_wfs.set_path("Municipalities", data["mu"])
    assert (
        client.get(fresh_wfs.url, params=municipalities_page(fresh_wfs)).json()["numberMatched"]
        == 19
    )


def test_stop_cleans_up_files_and_threads(
    data: dict[str, Path], tmp_path: Path, client: httpx.Client
) -> None:
    import threading

    before = set(threading.enumerate())
    server = MapServerWfs(layers(data), tmp_path / "w", page_size=5)
    with server:
        server.inject("delay:30")  # a request still waiting when the server stops
        assert server.mapfile.exists()
        with pytest.raises(httpx.ReadTimeout):
            client.get(server.url, params=municipalities_page(server), timeout=0.2)
        began = time.monotonic()
    assert time.monotonic() - began < 5
    assert list((tmp_path / "w").iterdir()) == []
    assert set(threading.enumerate()) <= before
    with pytest.raises(httpx.ConnectError):
        client.get(server.url, params={**BASE, "REQUEST": "GetCapabilities"})


def test_factory_fixture(
    request: pytest.FixtureRequest, data: dict[str, Path], client: httpx.Client
) -> None:
    start = request.getfixturevalue("mapserver_wfs")
    server = start(
        [WfsLayer("Municipalities", data["mu"], key="NAT_CODE")],
        page_size=7,
        namespace_prefix="urbisvector",
    )
    r = client.get(
        server.url,
        params=get_feature("urbisvector:Municipalities", OUTPUTFORMAT="geojson", SORTBY="NAT_CODE"),
    )
    assert [f["properties"]["NAT_CODE"] for f in r.json()["features"]] == NIS_CODES[:7]


# -- servers without GeoJSON, refusals, and the faults that imitate them ----------------------


def advertised_formats(root: ET.Element) -> tuple[list[str], dict[str, list[str]]]:
    """(the GetFeature operation's outputFormat values, each FeatureType's OutputFormats)."""
    operation = [
        e.text or ""
        for e in root.findall(
            "ows:OperationsMetadata/ows:Operation[@name='GetFeature']"
            "/ows:Parameter[@name='outputFormat']/ows:AllowedValues/ows:Value",
            NS,
        )
    ]
    per_type = {
        ft.findtext("wfs:Name", namespaces=NS) or "": [
            f.text or "" for f in ft.findall("wfs:OutputFormats/wfs:Format", NS)
        ]
        for ft in root.findall("wfs:FeatureTypeList/wfs:FeatureType", NS)
    }
    return operation, per_type


GML_FORMATS = [
    GML32,
    "text/xml; subtype=gml/3.2.1",
    "text/xml; subtype=gml/3.1.1",
    "text/xml; subtype=gml/2.1.2",
]


def test_server_without_geojson_offers_gml_only_and_refuses_json(
    data: dict[str, Path], tmp_path: Path, client: httpx.Client
) -> None:
    with MapServerWfs(layers(data), tmp_path, page_size=5, geojson=False) as server:
        assert "OUTPUTFORMAT" not in server.mapfile.read_text()
        caps = ET.fromstring(
            client.get(server.url, params={**BASE, "REQUEST": "GetCapabilities"}).content
        )
        operation, per_type = advertised_formats(caps)
        assert operation == GML_FORMATS
        assert per_type == {"urbis:Municipalities": GML_FORMATS, "urbis:AddressPoints": GML_FORMATS}
        for asked in ("application/json", "geojson", "json", "application/geo+json"):
            refused = client.get(
                server.url, params=get_feature("urbis:Municipalities", OUTPUTFORMAT=asked, COUNT=5)
            )
            assert refused.status_code == 400, asked
            assert refused.headers["content-type"] == "text/xml; charset=UTF-8"
            report = ET.fromstring(refused.content)
            assert report.tag == f"{{{NS['ows']}}}ExceptionReport"
            exception = report.find("ows:Exception", NS)
            assert exception is not None
            assert exception.get("exceptionCode") == "InvalidParameterValue"
            assert exception.get("locator") == "outputformat"
            assert exception.findtext("ows:ExceptionText", namespaces=NS) == (
                f"msWFSGetFeature(): WFS server error. '{asked}' is not a permitted output "
                "format for layer 'Municipalities', review wfs_getfeature_formatlist setting."
            )
        page = client.get(
            server.url,
            params=get_feature(
                "urbis:Municipalities", OUTPUTFORMAT=GML32, COUNT=5, SORTBY="NAT_CODE"
            ),
        )
        assert page.status_code == 200
        root = ET.fromstring(page.content)
        assert (root.get("numberMatched"), root.get("numberReturned")) == ("19", "5")
        # GeoServer's spelling of GML 3.2 is not MapServer's: refused like any unknown format.
        other = client.get(
            server.url,
            params=get_feature("urbis:Municipalities", OUTPUTFORMAT="text/xml; subtype=gml/3.2"),
        )
        assert other.status_code == 400 and b"not a permitted output format" in other.content


def test_one_type_without_geojson_on_a_server_with_it(
    data: dict[str, Path], tmp_path: Path, client: httpx.Client
) -> None:
    gml_only = [
        WfsLayer("Municipalities", data["mu"], key="NAT_CODE", geojson=False),
        layers(data)[1],
    ]
    with MapServerWfs(gml_only, tmp_path, page_size=5) as server:
        caps = ET.fromstring(
            client.get(server.url, params={**BASE, "REQUEST": "GetCapabilities"}).content
        )
        operation, per_type = advertised_formats(caps)
        assert operation == [*GML_FORMATS, "application/json"]  # another type offers it
        assert per_type == {
            "urbis:Municipalities": GML_FORMATS,
            "urbis:AddressPoints": [*GML_FORMATS, "application/json"],
        }
        refused = client.get(
            server.url, params=get_feature("urbis:Municipalities", OUTPUTFORMAT="application/json")
        )
        assert refused.status_code == 400 and b"InvalidParameterValue" in refused.content
        served = client.get(
            server.url,
            params=get_feature("urbis:AddressPoints", OUTPUTFORMAT="application/json", COUNT=1),
        )
        assert served.status_code == 200 and served.json()["numberMatched"] == 666


def test_refusals_and_hits(wfs: MapServerWfs, client: httpx.Client) -> None:
    def refusal(**params: Any) -> tuple[int, str | None, str]:
        r = client.get(wfs.url, params=get_feature("urbis:Municipalities", **params))
        exception = ET.fromstring(r.content).find("ows:Exception", NS)
        assert exception is not None, r.text
        assert exception.get("exceptionCode") == "InvalidParameterValue"
        return (
            r.status_code,
            exception.get("locator"),
            exception.findtext("ows:ExceptionText", namespaces=NS) or "",
        )

    status, locator, text = refusal(TYPENAMES="urbis:Nope")
    assert (status, locator) == (400, "typename") and "TYPENAME 'Nope' doesn't exist" in text
    status, locator, text = refusal(SRSNAME="EPSG:3812", OUTPUTFORMAT="application/json")
    assert (status, locator) == (400, "srsname") and "Invalid SRS" in text
    hits = client.get(wfs.url, params=get_feature("urbis:Municipalities", RESULTTYPE="hits"))
    root = ET.fromstring(hits.content)
    assert (root.get("numberMatched"), root.get("numberReturned")) == ("19", "0")
    crash = client.get(
        wfs.url,
        params=get_feature(
            "urbis:Municipalities", RESULTTYPE="hits", OUTPUTFORMAT="application/json"
        ),
    )
    assert crash.status_code == 502 and b"mapserv failed" in crash.content


def test_http_status_and_exception_report_faults(
    fresh_wfs: MapServerWfs, client: httpx.Client
) -> None:
    fresh_wfs.inject("http:404", "http:429", "exception:NoApplicableCode")
    assert [str(f) for f in fresh_wfs.pending_faults] == [
        "http:404",
        "http:429",
        "exception:NoApplicableCode",
    ]
    not_found = client.get(fresh_wfs.url, params=municipalities_page(fresh_wfs))
    assert not_found.status_code == 404 and b"injected fault" in not_found.content
    assert client.get(fresh_wfs.url, params=municipalities_page(fresh_wfs)).status_code == 429
    report = client.get(fresh_wfs.url, params=municipalities_page(fresh_wfs))  # GeoJSON asked
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/xml")
    exception = ET.fromstring(report.content).find("ows:Exception", NS)
    assert exception is not None and exception.get("exceptionCode") == "NoApplicableCode"
    assert client.get(fresh_wfs.url, params=municipalities_page(fresh_wfs)).status_code == 200
    for bad in ("http:200", "http:x", "exception:", "exception:a b"):
        with pytest.raises(ValueError):
            fresh_wfs.inject(bad)
