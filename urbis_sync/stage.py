"""A run's pass over its source into staging: one function per mode.

- `stage_changes`: the layer is live with fingerprints; features whose fingerprint it already
  has are skipped, so only candidates are staged, with the live fingerprints nothing matched
  (features changed or gone);
- `stage_whole`: every feature is staged (no usable live layer, or the changes alone were not
  enough: schema drift, a key twice);
- `stage_first_load`: no layer yet; the features are streamed straight into the layer's new
  table, written once, then typed and indexed there.

Each reads the source in one transaction, commits what it staged and returns it (`Staged`)
for the apply (`urbis_sync.reconcile.apply`), which `urbis_sync.run` runs in a transaction of
its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from sqlalchemy import Connection, Engine

from urbis_core.catalog import LayerEntry
from urbis_core.config import LayerConfig
from urbis_core.settings import SyncSettings
from urbis_sync.copystream import CopyStream
from urbis_sync.fingerprint import DuplicateFeature, LiveFingerprints, row_fingerprints
from urbis_sync.normalize import (
    TYPE_NAMES,
    DoesNotFit,
    LayerFacts,
    Normalizer,
    PreparedBatch,
    Quarantined,
    first_kinds,
    resolve_crs,
)
from urbis_sync.reconcile.duplicates import DuplicateKeys, quarantine_duplicates
from urbis_sync.reconcile.first_load import NextTable, index_next_table, retype_next_table
from urbis_sync.reconcile.shape import LayerShape, decide_shape
from urbis_sync.reconcile.staging import (
    NeedsFullRun,
    build_incoming,
    create_staging,
    live_fingerprints,
    stage_unmatched,
)
from urbis_sync.reconcile.tables import next_table_name, staging_name
from urbis_sync.sources import FeatureBatch, Field, Source, open_source

Progress = Callable[[str, int], None]


@dataclass
class Staged:
    """What one pass over the source left in staging, and what it counted on the way."""

    shape: LayerShape
    incoming: str
    unmatched: str | None  # the live fingerprints nothing matched (when only changes were staged)
    fetched: int
    repaired: int
    quarantined: list[Quarantined]
    duplicates: int
    source_info: str | None


@dataclass(frozen=True)
class SourcePass:
    """One pass of a run over a layer's source: what every mode needs to stage it."""

    engine: Engine
    layer_id: str
    layer: LayerConfig
    run_id: int
    settings: SyncSettings
    progress: Progress | None
    previous_info: str | None  # what the last successful run noted about its source


def stage_changes(run: SourcePass, current: LayerEntry) -> Staged:
    """Only the features whose fingerprint the live layer lacks, and the live ones unmatched."""
    staging = staging_name(run.layer_id, run.run_id)
    with _opened(run, current) as (source, conn, normalizer):
        live = live_fingerprints(conn, current)
        with create_staging(conn, staging, source.schema.fields) as stream:
            read = _read(run, source, normalizer, _into_staging(stream, normalizer), live)
        normalizer.check_plausible()  # after the COPY: a value that does not fit fails first
        unmatched = stage_unmatched(conn, staging, live.unmatched())
        read.notes.append(f"{read.unchanged} unchanged features skipped by fingerprint")
    return _incoming(run, staging, read, unmatched, current)


def stage_whole(run: SourcePass) -> Staged:
    """Every feature of the source, into a staging table."""
    staging = staging_name(run.layer_id, run.run_id)
    with _opened(run) as (source, conn, normalizer):
        with create_staging(conn, staging, source.schema.fields) as stream:
            read = _read(run, source, normalizer, _into_staging(stream, normalizer))
        normalizer.check_plausible()  # after the COPY: a value that does not fit fails first
    return _incoming(run, staging, read, None, None)


def stage_first_load(run: SourcePass) -> Staged:
    """Every feature, streamed into the layer's next table; then typed and indexed there."""
    layer, layer_id = run.layer, run.layer_id
    with _opened(run) as (source, conn, normalizer):
        fields = source.schema.fields
        with NextTable(conn, layer_id, fields, layer.key) as table:
            into = _IntoNextTable(table, normalizer, fields, layer_id, source.schema.geometry_type)
            read = _read(run, source, normalizer, into)
            into.finish()
        normalizer.check_plausible()  # after the COPY: a value that does not fit fails first
        assert normalizer.target is not None
        columns = decide_shape(fields, normalizer.facts, layer_id).columns
        shape = LayerShape(columns, normalizer.target)
        retype_next_table(conn, layer_id, shape)
    duplicates = 0
    try:
        index_next_table(run.engine, layer_id, layer.key, filters=(shape.columns, layer.indexes))
    except DuplicateKeys:
        with run.engine.begin() as conn:
            duplicates = quarantine_duplicates(
                conn, next_table_name(layer_id), layer.key, layer_id, run.run_id
            )
        index_next_table(
            run.engine, layer_id, layer.key, spatial=False, filters=(shape.columns, layer.indexes)
        )
    return read.staged(shape, next_table_name(layer_id), None, duplicates)


class _Opened(NamedTuple):
    source: Source
    conn: Connection  # the transaction the pass stages in
    normalizer: Normalizer


