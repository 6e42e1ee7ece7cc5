"""A replay of the URBIS GeoServer `urbisvector` WFS 2.0 endpoint, from recorded responses.

    with GeoServerReplay() as wfs:  # serves data/sample/geoserver/bxl-*/
        httpx.get(wfs.url, params={"SERVICE": "WFS", "VERSION": "2.0.0",
                                   "REQUEST": "GetFeature", "TYPENAMES": "urbisvector:Buildings",
                                   "BBOX": "141000,167000,141500,167500,EPSG:31370",
                                   "SRSNAME": "EPSG:31370", "OUTPUTFORMAT": "application/json"})
        wfs.getfeature_requests[-1].answer   # "recorded"

A ThreadingHTTPServer on 127.0.0.1 (free port) at `/geoserver/urbisvector/wfs`, a context
manager. What is RECORDED and what is SYNTHESIZED:

- GetFeature, OUTPUTFORMAT=application/json, with a BBOX equal to a recorded cell's bbox
  (manifest.json `bbox`, optionally followed by EPSG:31370) and TYPENAMES one of the recorded
  layers (`urbisvector:<Layer>` or `<Layer>`):
  * STARTINDEX 0 (or absent) and COUNT >= the features in the file: the RECORDED body, byte for
    byte (answer "recorded"), unless a test installed a `body_filter`.
  * STARTINDEX >= the features in the file (a client asking for the next page): SYNTHESIZED
    FeatureCollection with no features and the recording's numberMatched/totalFeatures, as
    GeoServer answers past the end (answer "past_end").
  * anything in between (COUNT smaller than the recording): SYNTHESIZED slice of the recorded
    features, with numberReturned and bbox recomputed (answer "slice"). The recordings are
    sorted on INSPIRE_ID, which is what clients ask with SORTBY.
  * a BBOX or layer that was not recorded: SYNTHESIZED empty FeatureCollection with
    numberMatched 0 (answer "unknown").
  GetFeature without BBOX, with another OUTPUTFORMAT, SRSNAME or BBOX CRS than EPSG:31370 (or
  its urn form) answers a SYNTHESIZED OWS ExceptionReport with HTTP 400: nothing like it was
  recorded, and the replay does not pretend to reproject or to serve whole layers.
- GetCapabilities: SYNTHESIZED (not recorded): a minimal WFS 2.0 document with the three
  operations, ImplementsResultPaging TRUE and a `CountDefault` constraint (`count_default`),
  and the recorded feature types (no per-type `OutputFormats`, as GeoServer writes none). The
  GetFeature operation advertises the `outputFormat` values a stock GeoServer 2.x lists
  (`GEOSERVER_OUTPUT_FORMATS`, as published GeoServer capabilities show them), although only
  GetFeature as application/json is answered from the recordings.
- DescribeFeatureType: SYNTHESIZED (not recorded), shaped like GeoServer's: an XSD with one
  `<Layer>Type` per feature type, properties in the recordings' order typed from the recorded
  values of that layer in all cells (str -> xsd:string, whole numbers -> xsd:int or xsd:long,
  any fraction -> xsd:double, bool -> xsd:boolean; a field that is null everywhere borrows the
  type the same field has in another layer, else xsd:string), and the geometry `GEOM` typed
  from the recorded geometry types (Polygon -> gml:SurfacePropertyType, MultiPolygon or a mix
  of both -> gml:MultiSurfacePropertyType, LineString -> gml:CurvePropertyType, ...). The
  target namespace URI is made up.

Every request is kept in `requests` (params with upper-case keys, and what was answered).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape, quoteattr

RECORDINGS_DIR = Path(__file__).resolve().parents[2] / "data" / "sample" / "geoserver"
WORKSPACE = "urbisvector"
PATH = f"/geoserver/{WORKSPACE}/wfs"
NAMESPACE_URI = "http://urbisvector.replay.invalid"  # made up: GeoServer's was not recorded
GEOMETRY_NAME = "GEOM"
SRID = 31370
_CRS_NAMES = {
    f"EPSG:{SRID}",
    f"urn:ogc:def:crs:EPSG::{SRID}",
    f"urn:x-ogc:def:crs:EPSG:{SRID}",
    f"http://www.opengis.net/def/crs/EPSG/0/{SRID}",
    f"http://www.opengis.net/gml/srs/epsg.xml#{SRID}",
}
# The GetFeature outputFormat values of a stock GeoServer 2.x WFS 2.0 (no extensions).
GEOSERVER_OUTPUT_FORMATS = (
    "application/gml+xml; version=3.2",
    "GML2",
    "KML",
    "SHAPE-ZIP",
    "application/json",
    "application/vnd.google-earth.kml xml",
    "application/vnd.google-earth.kml+xml",
    "csv",
    "gml3",
    "gml32",
    "json",
    "text/xml; subtype=gml/2.1.2",
    "text/xml; subtype=gml/3.1.1",
    "text/xml; subtype=gml/3.2",
)
_JSON_FORMATS = {
    "application/json",
    "json",
    "application/json;subtype=geojson",
    "application/geo+json",
}
_GML_TYPES = {
    frozenset({"Polygon"}): "gml:SurfacePropertyType",
    frozenset({"MultiPolygon"}): "gml:MultiSurfacePropertyType",
    frozenset({"Polygon", "MultiPolygon"}): "gml:MultiSurfacePropertyType",
    frozenset({"LineString"}): "gml:CurvePropertyType",
    frozenset({"MultiLineString"}): "gml:MultiCurvePropertyType",
    frozenset({"LineString", "MultiLineString"}): "gml:MultiCurvePropertyType",
    frozenset({"Point"}): "gml:PointPropertyType",
    frozenset({"MultiPoint"}): "gml:MultiPointPropertyType",
    frozenset({"Point", "MultiPoint"}): "gml:MultiPointPropertyType",
}
_INT32 = 2**31


@dataclass(frozen=True)
class Recording:
    """One recorded GetFeature body: a layer (e.g. `Buildings`) in a 500 m cell."""

    cell_id: str
    bbox: tuple[float, float, float, float]
    layer: str  # the WFS type name without the workspace prefix
    name: str  # the manifest's name for it: buildings, street_axes, ...
    path: Path
    body: bytes = field(repr=False)
    document: dict[str, Any] = field(repr=False, compare=False)

    @property
    def typename(self) -> str:
        return f"{WORKSPACE}:{self.layer}"

    @property
    def features(self) -> list[dict[str, Any]]:
        return list(self.document.get("features") or [])

    @property
    def number_matched(self) -> int | None:
        value = self.document.get("numberMatched")
        return value if isinstance(value, int) else None

    @property
    def total_features(self) -> int | None:
        value = self.document.get("totalFeatures")
        return value if isinstance(value, int) else None

    @property
    def number_returned(self) -> int | None:
        value = self.document.get("numberReturned")
        return value if isinstance(value, int) else None

    @property
    def complete(self) -> bool:
        """The file holds every feature the server matched (not filtered after download)."""
        if self.number_matched is None:
            return True
        returned = self.number_returned
        if returned is not None and returned != len(self.features):
            return False
        return (returned if returned is not None else len(self.features)) == self.number_matched


def load_recordings(root: Path = RECORDINGS_DIR) -> list[Recording]:
    """Every recorded body of every cell folder (those with a manifest.json), sorted."""
    found: list[Recording] = []
    for manifest_path in sorted(Path(root).glob("*/manifest.json")):
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        minx, miny, maxx, maxy = (float(v) for v in manifest["bbox"])
        for name, entry in sorted(manifest["layers"].items()):
            wfs_name = str(entry["wfs_name"])
            path = manifest_path.parent / Path(entry["file"]).name
            body = path.read_bytes()
            found.append(
                Recording(
                    cell_id=str(manifest.get("cell_id") or manifest_path.parent.name),
                    bbox=(minx, miny, maxx, maxy),
                    layer=wfs_name.split(":")[-1],
                    name=name,
                    path=path,
                    body=body,
                    document=json.loads(body),
                )
            )
    return found


@dataclass(frozen=True)
class ReplayRequest:
    """One request as received, and what the replay answered ("recorded", "past_end", ...)."""

    path: str
    query: str
    params: dict[str, str]
    status: int
    answer: str

    @property
    def request(self) -> str:
        return self.params.get("REQUEST", "").lower()


BodyFilter = Callable[[Recording, bytes], bytes]


class GeoServerReplay:
    """The `urbisvector` WFS endpoint at `url`, answering from `recordings`; a context manager.

    `body_filter(recording, body) -> body` (settable at any time) rewrites the recorded bodies
    served for STARTINDEX 0, e.g. to give features new GeoServer ids.
    """

    def __init__(
        self,
        recordings: list[Recording] | None = None,
        *,
        count_default: int = 1000,
        body_filter: BodyFilter | None = None,
    ) -> None:
        self.recordings = load_recordings() if recordings is None else list(recordings)
        if not self.recordings:
            raise ValueError("no recordings to replay")
        self.count_default = count_default
        self.body_filter = body_filter
        self.url = ""
        self._requests: list[ReplayRequest] = []
        self._lock = threading.Lock()
        self._server: _ReplayServer | None = None
        self._thread: threading.Thread | None = None
        self._by_layer: dict[str, list[Recording]] = {}
        for recording in self.recordings:
            self._by_layer.setdefault(recording.layer, []).append(recording)

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> GeoServerReplay:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("already started")
        self._server = _ReplayServer(("127.0.0.1", 0), self)
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}{PATH}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"geoserver-replay-{port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and wait for the request threads. Safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    # -- what was asked ---------------------------------------------------------------------
    @property
    def requests(self) -> list[ReplayRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def getfeature_requests(self) -> list[ReplayRequest]:
        return [r for r in self.requests if r.request == "getfeature"]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def find(self, typename: str, bbox: tuple[float, ...]) -> Recording | None:
        """The recording of a layer (`urbisvector:Buildings` or `Buildings`) for a cell bbox."""
        prefix, _, layer = typename.rpartition(":")
        if prefix not in ("", WORKSPACE):
            return None
        for recording in self._by_layer.get(layer, []):
            if len(bbox) == 4 and all(
                abs(a - b) < 1e-6 for a, b in zip(recording.bbox, bbox, strict=True)
            ):
                return recording
        return None

    # -- answers ----------------------------------------------------------------------------
    def _answer(self, path: str, query: str) -> tuple[int, str, bytes, str]:
        """(status, content type, body, answer kind) for one GET."""
        if path.rstrip("/") != PATH:
            return 404, "text/plain", b"not found\n", "not_found"
        params = {k.upper(): v for k, v in parse_qsl(query, keep_blank_values=True)}
        request = params.get("REQUEST", "").lower()
        if params.get("SERVICE", "WFS").upper() != "WFS":
            return _exception("InvalidParameterValue", "service", "SERVICE must be WFS")
        if request == "getcapabilities":
            return 200, "text/xml", self._capabilities(), "capabilities"
        if request == "describefeaturetype":
            return self._describe(params)
        if request == "getfeature":
            return self._get_feature(params)
        return _exception(
            "OperationNotSupported",
            "request",
            f"the replay does not answer REQUEST={params.get('REQUEST', '')!r}",
        )

    def _get_feature(self, params: dict[str, str]) -> tuple[int, str, bytes, str]:
        fmt = params.get("OUTPUTFORMAT", "")
        if fmt.replace(" ", "").lower() not in _JSON_FORMATS:
            return _exception(
                "InvalidParameterValue",
                "outputFormat",
                f"only application/json was recorded, not {fmt or 'GML'!r}",
            )
        srs = params.get("SRSNAME", "")
        if srs and srs not in _CRS_NAMES:
            return _exception(
                "InvalidParameterValue", "srsName", f"only EPSG:{SRID} was recorded, not {srs!r}"
            )
        if not params.get("BBOX"):
            return _exception(
                "MissingParameterValue",
                "bbox",
                "the replay only knows BBOX queries on recorded cells",
            )
        parts = [p.strip() for p in params["BBOX"].split(",")]
        if len(parts) == 5 and parts[4] in _CRS_NAMES:
            parts = parts[:4]
        try:
            bbox = tuple(float(p) for p in parts)
        except ValueError:
            bbox = ()
        if len(bbox) != 4:
            return _exception(
                "InvalidParameterValue",
                "bbox",
                f"BBOX={params['BBOX']!r} is not minx,miny,maxx,maxy[,EPSG:{SRID}]",
            )
        try:
            start = int(params.get("STARTINDEX") or 0)
            count = int(params.get("COUNT") or params.get("MAXFEATURES") or self.count_default)
        except ValueError:
            return _exception(
                "InvalidParameterValue", "startIndex", "STARTINDEX and COUNT must be integers"
            )
        typename = params.get("TYPENAMES") or params.get("TYPENAME") or ""
        recording = self.find(typename, bbox)
        if recording is None:
            return 200, _JSON, _empty_collection(0, 0), "unknown"
        features = recording.features
        if start == 0 and count >= len(features):
            body = recording.body
            if self.body_filter is not None:
                body = self.body_filter(recording, body)
            return 200, _JSON, body, "recorded"
        matched = recording.number_matched
        total = recording.total_features
        if start >= len(features):
            return 200, _JSON, _empty_collection(matched, total), "past_end"
        return 200, _JSON, _slice(recording, start, count), "slice"

    def _capabilities(self) -> bytes:
        types = "".join(
            "<wfs:FeatureType>"
            f"<wfs:Name>{WORKSPACE}:{layer}</wfs:Name><wfs:Title>{layer}</wfs:Title>"
            f"<wfs:DefaultCRS>urn:ogc:def:crs:EPSG::{SRID}</wfs:DefaultCRS>"
            "</wfs:FeatureType>"
            for layer in sorted(self._by_layer)
        )
        formats = "".join(f"<ows:Value>{escape(f)}</ows:Value>" for f in GEOSERVER_OUTPUT_FORMATS)
        parameters = {
            "GetFeature": '<ows:Parameter name="outputFormat"><ows:AllowedValues>'
            f"{formats}</ows:AllowedValues></ows:Parameter>"
        }
        operations = "".join(
            f'<ows:Operation name="{op}"><ows:DCP><ows:HTTP>'
            f"<ows:Get xlink:href={quoteattr(self.url + '?')}/>"
            f"</ows:HTTP></ows:DCP>{parameters.get(op, '')}</ows:Operation>"
            for op in ("GetCapabilities", "DescribeFeatureType", "GetFeature")
        )
        constraints = "".join(
            f'<ows:Constraint name="{name}"><ows:NoValues/>'
            f"<ows:DefaultValue>{value}</ows:DefaultValue></ows:Constraint>"
            for name, value in (
                ("ImplementsBasicWFS", "TRUE"),
                ("ImplementsResultPaging", "TRUE"),
                ("KVPEncoding", "TRUE"),
                ("CountDefault", str(self.count_default)),
            )
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<wfs:WFS_Capabilities version="2.0.0" xmlns:wfs="http://www.opengis.net/wfs/2.0" '
            'xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'xmlns:{WORKSPACE}="{NAMESPACE_URI}">'
            "<ows:ServiceIdentification><ows:Title>URBIS GeoServer replay (synthesized)"
            "</ows:Title><ows:ServiceType>WFS</ows:ServiceType>"
            "<ows:ServiceTypeVersion>2.0.0</ows:ServiceTypeVersion>"
            "</ows:ServiceIdentification>"
            f"<ows:OperationsMetadata>{operations}{constraints}</ows:OperationsMetadata>"
            f"<wfs:FeatureTypeList>{types}</wfs:FeatureTypeList>"
            "</wfs:WFS_Capabilities>"
        ).encode()

    def _describe(self, params: dict[str, str]) -> tuple[int, str, bytes, str]:
        asked = params.get("TYPENAMES") or params.get("TYPENAME") or ""
        names = [n.strip() for n in asked.split(",") if n.strip()] or [
            f"{WORKSPACE}:{layer}" for layer in sorted(self._by_layer)
        ]
        layers: list[str] = []
        for name in names:
            prefix, _, layer = name.rpartition(":")
            if prefix not in ("", WORKSPACE) or layer not in self._by_layer:
                return _exception(
                    "InvalidParameterValue", "typeName", f"Could not find type: {name}"
                )
            layers.append(layer)
        out = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<xsd:schema xmlns:gml="http://www.opengis.net/gml/3.2" '
            f'xmlns:{WORKSPACE}="{NAMESPACE_URI}" xmlns:wfs="http://www.opengis.net/wfs/2.0" '
            'xmlns:xsd="http://www.w3.org/2001/XMLSchema" elementFormDefault="qualified" '
            f'targetNamespace="{NAMESPACE_URI}">',
            '  <xsd:import namespace="http://www.opengis.net/gml/3.2" '
            'schemaLocation="http://schemas.opengis.net/gml/3.2.1/gml.xsd"/>',
        ]
        for layer in layers:
            out += [
                f'  <xsd:complexType name="{layer}Type">',
                "    <xsd:complexContent>",
                '      <xsd:extension base="gml:AbstractFeatureType">',
                "        <xsd:sequence>",
            ]
            for name, xsd_type in self.field_types(layer):
                out.append(
                    f'          <xsd:element maxOccurs="1" minOccurs="0" '
                    f'name={quoteattr(name)} nillable="true" type="{xsd_type}"/>'
                )
            out.append(
                f'          <xsd:element maxOccurs="1" minOccurs="0" '
                f'name="{GEOMETRY_NAME}" nillable="true" '
                f'type="{self.geometry_type(layer)}"/>'
            )
            out += [
                "        </xsd:sequence>",
                "      </xsd:extension>",
                "    </xsd:complexContent>",
                "  </xsd:complexType>",
                f'  <xsd:element name="{layer}" substitutionGroup="gml:AbstractFeature" '
                f'type="{WORKSPACE}:{layer}Type"/>',
            ]
        out.append("</xsd:schema>")
        return 200, "text/xml", "\n".join(out).encode(), "schema"

    # -- schema inference -------------------------------------------------------------------
    def field_types(self, layer: str) -> list[tuple[str, str]]:
        """(name, xsd type) of a layer's properties, from the values recorded in every cell."""
        order: list[str] = []
        seen: dict[str, set[str]] = {}
        for recording in self._by_layer.get(layer, []):
            for feature in recording.features:
                for name, value in (feature.get("properties") or {}).items():
                    if name not in seen:
                        order.append(name)
                        seen[name] = set()
                    kind = _value_type(value)
                    if kind:
                        seen[name].add(kind)
        out = []
        for name in order:
            kinds = seen[name] or self._same_field_elsewhere(name, layer)
            out.append((name, _merge(kinds)))
        return out

    def _same_field_elsewhere(self, name: str, layer: str) -> set[str]:
        kinds: set[str] = set()
        for other, recordings in self._by_layer.items():
            if other == layer:
                continue
            for recording in recordings:
                for feature in recording.features:
                    kind = _value_type((feature.get("properties") or {}).get(name))
                    if kind:
                        kinds.add(kind)
        return kinds

    def geometry_type(self, layer: str) -> str:
        kinds = frozenset(
            (feature.get("geometry") or {}).get("type")
            for recording in self._by_layer.get(layer, [])
            for feature in recording.features
            if feature.get("geometry")
        )
        return _GML_TYPES.get(kinds, "gml:GeometryPropertyType")

    def _log(self, entry: ReplayRequest) -> None:
        with self._lock:
            self._requests.append(entry)


