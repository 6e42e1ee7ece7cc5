"""`urbis sources check` against real MapServer WFS servers, with and without GeoJSON.

The command runs as a user runs it (a subprocess), with a DATABASE_URL nothing listens on: a
check that touched the database would fail.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from tests.api.conftest import URBIS
from tests.support.mapserver import MapServerWfs, WfsLayer, write_sample_municipalities

NOWHERE = "postgresql://nobody:secret@127.0.0.1:9/none"
GML_FORMATS = (
    "application/gml+xml; version=3.2, text/xml; subtype=gml/3.2.1, "
    "text/xml; subtype=gml/3.1.1, text/xml; subtype=gml/2.1.2"
)


def check(config: Path, *options: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "URBIS_CONFIG"}
    env.update(
        DATABASE_URL=NOWHERE,
        URBIS_HTTP_ATTEMPTS="3",
        URBIS_HTTP_BACKOFF="0.05",
        URBIS_HTTP_TIMEOUT="10",
    )
    return subprocess.run(
        [str(URBIS), "--config", str(config), "sources", "check", *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def block(stdout: str, layer_id: str) -> list[str]:
    """The lines a layer's check printed, its own header first."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{layer_id}: "))
    end = next(
        (i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), len(lines)
    )
    return lines[start:end]


def fact(lines: list[str], name: str) -> str:
    prefix = f"  {name}:"
    return next(line[len(prefix) :].strip() for line in lines if line.startswith(prefix))


def operations(wfs: MapServerWfs) -> list[str]:
    return [{k.upper(): v for k, v in parse_qsl(q)}.get("REQUEST", "") for q in wfs.requests]


def wfs_layer(layer_id: str, wfs: MapServerWfs, typename: str, extra: str = "") -> str:
    return (
        f"  {layer_id}:\n    source: {{kind: wfs, url: '{wfs.url}', typename: '{typename}'"
        f"{extra}}}\n    key: NAT_CODE\n"
    )


@pytest.fixture(scope="module")
def gpkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_municipalities(tmp_path_factory.mktemp("data") / "municipalities.gpkg")


@pytest.fixture
def servers(gpkg: Path, tmp_path: Path) -> Iterator[dict[str, MapServerWfs]]:
    """One MapServer with GeoJSON, one without: each with the 19 municipalities."""
    with (
        MapServerWfs(
            [WfsLayer("Municipalities", gpkg, key="NAT_CODE")], tmp_path / "json", page_size=5
        ) as with_json,
        MapServerWfs(
            [WfsLayer("Municipalities", gpkg, key="NAT_CODE")],
            tmp_path / "gml",
            page_size=5,
            geojson=False,
        ) as gml_only,
    ):
        yield {"json": with_json, "gml": gml_only}