@contextmanager
def _opened(run: SourcePass, current: LayerEntry | None = None) -> Iterator[_Opened]:
    """The source open, a transaction begun, and the normalizer for the source's schema.

    With `current`, a source whose fields differ from the live layer's needs the whole layer.
    """
    with (
        open_source(run.layer_id, run.layer, run.settings, run.previous_info) as source,
        run.engine.begin() as conn,
    ):
        fields = source.schema.fields
        if current is not None and [f.name for f in fields] != [c.name for c in current.columns]:
            raise NeedsFullRun("the source's fields changed")
        crs = resolve_crs(source.schema.crs, run.layer.source.srid, run.layer_id)
        yield _Opened(source, conn, Normalizer(source.schema, run.layer.key, crs, run.layer_id))


@dataclass
class _Read:
    """What a pass counted and learned while reading the source."""

    fields: list[Field]
    facts: LayerFacts  # what the normalizer saw of the types
    notes: list[str]  # the source's, for the run row
    fetched: int = 0
    repaired: int = 0
    unchanged: int = 0  # skipped by fingerprint
    quarantined: list[Quarantined] = field(default_factory=list)

    def staged(
        self, shape: LayerShape, incoming: str, unmatched: str | None, duplicates: int
    ) -> Staged:
        return Staged(
            shape,
            incoming,
            unmatched,
            self.fetched,
            self.repaired,
            self.quarantined,
            duplicates,
            "; ".join(self.notes) or None,
        )


# Prepares a batch (features and their fingerprints) and writes it where the mode stages.
Write = Callable[[FeatureBatch, np.ndarray], PreparedBatch]


def _read(
    run: SourcePass,
    source: Source,
    normalizer: Normalizer,
    write: Write,
    live: LiveFingerprints | None = None,
) -> _Read:
    """Every batch of the source, normalised and written; with `live`, unchanged ones skipped."""
    read = _Read(source.schema.fields, normalizer.facts, [])
    for batch in source.batches():
        attributes = normalizer.align(batch.attributes)
        batch = FeatureBatch(attributes, batch.wkb)
        fingerprints = row_fingerprints(attributes, batch.wkb)
        read.fetched += len(fingerprints)
        if live is not None:
            try:
                same = live.match(fingerprints)
            except DuplicateFeature as twice:
                raise NeedsFullRun("a feature occurs more than once") from twice
            read.unchanged += int(same.sum())
            if same.any():
                batch = batch.filter(~same)
                fingerprints = fingerprints[~same]
        prepared = write(batch, fingerprints)
        read.repaired += prepared.repaired
        read.quarantined += prepared.quarantined
        if run.progress is not None:
            run.progress(run.layer_id, read.fetched)
    read.notes = list(source.stats.notes)
    return read


def _into_staging(stream: CopyStream, normalizer: Normalizer) -> Write:
    def write(batch: FeatureBatch, fingerprints: np.ndarray) -> PreparedBatch:
        prepared = normalizer.prepare(batch, fingerprints)
        stream.write(prepared.csv)
        return prepared

    return write


@dataclass
class _IntoNextTable:
    """Writes a first load's batches to its next table, whose geometry type follows them.

    The table is opened with the type the first features and the source's declared type
    suggest, and widened when a later feature does not fit it.
    """

    table: NextTable
    normalizer: Normalizer
    fields: list[Field]
    layer_id: str
    declared: str  # the geometry type the source declares

    def __call__(self, batch: FeatureBatch, fingerprints: np.ndarray) -> PreparedBatch:
        normalizer = self.normalizer
        if self.table.geometry_type is None:
            normalizer.target = _geometry_type(
                self.fields, self.layer_id, first_kinds(batch), self.declared
            )
            self.table.open(normalizer.target)
        try:
            prepared = normalizer.prepare(batch, fingerprints)
        except DoesNotFit as misfit:
            assert normalizer.target
            normalizer.target = _geometry_type(
                self.fields, self.layer_id, misfit.kinds, normalizer.target
            )
            self.table.widen(normalizer.target)
            prepared = normalizer.prepare(batch, fingerprints)
        self.table.write(prepared.csv)
        return prepared

    def finish(self) -> None:
        """Open the table of an empty source, which no batch opened."""
        if self.table.geometry_type is None:
            self.normalizer.target = "Geometry"
            self.table.open(self.normalizer.target)


def _incoming(
    run: SourcePass,
    staging: str,
    read: _Read,
    unmatched: str | None,
    current: LayerEntry | None,
) -> Staged:
    """The staged rows as the incoming layer, typed; keys found twice are quarantined."""
    layer = run.layer
    duplicates = 0
    with run.engine.begin() as conn:
        shape = decide_shape(
            read.fields, read.facts, run.layer_id, current, complete=current is None
        )
        try:
            incoming = build_incoming(conn, staging, shape, layer.key)
        except DuplicateKeys:
            duplicates = quarantine_duplicates(conn, staging, layer.key, run.layer_id, run.run_id)
            incoming = build_incoming(conn, staging, shape, layer.key)
    return read.staged(shape, incoming, unmatched, duplicates)


def _geometry_type(fields: list[Field], layer_id: str, kinds: set[str], hint: str) -> str:
    """The geometry type of a first load's table, from the features seen and a hint.

    The hint is the source's declared type, or the table's type so far when a feature did not
    fit it: a layer declared MultiPolygon whose first features are single polygons is made
    multi from the start, and single polygons followed by a multi one widen to MultiPolygon.
    """
    hint = hint.split(" ")[0]  # "MultiPolygon Z": stored in 2D
    if hint in TYPE_NAMES.values():
        kinds = kinds | {hint}
    return decide_shape(fields, LayerFacts({}, kinds), layer_id).geometry_type
