"""WFS 2.0 sources (GeoServer, MapServer): GeoJSON or GML 3.2, paged and sorted on the key.

Paging is only stable when sorted on a unique key (SORTBY). The run trusts nothing it cannot
check: the distinct keys received must equal the server's `numberMatched` when it announces one,
a `numberMatched` that changes between pages means the source changed under us, and a short page
is never taken as the end (filtered or truncated answers exist): paging stops at an empty page.
Each page goes through GDAL (GeoJSON or GML driver) from memory, so axis order and geometry
parsing are GDAL's, and lands in the run as one batch.

The server's capabilities are read once per run, before anything else: the type name must be
one of its feature types, and the output format is the one it offers for that type (GeoJSON,
else GML 3.2; `format` in the config forces one). An OWS exception report is recognised in
every answer whatever format was asked (`urbis_sync.sources.ows`); a refusal of the request
fails the run at once, without the retries transient faults get.
"""

from __future__ import annotations

import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyogrio
from pyproj import CRS

from urbis_core.catalog import STORAGE_SRID
from urbis_core.config import WfsSource
from urbis_core.errors import SourceError
from urbis_sync.sources import FeatureBatch, Field, SourceSchema, SourceStats
from urbis_sync.sources.http import BadBody, HttpFetcher, PermanentError
from urbis_sync.sources.ows import ows_check
from urbis_sync.sources.wfs_capabilities import WfsCapabilities, choose_format

DEFAULT_PAGE_SIZE = 1000
BASE_PARAMS = {"SERVICE": "WFS", "VERSION": "2.0.0"}
XSD_TYPES = {
    "string": "text",
    "anyURI": "text",
    "normalizedString": "text",
    "token": "text",
    "int": "integer",
    "short": "integer",
    "byte": "integer",
    "integer": "bigint",
    "long": "bigint",
    "nonNegativeInteger": "bigint",
    "positiveInteger": "bigint",
    "unsignedInt": "bigint",
    "double": "double precision",
    "float": "double precision",
    "decimal": "double precision",
    "boolean": "boolean",
    "date": "date",
    "dateTime": "timestamptz",
    "time": "time",
    "TimeInstantType": "timestamptz",
}
_MATCHED_JSON = re.compile(rb'"numberMatched"\s*:\s*"?(\d+|unknown)"?')
_MATCHED_GML = re.compile(rb'numberMatched\s*=\s*"(\d+|unknown)"')
_RETURNED_GML = re.compile(rb'numberReturned\s*=\s*"(\d+)"')
_EMPTY_JSON = re.compile(rb'"features"\s*:\s*\[\s*\]')


@dataclass(frozen=True)
class Page:
    batch: FeatureBatch
    matched: int | None


