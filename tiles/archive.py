"""Tile archives: writing PMTiles v3 and MBTiles 1.3 files of gzipped MVT, and reading them back.

Both hold the tiles `urbis tiles seed` rendered, gzip-compressed (what MVT consumers expect of
both formats). PMTiles is written with the `pmtiles` package's own writer, so the directory
layout, run lengths and deduplication are the reference implementation's; it only knows the
Web Mercator grid. MBTiles is the plain sqlite schema (`metadata` + `tiles`, rows counted from
the bottom as the spec says); a BelgianLambert72 MBTiles says so in its metadata, since the
format has no other way to name its grid.

`open_archive(path).get(z, x, y)` answers the MVT bytes (decompressed) exactly as the API
serves that tile, or None where no tile was stored (an empty tile).
"""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from pmtiles.reader import MmapSource
from pmtiles.reader import Reader as PMTilesReader
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer as PMTilesWriter

from tiles.tms import TILE_MATRIX_SETS, WEB_MERCATOR_QUAD, TileMatrixSet
from urbis_core.attribution import ATTRIBUTION
from urbis_core.errors import InvalidParameter, UrbisError

FORMATS = {".pmtiles": "pmtiles", ".mbtiles": "mbtiles"}
# A tile as the seeder hands it over: zoom, column, row from the top, gzipped MVT.
StoredTile = tuple[int, int, int, bytes]


@dataclass(frozen=True)
class TilesetInfo:
    """What an archive says about its tiles besides the tiles themselves."""

    name: str
    tms: TileMatrixSet
    minzoom: int
    maxzoom: int
    bounds: tuple[float, float, float, float]  # CRS84 lon/lat, whatever the grid
    center: tuple[float, float, int]  # lon, lat, zoom
    vector_layers: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""
    attribution: str = ATTRIBUTION


