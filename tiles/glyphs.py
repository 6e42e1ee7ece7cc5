"""Font glyphs for map labels, as MapLibre asks for them: `{fontstack}/{range}.pbf`.

MapLibre draws text from signed distance fields (SDF) of 256-codepoint ranges, in the
protobuf layout node-fontnik defined: a glyph is rasterized at 24 px with a 3-pixel buffer,
and each pixel holds its distance to the outline, 0.75 of 255 on the edge, falling to 0 six
pixels outside (radius 8, cutoff 0.25). The font is a system one (Debian's DejaVu Sans), so
labels work offline; ranges are made on first use and kept.
"""

from __future__ import annotations

import functools
from pathlib import Path

import freetype
import numpy as np

from urbis_core.errors import InvalidParameter, NotFound

FONT_FILES = {
    "DejaVu Sans Book": Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    "DejaVu Sans Bold": Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
}
DEFAULT_FONT = "DejaVu Sans Book"
SIZE_PX, BUFFER_PX, RADIUS_PX, CUTOFF = 24, 3, 8.0, 0.25
# fontnik's tops are measured from the line's top rather than the baseline: MapLibre's
# shaping expects the ascender taken off.
ASCENDER_PX = 24
MAX_CODEPOINT = 65535


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire: int, payload: bytes | int) -> bytes:
    key = _varint(number << 3 | wire)
    if wire == 0:
        assert isinstance(payload, int)
        return key + _varint(payload)
    assert isinstance(payload, bytes)
    return key + _varint(len(payload)) + payload


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 63)


def _distance_field(coverage: np.ndarray) -> np.ndarray:
    """The SDF bitmap (buffer added) of a glyph's coverage (0-1 per pixel)."""
    inside = np.pad(coverage >= 0.5, BUFFER_PX)
    height, width = inside.shape
    # the outline: inside pixels with an outside neighbour, and the reverse
    padded = np.pad(inside, 1)
    neighbour_differs = np.zeros_like(inside)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        neighbour_differs |= padded[dy : dy + height, dx : dx + width] != inside
    ys, xs = np.nonzero(neighbour_differs)
    grid_y, grid_x = np.mgrid[0:height, 0:width]
    if len(ys) == 0:
        return np.zeros((height, width), dtype=np.uint8)
    # brute force is fine at 24 px: a few hundred outline pixels times a few hundred pixels
    distance = np.sqrt((grid_y[..., None] - ys) ** 2 + (grid_x[..., None] - xs) ** 2).min(-1)
    # the outline lies between the two pixels across it: half a pixel from each
    signed = np.where(inside, -(distance + 0.5), distance - 0.5)
    signed = np.where(neighbour_differs, np.where(inside, -0.5, 0.5), signed)
    value = 255 * (1 - (signed / RADIUS_PX + CUTOFF))
    return np.clip(np.round(value), 0, 255).astype(np.uint8)


def _glyph(face: freetype.Face, codepoint: int) -> bytes | None:
    if face.get_char_index(codepoint) == 0:
        return None
    face.load_char(chr(codepoint), freetype.FT_LOAD_RENDER)
    slot = face.glyph
    bitmap = slot.bitmap
    width, height = bitmap.width, bitmap.rows
    message = _field(1, 0, codepoint)
    if width and height:
        rows = np.array(bitmap.buffer, dtype=np.uint8).reshape(height, bitmap.pitch)[:, :width]
        message += _field(2, 2, _distance_field(rows / 255.0).tobytes())
    message += (
        _field(3, 0, width)
        + _field(4, 0, height)
        + _field(5, 0, _zigzag(slot.bitmap_left))
        + _field(6, 0, _zigzag(slot.bitmap_top - ASCENDER_PX))
        + _field(7, 0, slot.advance.x >> 6)
    )
    return message


@functools.lru_cache(maxsize=64)
def glyph_range(fontstack: str, start: int) -> bytes:
    """The protobuf of codepoints start..start+255 in the first font of `fontstack` we have."""
    if start % 256 or not 0 <= start <= MAX_CODEPOINT:
        raise InvalidParameter("range", f"{start} is not the start of a 256-codepoint range")
    font = next((f.strip() for f in fontstack.split(",") if f.strip() in FONT_FILES), None)
    if font is None:
        raise NotFound(f"no font among '{fontstack}'; available: {', '.join(FONT_FILES)}")
    face = freetype.Face(str(FONT_FILES[font]))
    face.set_pixel_sizes(0, SIZE_PX)
    glyphs = b"".join(
        _field(3, 2, g) for cp in range(start, start + 256) if (g := _glyph(face, cp)) is not None
    )
    stack = _field(1, 2, fontstack.encode()) + _field(2, 2, f"{start}-{start + 255}".encode())
    return _field(1, 2, stack + glyphs)
