"""Sync against a replay of the real URBIS GeoServer (recorded `urbisvector` GetFeature bodies).

The recordings (data/sample/geoserver/bxl-*/) are six 500 m cells, five layers each, fetched with
a BBOX on the cell; tests/support/geoserver_replay.py serves them back byte for byte and
synthesizes what was not recorded (capabilities, schema, pages past the end). Every expectation
below is derived from the recordings themselves, cell by cell and layer by layer:

- a complete recording (the file holds all `numberMatched` features) syncs to exactly its
  features, keyed on INSPIRE_ID (never on GeoServer's transient `Buildings.fid-...` ids), and a
  second sync of the same answer changes nothing;
- a building file filtered after download (numberMatched > features in the file) fails the run
  on the numberMatched check, and nothing is stored;
- an empty layer (FeatureCollection without features) syncs to an empty layer;
- the recorder's extra top-level member `grand_bruxelles_source` changes nothing.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import httpx
import pytest
import shapely
import sqlalchemy as sa
from shapely.geometry import shape

from tests.support.geoserver_replay import (
    GEOSERVER_OUTPUT_FORMATS,
    GeoServerReplay,
    Recording,
    load_recordings,
)
from urbis_core.config import WfsSource, load_config
from urbis_core.settings import SyncSettings
from urbis_sync.run import RunReport, sync_layer
from urbis_sync.sources.http import HttpFetcher, RetryPolicy
from urbis_sync.sources.wfs import WfsReader

SETTINGS = SyncSettings(http_attempts=2, http_backoff=0.05, http_timeout=5)
KEY = "INSPIRE_ID"
TOLERANCE = 0.001  # metres: a stored geometry may differ from the recorded one by 1 mm
# What the shared extracts' documentation announces, as the files contain them.
DOCUMENTED_TOTALS = {
    "buildings": 65,
    "street_axes": 11,
    "street_surfaces": 30,
    "tram_network": 8,
    "train_network": 8,
}
DOCUMENTED_CELLS = 6
FID = re.compile(r"^[A-Za-z]+\.fid-")

RECORDINGS = load_recordings()
COMPLETE = [r for r in RECORDINGS if r.complete and r.features]
FILTERED = [r for r in RECORDINGS if not r.complete]
EMPTY = [r for r in RECORDINGS if r.complete and not r.features]


def label(recording: Recording) -> str:
    return f"{recording.cell_id}/{recording.name}"


def layer_id(recording: Recording) -> str:
    """`buildings_e141000_n167000`: a valid layer id (lower case, digits, _)."""
    cell = recording.cell_id.removeprefix("bxl-").removesuffix("-s500").replace("-", "_")
    return f"{recording.name}_{cell}"


def bbox_yaml(bbox: tuple[float, ...]) -> str:
    return "[" + ", ".join(repr(int(v)) if v == int(v) else repr(v) for v in bbox) + "]"


def write_config(
    tmp_path: Path,
    url: str,
    recordings: list[Recording],
    bbox: tuple[float, ...] | None = None,
    page_size: int | None = None,
) -> Path:
    lines = ["layers:"]
    for recording in recordings:
        extra = f", page_size: {page_size}" if page_size else ""
        lines += [
            f"  {layer_id(recording)}:",
            f"    source: {{kind: wfs, url: '{url}', typename: {recording.typename}, "
            f"bbox: {bbox_yaml(bbox or recording.bbox)}{extra}}}",
            f"    key: {KEY}",
        ]
    path = tmp_path / "urbis.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def sync(engine: sa.Engine, config: Path, recording: Recording) -> RunReport:
    return sync_layer(engine, load_config(config), layer_id(recording), SETTINGS)


def rows(engine: sa.Engine, query: str, **params: object) -> list:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(query), params))


def live_state(engine: sa.Engine, recording: Recording) -> list:
    return rows(engine, f'SELECT "{KEY}", row_hash FROM urbis."{layer_id(recording)}" ORDER BY 1')


def catalog(engine: sa.Engine, recording: Recording):
    found = rows(
        engine, "SELECT * FROM urbis_meta.layer_catalog WHERE id = :id", id=layer_id(recording)
    )
    return found[0] if found else None


def last_run(engine: sa.Engine, recording: Recording):
    return rows(
        engine,
        "SELECT * FROM urbis_meta.sync_run WHERE layer_id = :id ORDER BY id DESC LIMIT 1",
        id=layer_id(recording),
    )[0]


def without_member(name: str):
    def strip(recording: Recording, body: bytes) -> bytes:
        document = json.loads(body)
        assert name in document, f"{label(recording)}: no {name} to remove"
        del document[name]
        return json.dumps(document, separators=(",", ":")).encode()

    return strip


def with_new_feature_ids(recording: Recording, body: bytes) -> bytes:
    """GeoServer hands out other feature ids on every request: give every feature a new one."""
    counter = iter(range(1_000_000))
    new = re.sub(
        rb'"id":"([A-Za-z]+)\.fid-[^"]*"',
        lambda m: b'"id":"%s.fid-replayed_%d"' % (m.group(1), next(counter)),
        body,
    )
    assert new != body, f"{label(recording)}: no feature ids in the recording"
    return new


@pytest.fixture
def replay():
    with GeoServerReplay(RECORDINGS) as server:
        yield server


# -- the recordings and the replay themselves (no database) -----------------------------------


def test_recordings_hold_the_documented_totals():
    cells = {r.cell_id for r in RECORDINGS}
    assert len(cells) == DOCUMENTED_CELLS
    totals = Counter()
    for recording in RECORDINGS:
        totals[recording.name] += len(recording.features)
        manifest = json.loads((recording.path.parent / "manifest.json").read_text())
        assert manifest["layers"][recording.name]["features"] == len(recording.features), label(
            recording
        )
        assert recording.typename == manifest["layers"][recording.name]["wfs_name"]
        assert (
            recording.document["crs"] is None
            or recording.document["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::31370"
        ), label(recording)
        assert "grand_bruxelles_source" in recording.document, label(recording)
        assert len({f["properties"][KEY] for f in recording.features}) == len(recording.features), (
            f"{label(recording)}: duplicate {KEY} within the cell"
        )
    assert dict(totals) == DOCUMENTED_TOTALS
    # Every cell has all five layers; the quirks the tests below rely on are really there.
    assert Counter(r.cell_id for r in RECORDINGS) == {cell: 5 for cell in cells}
    assert FILTERED and all(r.name == "buildings" for r in FILTERED)
    assert all(r.number_matched > len(r.features) for r in FILTERED)
    assert EMPTY and COMPLETE


def test_replay_answers_like_the_recorded_geoserver(replay):
    base = {
        "SERVICE": "WFS",
        "VERSION": "2.0.0",
        "REQUEST": "GetFeature",
        "SRSNAME": "EPSG:31370",
        "OUTPUTFORMAT": "application/json",
        "COUNT": "1000",
        "SORTBY": f"{KEY} ASC",
    }
    with httpx.Client() as client:
        for recording in RECORDINGS:
            bbox = ",".join(f"{v:.0f}" for v in recording.bbox) + ",EPSG:31370"
            params = {**base, "TYPENAMES": recording.typename, "BBOX": bbox}
            first = client.get(replay.url, params={**params, "STARTINDEX": "0"})
            assert first.status_code == 200
            assert first.content == recording.body, label(recording)  # byte for byte
            past = max(len(recording.features), 1)  # the next page (an empty one: page 2)
            after = client.get(replay.url, params={**params, "STARTINDEX": str(past)}).json()
            assert after["features"] == []
            assert after["numberMatched"] == recording.number_matched, label(recording)
            assert after["totalFeatures"] == recording.total_features, label(recording)
        elsewhere = client.get(
            replay.url,
            params={
                **base,
                "TYPENAMES": "urbisvector:Buildings",
                "BBOX": "150000,170000,150500,170500,EPSG:31370",
            },
        ).json()
        assert (elsewhere["features"], elsewhere["numberMatched"]) == ([], 0)
        unknown = client.get(
            replay.url,
            params={
                **base,
                "TYPENAMES": "urbisvector:Addresses",
                "BBOX": "141000,167000,141500,167500",
            },
        ).json()
        assert (unknown["features"], unknown["numberMatched"]) == ([], 0)
        not_recorded = client.get(replay.url, params={**base, "TYPENAMES": "urbisvector:Buildings"})
        assert not_recorded.status_code == 400 and b"ExceptionReport" in not_recorded.content
    answers = [r.answer for r in replay.getfeature_requests]
    assert answers == ["recorded", "past_end"] * len(RECORDINGS) + [
        "unknown",
        "unknown",
        "exception",
    ]


def test_synthesized_capabilities_and_schema_read_by_the_wfs_client(replay):
    capabilities = ET.fromstring(
        httpx.get(
            replay.url, params={"SERVICE": "WFS", "VERSION": "2.0.0", "REQUEST": "GetCapabilities"}
        ).content
    )
    ows = "{http://www.opengis.net/ows/1.1}"
    count = capabilities.find(f".//{ows}Constraint[@name='CountDefault']/{ows}DefaultValue")
    assert count is not None and count.text == "1000"
    names = {e.text for e in capabilities.iter("{http://www.opengis.net/wfs/2.0}Name")}
    assert names == {r.typename for r in RECORDINGS}
    formats = [
        e.text
        for e in capabilities.findall(
            f"{ows}OperationsMetadata/{ows}Operation[@name='GetFeature']"
            f"/{ows}Parameter[@name='outputFormat']/{ows}AllowedValues/{ows}Value"
        )
    ]
    assert formats == list(GEOSERVER_OUTPUT_FORMATS)
    assert "application/json" in formats and "text/xml; subtype=gml/3.2" in formats

    http = HttpFetcher(RetryPolicy(attempts=1, timeout=5))
    try:
        for typename in sorted(names):
            layer = typename.split(":")[1]
            source = WfsSource(kind="wfs", url=replay.url, typename=typename)
            reader = WfsReader(source, KEY, "probe", http)
            try:
                fields = {f.name: f.sql_type for f in reader.schema.fields}
                assert reader.page_size == 1000
                # GeoServer offers GeoJSON: asked as it spells it, the recordings' format.
                assert (reader.output.kind, reader.output.value) == ("geojson", "application/json")
            finally:
                reader.close()
            recorded = [r for r in RECORDINGS if r.layer == layer]
            properties = {name for r in recorded for f in r.features for name in f["properties"]}
            assert set(fields) == properties, typename
            assert fields[KEY] == "text"
            for name, sql_type in fields.items():
                values = [
                    f["properties"][name]
                    for r in recorded
                    for f in r.features
                    if f["properties"].get(name) is not None
                ]
                if any(isinstance(v, str) for v in values):
                    assert sql_type == "text", (typename, name)
                elif any(isinstance(v, float) for v in values):
                    assert sql_type == "double precision", (typename, name)
                elif values:
                    assert sql_type == "integer", (typename, name)
            kinds = {f["geometry"]["type"] for r in recorded for f in r.features}
            expected = (
                "MultiSurface"
                if "MultiPolygon" in kinds
                else ("Surface" if "Polygon" in kinds else "Curve")
            )
            assert reader.schema.geometry_type == expected, typename
    finally:
        http.close()
    buildings = {n: t for n, t in replay.field_types("Buildings")}
    # BLOCK_ID is a URI (or null) in the recordings, not a number; AREA is whole square metres.
    assert buildings == {"INSPIRE_ID": "xsd:string", "BLOCK_ID": "xsd:string", "AREA": "xsd:int"}


# -- the sync ---------------------------------------------------------------------------------


def assert_stored_equals_recording(engine: sa.Engine, recording: Recording) -> None:
    table = layer_id(recording)
    entry = catalog(engine, recording)
    assert entry is not None and entry.key_field == KEY
    columns = [c["name"] for c in entry.columns]
    properties = list(recording.features[0]["properties"])
    assert sorted(columns) == sorted(properties), "stored columns differ from the properties"
    primary = rows(
        engine,
        """
        SELECT a.attname FROM pg_index i JOIN pg_attribute a
          ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = to_regclass(:t) AND i.indisprimary""",
        t=f'urbis."{table}"',
    )
    assert [r[0] for r in primary] == [KEY]
    selected = ", ".join(f'"{c}"' for c in columns)
    stored = {
        r._mapping[KEY]: r
        for r in rows(engine, f'SELECT {selected}, ST_AsBinary(geom) AS wkb FROM urbis."{table}"')
    }
    recorded = {f["properties"][KEY]: f for f in recording.features}
    assert len(stored) == len(recording.features) == recording.number_matched
    assert set(stored) == set(recorded)
    for key, feature in recorded.items():
        row = stored[key]._mapping
        for name, value in feature["properties"].items():
            assert row[name] == value, f"{key}: {name} stored {row[name]!r}, recorded {value!r}"
        assert not any(isinstance(v, str) and FID.match(v) for v in row.values() if v), key
        got = shapely.from_wkb(bytes(row["wkb"]))
        want = shape(feature["geometry"])
        got_parts, want_parts = shapely.get_parts(got), shapely.get_parts(want)
        assert got.geom_type.removeprefix("Multi") == want.geom_type.removeprefix("Multi"), key
        assert len(got_parts) == len(want_parts), key
        for a, b in zip(got_parts, want_parts, strict=True):
            assert a.equals_exact(b, TOLERANCE), f"{key}: geometry differs by more than 1 mm"
        assert shapely.hausdorff_distance(got, want) <= TOLERANCE, key


@pytest.mark.parametrize("recording", COMPLETE, ids=label)
def test_complete_recording_syncs_exactly_and_again_changes_nothing(
    engine, replay, tmp_path, recording
):
    config = write_config(tmp_path, replay.url, [recording])
    first = sync(engine, config, recording)
    assert first.status == "success", first.error
    n = len(recording.features)
    assert (first.fetched, first.inserted, first.updated, first.deleted) == (n, n, 0, 0)
    assert (first.quarantined, first.repaired) == (0, 0)
    assert_stored_equals_recording(engine, recording)
    run = last_run(engine, recording)
    assert (run.status, run.fetched, run.inserted) == ("success", n, n)
    assert f"numberMatched {recording.number_matched}" in run.source_info

    # What the client asked: the capabilities once, the recorded query, then the next page
    # (past the end).
    assert [r.request for r in replay.requests] == [
        "getcapabilities",
        "describefeaturetype",
        "getfeature",
        "getfeature",
    ]
    asked = replay.getfeature_requests
    assert [r.answer for r in asked] == ["recorded", "past_end"]
    bbox = ",".join(f"{v:g}" for v in recording.bbox)
    for request, start in zip(asked, ["0", str(n)], strict=True):
        assert request.params["TYPENAMES"] == recording.typename
        assert request.params["BBOX"] == f"{bbox},EPSG:31370"
        assert request.params["SRSNAME"] == "EPSG:31370"
        assert request.params["OUTPUTFORMAT"] == "application/json"
        assert request.params["SORTBY"] == f"{KEY} ASC"
        assert (request.params["COUNT"], request.params["STARTINDEX"]) == ("1000", start)

    before = live_state(engine, recording)
    again = sync(engine, config, recording)
    assert again.status == "success", again.error
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    assert again.version == first.version == catalog(engine, recording).version
    assert live_state(engine, recording) == before
    assert rows(engine, f'SELECT count(*) FROM urbis_history."{layer_id(recording)}"')[0][0] == 0


@pytest.mark.parametrize("recording", FILTERED, ids=label)
def test_filtered_building_file_fails_the_run_on_number_matched(
    engine, replay, tmp_path, recording
):
    config = write_config(tmp_path, replay.url, [recording])
    report = sync(engine, config, recording)
    assert report.status == "failed"
    error = report.error or ""
    assert "numberMatched" in error
    assert f"announced {recording.number_matched} features" in error
    assert f"but {len(recording.features)} arrived" in error
    assert "nothing was applied" in error
    assert [r.answer for r in replay.getfeature_requests] == ["recorded", "past_end"]
    table = layer_id(recording)
    assert rows(engine, "SELECT to_regclass(:t)", t=f'urbis."{table}"')[0][0] is None
    assert catalog(engine, recording) is None
    run = last_run(engine, recording)
    assert (run.status, run.error) == ("failed", report.error)
    assert run.finished_at is not None and run.version is None
    assert rows(engine, "SELECT count(*) FROM urbis_meta.quarantine")[0][0] == 0
    assert rows(engine, "SELECT count(*) FROM urbis_meta.change_log")[0][0] == 0
    assert (
        rows(engine, "SELECT count(*) FROM pg_tables WHERE schemaname = 'urbis_staging'")[0][0] == 0
    )


@pytest.mark.parametrize("recording", EMPTY, ids=label)
def test_empty_layer_syncs_to_an_empty_layer(engine, replay, tmp_path, recording):
    assert recording.number_matched == 0
    config = write_config(tmp_path, replay.url, [recording])
    first = sync(engine, config, recording)
    assert first.status == "success", first.error
    assert (first.fetched, first.inserted, first.updated, first.deleted) == (0, 0, 0, 0)
    assert [r.answer for r in replay.getfeature_requests] == ["recorded"]
    table = layer_id(recording)
    assert rows(engine, f'SELECT count(*) FROM urbis."{table}"')[0][0] == 0
    entry = catalog(engine, recording)
    assert (entry.feature_count, entry.version, entry.key_field) == (0, 1, KEY)
    assert {c["name"] for c in entry.columns} == {n for n, _ in replay.field_types(recording.layer)}
    again = sync(engine, config, recording)
    assert again.status == "success", again.error
    assert (again.inserted, again.updated, again.deleted, again.version) == (0, 0, 0, 1)


def test_new_geoserver_feature_ids_change_nothing(engine, replay, tmp_path):
    """The `Buildings.fid-...` ids are not keys: new ids for the same features are no change."""
    config = write_config(tmp_path, replay.url, COMPLETE)
    for recording in COMPLETE:
        assert sync(engine, config, recording).status == "success", label(recording)
    before = {label(r): live_state(engine, r) for r in COMPLETE}
    replay.body_filter = with_new_feature_ids
    for recording in COMPLETE:
        again = sync(engine, config, recording)
        assert (again.status, again.inserted, again.updated, again.deleted) == (
            "success",
            0,
            0,
            0,
        ), label(recording)
        assert live_state(engine, recording) == before[label(recording)], label(recording)


def test_recorder_member_grand_bruxelles_source_changes_nothing(engine, replay, tmp_path):
    """The recorder's top-level `grand_bruxelles_source` (in every body) is ignored: the same
    bodies without it sync to the very same rows."""
    config = write_config(tmp_path, replay.url, COMPLETE)
    for recording in COMPLETE:
        assert b'"grand_bruxelles_source"' in recording.body
        assert sync(engine, config, recording).status == "success", label(recording)
    before = {label(r): live_state(engine, r) for r in COMPLETE}
    replay.body_filter = without_member("grand_bruxelles_source")
    for recording in COMPLETE:
        again = sync(engine, config, recording)
        assert (again.status, again.inserted, again.updated, again.deleted) == (
            "success",
            0,
            0,
            0,
        ), label(recording)
        assert live_state(engine, recording) == before[label(recording)], label(recording)
    assert {r.answer for r in replay.getfeature_requests} == {"recorded", "past_end"}


def test_small_pages_through_a_recording(engine, replay, tmp_path):
    """A page size below the recording's size: several (synthesized) pages, the same rows."""
    recording = max(COMPLETE, key=lambda r: len(r.features))
    n = len(recording.features)
    page = max(1, n // 3)
    config = write_config(tmp_path, replay.url, [recording], page_size=page)
    report = sync(engine, config, recording)
    assert report.status == "success", report.error
    assert (report.fetched, report.inserted) == (n, n)
    starts = [int(r.params["STARTINDEX"]) for r in replay.getfeature_requests]
    assert starts == [*range(0, n, page), n]
    assert {r.params["COUNT"] for r in replay.getfeature_requests} == {str(page)}
    assert replay.getfeature_requests[-1].answer == "past_end"
    assert_stored_equals_recording(engine, recording)


def test_bbox_is_sent_at_full_precision(engine, replay, tmp_path):
    recording = next(r for r in COMPLETE if r.name == "buildings")
    wanted = (
        recording.bbox[0] + 0.25,
        recording.bbox[1] + 0.5,
        recording.bbox[2] + 0.25,
        recording.bbox[3] + 0.5,
    )
    config = write_config(tmp_path, replay.url, [recording], bbox=wanted)
    sync(engine, config, recording)  # succeeds today, with the rounded cell's features
    sent = replay.getfeature_requests[0].params["BBOX"].split(",")
    assert tuple(float(v) for v in sent[:4]) == wanted


def test_sources_check_reads_the_geoserver_as_it_is(replay, tmp_path):
    """`urbis sources check` on the GeoServer: GeoJSON chosen from its own list, and, as the
    replay answers RESULTTYPE=hits with an exception (nothing like it was recorded),
    numberMatched taken from the first page, saying why."""
    from urbis_sync.probe import probe_layer

    recording = max(COMPLETE, key=lambda r: len(r.features))
    config = load_config(write_config(tmp_path, replay.url, [recording]))
    probe = probe_layer(layer_id(recording), config.layer(layer_id(recording)), SETTINGS)
    assert probe.ok, probe.error
    facts = dict(probe.facts)
    assert facts["capabilities"] == (
        f"URBIS GeoServer replay (synthesized), WFS 2.0.0, {len({r.layer for r in RECORDINGS})} "
        "feature types"
    )
    assert facts["type name"] == f"{recording.typename} ({recording.layer})"
    assert facts["formats offered"] == (
        f"{', '.join(GEOSERVER_OUTPUT_FORMATS)} (the GetFeature operation)"
    )
    assert facts["format used"] == "application/json (GeoJSON, offered by the server)"
    assert facts["numberMatched"].startswith(
        f"{recording.number_matched} (the first page's; RESULTTYPE=hits failed: layer "
        f"'{layer_id(recording)}': GetFeature RESULTTYPE=hits: the server says (HTTP 400): "
        "InvalidParameterValue (locator outputFormat): only application/json was recorded"
    )
    keys = sorted(f["properties"][KEY] for f in recording.features)[:5]
    assert facts["first page"] == (
        f"{len(recording.features)} features read (page size 1000); {KEY}: {', '.join(keys)}, ..."
    )
    assert [r.answer for r in replay.getfeature_requests] == ["recorded", "exception"]