def archive_format(path: Path) -> str:
    """`pmtiles` or `mbtiles`, from the file name's extension."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidParameter("--out", f"{path.name} must end in .pmtiles or .mbtiles")
    return fmt


def check_format_fits(fmt: str, tms: TileMatrixSet) -> None:
    """PMTiles addresses tiles on the Web Mercator quad tree only (its tile ids say so)."""
    if fmt == "pmtiles" and tms.id != WEB_MERCATOR_QUAD.id:
        raise InvalidParameter(
            "--out",
            f"PMTiles holds {WEB_MERCATOR_QUAD.id} tiles only; "
            f"write {tms.id} tiles to an .mbtiles file",
        )


def compress_tile(mvt: bytes) -> bytes:
    """Gzip with no timestamp: equal tiles give equal bytes, which PMTiles stores once."""
    return gzip.compress(mvt, compresslevel=6, mtime=0)


def pmtiles_tile_id(z: int, x: int, y: int) -> int:
    """The tile's position on PMTiles' Hilbert curve (the order its writer wants)."""
    return int(zxy_to_tileid(z, x, y))


# -- writing ------------------------------------------------------------------------------------


@contextmanager
def _replaced_atomically(path: Path) -> Iterator[Path]:
    """A temporary path next to `path` that becomes `path` only once fully written."""
    partial = path.with_name(path.name + ".tmp")
    partial.unlink(missing_ok=True)
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _e7(degrees: float) -> int:
    return round(degrees * 10_000_000)


def _pmtiles_header(info: TilesetInfo) -> dict[str, Any]:
    west, south, east, north = info.bounds
    return {
        "tile_type": TileType.MVT,
        "tile_compression": Compression.GZIP,
        "min_zoom": info.minzoom,
        "max_zoom": info.maxzoom,
        "min_lon_e7": _e7(west),
        "min_lat_e7": _e7(south),
        "max_lon_e7": _e7(east),
        "max_lat_e7": _e7(north),
        "center_zoom": info.center[2],
        "center_lon_e7": _e7(info.center[0]),
        "center_lat_e7": _e7(info.center[1]),
    }


def _pmtiles_metadata(info: TilesetInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "description": info.description,
        "attribution": info.attribution,
        "type": "overlay",
        "vector_layers": info.vector_layers,
    }


def write_pmtiles(path: Path, tiles: Iterable[tuple[int, bytes]], info: TilesetInfo) -> int:
    """Write (tile id, gzipped MVT) pairs, in ascending tile id order; the tiles written."""
    check_format_fits("pmtiles", info.tms)
    count = 0
    with _replaced_atomically(path) as partial, partial.open("wb") as out:
        writer = PMTilesWriter(out)
        for tile_id, data in tiles:
            writer.write_tile(tile_id, data)
            count += 1
        if count == 0:
            raise UrbisError(f"{path.name}: no tile to write (a PMTiles file needs one)")
        writer.finalize(_pmtiles_header(info), _pmtiles_metadata(info))
    return count


_MBTILES_SCHEMA = """
CREATE TABLE metadata (name TEXT, value TEXT);
CREATE UNIQUE INDEX name ON metadata (name);
CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);
"""


def _mbtiles_metadata(info: TilesetInfo) -> dict[str, str]:
    rows = {
        "name": info.name,
        "format": "pbf",
        "type": "overlay",
        "version": "1",
        "description": info.description,
        "attribution": info.attribution,
        "minzoom": str(info.minzoom),
        "maxzoom": str(info.maxzoom),
        "bounds": ",".join(f"{v:.7f}" for v in info.bounds),
        "center": f"{info.center[0]:.7f},{info.center[1]:.7f},{info.center[2]}",
        "json": json.dumps({"vector_layers": info.vector_layers}),
    }
    if info.tms.id != WEB_MERCATOR_QUAD.id:
        # MBTiles assumes Web Mercator; readers that know better find the grid here.
        rows.update(tile_matrix_set=info.tms.id, crs=f"EPSG:{info.tms.srid}")
    return rows


def _tms_row(tms: TileMatrixSet, z: int, y: int) -> int:
    """MBTiles counts rows from the bottom (TMS), tile URLs from the top."""
    return tms.matrix_size(z)[1] - 1 - y


def write_mbtiles(path: Path, tiles: Iterable[StoredTile], info: TilesetInfo) -> int:
    """Write (z, x, y from the top, gzipped MVT) tiles; the tiles written."""
    count = 0

    def rows() -> Iterator[tuple[int, int, int, bytes]]:
        nonlocal count
        for z, x, y, data in tiles:
            count += 1
            yield z, x, _tms_row(info.tms, z, y), data

    with _replaced_atomically(path) as partial:
        conn = sqlite3.connect(partial)
        try:
            conn.executescript(_MBTILES_SCHEMA)
            conn.executemany("INSERT INTO metadata VALUES (?, ?)", _mbtiles_metadata(info).items())
            conn.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)", rows())
            conn.commit()
        finally:
            conn.close()
    return count


# -- reading ------------------------------------------------------------------------------------


class _Closing:
    """`with open_archive(path) as archive:` closes the file at the end."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class PMTilesArchive(_Closing):
    """A PMTiles v3 file, read with the `pmtiles` package (memory-mapped)."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        self._reader = PMTilesReader(MmapSource(self._file))
        self.header: dict[str, Any] = dict(self._reader.header())
        self.metadata = self._uniform_metadata()

    def _uniform_metadata(self) -> dict[str, Any]:
        h = self.header
        meta = dict(self._reader.metadata())
        meta.update(
            format="pbf",
            minzoom=h["min_zoom"],
            maxzoom=h["max_zoom"],
            bounds=[
                h["min_lon_e7"] / 1e7,
                h["min_lat_e7"] / 1e7,
                h["max_lon_e7"] / 1e7,
                h["max_lat_e7"] / 1e7,
            ],
            center=[h["center_lon_e7"] / 1e7, h["center_lat_e7"] / 1e7, h["center_zoom"]],
            tile_matrix_set=WEB_MERCATOR_QUAD.id,
        )
        return meta

    def get(self, z: int, x: int, y: int) -> bytes | None:
        width, height = WEB_MERCATOR_QUAD.matrix_size(z)
        if not (0 <= x < width and 0 <= y < height):
            return None
        data = self._reader.get(z, x, y)
        if data is None:
            return None
        if self.header["tile_compression"] == Compression.GZIP:
            return gzip.decompress(data)
        return bytes(data)

    def close(self) -> None:
        self._file.close()


class MBTilesArchive(_Closing):
    """An MBTiles file (read-only)."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        self.metadata = self._uniform_metadata()
        self.tms = TILE_MATRIX_SETS[self.metadata["tile_matrix_set"]]

    def _uniform_metadata(self) -> dict[str, Any]:
        raw = dict(self._conn.execute("SELECT name, value FROM metadata").fetchall())
        meta: dict[str, Any] = {k: v for k, v in raw.items() if k != "json"}
        meta.update(json.loads(raw.get("json") or "{}"))
        for name in ("minzoom", "maxzoom"):
            if name in raw:
                meta[name] = int(raw[name])
        if "bounds" in raw:
            meta["bounds"] = [float(v) for v in raw["bounds"].split(",")]
        if "center" in raw:
            lon, lat, zoom = raw["center"].split(",")
            meta["center"] = [float(lon), float(lat), int(zoom)]
        meta.setdefault("tile_matrix_set", WEB_MERCATOR_QUAD.id)
        return meta

    def get(self, z: int, x: int, y: int) -> bytes | None:
        row = self._conn.execute(
            "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
            (z, x, _tms_row(self.tms, z, y)),
        ).fetchone()
        if row is None:
            return None
        data = bytes(row[0])
        return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data

    def close(self) -> None:
        self._conn.close()


def open_archive(path: Path | str) -> PMTilesArchive | MBTilesArchive:
    """A PMTiles or MBTiles file (by its extension), for `get(z, x, y)` and `metadata`."""
    path = Path(path)
    if archive_format(path) == "pmtiles":
        return PMTilesArchive(path)
    return MBTilesArchive(path)