def test_check_reports_each_server_as_it_is(servers, gpkg, tmp_path):
    config = tmp_path / "urbis.yaml"
    config.write_text(
        "layers:\n"
        + wfs_layer("with_json", servers["json"], "urbis:Municipalities")
        + wfs_layer("gml_only", servers["gml"], "Municipalities")
        + f"  local:\n    source: {{kind: file, path: {gpkg}}}\n    key: NAT_CODE\n"
    )
    done = check(config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "urbis: 2 sources checked, all OK"

    json_lines = block(done.stdout, "with_json")
    assert json_lines[0] == f"with_json: wfs {servers['json'].url} urbis:Municipalities"
    assert fact(json_lines, "capabilities") == (
        "URBIS test WFS (MapServer), WFS 2.0.0, 1 feature type"
    )
    assert fact(json_lines, "type name") == "urbis:Municipalities (Municipalities)"
    assert fact(json_lines, "formats offered") == (
        f"{GML_FORMATS}, application/json (the type's own list)"
    )
    assert fact(json_lines, "format used") == "application/json (GeoJSON, offered by the server)"
    assert fact(json_lines, "numberMatched") == "19 (RESULTTYPE=hits)"
    assert fact(json_lines, "first page") == (
        "5 features read (page size 5); NAT_CODE: 21001, 21002, 21003, 21004, 21005"
    )
    assert "NAT_CODE text" in fact(json_lines, "fields")
    assert json_lines[-1] == "  OK"

    gml_lines = block(done.stdout, "gml_only")
    assert fact(gml_lines, "type name") == "urbis:Municipalities (Municipalities)"
    assert fact(gml_lines, "formats offered") == f"{GML_FORMATS} (the type's own list)"
    assert fact(gml_lines, "format used") == (
        "application/gml+xml; version=3.2 (GML 3.2, the server offers no GeoJSON)"
    )
    assert fact(gml_lines, "numberMatched") == "19 (RESULTTYPE=hits)"
    assert fact(gml_lines, "first page") == (
        "5 features read (page size 5); NAT_CODE: 21001, 21002, 21003, 21004, 21005"
    )
    assert gml_lines[-1] == "  OK"
    assert block(done.stdout, "local")[1:] == [
        "  not checked: a file source: `urbis config check` opens it"
    ]

    for wfs in servers.values():  # capabilities once, schema, first page, hits: no more
        assert operations(wfs) == [
            "GetCapabilities",
            "DescribeFeatureType",
            "GetFeature",
            "GetFeature",
        ]


def test_check_fails_in_the_servers_words_without_retrying(servers, tmp_path):
    config = tmp_path / "urbis.yaml"
    config.write_text(
        "layers:\n"
        + wfs_layer("misspelt", servers["json"], "urbis:Municipalites")
        + wfs_layer("forced", servers["gml"], "urbis:Municipalities", ", format: geojson")
    )
    done = check(config)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "urbis: 2 of 2 sources failed their check: misspelt, forced"
    )
    misspelt = block(done.stdout, "misspelt")
    assert misspelt[1:] == [
        "  capabilities: URBIS test WFS (MapServer), WFS 2.0.0, 1 feature type",
        "  FAILED: layer 'misspelt': the server has no feature type 'urbis:Municipalites' "
        "(closest of the 1 it offers: urbis:Municipalities)",
    ]
    forced = block(done.stdout, "forced")
    assert forced[-1] == (
        f"  FAILED: layer 'forced': format: geojson, but the server does not offer GeoJSON "
        f"(it offers: {GML_FORMATS}); remove `format` (or set `format: gml`) to use GML 3.2"
    )
    assert operations(servers["json"]) == ["GetCapabilities"]  # failed at once: no retries
    assert operations(servers["gml"]) == ["GetCapabilities"]


def test_check_retries_what_may_pass_and_not_what_cannot(servers, tmp_path):
    config = tmp_path / "urbis.yaml"
    config.write_text(
        "layers:\n"
        + wfs_layer("flaky", servers["json"], "urbis:Municipalities")
        + wfs_layer("refused", servers["gml"], "urbis:Municipalities")
    )
    servers["json"].inject("http:503")  # the first page: retried, then served
    servers["gml"].inject("http:403")  # the first page: refused for good
    done = check(config)
    assert done.returncode == 1
    assert block(done.stdout, "flaky")[-1] == "  OK"
    assert operations(servers["json"]).count("GetFeature") == 3  # 503, first page, hits
    refused = block(done.stdout, "refused")
    assert refused[-1].startswith("  FAILED: layer 'refused': GetFeature from 0: HTTP 403 from ")
    assert operations(servers["gml"]) == ["GetCapabilities", "DescribeFeatureType", "GetFeature"]


def test_layers_are_chosen_with_layer_or_collections(servers, tmp_path):
    config = tmp_path / "urbis.yaml"
    config.write_text(
        "layers:\n"
        + wfs_layer("a", servers["json"], "urbis:Municipalities")
        + wfs_layer("b", servers["gml"], "urbis:Municipalities")
    )
    only_b = check(config, "--collections", "b")
    assert only_b.returncode == 0 and only_b.stdout.startswith("b: wfs ")
    assert "\na: " not in only_b.stdout and operations(servers["json"]) == []
    both = check(config, "--layer", "b,a", "--collections", "a")
    assert both.returncode == 0
    assert [line.split(":")[0] for line in both.stdout.splitlines() if not line.startswith(" ")][
        :2
    ] == ["b", "a"]
    unknown = check(config, "--layer", "a,nope,other")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.strip() == (
        f"urbis: configuration error: {config}: no layer 'nope', 'other' (configured layers: a, b)"
    )
