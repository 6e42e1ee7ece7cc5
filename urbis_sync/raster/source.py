"""Locating a raster layer's files: a path, several paths or globs, or a URL; zipped or not.

The checksum is taken over the files as read (the download, the zip, the local files), so a
re-sync of an unchanged source is recognised before any pixel is read.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from urbis_core.config import RasterLayerConfig
from urbis_core.errors import SourceError
from urbis_sync.sources.file_set import expand_paths, no_match

RASTER_SUFFIXES = (".tif", ".tiff")
CHUNK = 1 << 20


@dataclass(frozen=True)
class RasterFiles:
    """The GeoTIFFs to read (unzipped, downloaded), each with the name errors give it."""

    files: list[Path]
    labels: list[str]
    checksum: str  # sha256 over the source files as read and the declared srid/nodata


def locate(layer: RasterLayerConfig, layer_id: str, workdir: Path) -> RasterFiles:
    """The layer's GeoTIFFs, downloaded or unzipped into `workdir` when they need to be."""
    source = layer.source
    if source.url is not None:
        originals = [_download(source.url, workdir, layer_id)]
    elif source.path is not None:
        if not source.path.is_file():
            raise SourceError(f"layer '{layer_id}': source.path {source.path} does not exist")
        originals = [source.path]
    else:
        assert source.paths is not None
        originals, unmatched = expand_paths(source.paths)
        if unmatched:
            raise SourceError(f"layer '{layer_id}': {no_match(unmatched[0])}")
    files: list[Path] = []
    labels: list[str] = []
    for number, original in enumerate(originals):
        if zipfile.is_zipfile(original):
            inside = _unzip(original, workdir / f"zip{number}", layer_id)
            files += inside
            labels += [f"{original.name}!{p.name}" for p in inside]
        else:
            files.append(original)
            labels.append(str(original) if source.url is None else source.url)
    return RasterFiles(files, labels, _checksum(originals, layer))


def _checksum(originals: list[Path], layer: RasterLayerConfig) -> str:
    """sha256 of the files' bytes, in order; then of the declarations, when there are any.

    The declarations count because they change the COG: a new `nodata` must not be skipped
    as "unchanged source". A single file with nothing declared hashes as `sha256sum` says.
    """
    digest = hashlib.sha256()
    for path in originals:
        with path.open("rb") as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
    declared = {k: v for k, v in (("srid", layer.srid), ("nodata", layer.nodata)) if v is not None}
    if declared:
        digest.update(json.dumps(declared, sort_keys=True).encode())
    return digest.hexdigest()


def _download(url: str, workdir: Path, layer_id: str) -> Path:
    name = Path(urllib.parse.urlparse(url).path).name or "download.tif"
    target = workdir / name
    try:
        with urllib.request.urlopen(url, timeout=120) as response, target.open("wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        raise SourceError(f"layer '{layer_id}': cannot download {url}: {exc}") from exc
    return target


def _unzip(archive: Path, target: Path, layer_id: str) -> list[Path]:
    """Every GeoTIFF of the zip (several: tiles of one mosaic), extracted in name order."""
    with zipfile.ZipFile(archive) as zf:
        members = sorted(
            n
            for n in zf.namelist()
            if not n.endswith("/") and Path(n).suffix.lower() in RASTER_SUFFIXES
        )
        if not members:
            raise SourceError(f"layer '{layer_id}': {archive.name} holds no GeoTIFF (.tif)")
        out: list[Path] = []
        for number, member in enumerate(members):
            # Numbered: two tiles of the same name in different folders stay two files.
            path = target / f"{number:04d}-{Path(member).name}"
            path.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, path.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            out.append(path)
        return out
