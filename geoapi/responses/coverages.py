"""Answers of the raster layers (coverages): their metadata, the values at a point, statistics."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from geoapi.responses.common import Link


class CoverageBand(BaseModel):
    """One band: its type, its nodata value, and statistics over its valid cells (the sync's)."""

    name: str
    dtype: str = Field(description="numpy / GDAL data type, e.g. float32, uint8")
    nodata: float | Literal["nan"] | None = Field(
        description=(
            'The value that marks a cell without data: a number, "nan" when NaN does (JSON '
            "has no NaN), null when the band has none"
        )
    )
    min: float | None = Field(description="Over the valid cells; null when there are none")
    max: float | None
    mean: float | None
    std: float | None = Field(description="Population standard deviation")


class NativeExtent(BaseModel):
    crs: str = Field(description="The storage CRS: EPSG:31370 (Belgian Lambert 72)")
    bbox: list[float] = Field(description="minx, miny, maxx, maxy in metres")


class CoverageExtent(BaseModel):
    crs84: list[float] = Field(description="minlon, minlat, maxlon, maxlat")
    native: NativeExtent


class CoverageStyle(BaseModel):
    """How the tiles are drawn when a request does not say (`colormap`, `rescale`, `hillshade`)."""

    colormap: str | None = Field(description="The colour ramp; null for imagery (drawn as is)")
    rescale: list[float] | None = Field(
        description="The values mapped to the ramp's two ends; null for imagery"
    )
    hillshade: bool
    ramp: list[list[float | str]] | None = Field(
        description='The ramp as [position 0-1, "#rrggbb"] stops (a legend); null for imagery'
    )
    units: str | None = Field(
        description="The unit of the values (the layer's `style.units`, e.g. m); null when unsaid"
    )


class Coverage(BaseModel):
    """A raster layer: a Cloud-Optimized GeoTIFF in EPSG:31370 the sync keeps up to date."""

    id: str
    title: str = Field(description="The title in English")
    titles: dict[str, str] = Field(description="The title per language (en, fr, nl)")
    description: str | None
    bands: list[CoverageBand]
    width: int = Field(description="Columns of the grid")
    height: int = Field(description="Rows of the grid")
    resolution: list[float] = Field(description="Cell size x, y in metres")
    extent: CoverageExtent
    version: int = Field(description="Bumped by each sync that changed the raster")
    checksum: str = Field(description="Of the source the raster was made from")
    lastSuccess: str | None = Field(description="The last successful sync (RFC 3339)")
    imagery: bool = Field(description="Three bands or more: drawn as RGB, a background")
    style: CoverageStyle
    links: list[Link]


class Coverages(BaseModel):
    coverages: list[Coverage]
    links: list[Link]


class QueryPosition(BaseModel):
    x: float
    y: float
    crs: str = Field(description="The CRS x and y were given in (URI)")


class BandValue(BaseModel):
    band: int = Field(description="1-based")
    name: str
    value: float | None = Field(description="null where the cell is nodata or off the raster")
    nodata: bool = Field(description="The cell holds the band's nodata value")
    outside: bool = Field(description="The point lies off the raster's grid")


class PointValues(BaseModel):
    """Every band's value in the cell under the point."""

    coverage: str
    version: int
    point: QueryPosition
    values: list[BandValue]


class CoverageStats(BaseModel):
    """Statistics of one band over the cells whose centre lies inside the area.

    Cells holding nodata are counted apart (`nodataCount`); the statistics are over the others
    and are null when there are none.
    """

    coverage: str
    version: int
    band: int = Field(description="1-based")
    count: int = Field(description="Cells with data whose centre is inside the area")
    nodataCount: int = Field(description="Cells without data whose centre is inside the area")
    min: float | None
    max: float | None
    mean: float | None
    std: float | None = Field(description="Population standard deviation")
    percentiles: dict[str, float | None] = Field(
        description="By the percentile asked for (`p`), linear interpolation as numpy's"
    )
