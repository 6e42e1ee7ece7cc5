"""Raw text of dBASE (.dbf) columns, for values GDAL cannot parse as numbers.

Legacy URBIS shapefiles store some numeric fields as decimal-comma text (`309,92.000000000000000`);
GDAL reads those as 309 and warns. To keep the real value we read the field's bytes ourselves.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

_DECIMAL_COMMA = re.compile(r"^\s*([+-]?\d+),(\d+)(?:\.0*)?\s*$")


def read_text_columns(path: Path, names: set[str], encoding: str) -> dict[str, list[str | None]]:
    """The raw values of `names` in record order, skipping deleted records as GDAL does."""
    data = path.read_bytes()
    count, header_len, record_len = struct.unpack("<IHH", data[4:12])
    fields: list[tuple[str, int, int]] = []  # name, offset in record, width
    offset = 1  # the deletion flag comes first
    pos = 32
    while pos < header_len - 1 and data[pos] != 0x0D:
        raw_name = data[pos:pos + 11].split(b"\x00", 1)[0]
        width = data[pos + 16]
        fields.append((raw_name.decode("ascii", "replace"), offset, width))
        offset += width
        pos += 32
    wanted = [f for f in fields if f[0] in names]
    out: dict[str, list[str | None]] = {f[0]: [] for f in wanted}
    for i in range(count):
        start = header_len + i * record_len
        record = data[start:start + record_len]
        if not record or record[0:1] == b"*":
            continue
        for name, field_offset, width in wanted:
            text = record[field_offset:field_offset + width].decode(encoding, "replace").strip()
            out[name].append(text or None)
    return out


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
