"""Content fingerprints of source features, computed before any normalization.

A feature whose fingerprint equals the one stored with its key at the last run is unchanged
and skips the whole pipeline (normalize, COPY, compare). A different fingerprint makes it a
candidate, and the database decides whether it really changed (typed values equal and the
geometry within 1 mm is no change): the fingerprint is a fast filter, never the judge.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_NULL = "\x00"
_SEPARATOR = b"\x1f"


def key_text(value: Any) -> str | None:
    """A key as PostgreSQL's `key::text` writes it (1116857.0 -> '1116857')."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
    text = str(value).strip()
    return text or None


def row_fingerprints(attributes: pa.Table, wkb: pa.Array | pa.ChunkedArray) -> list[bytes]:
    """An MD5 digest per row over its attribute texts and its geometry bytes."""
    parts = []
    for column in attributes.columns:
        as_text = pc.cast(column, pa.string()) if not pa.types.is_string(column.type) else column
        parts.append(pc.cast(pc.fill_null(as_text, _NULL), pa.binary()))
    geometry = pc.fill_null(wkb, b"")
    if not parts:
        joined = geometry
    else:
        joined = pc.binary_join_element_wise(*parts, geometry, _SEPARATOR)
    md5 = hashlib.md5
    return [md5(value).digest() for value in joined.to_pylist()]
