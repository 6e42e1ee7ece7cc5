"""OGC API Features sources (pygeoapi, ldproxy, GeoServer, our own `urbis serve`).

Items are read page by page from `/collections/{id}/items?limit=N`, following each page's
`rel=next` link (absolute or relative) until a page has none: OGC API paging is the server's
business (offsets, cursors), so the reader never builds page URLs itself. Each page goes through
GDAL's GeoJSON driver from memory, like the WFS pages, and lands in the run as one batch.

The schema must be known before the first batch, so the constructor reads the collection, its
queryables when it links them, and the first page. Field types come from the queryables (a JSON
Schema the server publishes, stable from run to run) or else from GDAL's reading of the first
page, widened so that a later page with bigger numbers still fits.

Coordinates: GeoJSON is CRS84 (lon/lat) unless the server can serve another CRS with `crs=`
(OGC API Features Part 2). When the collection lists EPSG:31370 (or the configured srid) the
reader asks for it and the coordinates are taken as the server computed them; otherwise it
reads CRS84 and the run transforms.

Nothing is trusted that can be checked: the distinct keys received must equal `numberMatched`
when the server announces it, `numberMatched` must not change while paging, a `Content-Crs`
header must name the CRS asked for, and a `next` link that points back to a page already read
is an error rather than an endless loop.

One module of about 410 lines: the collection, its queryables, the paging and the CRS choice
are one reader's state, set up together before the first batch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin

import httpx
import pyarrow as pa
import pyogrio
from pyproj import CRS

from urbis_core.catalog import STORAGE_SRID
from urbis_core.config import OgcApiSource
from urbis_core.errors import SourceError
from urbis_sync.sources import (
    FeatureBatch,
    Field,
    SourceSchema,
    SourceStats,
    sql_type_from_ogr,
)
from urbis_sync.sources.http import BadBody, HttpFetcher

DEFAULT_PAGE_SIZE = 1000
CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
QUERYABLES_RELS = ("http://www.opengis.net/def/rel/ogc/1.0/queryables", "queryables")
JSON_MEDIA = (
    "application/geo+json",
    "application/json",
    "application/vnd.geo+json",
    "application/schema+json",
)
# Arrays and dates are kept as the server wrote them: the schema's types decide, not GDAL's
# guess on each page (which could differ from page to page).
OPEN_OPTIONS = {"ARRAY_AS_STRING": "YES", "DATE_AS_STRING": "YES"}
WIDENED = {"integer": "bigint"}
JSON_SCHEMA_TYPES = {"integer": "bigint", "number": "double precision", "boolean": "boolean"}
STRING_FORMATS = {"date": "date", "date-time": "timestamptz", "time": "time"}
_EPSG = re.compile(r"(?:EPSG/\d+/|EPSG::?|EPSG:)(\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class ItemsPage:
    """One page as received: its features, and what it says about the whole result."""

    url: str
    attributes: pa.Table
    wkb: Any  # pyarrow binary array: the page's geometries as WKB
    matched: int | None
    next_url: str | None
    inferred: tuple[list[Field], str] | None = None  # first page: GDAL's fields, geometry


def crs_identity(uri: str) -> str:
    """A CRS URI reduced to 'EPSG:n' or 'CRS84', so the spellings servers use compare equal."""
    text = uri.strip().strip("<>").strip("[]")
    if text.upper().endswith("CRS84"):
        return "CRS84"
    found = _EPSG.search(text)
    return f"EPSG:{int(found.group(1))}" if found else text


def sql_type_from_json_schema(spec: dict[str, Any]) -> str | None:
    """The SQL type of one queryable; None for the geometry, which is not an attribute."""
    role = str(spec.get("x-ogc-role", ""))
    ref = str(spec.get("$ref", ""))
    if (
        role == "primary-geometry"
        or str(spec.get("format", "")).startswith("geometry")
        or "geojson.org" in ref
    ):
        return None
    kind = spec.get("type")
    if isinstance(kind, list):
        concrete = [k for k in kind if k != "null"]
        kind = concrete[0] if len(concrete) == 1 else None
    if kind == "string":
        return STRING_FORMATS.get(str(spec.get("format", "")), "text")
    return JSON_SCHEMA_TYPES.get(str(kind), "text")


def _links(doc: dict[str, Any], rels: tuple[str, ...]) -> list[dict[str, Any]]:
    """A document's links with one of the relations, JSON ones first (HTML ones are skipped)."""
    found = [
        lk
        for lk in doc.get("links") or []
        if isinstance(lk, dict)
        and lk.get("rel") in rels
        and lk.get("href")
        and (lk.get("type") or "application/json").split(";")[0].strip() in JSON_MEDIA
    ]
    return sorted(found, key=lambda lk: 0 if lk.get("type") else 1)


