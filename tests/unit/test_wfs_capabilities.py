"""Reading what a WFS says about itself, choosing the output format, and OWS exception reports."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.support.geoserver_replay import GEOSERVER_OUTPUT_FORMATS
from tests.support.mapserver import exception_report_body
from urbis_sync.sources.http import PermanentError
from urbis_sync.sources.ows import OwsException, exception_report, is_request_error
from urbis_sync.sources.wfs_capabilities import WfsCapabilities, choose_format, format_kind

MAPSERVER_GML = [
    "application/gml+xml; version=3.2",
    "text/xml; subtype=gml/3.2.1",
    "text/xml; subtype=gml/3.1.1",
    "text/xml; subtype=gml/2.1.2",
]


@pytest.mark.parametrize(
    "spelling, kind",
    [
        ("application/json", "geojson"),
        ("application/geo+json", "geojson"),
        ("json", "geojson"),
        ("geojson", "geojson"),
        ("application/json; subtype=geojson", "geojson"),
        ("application/json;subtype=geojson", "geojson"),
        ("APPLICATION/JSON", "geojson"),
        ("application/gml+xml; version=3.2", "gml"),
        ("text/xml; subtype=gml/3.2.1", "gml"),
        ('text/xml; subtype="gml/3.2.1"', "gml"),
        ("text/xml; subtype=gml/3.2", "gml"),
        ("gml32", "gml"),
        ("text/xml; subtype=gml/3.1.1", None),
        ("text/xml; subtype=gml/2.1.2", None),
        ("GML2", None),
        ("gml3", None),
        ("SHAPE-ZIP", None),
        ("csv", None),
        ("application/json; subtype=geojson/slim", None),
        ("text/javascript", None),
    ],
)
def test_format_spellings(spelling, kind):
    assert format_kind(spelling) == kind


def test_choice_prefers_geojson_and_keeps_the_servers_spelling():
    geoserver = choose_format(GEOSERVER_OUTPUT_FORMATS, None, "layer 'x'")
    assert (geoserver.kind, geoserver.value) == ("geojson", "application/json")
    assert (
        choose_format(GEOSERVER_OUTPUT_FORMATS, "gml", "x").value
        == "application/gml+xml; version=3.2"
    )
    only_subtype = ["text/xml; subtype=gml/3.2", "application/json; subtype=geojson"]
    assert choose_format(only_subtype, None, "x").value == "application/json; subtype=geojson"
    assert choose_format(only_subtype, "gml", "x").value == "text/xml; subtype=gml/3.2"
    mapserver = choose_format(MAPSERVER_GML, None, "x")
    assert (mapserver.kind, mapserver.value) == ("gml", "application/gml+xml; version=3.2")
    assert "the server offers no GeoJSON" in str(mapserver)
    # Nothing listed: what WFS 2.0 requires, or the forced format under its standard name.
    assert choose_format([], None, "x").value == "application/gml+xml; version=3.2"
    assert choose_format([], "geojson", "x").value == "application/json"


def test_choice_refuses_what_the_server_does_not_offer():
    with pytest.raises(PermanentError) as forced:
        choose_format(MAPSERVER_GML, "geojson", "layer 'muni'")
    assert str(forced.value).startswith(
        "layer 'muni': format: geojson, but the server does not offer GeoJSON (it offers: "
        "application/gml+xml; version=3.2, text/xml; subtype=gml/3.2.1, "
    )
    with pytest.raises(
        PermanentError,
        match=r"offers neither GeoJSON nor GML 3.2 \(it offers: "
        r"GML2, text/xml; subtype=gml/3.1.1\)",
    ):
        choose_format(["GML2", "text/xml; subtype=gml/3.1.1"], None, "x")
    with pytest.raises(PermanentError, match="does not offer GML 3.2"):
        choose_format(["application/json"], "gml", "x")


CAPABILITIES = """<?xml version="1.0"?>
<wfs:WFS_Capabilities version="2.0.0" xmlns:wfs="http://www.opengis.net/wfs/2.0"
    xmlns:ows="http://www.opengis.net/ows/1.1" xmlns="http://www.opengis.net/wfs/2.0">
  <ows:ServiceIdentification><ows:Title>Test  WFS</ows:Title></ows:ServiceIdentification>
  <ows:OperationsMetadata>
    <ows:Operation name="DescribeFeatureType"><ows:Parameter name="outputFormat">
      <ows:AllowedValues><ows:Value>text/xml; subtype=gml/3.1.1</ows:Value></ows:AllowedValues>
    </ows:Parameter></ows:Operation>
    <ows:Operation name="GetFeature"><ows:Parameter name="outputFormat"><ows:AllowedValues>
      <ows:Value>application/gml+xml; version=3.2</ows:Value>
      <ows:Value>application/json</ows:Value>
    </ows:AllowedValues></ows:Parameter></ows:Operation>
    <ows:Constraint name="CountDefault"><ows:NoValues/>
      <ows:DefaultValue>500</ows:DefaultValue></ows:Constraint>
  </ows:OperationsMetadata>
  <FeatureTypeList>
    <FeatureType><Name>ws:Buildings</Name><Title>Buildings</Title></FeatureType>
    <FeatureType><Name>ws:StreetAxes</Name><Title>Street axes</Title>
      <OutputFormats><Format>application/gml+xml; version=3.2</Format></OutputFormats>
    </FeatureType>
    <FeatureType><Name>Blocks</Name><Title>Blocks</Title></FeatureType>
    <FeatureType><Name>other:Buildings</Name><Title>Other buildings</Title></FeatureType>
  </FeatureTypeList>
