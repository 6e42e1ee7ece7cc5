"""The disk tier drops exactly the tiles a change's bbox meets (files, no database)."""

from __future__ import annotations

from tiles.disk import DiskTier
from tiles.keys import CachedTile, TileKey
from tiles.mvt import BUFFER, EXTENT
from tiles.tms import BELGIAN_LAMBERT_72 as L72


def _meets(key: TileKey, box: tuple[float, float, float, float]) -> bool:
    minx, miny, maxx, maxy = L72.bounds(key.z, key.x, key.y)
    m = L72.tile_span(key.z) * BUFFER / EXTENT
    return not (maxx + m < box[0] or minx - m > box[2] or maxy + m < box[1] or miny - m > box[3])


def test_drop_removes_the_tiles_meeting_the_bbox_for_that_layer_only(tmp_path):
    disk = DiskTier(tmp_path)
    keys = []
    for collections in (("a",), ("b",), ("a", "b")):
        for z in range(10, 13):
            cols, rows = L72.tiles_covering(z, (147_500, 168_500, 149_500, 170_000))
            keys += [TileKey(collections, L72.id, z, x, y) for x in cols for y in rows]
    for key in keys:
        disk.write(key, CachedTile(b"tile", '"v1"'))
    change = (148_300.0, 169_050.0, 148_420.0, 169_150.0)
    dropped = disk.drop("a", change)
    gone = {k for k in keys if "a" in k.collections and _meets(k, change)}
    assert dropped == len(gone) and 0 < len(gone) < len(keys) / 3
    for key in keys:
        assert (disk.read(key) is None) == (key in gone), key
    assert disk.read(next(k for k in keys if k.collections == ("b",))) == CachedTile(
        b"tile", '"v1"'
    )


def test_versions_and_dropping_everything(tmp_path):
    disk = DiskTier(tmp_path)
    key = TileKey(("a",), L72.id, 12, 505, 447)
    disk.write(key, CachedTile(b"x", '"a.3"'))
    disk.record_versions({"a": 3})
    assert disk.versions() == {"a": 3}
    assert disk.drop("a", None) == 1 and disk.read(key) is None
    disk.clear()
    assert disk.versions() == {}
