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


# -- several API processes share the folder (each one a DiskTier of its own on it) --------------


def test_a_tile_and_an_etag_from_two_writes_read_as_absent_not_as_a_wrong_pair(tmp_path):
    one, other = DiskTier(tmp_path), DiskTier(tmp_path)
    key = TileKey(("a",), L72.id, 12, 505, 447)
    one.write(key, CachedTile(b"old tile", '"a.1"', (("a", 1),)))
    old_etag = (tmp_path / "a" / "_" / L72.id / "12" / "505" / "447.etag").read_bytes()
    other.write(key, CachedTile(b"new tile", '"a.2"', (("a", 2),)))
    assert one.read(key) == CachedTile(b"new tile", '"a.2"')
    # what a reader sees between the renames of the tile and of its ETag
    (tmp_path / "a" / "_" / L72.id / "12" / "505" / "447.etag").write_bytes(old_etag)
    assert one.read(key) is None and other.read(key) is None
    # a tile left by the layout before the digest: redrawn rather than trusted
    (tmp_path / "a" / "_" / L72.id / "12" / "505" / "447.etag").write_text('"a.2"')
    assert one.read(key) is None
    assert not list(tmp_path.rglob(".tmp-*"))  # every temporary file was renamed


def test_a_tile_drawn_before_a_change_another_process_recorded_is_not_stored(tmp_path):
    drawing, hearing = DiskTier(tmp_path), DiskTier(tmp_path)
    key = TileKey(("a", "b"), L72.id, 12, 505, 447)
    assert drawing.write(key, CachedTile(b"v1", '"a.1-b.4"', (("a", 1), ("b", 4))))
    drawing.note_versions({"a": 1, "b": 4}, changed=False)
    hearing.note_versions({"a": 2}, changed=True)  # before its drop, as TileCache.invalidate
    hearing.drop("a", None)
    late = CachedTile(b"v1 again", '"a.1-b.4"', (("a", 1), ("b", 4)))
    assert not drawing.write(key, late) and drawing.read(key) is None
    assert drawing.write(key, CachedTile(b"v2", '"a.2-b.4"', (("a", 2), ("b", 4))))
    assert hearing.read(key) == CachedTile(b"v2", '"a.2-b.4"')


def test_two_processes_versions_merge_and_an_older_one_never_goes_back(tmp_path):
    one, other = DiskTier(tmp_path), DiskTier(tmp_path)
    one.note_versions({"a": 3}, changed=False)
    other.note_versions({"b": 7}, changed=False)
    assert one.versions() == other.versions() == {"a": 3, "b": 7}
    one.note_versions({"a": 5}, changed=True)
    other.note_versions({"a": 4}, changed=True)  # heard late: an older change
    other.note_versions({"a": 9}, changed=False)  # a tile's versions add layers, never raise
    assert other.versions() == {"a": 5, "b": 7}
