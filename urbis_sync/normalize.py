"""From a source batch to rows ready for COPY: CRS, repair, quarantine, text encoding.

Column types come from the source's schema (see `urbis_sync.sources`); PostgreSQL parses the
text COPY into the typed staging columns, so a value that does not fit its declared type fails
the run with the field named instead of being silently altered.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import shapely
from pyproj import CRS, Transformer

from urbis_core.catalog import STORAGE_SRID
from urbis_core.errors import SourceError
from urbis_sync.fingerprint import hex_digests
from urbis_sync.sources import FeatureBatch, SourceSchema

STORAGE_CRS = CRS.from_epsg(STORAGE_SRID)
# Belgium in EPSG:31370, with a margin: coordinates outside are a CRS or axis-order mistake.
PLAUSIBLE_31370 = (-50_000.0, -50_000.0, 400_000.0, 350_000.0)
FAMILIES = {
    "Point": "Point",
    "MultiPoint": "Point",
    "LineString": "LineString",
    "MultiLineString": "LineString",
    "LinearRing": "LineString",
    "Polygon": "Polygon",
    "MultiPolygon": "Polygon",
}
# shapely type ids of Point, LineString, LinearRing, Polygon and their Multi* (not collections),
# with the names PostGIS gives them (WKB has no ring: a LinearRing is written as a LineString)
TYPE_NAMES = {
    0: "Point",
    1: "LineString",
    2: "LineString",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
}
SIMPLE_TYPE_IDS = list(TYPE_NAMES)
_MULTI_TYPE_IDS = [4, 5, 6]
_EXACT_INTEGER = 2**53
_EWKB_SRID_FLAG = 0x20000000
_CSV_OPTIONS = pa_csv.WriteOptions(include_header=False)


@dataclass(frozen=True)
class Quarantined:
    key: str | None
    reason: str
    properties: dict[str, Any]
    wkt: str | None


@dataclass
class PreparedBatch:
    csv: bytes  # the attribute columns in schema order, the geometry as hex EWKB, the fingerprint
    rows: int
    fetched: int
    repaired: int
    quarantined: list[Quarantined] = field(default_factory=list)


@dataclass
class LayerFacts:
    """What the stored features showed about the layer's types, gathered batch by batch."""

    # per real-number column: every value seen is a whole number (None: no value seen yet)
    whole: dict[str, bool | None]
    kinds: set[str] = field(default_factory=set)  # geometry types, as PostGIS names them


class DoesNotFit(Exception):  # noqa: N818 - a signal to widen the new table's geometry type
    """A geometry does not fit the geometry type the new table was created with."""

    def __init__(self, kinds: set[str], target: str) -> None:
        super().__init__(f"{', '.join(sorted(kinds))} into {target}")
        self.kinds = kinds


def resolve_crs(detected: CRS | None, declared_srid: int | None, layer_id: str) -> CRS:
    """The source's CRS: detected from the data, else declared in the config; never guessed."""
    if detected is None:
        if declared_srid is None:
            raise SourceError(
                f"layer '{layer_id}': the source carries no CRS; "
                "declare it with source.srid (e.g. 31370)"
            )
        return CRS.from_epsg(declared_srid)
    if declared_srid is not None and not same_crs(detected, CRS.from_epsg(declared_srid)):
        raise SourceError(
            f"layer '{layer_id}': source.srid is {declared_srid} but the source says "
            f"{detected.name}; remove source.srid or fix it"
        )
    return detected


def same_crs(a: CRS, b: CRS) -> bool:
    return a.equals(b, ignore_axis_order=True) or (
        a.to_epsg(min_confidence=20) is not None
        and a.to_epsg(min_confidence=20) == b.to_epsg(min_confidence=20)
    )


