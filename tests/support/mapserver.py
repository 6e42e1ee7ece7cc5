"""A real MapServer WFS 2.0 server for tests, behind a small local HTTP front with fault injection.

    with MapServerWfs([WfsLayer("Municipalities", gpkg, key="NAT_CODE")], tmp_path) as wfs:
        httpx.get(wfs.url, params={"SERVICE": "WFS", "VERSION": "2.0.0", ...})
        wfs.inject(Fault("http_500"), "delay:2")   # consumed by the next GetFeature requests
        wfs.set_path("Municipalities", other_gpkg)  # the next request serves the new file

The front (a ThreadingHTTPServer on 127.0.0.1) runs Debian's `mapserv` (package `cgi-mapserver`)
as a CGI program once per request; clients never pass `map=` (MapServer finds the mapfile through
MS_MAPFILE in its MAPSERVER_CONFIG_FILE, and a `map=` a client sends is dropped).

What the MapServer 8.0 behind it does (checked on Debian 12):
- Typenames are advertised as `urbis:<name>` (prefix: `namespace_prefix`); plain `<name>` works too.
- OUTPUTFORMAT: `geojson` or `application/json` (same OGR GeoJSON output); GML 3.2 with
  `application/gml+xml; version=3.2`, `text/xml; subtype=gml/3.2.1`, or no OUTPUTFORMAT (the
  default). GML responses come back as `Content-Type: text/xml; subtype="gml/3.2.1"` either way.
  `text/xml; subtype=gml/3.2` (GeoServer's spelling) is refused like an unknown format.
  Capabilities list the formats twice: the GetFeature operation's `outputFormat` values
  (`application/gml+xml; version=3.2`, `text/xml; subtype=gml/3.2.1`, `.../3.1.1`,
  `.../2.1.2`, then `application/json`) and each FeatureType's `OutputFormats`.
- Without GeoJSON (`geojson=False`: no OGR GeoJSON OUTPUTFORMAT in the mapfile, no
  `wfs_getfeature_formatlist`), both lists hold the four GML formats only, and GetFeature with
  OUTPUTFORMAT=application/json (or geojson, json, application/geo+json) answers HTTP 400,
  `Content-Type: text/xml; charset=UTF-8`, an `ows:ExceptionReport` with
  exceptionCode="InvalidParameterValue" locator="outputformat" and the text
  "msWFSGetFeature(): WFS server error. 'application/json' is not a permitted output format for
  layer 'Municipalities', review wfs_getfeature_formatlist setting." A layer of its own without
  GeoJSON on a server with it (`WfsLayer(geojson=False)`, a layer-level
  `wfs_getfeature_formatlist`) drops application/json from that FeatureType's `OutputFormats`
  only: the operation still lists it (other types offer it), and that type refuses it the same
  way.
- Other refusals are HTTP 400 with an ExceptionReport too, InvalidParameterValue each time: an
  unknown TYPENAMES (locator `typename`: "TYPENAME 'Nope' doesn't exist in this server..."),
  an SRSNAME it does not offer (locator `srsname`), a malformed BBOX or FILTER. RESULTTYPE=hits
  works in GML 3.2 (numberMatched, numberReturned="0"), but with OUTPUTFORMAT=application/json
  mapserv crashes (exit -11: the front answers 502 "mapserv failed").
- Paging: `wfs_maxfeatures` = `page_size` is both the default COUNT and a hard cap (COUNT above it
  is silently cut to it); GetCapabilities advertises it as the `CountDefault` constraint and
  `ImplementsResultPaging` TRUE. STARTINDEX is 0-based.
- SORTBY: `KEY`, `KEY ASC|DESC` or `KEY A|D`, comma-separated for several keys; a `urbis:` prefix
  on the property is accepted. Works because every layer goes through CONNECTIONTYPE OGR (a native
  shapefile layer answers "Layer ... does not support sorting"). An unknown property -> 400.
- numberMatched: with `number_matched=True` (default, `wfs_compute_number_matched`) GML carries
  numberMatched/numberReturned and GeoJSON carries `numberMatched` (never numberReturned,
  totalFeatures or timeStamp). With `number_matched=False` GML says numberMatched="unknown" and
  GeoJSON has numberMatched only on a page that reaches the end of the result.
- Attribute types: with `typed=True` (default, `gml_types auto`) DescribeFeatureType is typed and
  GeoJSON numbers are JSON numbers (shapefile/GPKG REAL -> 7100.0), null attributes are left out
  of GeoJSON properties; GML writes nulls as empty elements. With `typed=False` every GeoJSON
  attribute is a string and nulls are "".
- The geometry property is `GEOM` (as on the URBIS GeoServer); GeoJSON features have no `id`;
  GML gml:id is `<name>.<key value>`. SRSNAME=EPSG:31370 gives easting/northing in both formats;
  EPSG:4326 gives lat/lon in GML but lon/lat in GeoJSON. Other CRSs -> 400 "Invalid SRS".

Faults (one per GetFeature request, in order; other requests are never affected):
- `pass`: answer normally (to aim a later fault at a given page).
- `http_500`: 500 with an HTML body; mapserv is not run.
- `http:<status>`: that HTTP status (e.g. `http:404`, `http:408`, `http:429`, `http:503`) with a
  small HTML body; mapserv is not run.
- `exception:<exceptionCode>`: HTTP 200 with `Content-Type: text/xml` and an OWS 2.0
  ExceptionReport (MapServer's layout) with that exceptionCode, whatever OUTPUTFORMAT was asked,
  as servers answer some errors; mapserv is not run.
- `drop`: real status and headers (with the full Content-Length), half the body, then a TCP reset.
- `truncate`: real status and headers (with the full Content-Length), half the body, then a clean
  close: httpx raises RemoteProtocolError ("peer closed connection without sending complete
  message body").
- `truncate_silent`: real status, no Content-Length, half the body, clean close: the client gets
  a normal-looking 200 whose body just stops (only parsing can tell).
- `garbage`: 200 with the Content-Type the request asked for and a body that is neither XML nor
  JSON; mapserv is not run.
- `delay:<seconds>`: wait, then answer normally (stopping the server cuts the wait short).
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote_plus

import pytest

FAULT_KINDS = (
    "pass",
    "http_500",
    "http",
    "exception",
    "drop",
    "truncate",
    "truncate_silent",
    "garbage",
    "delay",
)
GEOMETRY_NAME = "GEOM"
NAMESPACE_URI = "http://example.org/urbis-test"
MAPSERV_TIMEOUT = 60.0
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"

GARBAGE_BODY = b"\x00\x01<<< not XML, not JSON: upstream proxy garbage >>>\xff\xfe{[\n"
ERROR_500_BODY = (
    b"<html><head><title>500 Internal Server Error</title></head>"
    b"<body><h1>Internal Server Error</h1><p>injected fault</p></body></html>\n"
)


@dataclass(frozen=True)
class Fault:
    """One fault for one GetFeature request: kind in FAULT_KINDS; seconds only for `delay`,
    status only for `http`, code only for `exception`."""

    kind: str
    seconds: float = 0.0
    status: int = 0
    code: str = ""

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (known: {', '.join(FAULT_KINDS)})")
        if self.kind == "delay" and self.seconds <= 0:
            raise ValueError("a delay fault needs seconds > 0, e.g. Fault.parse('delay:2')")
        if self.kind == "http" and not 400 <= self.status <= 599:
            raise ValueError("an http fault needs a 4xx or 5xx status, e.g. 'http:404'")
        if self.kind == "exception" and not self.code.isalnum():
            raise ValueError(
                "an exception fault needs an exceptionCode, e.g. 'exception:NoApplicableCode'"
            )

    @classmethod
    def parse(cls, spec: Fault | str) -> Fault:
        """`"http_500"`, `"http:<status>"`, `"exception:<code>"`, `"drop"`, `"truncate"`,
        `"truncate_silent"`, `"garbage"`, `"pass"`, `"delay:<seconds>"`, or a Fault."""
        if isinstance(spec, Fault):
            return spec
        kind, sep, arg = spec.partition(":")
        if kind == "delay":
            return cls("delay", float(arg))
        if kind == "http":
            return cls("http", status=int(arg) if arg.isdigit() else 0)
        if kind == "exception":
            return cls("exception", code=arg)
        if sep:
            raise ValueError(f"fault {kind!r} takes no argument: {spec!r}")
        return cls(kind)

    def __str__(self) -> str:
        if self.kind == "delay":
            return f"delay:{self.seconds:g}"
        if self.kind == "http":
            return f"http:{self.status}"
        if self.kind == "exception":
            return f"exception:{self.code}"
        return self.kind


@dataclass
class WfsLayer:
    """One WFS feature type.

    name: typename, advertised as `<namespace_prefix>:<name>` (plain `<name>` is accepted too).
    path: GeoPackage, shapefile (with .shx) or GeoJSON file, in EPSG:31370.
    key: unique key field; becomes the gml:id (`<name>.<key>`), use it for SORTBY.
    source_layer: layer inside the file (GeoPackage); None = the file's first layer.
    geometry_type: MapServer layer TYPE (POINT, LINE or POLYGON).
    geojson: False = this type offers GML only, even on a server that offers GeoJSON (a
        layer-level `wfs_getfeature_formatlist`); True = as the server.
    """

    name: str
    path: Path
    key: str
    source_layer: str | None = None
    geometry_type: str = "POLYGON"
    geojson: bool = True


class MapServerWfs:
    """A MapServer WFS 2.0 endpoint at `url` serving `layers`; a context manager.

    All files (mapfile, config, MapServer log) live in a fresh folder under `workdir`, removed
    on exit. `requests` holds every query string received, in order (raw, as sent).
    """

    def __init__(
        self,
        layers: list[WfsLayer],
        workdir: Path,
        page_size: int = 5,
        *,
        namespace_prefix: str = "urbis",
        typed: bool = True,
        number_matched: bool = True,
        geojson: bool = True,
        mapserv: str | None = None,
    ) -> None:
        if not layers:
            raise ValueError("at least one layer")
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        names = [layer.name for layer in layers]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate layer names: {names}")
        self._layers: dict[str, WfsLayer] = {}
        for layer in layers:
            self._layers[layer.name] = self._checked(layer)
        self.workdir = Path(workdir)
        self.page_size = page_size
        self.namespace_prefix = namespace_prefix
        self.typed = typed
        self.number_matched = number_matched
        self.geojson = geojson
        self.url = ""
        self.requests: list[str] = []
        self._mapserv = mapserv
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _FrontServer | None = None
        self._port = 0
        self._thread: threading.Thread | None = None
        self._dir: Path | None = None
        self._log_text = ""

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> MapServerWfs:
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
        binary = self._mapserv or shutil.which("mapserv")
        if not binary:
            raise RuntimeError(
                "`mapserv` not found: install Debian package cgi-mapserver "
                "(scripts/install-system-deps.sh does it)"
            )
        self._mapserv = binary
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="mapserver-", dir=self.workdir))
        self._stopping.clear()
        try:
            # Started again after `stop`, it takes the port it had: the same URL comes back,
            # as a source does after an outage.
            self._server = _FrontServer(("127.0.0.1", self._port), self)
            port = self._port = self._server.server_address[1]
            self.url = f"http://127.0.0.1:{port}/wfs"
            self._write_config()
            self._write_mapfile()
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"mapserver-wfs-{port}",
                daemon=True,
            )
            self._thread.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop serving, wait for the request threads, remove the files. Safe to call twice."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            if self._thread is not None:
                server.shutdown()
            server.server_close()  # joins the request threads (block_on_close)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._dir is not None:
            self._log_text = self.mapserver_log()
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- test controls -----------------------------------------------------------------------

    def inject(self, *faults: Fault | str) -> None:
        """Queue faults for the next GetFeature requests, one per request, in order."""
        parsed = [Fault.parse(f) for f in faults]
        with self._lock:
            self._faults.extend(parsed)

    @property
    def pending_faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def set_path(self, layer_name: str, new_path: Path, source_layer: str | None = None) -> None:
        """Serve `new_path` for `layer_name` from the next request on (the mapfile is rewritten
        atomically). `source_layer` None keeps the previous one. Give a new file rather than
        overwriting the served one in place."""
        with self._lock:
            old = self._layers[layer_name]
            new = replace(
                old,
                path=Path(new_path),
                source_layer=source_layer if source_layer is not None else old.source_layer,
            )
            self._layers[layer_name] = self._checked(new)
            if self._dir is not None:
                self._write_mapfile()

    @property
    def layers(self) -> list[WfsLayer]:
        with self._lock:
            return list(self._layers.values())

    @property
    def getfeature_requests(self) -> list[str]:
        return [q for q in list(self.requests) if _is_getfeature(q)]

    def typename(self, layer_name: str) -> str:
        """The advertised typename of a layer, e.g. `urbis:Municipalities`."""
        if layer_name not in self._layers:
            raise KeyError(layer_name)
        return f"{self.namespace_prefix}:{layer_name}"

    def mapserver_log(self) -> str:
        """MapServer's own error log (MS_ERRORFILE) so far; kept after stop()."""
        if self._dir is None:
            return self._log_text
        log = self._dir / "mapserver.log"
        return log.read_text(errors="replace") if log.exists() else ""

    @property
    def mapfile(self) -> Path:
        if self._dir is None:
            raise RuntimeError("not started")
        return self._dir / "wfs.map"

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _checked(layer: WfsLayer) -> WfsLayer:
        path = Path(layer.path).resolve()
        if not path.exists():
            raise FileNotFoundError(path)
        kind = layer.geometry_type.upper()
        if kind not in ("POINT", "LINE", "POLYGON"):
            raise ValueError(f"geometry_type must be POINT, LINE or POLYGON, not {kind!r}")
        return replace(layer, path=path, geometry_type=kind)

    def _write_config(self) -> None:
        assert self._dir is not None
        text = "\n".join(
            [
                "CONFIG",
                "  ENV",
                '    MS_MAP_NO_PATH "1"',
                f"    MS_MAPFILE {_q(str(self._dir / 'wfs.map'))}",
                f"    MS_ERRORFILE {_q(str(self._dir / 'mapserver.log'))}",
                "  END",
                "END",
                "",
            ]
        )
        (self._dir / "mapserver.conf").write_text(text)

    def _write_mapfile(self) -> None:
        assert self._dir is not None
        target = self._dir / "wfs.map"
        tmp = self._dir / f"wfs.map.{threading.get_ident()}.tmp"
        tmp.write_text(self._mapfile_text())
        os.replace(tmp, target)

    def _mapfile_text(self) -> str:
        web_meta = {
            "wfs_title": "URBIS test WFS (MapServer)",
            "wfs_onlineresource": f"{self.url}?",
            "wfs_srs": "EPSG:31370 EPSG:4326",
            "wfs_enable_request": "*",
            "wfs_maxfeatures": str(self.page_size),
            "wfs_namespace_prefix": self.namespace_prefix,
            "wfs_namespace_uri": NAMESPACE_URI,
        }
        if self.geojson:
            web_meta["wfs_getfeature_formatlist"] = "geojson"
        if self.number_matched:
            web_meta["wfs_compute_number_matched"] = "true"
        out = [
            "MAP",
            '  NAME "urbis_test_wfs"',
            "  EXTENT 0 0 300000 300000",
            "  SIZE 1000 1000",
            "  UNITS METERS",
            '  PROJECTION\n    "init=epsg:31370"\n  END',
        ]
        if self.geojson:
            out += [
                "  OUTPUTFORMAT",
                '    NAME "geojson"',
                '    DRIVER "OGR/GEOJSON"',
                '    MIMETYPE "application/json"',
                '    FORMATOPTION "FORM=SIMPLE"',
                '    FORMATOPTION "STORAGE=memory"',
                '    FORMATOPTION "FILENAME=result.json"',
                "  END",
            ]
        out += [
            "  WEB",
            _metadata(web_meta, "    "),
            "  END",
        ]
        for layer in self._layers.values():
            meta = {
                "wfs_title": layer.name,
                "gml_include_items": "all",
                "gml_featureid": layer.key,
                "gml_geometries": GEOMETRY_NAME,
                "wfs_use_default_extent_for_getfeature": "false",
            }
            if self.typed:
                meta["gml_types"] = "auto"
            if self.geojson and not layer.geojson:
                # A list of GML formats only; MapServer then lists the four GML versions.
                meta["wfs_getfeature_formatlist"] = "gml32"
            out += [
                "  LAYER",
                f"    NAME {_q(layer.name)}",
                f"    TYPE {layer.geometry_type}",
                "    STATUS ON",
                "    CONNECTIONTYPE OGR",
                f"    CONNECTION {_q(str(layer.path))}",
            ]
            if layer.source_layer:
                out.append(f"    DATA {_q(layer.source_layer)}")
            out += [
                '    PROJECTION\n      "init=epsg:31370"\n    END',
                _metadata(meta, "    "),
                "  END",
            ]
        out += ["END", ""]
        return "\n".join(out)

    def _take_fault(self, query: str) -> Fault | None:
        if not _is_getfeature(query):
            return None
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _run_mapserv(self, query: str) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """Run mapserv as CGI; returns (status, reason, headers, body)."""
        assert self._dir is not None and self._mapserv is not None
        kept = [
            p for p in query.split("&") if p and unquote_plus(p.split("=", 1)[0]).lower() != "map"
        ]
        port = str(self._port)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MS_", "MAPSERVER_", "QUERY_STRING", "REQUEST_METHOD"))
        }
        env.update(
            {
                "MAPSERVER_CONFIG_FILE": str(self._dir / "mapserver.conf"),
                "GATEWAY_INTERFACE": "CGI/1.1",
                "REQUEST_METHOD": "GET",
                "QUERY_STRING": "&".join(kept),
                "SCRIPT_NAME": "/wfs",
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": port,
                "SERVER_PROTOCOL": "HTTP/1.1",
                "HTTP_HOST": f"127.0.0.1:{port}",
            }
        )
        try:
            done = subprocess.run(
                [self._mapserv],
                env=env,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=MAPSERV_TIMEOUT,
                cwd=self._dir,
            )
        except subprocess.TimeoutExpired:
            return 504, "mapserv timed out", [("Content-Type", "text/plain")], b"mapserv timeout\n"
        return _parse_cgi(done.stdout, done.stderr, done.returncode)