_JSON = "application/json;charset=UTF-8"


def _value_type(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int" if -_INT32 <= value < _INT32 else "long"
    if isinstance(value, float):
        return "double"
    return "string"


def _merge(kinds: set[str]) -> str:
    if not kinds or "string" in kinds or ("boolean" in kinds and len(kinds) > 1):
        return "xsd:string"
    for kind in ("double", "long", "int", "boolean"):
        if kind in kinds:
            return f"xsd:{kind}"
    return "xsd:string"


def _timestamp() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _empty_collection(matched: int | None, total: int | None) -> bytes:
    """GeoServer's answer with no features (same member order as the recorded empty bodies)."""
    document: dict[str, Any] = {"type": "FeatureCollection"}
    if total is not None:
        document["totalFeatures"] = total
    if matched is not None:
        document["numberMatched"] = matched
    document.update({"timeStamp": _timestamp(), "crs": None, "features": [], "numberReturned": 0})
    return json.dumps(document, separators=(",", ":")).encode()


def _slice(recording: Recording, start: int, count: int) -> bytes:
    features = recording.features[start : start + count]
    document: dict[str, Any] = {}
    for name, value in recording.document.items():
        if name == "features":
            document[name] = features
        elif name == "numberReturned":
            document[name] = len(features)
        elif name == "timeStamp":
            document[name] = _timestamp()
        elif name == "bbox":
            boxes = [f["bbox"] for f in features if f.get("bbox")]
            if boxes:
                document[name] = [
                    min(b[0] for b in boxes),
                    min(b[1] for b in boxes),
                    max(b[2] for b in boxes),
                    max(b[3] for b in boxes),
                ]
        else:
            document[name] = value
    document.setdefault("numberReturned", len(features))
    return json.dumps(document, separators=(",", ":")).encode()


def _exception(code: str, locator: str, text: str) -> tuple[int, str, bytes, str]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows/1.1" version="2.0.0">'
        f'<ows:Exception exceptionCode="{code}" locator={quoteattr(locator)}>'
        f"<ows:ExceptionText>{escape(text)}</ows:ExceptionText>"
        "</ows:Exception></ows:ExceptionReport>"
    ).encode()
    return 400, "application/xml", body, "exception"


class _ReplayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], replay: GeoServerReplay) -> None:
        self.replay = replay
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    server: _ReplayServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        replay = self.server.replay
        split = urlsplit(self.path)
        try:
            status, ctype, body, answer = replay._answer(split.path, split.query)
        except Exception as exc:  # a bug in the replay: say so instead of hanging the client
            status, ctype, body, answer = (
                500,
                "text/plain",
                f"replay error: {exc!r}\n".encode(),
                "error",
            )
        params = {k.upper(): v for k, v in parse_qsl(split.query, keep_blank_values=True)}
        replay._log(ReplayRequest(split.path, split.query, params, status, answer))
        self.close_connection = True
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