def _exact(value: float) -> str:
    """A number as written in the config, every digit kept (no 6-digit `g` rounding)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_capabilities(http: HttpFetcher, url: str, what: str) -> WfsCapabilities:
    """GetCapabilities, parsed; PermanentError when the server is no WFS 2.0 server."""

    def parse(response: httpx.Response) -> ET.Element:
        try:
            return ET.fromstring(response.content)
        except ET.ParseError as exc:
            raise BadBody(f"not XML ({exc})") from exc

    root = http.get(
        url, {**BASE_PARAMS, "REQUEST": "GetCapabilities"}, parse, what, check=ows_check(what)
    )
    if _local(root.tag) != "WFS_Capabilities":
        raise PermanentError(
            f"{what}: not a WFS capabilities document (its root element is <{_local(root.tag)}>)"
        )
    capabilities = WfsCapabilities.parse(root)
    if not capabilities.version.startswith("2."):
        raise PermanentError(
            f"{what}: the server answers as WFS {capabilities.version or '?'}"
            ", not 2.0 (paging, sorting and numberMatched need WFS 2.0)"
        )
    return capabilities


class WfsReader:
    """Streams one feature type of a WFS 2.0 server; `schema` is known on creation.

    `capabilities` may be given when they were already read (`urbis sources check`).
    """

    def __init__(
        self,
        source: WfsSource,
        key: str,
        layer_id: str,
        http: HttpFetcher,
        capabilities: WfsCapabilities | None = None,
    ) -> None:
        self.source = source
        self.key = key
        self.layer_id = layer_id
        self.http = http
        self.stats = SourceStats()
        self._workdir = tempfile.TemporaryDirectory(prefix="urbis-wfs-")
        self.xsd_path = Path(self._workdir.name) / "schema.xsd"
        try:
            what = f"layer '{layer_id}': GetCapabilities"
            self.capabilities = capabilities or read_capabilities(http, source.url, what)
            self.feature_type = self.capabilities.require_type(
                source.typename, f"layer '{layer_id}'"
            )
            self.output = choose_format(
                self.capabilities.formats_for(self.feature_type),
                source.format,
                f"layer '{layer_id}'",
            )
            self.page_size = (
                source.page_size or self.capabilities.count_default or DEFAULT_PAGE_SIZE
            )
            fields, geometry = self._describe()
        except BaseException:
            self.close()
            raise
        srid = source.srid or STORAGE_SRID
        self.schema = SourceSchema(fields=fields, crs=CRS.from_epsg(srid), geometry_type=geometry)
        self.stats.notes.append(f"WFS {source.typename}, {self.output}, page size {self.page_size}")

    def close(self) -> None:
        self._workdir.cleanup()

    # -- metadata -----------------------------------------------------------------------------
    def _describe(self) -> tuple[list[Field], str]:
        params = {
            **BASE_PARAMS,
            "REQUEST": "DescribeFeatureType",
            "TYPENAMES": self.source.typename,
        }
        what = f"layer '{self.layer_id}': DescribeFeatureType"
        schema_text = self.http.get(
            self.source.url, params, lambda r: r.content, what, check=ows_check(what)
        )
        # GDAL's GML reader needs the schema to read typed values (dates are nested
        # gml:TimeInstant elements without it).
        self.xsd_path.write_bytes(schema_text)
        try:
            root = ET.fromstring(schema_text)
        except ET.ParseError as exc:
            raise SourceError(f"{what} is not XML: {exc}") from exc
        fields: list[Field] = []
        geometry = "Unknown"
        for sequence in (e for e in root.iter() if _local(e.tag) == "sequence"):
            for element in sequence:
                if _local(element.tag) != "element" or not element.get("name"):
                    continue
                kind = element.get("type") or next(
                    (r.get("base", "") for r in element.iter() if _local(r.tag) == "restriction"),
                    "",
                )
                local_kind = kind.split(":")[-1]
                if (
                    kind.startswith("gml:")
                    and local_kind.endswith("PropertyType")
                    and "Time" not in local_kind
                ):
                    geometry = local_kind.removesuffix("PropertyType")
                    continue
                fields.append(Field(element.get("name", ""), XSD_TYPES.get(local_kind, "text")))
        if self.key not in [f.name for f in fields]:
            raise SourceError(
                f"layer '{self.layer_id}': key field '{self.key}' is not among "
                f"the WFS fields ({', '.join(f.name for f in fields)})"
            )
        return fields, geometry

    # -- features -----------------------------------------------------------------------------
    def batches(self) -> Iterator[FeatureBatch]:
        start = 0
        announced: int | None = None
        first_page: dict[str, int] = {}  # key -> page it first arrived on
        across_pages: set[str] = set()
        while True:
            page = self.page(start)
            rows = page.batch.attributes.num_rows
            self.stats.pages += 1
            if page.matched is not None:
                if announced is not None and page.matched != announced:
                    raise SourceError(
                        f"layer '{self.layer_id}': numberMatched changed from {announced} to "
                        f"{page.matched} while paging (the source changed during the run)"
                    )
                announced = page.matched
            if rows == 0:
                break
            for key in page.batch.attributes.column(self.key).to_pylist():
                seen = first_page.setdefault(str(key), self.stats.pages)
                if seen != self.stats.pages:
                    across_pages.add(str(key))
            yield page.batch
            start += rows
        received = start
        self.stats.notes.append(
            f"{received} features in {self.stats.pages} pages, "
            f"{len(first_page)} distinct keys, numberMatched {announced}"
        )
        if announced is not None and received != announced:
            raise SourceError(
                f"layer '{self.layer_id}': the server announced {announced} features "
                f"(numberMatched) but {received} arrived ({len(first_page)} distinct keys); "
                "nothing was applied"
            )
        if across_pages:
            # Sorted on the key, a repeated key on two pages may be the paging itself slipping
            # (a feature served twice, another never): the layer cannot be trusted.
            sample = ", ".join(sorted(across_pages)[:5])
            raise SourceError(
                f"layer '{self.layer_id}': key(s) {sample} arrived on more than one page; "
                f"paging on {self.key} is not stable (duplicate keys?); nothing was applied"
            )

    def page(self, start: int) -> Page:
        """The page of features from `start` (0-based), as the sync reads it."""
        params = {
            **self._query(),
            "OUTPUTFORMAT": self.output.value,
            "COUNT": str(self.page_size),
            "STARTINDEX": str(start),
            "SORTBY": f"{self.key} ASC",
        }
        what = f"layer '{self.layer_id}': GetFeature from {start}"
        return self.http.get(self.source.url, params, self._parse, what, check=ows_check(what))

    def hits(self) -> int | None:
        """The server's numberMatched by RESULTTYPE=hits: counted, no feature sent.

        No OUTPUTFORMAT: hits answer in XML (GML 3.2, the WFS 2.0 default) on every server;
        MapServer 8 even crashes on hits asked as GeoJSON.
        """
        what = f"layer '{self.layer_id}': GetFeature RESULTTYPE=hits"

        def parse(response: httpx.Response) -> int | None:
            found = _MATCHED_GML.search(response.content[:4096])
            if found is None:
                raise BadBody("no numberMatched in the answer")
            return int(found.group(1)) if found.group(1) != b"unknown" else None

        return self.http.get(
            self.source.url,
            {**self._query(), "RESULTTYPE": "hits"},
            parse,
            what,
            check=ows_check(what),
        )

    def _query(self) -> dict[str, str]:
        """The parameters that say which features: type, CRS, bbox, filter."""
        params = {
            **BASE_PARAMS,
            "REQUEST": "GetFeature",
            "TYPENAMES": self.source.typename,
            "SRSNAME": f"EPSG:{self.schema_srid}",
        }
        if self.source.bbox is not None:
            params["BBOX"] = (
                ",".join(_exact(v) for v in self.source.bbox) + f",EPSG:{self.schema_srid}"
            )
        if self.source.cql_filter:
            params["CQL_FILTER"] = self.source.cql_filter
        return params

    @property
    def schema_srid(self) -> int:
        return self.source.srid or STORAGE_SRID

    def _parse(self, response: httpx.Response) -> Page:
        body = response.content
        gml = self.output.kind == "gml"
        found = (_MATCHED_GML if gml else _MATCHED_JSON).search(body[:4096] if gml else body)
        matched = int(found.group(1)) if found and found.group(1) != b"unknown" else None
        if gml:
            returned = _RETURNED_GML.search(body[:4096])
            empty = returned is not None and returned.group(1) == b"0"
        else:
            empty = _EMPTY_JSON.search(body) is not None
        if empty:
            return Page(
                FeatureBatch(
                    pa.table({f.name: pa.nulls(0) for f in self.schema.fields}),
                    pa.array([], pa.binary()),
                ),
                matched,
            )
        try:
            options: dict[str, Any] = {"XSD": str(self.xsd_path)} if gml else {}
            meta, table = pyogrio.read_arrow(body, **options)
        except Exception as exc:  # GDAL's error classes vary by driver; any of them = bad body
            raise BadBody(f"GDAL cannot read it ({str(exc).splitlines()[0][:200]})") from exc
        if gml:
            returned = _RETURNED_GML.search(body[:4096])
            if returned is not None and int(returned.group(1)) != table.num_rows:
                raise BadBody(
                    f"numberReturned is {int(returned.group(1))} but "
                    f"{table.num_rows} features could be read"
                )
        geometry_column = meta["geometry_name"] or "wkb_geometry"
        wkb = table.column(geometry_column)
        attributes = table.drop_columns([geometry_column])
        for drop in ("gml_id", "id"):
            if drop in attributes.column_names and drop not in self.schema.names:
                attributes = attributes.drop_columns([drop])
        return Page(FeatureBatch(attributes, wkb), matched)
