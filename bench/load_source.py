"""A GeoPackage source that changes between sync runs, for the load benchmark (bench.load_bench).

Each cycle writes a new version of the file: a few buildings inserted (new INSPIRE_IDs on the
sites of existing ones, moved a little), a few updated (moved 0.5 m, AREA changed) and a few
deleted, and remembers what it did, so that after the run the API can be asked whether it
serves the last change. The new version is written beside the file and renamed over it
(`os.replace`), so a sync that is reading the old one keeps reading a whole file.

The file is changed with sqlite3 rather than rewritten by GDAL, so that a cycle costs
milliseconds, not a rewrite of every building: the Buildings layer's R-tree (GeoPackage's
`gpkg_rtree_index` extension, kept up to date by triggers that call GDAL's SQL functions,
which plain sqlite3 has not) is dropped once at the start. A GeoPackage without it is valid;
the sync reads the whole layer anyway.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import sqlite3
import struct
from dataclasses import dataclass, field
from pathlib import Path

import shapely
from shapely.geometry.base import BaseGeometry

LAYER = "Buildings"
GEOMETRY = "GEOM"
KEY = "INSPIRE_ID"
SRID = 31370
ID_PREFIX = "https://databrussels.be/id/building/load-"  # ids no generated building has


def gpkg_blob(geom: BaseGeometry, srid: int = SRID) -> bytes:
    """A GeoPackage geometry: the 'GP' header (little-endian, xy envelope) then the WKB."""
    minx, miny, maxx, maxy = geom.bounds
    flags = 0b0000_0011  # bit 0: little-endian header; bits 1-3 = 1: envelope minx maxx miny maxy
    header = b"GP" + struct.pack("<BBi4d", 0, flags, srid, minx, maxx, miny, maxy)
    return header + shapely.to_wkb(geom, byte_order=1, include_srid=False)


def parse_blob(blob: bytes) -> BaseGeometry:
    """The geometry of a GeoPackage blob (any envelope size)."""
    if blob[:2] != b"GP":
        raise ValueError("not a GeoPackage geometry")
    envelope = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}[(blob[3] >> 1) & 0b111]
    return shapely.from_wkb(blob[8 + envelope :])


@dataclass(frozen=True)
class Change:
    """What one cycle did to the source: the keys, and the new state of what it wrote."""

    cycle: int
    inserted: dict[str, tuple[BaseGeometry, int]]  # key -> (geometry, AREA)
    updated: dict[str, tuple[BaseGeometry, int]]
    deleted: dict[str, BaseGeometry]  # key -> the geometry it had

    @property
    def features(self) -> int:
        return len(self.inserted) + len(self.updated) + len(self.deleted)


@dataclass
class ChangingSource:
    """`path`, a copy of a generated GeoPackage, changed by `change()` one cycle at a time."""

    path: Path
    per_cycle: int = 10  # features changed a cycle: inserted, updated and deleted in equal thirds
    seed: int = 1
    changes: list[Change] = field(default_factory=list)

    @classmethod
    def copied_from(cls, original: Path, path: Path, per_cycle: int, seed: int) -> ChangingSource:
        shutil.copyfile(original, path)
        with _connect(path) as conn:
            _drop_rtree(conn)
        return cls(path, per_cycle, seed)

    def change(self) -> Change:
        """Write the next version of the file, and return what changed."""
        cycle = len(self.changes) + 1
        rng = random.Random(f"{self.seed}-{cycle}")
        third = max(1, self.per_cycle // 3)
        scratch = self.path.with_name(f".{self.path.name}.next")
        shutil.copyfile(self.path, scratch)
        with _connect(scratch) as conn:
            (count,) = conn.execute(f'SELECT count(*) FROM "{LAYER}"').fetchone()
            fids = [
                r[0]
                for r in conn.execute(
                    f'SELECT fid FROM "{LAYER}" ORDER BY fid LIMIT ? OFFSET ?',
                    (3 * third, rng.randrange(max(1, count - 3 * third))),
                )
            ]
            rng.shuffle(fids)
            updated = {key: _move(conn, fid, rng) for fid, key in _keys(conn, fids[:third])}
            inserted = {
                f"{ID_PREFIX}{cycle}-{i}": _copy(conn, fid, f"{ID_PREFIX}{cycle}-{i}", rng)
                for i, (fid, _) in enumerate(_keys(conn, fids[third : 2 * third]))
            }
            deleted = {
                key: _moved(conn, fid, rng, 0.0) for fid, key in _keys(conn, fids[2 * third :])
            }
            conn.executemany(
                f'DELETE FROM "{LAYER}" WHERE fid = ?', [(f,) for f in fids[2 * third :]]
            )
        os.replace(scratch, self.path)
        change = Change(cycle, inserted, updated, deleted)
        self.changes.append(change)
        return change


class _connect:
    """sqlite3 on a GeoPackage, committed and closed on leaving (sqlite3's own context commits
    but does not close)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self.conn.commit()
        self.conn.close()