</wfs:WFS_Capabilities>"""


def test_capabilities_are_read_with_the_formats_of_each_type():
    caps = WfsCapabilities.parse(ET.fromstring(CAPABILITIES))
    assert (caps.title, caps.version, caps.count_default) == ("Test WFS", "2.0.0", 500)
    assert caps.getfeature_formats == ("application/gml+xml; version=3.2", "application/json")
    buildings = caps.require_type("ws:Buildings", "x")
    axes = caps.require_type("StreetAxes", "x")  # without its prefix
    assert caps.formats_for(buildings) == caps.getfeature_formats
    assert caps.formats_for(axes) == ("application/gml+xml; version=3.2",)  # its own list wins
    assert choose_format(caps.formats_for(axes), None, "x").kind == "gml"
    assert caps.require_type("ws:Blocks", "x").name == "Blocks"  # the server has no prefix
    with pytest.raises(PermanentError):  # two types named Buildings: which one is not a guess
        caps.require_type("Buildings", "x")
    with pytest.raises(PermanentError) as unknown:
        caps.require_type("ws:StreetAxis", "layer 'axes'")
    assert str(unknown.value) == (
        "layer 'axes': the server has no feature type 'ws:StreetAxis' (closest of the 4 it "
        "offers: ws:StreetAxes, Blocks, ws:Buildings, other:Buildings)"
    )


def test_exception_reports_are_read_and_classified():
    mapserver = exception_report_body("InvalidParameterValue", "typename", "no such type")
    assert exception_report(mapserver) == [
        OwsException("InvalidParameterValue", "typename", "no such type")
    ]
    wfs10 = (
        b'<?xml version="1.0"?>\n<ServiceExceptionReport version="1.2.0">'
        b'<ServiceException code="InvalidFormat">bad format</ServiceException>'
        b"</ServiceExceptionReport>"
    )
    assert exception_report(wfs10) == [OwsException("InvalidFormat", "", "bad format")]
    for body in (
        b'{"type": "FeatureCollection", "features": []}',
        b'<wfs:FeatureCollection numberMatched="0"/>',
        b"<ExceptionReport",
        b"\x00garbage ExceptionReport",
    ):
        assert exception_report(body) is None
    about_request = [OwsException("MissingParameterValue", "", "")]
    about_server = [OwsException("NoApplicableCode", "", "")]
    assert is_request_error(about_request, 200) and is_request_error(about_request, 500)
    assert not is_request_error(about_server, 200) and not is_request_error(about_server, 503)
    assert is_request_error(about_server, 400) and not is_request_error(about_server, 429)
