"""Raw text of dBASE (.dbf) numeric columns, for values GDAL cannot parse as numbers.

Legacy URBIS shapefiles store some numeric fields as decimal-comma text (`309,92.000000000000000`);
GDAL reads those as 309 and warns. To keep the real value the sync reads such fields' bytes
itself, before streaming the shapefile through GDAL.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

_DECIMAL_COMMA = re.compile(r"^\s*([+-]?\d+),(\d+)(?:\.0*)?\s*$")


def _columns(data: bytes) -> tuple[int, int, int, list[tuple[str, str, int, int]]]:
    count, header_len, record_len = struct.unpack("<IHH", data[4:12])
    fields: list[tuple[str, str, int, int]] = []  # name, type, offset in record, width
    offset = 1  # the deletion flag comes first
    pos = 32
    while pos < header_len - 1 and data[pos] != 0x0D:
        name = data[pos : pos + 11].split(b"\x00", 1)[0].decode("ascii", "replace")
        kind = chr(data[pos + 11])
        width = data[pos + 16]
        fields.append((name, kind, offset, width))
        offset += width
        pos += 32
    return count, header_len, record_len, fields


def read_text_columns(path: Path, names: set[str], encoding: str) -> dict[str, list[str | None]]:
    """The raw values of `names` in record order, skipping deleted records as GDAL does."""
    return _text_columns(path.read_bytes(), names, encoding)


def _text_columns(data: bytes, names: set[str], encoding: str) -> dict[str, list[str | None]]:
    count, header_len, record_len, fields = _columns(data)
    available = (len(data) - header_len) // record_len
    records = np.frombuffer(
        data, dtype=np.uint8, count=min(count, available) * record_len, offset=header_len
    ).reshape(-1, record_len)
    records = records[records[:, 0] != ord("*")]
    out: dict[str, list[str | None]] = {}
    for name, _kind, offset, width in fields:
        if name not in names:
            continue
        cells = np.ascontiguousarray(records[:, offset : offset + width]).view(f"S{width}")[:, 0]
        out[name] = [c.decode(encoding, "replace").strip() or None for c in cells]
    return out


def decimal_comma_columns(path: Path, encoding: str) -> dict[str, list[str | None]]:
    """Numeric (N/F) columns in which some value is written with a decimal comma."""
    data = path.read_bytes()
    _count, _header, _record_len, fields = _columns(data)
    numeric = {name for name, kind, _o, _w in fields if kind in "NF"}
    if not numeric or b"," not in data:
        return {}
    raw = _text_columns(data, numeric, encoding)
    return {
        name: values
        for name, values in raw.items()
        if any(v is not None and "," in v for v in values)
    }


def parse_decimal_comma(values: list[str | None]) -> list[float | None] | None:
    """Numbers written with a decimal comma, or None when any value is not such a number."""
    parsed: list[float | None] = []
    for value in values:
        if value is None:
            parsed.append(None)
            continue
        match = _DECIMAL_COMMA.match(value)
        if match:
            parsed.append(float(f"{match.group(1)}.{match.group(2)}"))
            continue
        try:
            parsed.append(float(value))
        except ValueError:
            return None
    return parsed
