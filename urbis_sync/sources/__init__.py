"""Where layers come from: files, WFS 2.0, OGC API Features, download feeds.

Every source streams `FeatureBatch`es (attributes as an Arrow table, geometries as shapely
arrays) so a layer is never held in memory whole, and describes its fields with SQL types.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import shapely
from pyproj import CRS

from urbis_core.config import FileSource, LayerConfig, OgcApiSource, WfsSource
from urbis_core.settings import SyncSettings

BATCH_SIZE = 20_000


@dataclass(frozen=True)
class Field:
    name: str
    sql_type: str  # integer, bigint, double precision, boolean, date, timestamptz, time, text


@dataclass
class SourceSchema:
    fields: list[Field]
    crs: CRS | None
    geometry_type: str = "Unknown"

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]


@dataclass
class FeatureBatch:
    """Up to BATCH_SIZE features: attribute columns named as the schema's fields.

    Geometries travel as the source's WKB; they are decoded only when asked for, so features
    the run skips as unchanged are never parsed.
    """

    attributes: pa.Table
    wkb: pa.Array | pa.ChunkedArray  # binary, null where a feature has no geometry

    @functools.cached_property
    def geometries(self) -> np.ndarray:
        return shapely.from_wkb(self.wkb.to_numpy(zero_copy_only=False))

    def filter(self, keep: np.ndarray) -> FeatureBatch:
        mask = pa.array(keep)
        return FeatureBatch(self.attributes.filter(mask), self.wkb.filter(mask))


@dataclass
class SourceStats:
    """What a source learned while streaming (e.g. the server's numberMatched)."""

    pages: int = 0
    notes: list[str] = field(default_factory=list)


class Source(Protocol):
    schema: SourceSchema
    stats: SourceStats

    def batches(self) -> Iterator[FeatureBatch]: ...


OGR_SQL_TYPES = {
    "OFTInteger": "integer",
    "OFTInteger64": "bigint",
    "OFTReal": "double precision",
    "OFTString": "text",
    "OFTDate": "date",
    "OFTDateTime": "timestamptz",
    "OFTTime": "time",
}


def sql_type_from_ogr(ogr_type: str, subtype: str | None = None) -> str:
    if ogr_type == "OFTInteger" and subtype == "OFSTBoolean":
        return "boolean"
    return OGR_SQL_TYPES.get(ogr_type, "text")


class SourceUnchanged(Exception):  # noqa: N818 - a signal, not an error
    """The source says its content is what the last successful run already applied."""

    def __init__(self, info: str) -> None:
        super().__init__(info)
        self.info = info


@contextmanager
def open_source(
    layer_id: str, layer: LayerConfig, settings: SyncSettings, previous_info: str | None = None
) -> Iterator[Source]:
    """Open a layer's source for one run; temporary files go when the run is done.

    `previous_info` is what the last successful run noted about its source (a feed entry):
    a feed whose newest entry is the same raises SourceUnchanged before any download.
    """
    from urbis_sync.sources.feed import (
        entry_marker,
        feed_file_source,
        newest_entry,
        open_feed_source,
    )
    from urbis_sync.sources.file import FileReader, open_file_source
    from urbis_sync.sources.file_set import open_file_set
    from urbis_sync.sources.http import HttpFetcher, RetryPolicy
    from urbis_sync.sources.ogcapi import OgcApiReader
    from urbis_sync.sources.wfs import WfsReader

    source = layer.source
    if isinstance(source, FileSource):
        if source.paths is not None:
            with open_file_set(source, layer_id, layer.key) as files:
                yield files
            return
        with open_file_source(source, layer_id) as dataset:
            yield FileReader(dataset, source.drop_fields)
        return
    http = HttpFetcher(RetryPolicy.from_settings(settings))
    try:
        if isinstance(source, WfsSource | OgcApiSource):
            reader: WfsReader | OgcApiReader = (
                WfsReader(source, layer.key, layer_id, http)
                if isinstance(source, WfsSource)
                else OgcApiReader(source, layer.key, layer_id, http)
            )
            try:
                yield reader
            finally:
                reader.close()
            return
        entry = newest_entry(source.url, http, layer_id=layer_id)
        marker = f"feed entry {entry_marker(entry)}"
        if previous_info is not None and marker in previous_info:
            raise SourceUnchanged(f"{marker} (already applied; not downloaded again)")
        with (
            tempfile.TemporaryDirectory(prefix="urbis-feed-") as tmp,
            open_feed_source(source.url, source.layer, layer_id, http, Path(tmp), entry=entry) as (
                _entry,
                archive,
            ),
            open_file_source(
                feed_file_source(archive, source.layer, source.srid), layer_id
            ) as dataset,
        ):
            from_feed = FileReader(dataset)
            from_feed.stats.notes.append(marker)
            yield from_feed
    finally:
        http.close()