class OgcApiReader:
    """Streams one collection of an OGC API Features server; `schema` is known on creation."""

    def __init__(
        self,
        source: OgcApiSource,
        key: str,
        layer_id: str,
        http: HttpFetcher,
        page_size: int | None = None,
    ) -> None:
        self.source = source
        self.key = key
        self.layer_id = layer_id
        self.http = http
        self.page_size = page_size or DEFAULT_PAGE_SIZE
        self.stats = SourceStats()
        self.base = source.url.rstrip("/")
        self.collection_url = f"{self.base}/collections/{quote(source.collection, safe='')}"
        collection, collection_url = self._get_json(self.collection_url, "collection")
        self.crs_uri, crs = self._choose_crs(collection)
        declared = self._queryables(collection, collection_url)
        params = {"limit": str(self.page_size)}
        if self.crs_uri is not None:
            params["crs"] = self.crs_uri
        self._first: ItemsPage | None = self._fetch(f"{self.collection_url}/items", params, 1)
        fields, geometry_type = self._fields(declared, self._first.inferred)
        self.schema = SourceSchema(fields=fields, crs=crs, geometry_type=geometry_type)
        self.stats.notes.append(
            f"OGC API {self.collection_url}, {crs_identity(self.crs_uri or CRS84_URI)}, "
            f"types from {'queryables' if declared is not None else 'the first page'}, "
            f"limit {self.page_size}"
        )

    def close(self) -> None:
        """Nothing is held but the first page, which is dropped."""
        self._first = None

    @property
    def first_page(self) -> ItemsPage | None:
        """The page read on creation, until `batches` takes it (`urbis sources check`)."""
        return self._first

    # -- metadata -----------------------------------------------------------------------------
    def _what(self, what: str, url: str) -> str:
        return f"layer '{self.layer_id}': OGC API {what} ({url})"

    def _get_json(self, url: str, what: str) -> tuple[dict[str, Any], str]:
        """A JSON object and the URL it came from (the base of its relative links)."""

        def parse(response: httpx.Response) -> tuple[dict[str, Any], str]:
            try:
                doc = json.loads(response.content)
            except ValueError as exc:
                raise BadBody(f"not JSON ({exc})") from exc
            if not isinstance(doc, dict):
                raise BadBody("not a JSON object")
            return doc, str(response.url)

        return self.http.get(url, None, parse, self._what(what, url))

    def _choose_crs(self, collection: dict[str, Any]) -> tuple[str | None, CRS]:
        """The `crs=` to ask for (None: the CRS84 default) and the CRS of what will arrive.

        The storage CRS (or the configured srid) is asked for when the collection lists it, so
        the coordinates are the server's own and not a lon/lat round trip; otherwise CRS84.
        """
        wanted = self.source.srid or STORAGE_SRID
        offered = [str(c) for c in collection.get("crs") or []]
        if "#/crs" in offered:  # Part 2: the collection inherits the list of /collections
            everything, _ = self._get_json(f"{self.base}/collections", "collections")
            offered += [str(c) for c in everything.get("crs") or []]
        storage = collection.get("storageCrs")
        if storage:
            self.stats.notes.append(f"storageCrs {crs_identity(str(storage))}")
        if wanted != 4326:
            for uri in offered:
                if crs_identity(uri) == f"EPSG:{wanted}":
                    return uri, CRS.from_epsg(wanted)
            if self.source.srid is not None:
                listed = ", ".join(crs_identity(c) for c in offered if c != "#/crs") or "none"
                raise SourceError(
                    f"layer '{self.layer_id}': source.srid is {wanted} but collection "
                    f"'{self.source.collection}' at {self.base} cannot serve it (crs offered: "
                    f"{listed}); remove source.srid to read CRS84"
                )
        return None, CRS.from_user_input("OGC:CRS84")

    def _queryables(self, collection: dict[str, Any], base: str) -> list[Field] | None:
        """The fields the server declares, when the collection links its queryables.

        Only a linked document is read: guessing the URL would turn a missing document and a
        server failure into the same thing, and the types would then flip between runs.
        """
        links = _links(collection, QUERYABLES_RELS)
        if not links:
            return None
        url = urljoin(base, str(links[0]["href"]))
        doc, _ = self._get_json(url, "queryables")
        properties = doc.get("properties")
        if not isinstance(properties, dict):
            raise SourceError(f"{self._what('queryables', url)}: no 'properties' object")
        fields = []
        for name, spec in properties.items():
            sql_type = sql_type_from_json_schema(spec if isinstance(spec, dict) else {})
            if sql_type is not None:
                fields.append(Field(str(name), sql_type))
        return fields

    def _fields(
        self, declared: list[Field] | None, inferred: tuple[list[Field], str] | None
    ) -> tuple[list[Field], str]:
        """Declared fields first (their types win), then fields only the first page shows."""
        seen, geometry_type = inferred or ([], "Unknown")
        fields = list(declared or [])
        names = {f.name for f in fields}
        for field in seen:
            if field.name in names:
                continue
            if field.name == "id" and self.key != "id":
                continue  # the feature id GDAL turned into a column, not a property
            fields.append(Field(field.name, WIDENED.get(field.sql_type, field.sql_type)))
            names.add(field.name)
        if self.key not in names:
            empty = self._first is None or self._first.attributes.num_rows == 0
            if not empty:
                raise SourceError(
                    f"layer '{self.layer_id}': key field '{self.key}' is not among the "
                    f"properties of collection '{self.source.collection}' "
                    f"({', '.join(sorted(names)) or 'none'})"
                )
            fields.append(Field(self.key, "text"))
            self.stats.notes.append("empty collection: field types unknown")
        return fields, geometry_type

    # -- features -----------------------------------------------------------------------------
    def _fetch(self, url: str, params: dict[str, str] | None, number: int) -> ItemsPage:
        return self.http.get(
            url,
            params,
            lambda r: self._parse(r, number == 1),
            self._what(f"items page {number}", url),
        )

    def _parse(self, response: httpx.Response, infer: bool) -> ItemsPage:
        """One page: GDAL reads the features, the JSON gives the counts and the next link."""
        body = response.content
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise BadBody(f"not JSON ({exc})") from exc
        if (
            not isinstance(doc, dict)
            or doc.get("type") != "FeatureCollection"
            or not isinstance(doc.get("features"), list)
        ):
            raise SourceError(
                f"{self._what('items', str(response.url))}: not a GeoJSON FeatureCollection"
            )
        self._check_content_crs(response)
        features = doc["features"]
        returned = doc.get("numberReturned")
        if isinstance(returned, int) and returned != len(features):
            raise BadBody(f"numberReturned is {returned} but {len(features)} features arrived")
        matched = doc.get("numberMatched")
        matched = (
            int(matched) if isinstance(matched, int | str) and str(matched).isdigit() else None
        )
        url = str(response.url)
        next_links = _links(doc, ("next",))
        next_url = urljoin(url, str(next_links[0]["href"])) if next_links else None
        if not features:
            return ItemsPage(url, pa.table({}), pa.array([], pa.binary()), matched, next_url)
        inferred = None
        try:
            if infer:
                info = pyogrio.read_info(body)
                inferred = (
                    [
                        Field(str(n), sql_type_from_ogr(t, s))
                        for n, t, s in zip(
                            info["fields"], info["ogr_types"], info["ogr_subtypes"], strict=True
                        )
                    ],
                    str(info["geometry_type"]),
                )
            meta, table = pyogrio.read_arrow(body, **OPEN_OPTIONS)
        except Exception as exc:  # GDAL's error classes vary; any of them = unusable body
            raise BadBody(f"GDAL cannot read it ({str(exc).splitlines()[0][:200]})") from exc
        if table.num_rows != len(features):
            raise BadBody(f"{len(features)} features sent but GDAL read {table.num_rows}")
        geometry_column = meta["geometry_name"] or "wkb_geometry"
        attributes = _plain(table.drop_columns([geometry_column]))
        return ItemsPage(
            url, attributes, table.column(geometry_column), matched, next_url, inferred
        )

    def _check_content_crs(self, response: httpx.Response) -> None:
        """A server that ignored `crs=` says so in Content-Crs; coordinates would be wrong."""
        header = response.headers.get("content-crs")
        if not header:
            return
        expected = crs_identity(self.crs_uri or CRS84_URI)
        if crs_identity(header) != expected:
            raise SourceError(
                f"{self._what('items', str(response.url))}: the server sent {header.strip()} "
                f"coordinates but {expected} was asked for"
            )

    def _conform(self, page: ItemsPage) -> FeatureBatch:
        """The schema's columns in order; properties the schema does not know are noted."""
        table = page.attributes
        extra = sorted(set(table.column_names) - set(self.schema.names) - {"id"})
        if extra:
            note = f"not stored (absent from the schema): {', '.join(extra)}"
            if note not in self.stats.notes:
                self.stats.notes.append(note)
        columns = [
            table.column(name)
            if name in table.column_names
            else pa.nulls(table.num_rows, pa.string())
            for name in self.schema.names
        ]
        return FeatureBatch(pa.table(columns, names=self.schema.names), page.wkb)

    def batches(self) -> Iterator[FeatureBatch]:
        """Every page in turn; the counts are checked once the last one has arrived."""
        page = self._first
        if page is None:
            raise SourceError(f"layer '{self.layer_id}': the OGC API reader was already used")
        self._first = None
        announced = page.matched
        keys: set[str] = set()
        keyless = received = 0
        visited = {page.url}
        while True:
            self.stats.pages += 1
            if page.matched is not None and announced is not None and page.matched != announced:
                raise SourceError(
                    f"layer '{self.layer_id}': numberMatched changed from {announced} to "
                    f"{page.matched} while paging (the source changed during the run)"
                )
            announced = announced if announced is not None else page.matched
            if page.attributes.num_rows == 0:
                break
            batch = self._conform(page)
            for value in batch.attributes.column(self.key).to_pylist():
                if value is None:
                    keyless += 1
                else:
                    keys.add(str(value))
            received += batch.attributes.num_rows
            yield batch
            if page.next_url is None:
                break
            if page.next_url in visited:
                raise SourceError(
                    f"layer '{self.layer_id}': the next link of page "
                    f"{self.stats.pages} points back to {page.next_url}"
                )
            visited.add(page.next_url)
            page = self._fetch(page.next_url, None, self.stats.pages + 1)
        self._check_counts(announced, received, len(keys), keyless)

    def _check_counts(
        self, announced: int | None, received: int, distinct: int, keyless: int
    ) -> None:
        """Distinct features received against numberMatched: a slipped page shows up here."""
        self.stats.notes.append(
            f"{received} features in {self.stats.pages} pages, {distinct} "
            f"distinct keys, numberMatched {announced}"
        )
        if announced is not None and distinct + keyless != announced:
            raise SourceError(
                f"layer '{self.layer_id}': the server announced {announced} features "
                f"(numberMatched) but {received} arrived with {distinct} distinct keys "
                f"({keyless} without a key) from {self.collection_url}/items; "
                "nothing was applied"
            )


def _plain(table: pa.Table) -> pa.Table:
    """Extension columns (GDAL's JSON strings) as their plain storage, which CSV can write."""
    for index, column_type in enumerate(table.schema.types):
        if isinstance(column_type, pa.BaseExtensionType):
            column = table.column(index)
            plain = pa.chunked_array(
                [chunk.storage for chunk in column.chunks], column_type.storage_type
            )
            table = table.set_column(index, table.schema.field(index).name, plain)
    return table