def exception_report_body(
    code: str, locator: str = "", text: str = "msWFSGetFeature(): injected fault"
) -> bytes:
    """An OWS 2.0 ExceptionReport laid out as MapServer writes one."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ows:ExceptionReport xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:ows="http://www.opengis.net/ows/1.1" version="2.0.0" xml:lang="en-US">\n'
        f'  <ows:Exception exceptionCode="{code}" locator="{locator}">\n'
        f"    <ows:ExceptionText>{text}</ows:ExceptionText>\n"
        "  </ows:Exception>\n"
        "</ows:ExceptionReport>\n"
    ).encode()


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _metadata(items: dict[str, str], indent: str) -> str:
    lines = [f"{indent}METADATA"]
    lines += [f"{indent}  {_q(k)} {_q(v)}" for k, v in items.items()]
    lines.append(f"{indent}END")
    return "\n".join(lines)


def _params(query: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in query.split("&"):
        key, _, value = part.partition("=")
        out.setdefault(unquote_plus(key).lower(), unquote_plus(value))
    return out


def _is_getfeature(query: str) -> bool:
    return _params(query).get("request", "").lower() == "getfeature"


def _parse_cgi(
    stdout: bytes, stderr: bytes, returncode: int
) -> tuple[int, str, list[tuple[str, str]], bytes]:
    cuts = [(i, len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (i := stdout.find(sep)) >= 0]
    if not cuts:
        detail = (stderr or stdout).decode(errors="replace")
        body = f"mapserv failed (exit {returncode}): {detail}\n".encode()
        return 502, "Bad CGI output", [("Content-Type", "text/plain")], body
    at, size = min(cuts)
    status, reason = 200, "OK"
    headers: list[tuple[str, str]] = []
    for line in stdout[:at].decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not name:
            continue
        if name.lower() == "status":
            code, _, text = value.partition(" ")
            status, reason = int(code), text or "Status"
        elif name.lower() not in ("content-length", "connection"):
            headers.append((name, value))
    return status, reason, headers, stdout[at + size :]


class _FrontServer(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() waits for the request threads

    def __init__(self, address: tuple[str, int], wfs: MapServerWfs) -> None:
        self.wfs = wfs
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that timed out or hung up is part of the game, not an error.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, socket.timeout)):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # seconds a silent client may hold a request thread
    server: _FrontServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self._send(
            405,
            "Method Not Allowed",
            [("Content-Type", "text/plain"), ("Allow", "GET")],
            b"the test WFS answers GET only\n",
        )

    def do_GET(self) -> None:
        wfs = self.server.wfs
        path, _, query = self.path.partition("?")
        if path.rstrip("/") != "/wfs":
            self._send(404, "Not Found", [("Content-Type", "text/plain")], b"not found\n")
            return
        wfs.requests.append(query)
        fault = wfs._take_fault(query)
        kind = fault.kind if fault else "pass"
        if kind == "http_500":
            self._send(
                500,
                "Internal Server Error",
                [("Content-Type", "text/html; charset=utf-8")],
                ERROR_500_BODY,
            )
            return
        if kind == "http" and fault is not None:
            self._send(
                fault.status,
                "Injected",
                [("Content-Type", "text/html; charset=utf-8")],
                b"<html><body><h1>%d</h1><p>injected fault</p></body></html>\n" % fault.status,
            )
            return
        if kind == "exception" and fault is not None:
            self._send(
                200,
                "OK",
                [("Content-Type", "text/xml; charset=UTF-8")],
                exception_report_body(fault.code),
            )
            return
        if kind == "garbage":
            asked = _params(query).get("outputformat", "").lower()
            ctype = "application/json" if "json" in asked else 'text/xml; subtype="gml/3.2.1"'
            self._send(200, "OK", [("Content-Type", ctype)], GARBAGE_BODY)
            return
        if fault is not None and kind == "delay" and wfs._stopping.wait(fault.seconds):
            self.close_connection = True  # shutting down: hang up without an answer
            return
        status, reason, headers, body = wfs._run_mapserv(query)
        half = body[: len(body) // 2]
        if kind == "truncate":
            self._send(status, reason, headers, body, payload=half)
        elif kind == "truncate_silent":
            self._send(status, reason, headers, body, payload=half, length=False)
        elif kind == "drop":
            self._send(status, reason, headers, body, payload=half)
            self._reset()
        else:
            self._send(status, reason, headers, body)

    def _send(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        payload: bytes | None = None,
        length: bool = True,
    ) -> None:
        self.close_connection = True
        try:
            self.send_response(status, reason)
            for name, value in headers:
                self.send_header(name, value)
            if length:
                self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body if payload is None else payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0) instead of a clean FIN."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.rfile.close()  # the makefile() holds a reference that would delay the close
        self.connection.close()


# -- sample data and a pytest fixture ---------------------------------------------------------


def write_sample_municipalities(dest: Path, layer: str = "Municipalities") -> Path:
    """The 19 bundled UrbAdm municipalities as a 2D GeoPackage layer in EPSG:31370.

    The bundled shapefile has no .shx and no .prj: it is copied next to `dest` first, so that
    GDAL's SHAPE_RESTORE_SHX never writes into data/sample. Key: NAT_CODE (or ID).
    """
    import geopandas as gpd
    import pyogrio
    import shapely

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        for ext in ("shp", "dbf"):
            shutil.copy(SAMPLE_DIR / f"UrbAdm_MUNICIPALITY.{ext}", Path(tmp) / f"mu.{ext}")
        pyogrio.set_gdal_config_options({"SHAPE_RESTORE_SHX": "YES"})
        try:
            frame = gpd.read_file(Path(tmp) / "mu.shp")
        finally:
            pyogrio.set_gdal_config_options({"SHAPE_RESTORE_SHX": None})
    frame = frame.set_crs(31370)
    frame["geometry"] = shapely.force_2d(frame.geometry.values)
    frame.to_file(dest, layer=layer, driver="GPKG")
    return dest


def write_sample_address_points(dest: Path, layer: str = "AddressPoints") -> Path:
    """The 666 bundled UrbAdm address points (key ID) as a GeoPackage layer in EPSG:31370.

    GDAL reads ANGLE ("309,92.000...") as a real and keeps the part before the comma.
    """
    import geopandas as gpd

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    source = f"/vsizip/{SAMPLE_DIR / 'UrbAdm_AdPt_sample.zip'}/shp/UrbAdm_AdPt.shp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        frame = gpd.read_file(source)
    frame = frame.set_crs(31370, allow_override=True)
    frame.to_file(dest, layer=layer, driver="GPKG")
    return dest


@pytest.fixture
def mapserver_wfs(tmp_path: Path) -> Iterator[Callable[..., MapServerWfs]]:
    """Factory: `wfs = mapserver_wfs([WfsLayer(...)], page_size=5)` starts a server, stopped at
    teardown. Import it into a test module or conftest to use it."""
    started: list[MapServerWfs] = []

    def start(layers: list[WfsLayer], page_size: int = 5, **options: object) -> MapServerWfs:
        server = MapServerWfs(layers, tmp_path / f"mapserver{len(started)}", page_size, **options)  # type: ignore[arg-type]
        server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()