class Normalizer:
    """Turns batches of one source into COPY rows; keeps the extent and types seen."""

    def __init__(self, schema: SourceSchema, key: str, crs: CRS, layer_id: str) -> None:
        if key not in schema.names:
            raise SourceError(
                f"layer '{layer_id}': key field '{key}' is not in the source "
                f"(fields: {', '.join(schema.names)})"
            )
        reserved = {"geom", "row_hash", "valid_from", "valid_to", "op", "run_id"}
        clash = [n for n in schema.names if n.lower() in reserved]
        if clash:
            raise SourceError(
                f"layer '{layer_id}': source field(s) {', '.join(clash)} use a "
                "name the service reserves for its own columns"
            )
        self.schema = schema
        self.key = key
        self.layer_id = layer_id
        self._transformer = (
            None
            if same_crs(crs, STORAGE_CRS)
            else Transformer.from_crs(crs, STORAGE_CRS, always_xy=True)
        )
        self.bounds = [np.inf, np.inf, -np.inf, -np.inf]
        self.facts = LayerFacts(
            {f.name: None for f in schema.fields if f.sql_type == "double precision"}
        )
        # Set when rows go straight into a table whose geometry column has this type.
        self.target: str | None = None

    def prepare(self, batch: FeatureBatch, fingerprints: np.ndarray) -> PreparedBatch:
        """COPY rows for the batch's storable features; the others are quarantined."""
        table = self.align(batch.attributes)
        geoms = np.asarray(batch.geometries, dtype=object)
        # Geometries that end up as they came can be written from the source's own WKB.
        rewritten = shapely.has_z(geoms)
        if rewritten.any():
            geoms = shapely.force_2d(geoms)
        if self._transformer is not None:
            transform = self._transformer.transform
            geoms = shapely.transform(
                geoms, lambda xy: np.column_stack(transform(xy[:, 0], xy[:, 1]))
            )
            rewritten[:] = True
        keys = table.column(self.key)
        key_text = pc.utf8_trim_whitespace(pc.cast(keys, pa.string()))
        no_key = pc.fill_null(pc.equal(key_text, ""), True).to_numpy(zero_copy_only=False)
        empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
        result = PreparedBatch(csv=b"", rows=0, fetched=len(geoms), repaired=0)
        keep = ~(no_key | empty)
        reasons: dict[int, str] = {}  # feature index -> why it is set aside
        for index in np.flatnonzero(no_key).tolist():
            reasons[index] = f"no value for key {self.key}"
        for index in np.flatnonzero(empty & ~no_key).tolist():
            reasons[index] = "empty geometry"
        for index in np.flatnonzero(keep & ~shapely.is_valid(geoms)).tolist():
            repaired = _repair(geoms[index])
            if repaired is None:
                reasons[index] = (
                    "invalid geometry that cannot be repaired: "
                    f"{shapely.is_valid_reason(geoms[index])}"
                )
                keep[index] = False
            else:
                geoms[index] = repaired
                rewritten[index] = True
                result.repaired += 1
        type_ids = shapely.get_type_id(geoms)
        unsupported = keep & ~np.isin(type_ids, SIMPLE_TYPE_IDS)
        for index in np.flatnonzero(unsupported).tolist():
            reasons[index] = f"unsupported geometry type {geoms[index].geom_type}"
        keep &= ~unsupported
        if reasons:
            rows = table.take(pa.array(sorted(reasons))).to_pylist()
            for i, props in zip(sorted(reasons), rows, strict=True):
                key = props.get(self.key)
                geom = geoms[i]
                wkt = None if geom is None or shapely.is_empty(geom) else geom.wkt
                result.quarantined.append(
                    Quarantined(
                        None if key is None or str(key).strip() == "" else str(key),
                        reasons[i],
                        props,
                        wkt,
                    )
                )
        kinds = {TYPE_NAMES[t] for t in np.unique(type_ids[keep]).tolist()}
        self.facts.kinds |= kinds
        promote = (
            self._fit_target(kinds, type_ids, keep)
            if self.target is not None
            else np.zeros(len(keep), dtype=bool)
        )
        kept = geoms[keep]
        if len(kept):
            minx, miny, maxx, maxy = shapely.total_bounds(kept)
            self.bounds = [
                min(self.bounds[0], minx),
                min(self.bounds[1], miny),
                max(self.bounds[2], maxx),
                max(self.bounds[3], maxy),
            ]
        out = table.filter(pa.array(keep))
        self._note_whole_numbers(out)
        out = out.append_column("geom", self._hex_ewkb(batch, geoms, keep, rewritten, promote))
        out = out.append_column("row_hash", pa.array(hex_digests(fingerprints[keep]), pa.string()))
        buffer = io.BytesIO()
        pa_csv.write_csv(out, buffer, _CSV_OPTIONS)
        result.csv = buffer.getvalue()
        result.rows = out.num_rows
        return result

    def _fit_target(self, kinds: set[str], type_ids: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """The features to write as one-part multis for a Multi* column; refuse what won't fit."""
        assert self.target is not None
        family = FAMILIES.get(self.target)
        multi = self.target.startswith("Multi")
        if any(FAMILIES.get(k) != family or (k.startswith("Multi") and not multi) for k in kinds):
            raise DoesNotFit(kinds, self.target)
        if not multi:
            return np.zeros(len(keep), dtype=bool)
        return keep & ~np.isin(type_ids, _MULTI_TYPE_IDS)

    def _note_whole_numbers(self, table: pa.Table) -> None:
        """Real-number columns stay candidates for bigint while every value is whole."""
        for name, whole in self.facts.whole.items():
            column = table.column(name)
            if whole is False or column.null_count == len(column):
                continue
            fits = pc.and_(
                pc.equal(column, pc.trunc(column)), pc.less(pc.abs(column), _EXACT_INTEGER)
            )
            self.facts.whole[name] = bool(pc.all(fits).as_py())

    @staticmethod
    def _hex_ewkb(
        batch: FeatureBatch,
        geoms: np.ndarray,
        keep: np.ndarray,
        rewritten: np.ndarray,
        promote: np.ndarray,
    ) -> pa.Array:
        """Hex EWKB with the storage SRID of the kept features, `promote` ones as multis.

        Unchanged geometries keep the source's WKB byte for byte; only its header is rewritten
        (with Arrow's string kernels), which is many times faster than encoding them again.
        """
        wkb = batch.wkb.filter(pa.array(keep))
        fresh = rewritten[keep]
        if fresh.any():
            encoded = np.asarray(wkb.to_numpy(zero_copy_only=False), dtype=object)
            encoded[fresh] = shapely.to_wkb(geoms[keep & rewritten])
            wkb = pa.array(encoded, pa.binary())
        hex_wkb = pa.array([w.hex() for w in wkb.to_pylist()], pa.string())
        wrap = pa.array(promote[keep])
        header = pc.utf8_slice_codeunits(hex_wkb, 0, 10)
        variant = pc.if_else(wrap, pc.binary_join_element_wise(header, "m", ""), header)
        variants = pc.unique(variant)
        prefixes = pa.array([_ewkb_prefix(v) for v in variants.to_pylist()], pa.string())
        prefix = pc.take(prefixes, pc.index_in(variant, variants))
        body = pc.if_else(wrap, hex_wkb, pc.utf8_slice_codeunits(hex_wkb, 10))
        return pc.binary_join_element_wise(prefix, body, "")

    def align(self, table: pa.Table) -> pa.Table:
        """The schema's columns in order; a page that lacks a column gets nulls for it."""
        columns = []
        for name in self.schema.names:
            if name in table.column_names:
                column = table.column(name)
                if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
                    column = pc.cast(column, pa.string())
                columns.append(column)
            else:
                columns.append(pa.nulls(table.num_rows, pa.string()))
        return pa.table(columns, names=self.schema.names)

    def check_plausible(self) -> None:
        minx, miny, maxx, maxy = self.bounds
        if not np.isfinite(minx):
            return
        lo_x, lo_y, hi_x, hi_y = PLAUSIBLE_31370
        if minx < lo_x or miny < lo_y or maxx > hi_x or maxy > hi_y:
            raise SourceError(
                f"layer '{self.layer_id}': coordinates ({minx:.0f}, {miny:.0f}, {maxx:.0f}, "
                f"{maxy:.0f}) are outside Belgium in EPSG:31370; the source CRS (or "
                "source.srid) is wrong"
            )


def _ewkb_prefix(variant: str) -> str:
    """What replaces a WKB header (hex, 10 digits) to make it EWKB with the storage SRID.

    A variant ending in "m" wraps the whole geometry as the single part of a multi, whose
    own header comes first (byte order, type, SRID, one part).
    """
    header = bytes.fromhex(variant[:10])
    order: Literal["little", "big"] = "little" if header[0] == 1 else "big"
    kind = int.from_bytes(header[1:5], order)
    if variant.endswith("m"):
        kind += 3  # Point 1 -> MultiPoint 4, LineString 2 -> 5, Polygon 3 -> 6
    ewkb = (
        header[:1] + (kind | _EWKB_SRID_FLAG).to_bytes(4, order) + STORAGE_SRID.to_bytes(4, order)
    )
    if variant.endswith("m"):
        ewkb += (1).to_bytes(4, order)
    return ewkb.hex()


def first_kinds(batch: FeatureBatch) -> set[str]:
    """The geometry types in a batch as it came (before repairs), by their PostGIS names."""
    type_ids = shapely.get_type_id(batch.geometries)
    return {TYPE_NAMES[t] for t in np.unique(type_ids).tolist() if t in TYPE_NAMES}


def _repair(geom: shapely.Geometry) -> shapely.Geometry | None:
    """make_valid, keeping only the parts of the original family (a polygon stays areal)."""
    family = FAMILIES.get(geom.geom_type)
    if family is None:
        return None
    fixed = shapely.make_valid(geom)
    parts = [p for p in shapely.get_parts(fixed) if FAMILIES.get(p.geom_type) == family]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)
