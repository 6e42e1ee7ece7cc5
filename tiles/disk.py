"""The tile cache's optional disk tier: tiles kept across restarts, dropped as precisely.

Layout: `<root>/<collections>/<variant>/<tms>/<z>/<x>/<y>.mvt`, the ETag beside it in
`<y>.etag`. `versions.json` records the layer versions the stored tiles were drawn from, so
that after a restart the changes made in between (the change log's bboxes) are dropped too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from tiles.keys import CachedTile, TileKey, bbox_in, draws
from tiles.mvt import BUFFER, EXTENT
from tiles.tms import TILE_MATRIX_SETS

_NO_VARIANT = "_"


class DiskTier:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._versions_file = root / "versions.json"
        self._versions = self._read_versions()  # read once; every tile stored consults it

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
        path = self._path(key)
        try:
            return CachedTile(path.read_bytes(), path.with_suffix(".etag").read_text())
        except (FileNotFoundError, NotADirectoryError):
            return None

    def write(self, key: TileKey, tile: CachedTile) -> None:
        """Store the tile and its ETag; on failure (a full disk) the files there stay as they were.

        Both are written whole under temporary names before either is renamed into place: a
        write cut short by a full disk leaves no temporary file behind, and never a stored
        tile paired with another tile's ETag.
        """
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        written: list[tuple[str, Path]] = []
        try:
            for target, data in (
                (path.with_suffix(".etag"), tile.etag.encode()),
                (path, tile.data),
            ):
                written.append((_written_whole(path.parent, data), target))
        except BaseException:
            for temporary, _ in written:
                Path(temporary).unlink(missing_ok=True)
            raise
        # etag first, tile last: a tile file is never without its ETag
        for temporary, target in written:
            os.replace(temporary, target)

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
        self._versions_file.unlink(missing_ok=True)
        self._versions = {}

    def _read_versions(self) -> dict[str, int]:
        try:
            return {k: int(v) for k, v in json.loads(self._versions_file.read_text()).items()}
        except (FileNotFoundError, ValueError):
            return {}

    def versions(self) -> dict[str, int]:
        return dict(self._versions)

    def record_versions(self, versions: dict[str, int]) -> None:
        # By rename: a write cut short (a full disk) must not leave the file empty, which
        # the next start would read as "no tiles to reconcile" and keep stale tiles.
        if versions != self._versions:
            temporary = _written_whole(self.root, json.dumps(versions, sort_keys=True).encode())
            os.replace(temporary, self._versions_file)
            self._versions = dict(versions)


def _written_whole(folder: Path, data: bytes) -> str:
    """A new temporary file in `folder` holding `data`; removed if it cannot all be written."""
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return temporary
