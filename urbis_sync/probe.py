"""`urbis sources check`: ask each network source what a sync would ask, and say what it answers.

For a WFS: its capabilities (title, version), whether the type name is one of its feature
types, the formats it offers for the type and the one a run would use, numberMatched
(RESULTTYPE=hits, else the first page's), the fields of DescribeFeatureType and the first page
(features read, key values). For an OGC API collection: the collection, its CRS and types and
the first page. For a download feed: the newest entry and its link (nothing downloaded).
The same readers as the sync do the asking, so a check that passes means the first requests of
a run will too; nothing touches the database. Every failure is the server's own words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from urbis_core.config import FeedSource, FileSource, LayerConfig, OgcApiSource, WfsSource
from urbis_core.errors import SourceError
from urbis_core.settings import SyncSettings
from urbis_sync.sources import SourceSchema
from urbis_sync.sources.feed import newest_entry
from urbis_sync.sources.http import HttpFetcher, RetryPolicy
from urbis_sync.sources.ogcapi import OgcApiReader
from urbis_sync.sources.wfs import WfsReader, read_capabilities
from urbis_sync.sources.wfs_capabilities import choose_format

KEYS_SHOWN = 5


@dataclass
class SourceProbe:
    """What one layer's source answered: facts in the order they were learnt, or the failure."""

    layer_id: str
    source: str  # e.g. "wfs https://.../wfs urbisvector:Buildings"
    facts: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    network: bool = True

    @property
    def ok(self) -> bool:
        return self.error is None


def probe_layer(layer_id: str, layer: LayerConfig, settings: SyncSettings) -> SourceProbe:
    source = layer.source
    if isinstance(source, WfsSource):
        probe = SourceProbe(layer_id, f"wfs {source.url} {source.typename}")
    elif isinstance(source, OgcApiSource):
        probe = SourceProbe(layer_id, f"ogcapi {source.url} collection {source.collection}")
    elif isinstance(source, FeedSource):
        probe = SourceProbe(layer_id, f"feed {source.url}")
    else:
        probe = SourceProbe(layer_id, f"file {_file_location(source)}", network=False)
        probe.facts.append(("not checked", "a file source: `urbis config check` opens it"))
        return probe
    http = HttpFetcher(RetryPolicy.from_settings(settings))
    try:
        if isinstance(source, WfsSource):
            _probe_wfs(probe, source, layer.key, http)
        elif isinstance(source, OgcApiSource):
            _probe_ogcapi(probe, source, layer.key, http)
        else:
            _probe_feed(probe, source, http)
    except SourceError as exc:
        probe.error = str(exc)
    finally:
        http.close()
    return probe


def _probe_wfs(probe: SourceProbe, source: WfsSource, key: str, http: HttpFetcher) -> None:
    where = f"layer '{probe.layer_id}'"
    capabilities = read_capabilities(http, source.url, f"{where}: GetCapabilities")
    count = len(capabilities.feature_types)
    probe.facts.append(
        (
            "capabilities",
            f"{capabilities.title or '(no title)'}, WFS "
            f"{capabilities.version}, {count} feature "
            f"type{'s' if count != 1 else ''}",
        )
    )
    feature_type = capabilities.require_type(source.typename, where)
    probe.facts.append(
        (
            "type name",
            f"{feature_type.name}" + (f" ({feature_type.title})" if feature_type.title else ""),
        )
    )
    offered = capabilities.formats_for(feature_type)
    origin = "the type's own list" if feature_type.formats else "the GetFeature operation"
    probe.facts.append(
        ("formats offered", f"{', '.join(offered)} ({origin})" if offered else "none listed")
    )
    probe.facts.append(("format used", str(choose_format(offered, source.format, where))))
    reader = WfsReader(source, key, probe.layer_id, http, capabilities=capabilities)
    try:
        probe.facts.append(("fields", _fields(reader.schema)))
        first = reader.page(0)
        try:
            matched, how = reader.hits(), "RESULTTYPE=hits"
            if matched is None and first.matched is not None:
                matched, how = first.matched, "the first page's; RESULTTYPE=hits said unknown"
        except SourceError as exc:
            matched, how = first.matched, f"the first page's; RESULTTYPE=hits failed: {exc}"
        probe.facts.append(("numberMatched", f"{_count(matched)} ({how})"))
        probe.facts.append(
            ("first page", _first_page(first.batch.attributes, key, reader.page_size))
        )
    finally:
        reader.close()


def _probe_ogcapi(probe: SourceProbe, source: OgcApiSource, key: str, http: HttpFetcher) -> None:
    reader = OgcApiReader(source, key, probe.layer_id, http)
    try:
        first = reader.first_page
        probe.facts.append(("collection", "; ".join(reader.stats.notes)))
        probe.facts.append(("fields", _fields(reader.schema)))
        if first is not None:
            probe.facts.append(("numberMatched", f"{_count(first.matched)} (the first page's)"))
            probe.facts.append(("first page", _first_page(first.attributes, key, reader.page_size)))
    finally:
        reader.close()


def _probe_feed(probe: SourceProbe, source: FeedSource, http: HttpFetcher) -> None:
    entry = newest_entry(source.url, http, layer_id=probe.layer_id)
    probe.facts.append(
        (
            "newest entry",
            f"{entry.title or entry.id} ({entry.id}), updated {entry.updated.isoformat()}",
        )
    )
    probe.facts.append(
        ("download", f"{entry.href} (not downloaded; layer {source.layer or 'the only one in it'})")
    )


def _fields(schema: SourceSchema) -> str:
    return (
        ", ".join(f"{f.name} {f.sql_type}" for f in schema.fields)
        + f"; geometry {schema.geometry_type}"
    )


def _count(value: int | None) -> str:
    return "unknown" if value is None else f"{value:,}"


def _first_page(attributes: pa.Table, key: str, page_size: int) -> str:
    read = attributes.num_rows
    text = f"{read} feature{'s' if read != 1 else ''} read (page size {page_size})"
    if read and key in attributes.column_names:
        values = [str(v) for v in attributes.column(key).slice(0, KEYS_SHOWN).to_pylist()]
        more = ", ..." if read > KEYS_SHOWN else ""
        text += f"; {key}: {', '.join(values)}{more}"
    elif read:
        text += f"; no field {key} in it (the layer's key)"
    return text


def _file_location(source: FileSource) -> str:
    if source.paths is not None:
        return ", ".join(str(p) for p in source.paths)
    return str(source.path or source.url)
