"""The documents of a coverage's raster tiles: TileJSON of a raster, its tilesets."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RasterTileJson(BaseModel):
    """TileJSON 3.0.0 of a coverage's raster tiles (no vector layers: pictures or values)."""

    tilejson: str
    name: str | None = None
    description: str | None = None
    version: str | None = Field(None, description="The coverage's version the tiles show now")
    scheme: str | None = None
    tiles: list[str] = Field(description="URL templates ({z}/{x}/{y}), the style query kept")
    minzoom: int
    maxzoom: int = Field(description="The first zoom whose pixels are no larger than the data's")
    bounds: list[float] = Field(description="CRS84 (longitude, latitude) extent")
    center: list[float] | None = None
    attribution: str | None = None
    tileMatrixSet: str | None = Field(
        None, description="The tile matrix set the zooms, columns and rows are of"
    )
    tileSize: int | None = None
    format: str | None = Field(None, description="Media type of the tiles")