def _drop_rtree(conn: sqlite3.Connection) -> None:
    name = f"rtree_{LAYER}_{GEOMETRY}"
    for (trigger,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE ?", (f"{name}_%",)
    ).fetchall():
        conn.execute(f'DROP TRIGGER "{trigger}"')
    conn.execute(f'DROP TABLE IF EXISTS "{name}"')
    conn.execute(
        "DELETE FROM gpkg_extensions WHERE table_name = ? AND extension_name = 'gpkg_rtree_index'",
        (LAYER,),
    )


def _keys(conn: sqlite3.Connection, fids: list[int]) -> list[tuple[int, str]]:
    return [
        (fid, conn.execute(f'SELECT "{KEY}" FROM "{LAYER}" WHERE fid = ?', (fid,)).fetchone()[0])
        for fid in fids
    ]


def _moved(conn: sqlite3.Connection, fid: int, rng: random.Random, metres: float) -> BaseGeometry:
    (blob,) = conn.execute(f'SELECT "{GEOMETRY}" FROM "{LAYER}" WHERE fid = ?', (fid,)).fetchone()
    angle = rng.uniform(0, 2 * math.pi)
    dx, dy = metres * math.cos(angle), metres * math.sin(angle)
    return shapely.transform(parse_blob(blob), lambda xy: (xy + (dx, dy)).round(3))


def _move(conn: sqlite3.Connection, fid: int, rng: random.Random) -> tuple[BaseGeometry, int]:
    geom = _moved(conn, fid, rng, 0.5)
    area = round(geom.area) + rng.randint(1, 9)  # a surveyed area that differs from before
    conn.execute(
        f'UPDATE "{LAYER}" SET "{GEOMETRY}" = ?, "AREA" = ? WHERE fid = ?',
        (gpkg_blob(geom), area, fid),
    )
    return geom, area


def _copy(
    conn: sqlite3.Connection, fid: int, key: str, rng: random.Random
) -> tuple[BaseGeometry, int]:
    """A new building beside an existing one (its shape, 3 m away), under a new key."""
    columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{LAYER}")') if r[1] != "fid"]
    geom = _moved(conn, fid, rng, 3.0)
    area = round(geom.area)
    names = ", ".join(f'"{c}"' for c in columns)
    values = ", ".join("?" if c in (GEOMETRY, KEY, "AREA") else f'"{c}"' for c in columns)
    bound = [
        {GEOMETRY: gpkg_blob(geom), KEY: key, "AREA": area}[c]
        for c in columns
        if c in (GEOMETRY, KEY, "AREA")
    ]
    conn.execute(
        f'INSERT INTO "{LAYER}" ({names}) SELECT {values} FROM "{LAYER}" WHERE fid = ?',
        (*bound, fid),
    )
    return geom, area
