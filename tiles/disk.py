"""The tile cache's optional disk tier: tiles kept across restarts, dropped as precisely.

Layout: `<root>/<collections>/<variant>/<tms>/<z>/<x>/<y>.mvt`, the ETag beside it in
`<y>.etag`. `versions.json` records the layer versions the stored tiles were drawn from, so
that after a restart the changes made in between (the change log's bboxes) are dropped too.

Several API processes share the folder (`urbis serve --workers N`). Every file is written to a
temporary file of its own in the same folder, then renamed over the old one, so a reader sees
a whole file, old or new; a write cut short by a full disk leaves the old files as they were
and no temporary file behind. The `.etag` file also holds a digest of its tile's bytes: a tile
read between the renames of another process's tile and ETag (a new tile with the old ETag, or
the reverse) does not match it, and reads as absent rather than as a tile under the wrong ETag.
`versions.json` is read, changed and written under an exclusive lock (`.versions.lock`), so
two processes' records merge instead of one overwriting the other. A tile is written only if
no change newer than the versions it was drawn from is recorded, checked and written under
the shared lock: a process that hears a change records its version (exclusive lock) before it
drops the tiles, so another process still drawing from before the change cannot store its
tile after the drop.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tiles.keys import CachedTile, TileKey, bbox_in, draws
from tiles.mvt import BUFFER, EXTENT
from tiles.tms import TILE_MATRIX_SETS

_NO_VARIANT = "_"
_DIGEST_BYTES = 16


def digest(data: bytes) -> str:
    """What binds an ETag file to its tile's bytes."""
    return hashlib.blake2b(data, digest_size=_DIGEST_BYTES).hexdigest()


def _written_whole(folder: Path, data: bytes) -> str:
    """A temporary file of this writer's in `folder` holding `data`.

    Or none at all: one that cannot all be written (a full disk) is removed.
    """
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return temporary


def _replace(target: Path, data: bytes) -> None:
    """Write the file whole or not at all: a temporary file, then a rename."""
    os.replace(_written_whole(target.parent, data), target)


class DiskTier:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._versions_file = root / "versions.json"
        self._lock_file = root / ".versions.lock"

    def _path(self, key: TileKey) -> Path:
        return (
            self.root
            / ",".join(key.collections)
            / (key.variant or _NO_VARIANT)
            / key.tms
            / str(key.z)
            / str(key.x)
            / f"{key.y}.mvt"
        )

    def holds(self, key: TileKey) -> bool:
        return self._path(key).is_file()

    def read(self, key: TileKey) -> CachedTile | None:
        """The tile and its ETag; None when absent, or when the two do not belong together."""
        path = self._path(key)
        try:
            etag, _, bound = path.with_suffix(".etag").read_text().partition("\n")
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if bound != digest(data):  # torn by another process's write, or an older layout
            return None
        return CachedTile(data, etag)

    def write(self, key: TileKey, tile: CachedTile) -> bool:
        """Store the tile unless a change newer than its versions is recorded; whether stored.

        On failure (a full disk: OSError) the files there stay as they were: the tile and its
        ETag are both written whole under temporary names before either is renamed into place,
        and a temporary file cut short is removed.
        """
        path = self._path(key)
        with self._locked(fcntl.LOCK_SH):
            recorded = self._read_versions()
            if any(version < recorded.get(layer, version) for layer, version in tile.versions):
                return False
            path.parent.mkdir(parents=True, exist_ok=True)
            etag = f"{tile.etag}\n{digest(tile.data)}".encode()
            written: list[tuple[str, Path]] = []
            try:
                for data, target in ((tile.data, path), (etag, path.with_suffix(".etag"))):
                    written.append((_written_whole(path.parent, data), target))
            except BaseException:
                for temporary, _ in written:
                    Path(temporary).unlink(missing_ok=True)
                raise
            # tile first, ETag last; the ETag's digest tells a pair torn between two writers
            for temporary, target in written:
                os.replace(temporary, target)
        return True

    @contextmanager
    def _locked(self, how: int) -> Iterator[None]:
        with self._lock_file.open("a") as lock:
            fcntl.flock(lock, how)
            yield  # the lock goes with the file's closing

    def drop(self, layer_id: str | None, bbox: tuple[float, float, float, float] | None) -> int:
        """Remove the layer's tiles (None: any layer's) that meet `bbox` (EPSG:31370; None: all)."""
        dropped = 0
        for collections in self._dirs(self.root):
            if layer_id is not None and not draws(tuple(collections.name.split(",")), layer_id):
                continue
            if bbox is None:
                dropped += sum(1 for _ in collections.rglob("*.mvt"))
                shutil.rmtree(collections, ignore_errors=True)
                continue
            for tms_dir in (t for v in self._dirs(collections) for t in self._dirs(v)):
                dropped += self._drop_in(tms_dir, bbox)
        return dropped

    @staticmethod
    def _dirs(path: Path) -> list[Path]:
        return [p for p in path.iterdir() if p.is_dir()] if path.is_dir() else []

    def _drop_in(self, tms_dir: Path, bbox: tuple[float, float, float, float]) -> int:
        tms = TILE_MATRIX_SETS.get(tms_dir.name)
        if tms is None:
            return 0
        box = bbox_in(tms, bbox)
        dropped = 0
        for z_dir in self._dirs(tms_dir):
            z = int(z_dir.name)
            margin = tms.tile_span(z) * BUFFER / EXTENT  # a tile shows its buffer too
            cols, rows = tms.tiles_covering(
                z, (box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin)
            )
            for x_dir in self._dirs(z_dir):
                if int(x_dir.name) not in cols:
                    continue
                for tile in x_dir.glob("*.mvt"):
                    if int(tile.stem) in rows:
                        tile.unlink(missing_ok=True)
                        tile.with_suffix(".etag").unlink(missing_ok=True)
                        dropped += 1
        return dropped

    def clear(self) -> None:
        for entry in self._dirs(self.root):
            shutil.rmtree(entry, ignore_errors=True)
        with self._locked(fcntl.LOCK_EX):
            self._versions_file.unlink(missing_ok=True)

    def _read_versions(self) -> dict[str, int]:
        try:
            return {k: int(v) for k, v in json.loads(self._versions_file.read_text()).items()}
        except (FileNotFoundError, ValueError):
            return {}

    def _write_versions(self, versions: dict[str, int]) -> None:
        _replace(self._versions_file, json.dumps(versions, sort_keys=True).encode())

    def versions(self) -> dict[str, int]:
        """The versions recorded, as every process sharing the folder left them."""
        return self._read_versions()

    def record_versions(self, versions: dict[str, int]) -> None:
        """Record exactly these versions (the start's reconciliation with the change log)."""
        with self._locked(fcntl.LOCK_EX):
            if versions != self._read_versions():
                self._write_versions(versions)

    def note_versions(self, versions: dict[str, int], changed: bool) -> None:
        """Merge versions into the record, under the lock.

        `changed`: a change's new version, which replaces an older one; otherwise the versions
        a stored tile was drawn from, recorded only for layers not recorded yet.
        """
        with self._locked(fcntl.LOCK_EX):
            recorded = self._read_versions()
            merged = dict(recorded)
            for layer, version in versions.items():
                if layer not in merged or (changed and version > merged[layer]):
                    merged[layer] = version
            if merged != recorded:
                self._write_versions(merged)
