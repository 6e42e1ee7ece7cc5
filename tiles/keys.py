"""What names a cached tile and what is kept of it, apart from the cache that keeps them.

The memory cache (tiles.cache) and its disk tier (tiles.disk) both use these, so neither has to
import the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pyproj import Transformer

from tiles.tms import TileMatrixSet
from urbis_core.catalog import STORAGE_SRID
from urbis_core.changes import is_coverage


@dataclass(frozen=True)
class TileKey:
    collections: tuple[str, ...]
    tms: str
    z: int
    x: int
    y: int
    variant: str = ""  # the request's filter and properties, when it has some


EVERY_LAYER = ("*",)  # the collections of a dataset tile drawn with every layer (the default)


def draws(collections: tuple[str, ...], layer_id: str) -> bool:
    """Whether a tile of these collections shows the layer (so its changes concern it).

    The vector tiles of every layer draw no coverage: a raster's new version leaves them be.
    """
    return layer_id in collections or (collections == EVERY_LAYER and not is_coverage(layer_id))


@dataclass(frozen=True)
class CachedTile:
    data: bytes
    etag: str
    versions: tuple[tuple[str, int], ...] = ()  # the layer versions it was drawn from


@lru_cache(maxsize=8)
def _from_storage(srid: int) -> Transformer:
    return Transformer.from_crs(STORAGE_SRID, srid, always_xy=True)


def bbox_in(
    tms: TileMatrixSet, bbox: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """A Lambert 72 box in the set's CRS (its edges densified, so the box still covers it)."""
    if tms.srid == STORAGE_SRID:
        return bbox
    minx, miny, maxx, maxy = _from_storage(tms.srid).transform_bounds(*bbox, densify_pts=21)
    return minx, miny, maxx, maxy
