"""OGC API Tiles documents, TileJSON, tile matrix sets, the map styles and tile archives."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from geoapi.responses.common import Link


class TileMatrixSetRef(BaseModel):
    id: str
    title: str | None = None
    uri: str | None = None
    crs: str | None = None
    links: list[Link]


class TileMatrixSets(BaseModel):
    tileMatrixSets: list[TileMatrixSetRef]


class TileMatrix(BaseModel):
    id: str
    scaleDenominator: float
    cellSize: float
    cornerOfOrigin: str | None = None
    pointOfOrigin: list[float]
    tileWidth: int
    tileHeight: int
    matrixWidth: int
    matrixHeight: int


class TileMatrixSetDefinition(BaseModel):
    """A tile matrix set (OGC Two Dimensional Tile Matrix Set 2.0, JSON)."""

    id: str
    title: str | None = None
    uri: str | None = None
    crs: str
    orderedAxes: list[str] | None = None
    wellKnownScaleSet: str | None = None
    tileMatrices: list[TileMatrix]


class TilesetRef(BaseModel):
    title: str | None = None
    dataType: str
    crs: str
    tileMatrixSetURI: str | None = None
    links: list[Link]


class Tilesets(BaseModel):
    tilesets: list[TilesetRef]


class TileMatrixLimits(BaseModel):
    tileMatrix: str
    minTileRow: int
    maxTileRow: int
    minTileCol: int
    maxTileCol: int


class TilesetLayer(BaseModel):
    id: str
    title: str | None = None
    dataType: str
    geometryDimension: int | None = None
    minTileMatrix: str | None = None
    maxTileMatrix: str | None = None
    propertiesSchema: dict[str, Any] | None = None


class Tileset(BaseModel):
    """A tileset's metadata: its matrix set, the rows and columns with data, its layers."""

    title: str | None = None
    dataType: str
    crs: str
    tileMatrixSetURI: str | None = None
    tileMatrixSetLimits: list[TileMatrixLimits]
    layers: list[TilesetLayer]
    links: list[Link]


class VectorLayer(BaseModel):
    id: str
    description: str | None = None
    minzoom: int | None = None
    maxzoom: int | None = None
    fields: dict[str, str] = Field(description="Property name: Number, String or Boolean")


class TileJson(BaseModel):
    """TileJSON 3.0.0 (Web Mercator tiles)."""

    tilejson: str
    name: str | None = None
    scheme: str | None = None
    tiles: list[str]
    minzoom: int | None = None
    maxzoom: int | None = None
    bounds: list[float] | None = None
    center: list[float] | None = None
    attribution: str | None = None
    crs: str | None = None
    vector_layers: list[VectorLayer]


class StyleRef(BaseModel):
    id: str
    title: str | None = None
    links: list[Link]


class Styles(BaseModel):
    styles: list[StyleRef]


class MapStyle(BaseModel):
    """A MapLibre style (style specification version 8); its layers are free-form."""

    version: int
    name: str | None = None
    metadata: dict[str, Any] | None = None
    center: list[float] | None = None
    zoom: float | None = None
    glyphs: str | None = None
    sources: dict[str, dict[str, Any]]
    layers: list[dict[str, Any]]


class Archive(BaseModel):
    name: str
    tileMatrixSet: str | None = None
    minzoom: int | None = None
    maxzoom: int | None = None
    links: list[Link]


class Archives(BaseModel):
    archives: list[Archive]
