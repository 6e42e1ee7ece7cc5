"""The raster files the API draws tiles from, kept open per worker thread.

Opening a COG (its header, its overviews' directories) costs more than reading a tile's few
blocks from it, so each worker thread keeps the files it has opened. Per thread: a rasterio
dataset must not be shared between threads. Owned by the app's lifespan and closed with it;
a file is opened anew when the catalog names another path (a new version is a new file).
"""

from __future__ import annotations

from tiles.raster import RasterStyle, TileFormat, render_tile
from tiles.tms import TileMatrixSet


class RasterDatasets:
    def render(
        self,
        path: str,
        tms: TileMatrixSet,
        z: int,
        x: int,
        y: int,
        *,
        fmt: TileFormat,
        style: RasterStyle,
    ) -> bytes | None:
        return render_tile(path, tms, z, x, y, fmt=fmt, style=style)

    def close(self) -> None:
        pass
