"""Several files read as one layer (`source.paths`): URBIS also comes in tiles.

The files are listed by paths or glob patterns, expanded in sorted order at each run, so a tile
added to the folder is read by the next run. Each is read as a `file` source of its own; the
layer is their features in turn, under one schema:

- files with no features are left out of the schema and the CRS (an empty WFS answer says
  `crs: null`, which GDAL reads as WGS 84, and has no fields);
- the others must have the same fields (a file of another product caught by a pattern fails
  the run) and the same CRS; a field typed differently is widened (integer < bigint < double
  precision), a text field whose values are all null does not count (GDAL types such a field
  as text), and any other mix is stored as text;
- a feature found in an earlier file, identical (key, every attribute and the geometry: the
  run's fingerprint), is the same feature recorded twice (a tile boundary), and is read once.
  Copies that differ are both kept, and the run quarantines them as a duplicate key, as it
  does for a key twice within one file: no copy is picked silently.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyproj import CRS

from urbis_core.config import FileSource
from urbis_core.errors import SourceError
from urbis_sync.fingerprint import row_fingerprints
from urbis_sync.normalize import same_crs
from urbis_sync.sources import FeatureBatch, Field, SourceSchema, SourceStats
from urbis_sync.sources.file import FileReader, open_file_source

_GLOB_CHARACTERS = frozenset("*?[")
_NUMERIC = ("integer", "bigint", "double precision")  # narrowest first
_ARROW_TYPES = {
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "double precision": pa.float64(),
    "text": pa.string(),
}


def expand_paths(patterns: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """The files the paths and patterns name, sorted, each once; and those that name none."""
    files: list[Path] = []
    unmatched: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        if _GLOB_CHARACTERS & set(text):
            found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        else:
            found = [pattern] if pattern.is_file() else []
        if not found:
            unmatched.append(pattern)
        files += found
    return list(dict.fromkeys(files)), unmatched


def no_match(pattern: Path) -> str:
    """The problem of a path or pattern that names no file."""
    return f"source.paths: {pattern} matches no file"


@contextmanager
def open_file_set(
    source: FileSource, layer_id: str, key: str | None = None
) -> Iterator[FileSetReader]:
    """Every file of `source.paths`, open, as one reader; their working copies go afterwards."""
    assert source.paths is not None
    files, unmatched = expand_paths(source.paths)
    if unmatched:
        raise SourceError(f"layer '{layer_id}': {no_match(unmatched[0])}")
    labels = _labels(files)
    with ExitStack() as stack:
        readers = []
        for path, label in zip(files, labels, strict=True):
            one = FileSource(kind="file", path=path, layer=source.layer, srid=source.srid)
            dataset = stack.enter_context(open_file_source(one, layer_id, label))
            readers.append(FileReader(dataset, source.drop_fields))
        yield FileSetReader(readers, layer_id, source.srid, key)


class FileSetReader:
    """Streams the features of several files as one source (see the module's docstring)."""

    def __init__(
        self, readers: list[FileReader], layer_id: str, srid: int | None, key: str | None
    ) -> None:
        self.readers = readers
        self.layer_id = layer_id
        self.key = key
        self.stats = SourceStats()
        self.dropped = sorted({name for r in readers for name in r.dropped})
        # A count GDAL does not know (-1) makes the file count as holding features.
        self._full = [r for r in readers if r.feature_count != 0] or readers[:1]
        first = self._full[0]
        self._check_same_fields()
        fields = [Field(name, self._unify(name)) for name in first.schema.names]
        self.schema = SourceSchema(fields, self._common_crs(srid), self._geometry_type())
        counts = [r.feature_count for r in readers]
        self.feature_count = -1 if -1 in counts else sum(counts)

    def extent(self) -> tuple[float, float, float, float] | None:
        """The bounding box of every file's features; None when none has a geometry."""
        boxes = [box for r in self._full if (box := r.extent()) is not None]
        if not boxes:
            return None
        return (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )

    def batches(self) -> Iterator[FeatureBatch]:
        seen = _Seen()
        copies = 0
        shown: list[str] = []  # the keys of the first few copies, for the run's note
        for reader in self._full:
            this_file = []
            for batch in reader.batches():
                batch = self._conform(batch)
                fingerprints = row_fingerprints(batch.attributes, batch.wkb)
                again = seen.contains(fingerprints)
                if again.any():
                    copies += int(again.sum())
                    if len(shown) < 5 and self.key in batch.attributes.column_names:
                        keys = batch.attributes.column(self.key).filter(pa.array(again))
                        shown += [str(k) for k in keys.slice(0, 5 - len(shown)).to_pylist()]
                    batch = batch.filter(~again)
                    fingerprints = fingerprints[~again]
                this_file.append(fingerprints)
                self.stats.pages += 1
                yield batch
            # Only copies in another file are the same feature twice; within one file the run
            # treats a key twice as it always does.
            seen.add(this_file)
        self.stats.notes.append(f"{len(self.readers)} files read")
        if copies:
            what = "1 feature" if copies == 1 else f"{copies} features"
            keys = ", ".join(shown) + (", ..." if copies > len(shown) else "")
            self.stats.notes.append(
                f"{what} found identical in an earlier file, read once"
                + (f" ({keys})" if shown else "")
            )

    # -- one schema for every file ----------------------------------------------------------
    def _check_same_fields(self) -> None:
        first = self._full[0]
        names = set(first.schema.names)
        for reader in self._full[1:]:
            other = set(reader.schema.names)
            if other != names:
                extra, missing = sorted(other - names), sorted(names - other)
                differences = ([f"has {', '.join(extra)}"] if extra else []) + (
                    [f"lacks {', '.join(missing)}"] if missing else []
                )
                raise SourceError(
                    f"layer '{self.layer_id}': the files' fields differ: "
                    f"{reader.dataset.name} {' and '.join(differences)} "
                    f"(compared with {first.dataset.name}); "
                    "is it another product? (source.drop_fields leaves a field out)"
                )

    def _unify(self, name: str) -> str:
        typed = [(r, {f.name: f.sql_type for f in r.schema.fields}[name]) for r in self._full]
        kinds = {sql_type for _, sql_type in typed}
        if len(kinds) == 1:
            return kinds.pop()
        telling = {t for r, t in typed if t != "text" or not r.all_null(name)}
        if len(telling) <= 1:
            return telling.pop() if telling else "text"
        if telling <= set(_NUMERIC):
            return max(telling, key=_NUMERIC.index)
        self.stats.notes.append(f"{name} is typed {', '.join(sorted(telling))}: stored as text")
        return "text"

    def _common_crs(self, srid: int | None) -> CRS | None:
        """The files' CRS; a file without one takes `source.srid`, as a single file would."""
        declared = CRS.from_epsg(srid) if srid is not None else None
        crs_of = [(r.dataset.name, r.schema.crs or declared) for r in self._full]
        known = [(name, crs) for name, crs in crs_of if crs is not None]
        bare = [name for name, crs in crs_of if crs is None]
        if known and bare:
            raise SourceError(
                f"layer '{self.layer_id}': the files' CRS differ: {bare[0]} carries none, "
                f"{known[0][0]} is {_crs_name(known[0][1])}; declare it with source.srid"
            )
        for name, crs in known[1:]:
            if not same_crs(known[0][1], crs):
                raise SourceError(
                    f"layer '{self.layer_id}': the files' CRS differ: {known[0][0]} is "
                    f"{_crs_name(known[0][1])}, {name} is {_crs_name(crs)}"
                )
        own = [r.schema.crs for r in self._full if r.schema.crs is not None]
        return own[0] if own else None

    def _geometry_type(self) -> str:
        declared = {r.schema.geometry_type for r in self._full}
        if len(declared) == 1:
            return declared.pop()
        singles = {t for t in declared if not t.startswith("Multi")}
        if len(singles) == 1 and declared == singles | {f"Multi{next(iter(singles))}"}:
            return f"Multi{singles.pop()}"  # Polygon and MultiPolygon: a MultiPolygon layer
        return "Unknown"

    def _conform(self, batch: FeatureBatch) -> FeatureBatch:
        """The batch's columns in the schema's order and types."""
        table = batch.attributes
        columns = []
        for field in self.schema.fields:
            column = table.column(field.name)
            wanted = _ARROW_TYPES.get(field.sql_type)
            if wanted is not None and column.type != wanted:
                column = column.cast(wanted)
            columns.append(column)
        return FeatureBatch(pa.table(columns, names=self.schema.names), batch.wkb)


class _Seen:
    """The fingerprints of the files read so far, in sorted runs for vectorized lookups.

    16 bytes a feature, as the live fingerprints a run loads. Runs of like size are merged as
    files are added (as in a binary counter), so there are at most log2(features) runs and
    each feature is sorted a logarithmic number of times, however many files there are.
    Looked up by their first word: two digests sharing it (one chance in 2^64) would keep a
    copy, which the run then quarantines as a duplicate key; no feature is ever dropped that
    was not read before.
    """

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (first words, second words)

    def contains(self, fingerprints: np.ndarray) -> np.ndarray:
        found = np.zeros(len(fingerprints), dtype=bool)
        if not len(fingerprints):
            return found
        words = np.ascontiguousarray(fingerprints).view(np.uint64)
        for high, low in self._runs:
            at = np.searchsorted(high, words[:, 0])
            at[at == len(high)] = 0
            found |= (high[at] == words[:, 0]) & (low[at] == words[:, 1])
        return found

    def add(self, batches: list[np.ndarray]) -> None:
        if not batches or not sum(len(b) for b in batches):
            return
        words = np.concatenate([np.ascontiguousarray(b).view(np.uint64) for b in batches])
        high, low = words[:, 0], words[:, 1]
        while self._runs and len(self._runs[-1][0]) <= len(high):
            last_high, last_low = self._runs.pop()
            high, low = np.concatenate([last_high, high]), np.concatenate([last_low, low])
        order = np.argsort(high, kind="stable")
        self._runs.append((high[order], low[order]))


def _labels(files: list[Path]) -> list[str]:
    """Each file's path below the folder they share (`bxl-e141000-n167000-s500/x.geojson`)."""
    if not files:
        return []
    common = os.path.commonpath([str(f.parent) for f in files])
    return [os.path.relpath(f, common) for f in files]


def _crs_name(crs: CRS) -> str:
    epsg = crs.to_epsg(min_confidence=20)
    return f"EPSG:{epsg}" if epsg else crs.name
