"""OGC API Features documents: landing page, conformance, collections, schemas, history."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from geoapi.responses.common import Feature, Link


class LandingPage(BaseModel):
    title: str
    description: str | None = None
    attribution: str | None = None
    links: list[Link]


class Conformance(BaseModel):
    conformsTo: list[str]


class SpatialExtent(BaseModel):
    bbox: list[list[float]] = Field(description="minx, miny, maxx, maxy (in `crs`)")
    crs: str


class Extent(BaseModel):
    spatial: SpatialExtent


class Collection(BaseModel):
    """One URBIS layer as an OGC API Features collection."""

    id: str
    title: str
    titles: dict[str, str] = Field(description="The title per language (en, fr, nl)")
    description: str | None = None
    itemType: str
    crs: list[str]
    storageCrs: str
    keyField: str
    geometryType: str
    featureCount: int
    version: int = Field(description="Bumped by each sync that changed the layer")
    lastUpdated: str | None = Field(description="The last successful sync (RFC 3339)")
    featureLabel: dict[str, str] = Field(
        description=(
            "How a feature is named per language (fr, nl, en): a template in which {FIELD} "
            "stands for the feature's property; empty when the layer has no name fields "
            "(a feature is then called by its key)"
        )
    )
    links: list[Link]
    extent: Extent | None = None
    storageCrsExtent: SpatialExtent | None = None


class Collections(BaseModel):
    collections: list[Collection]
    links: list[Link]


class JsonSchema(BaseModel):
    """A collection's queryables or schema, itself a JSON Schema (2020-12) document."""

    model_config = ConfigDict(populate_by_name=True)

    schema_: str = Field(alias="$schema")
    id_: str = Field(alias="$id")
    type: Literal["object"]
    title: str | None = None
    description: str | None = None
    properties: dict[str, dict[str, Any]]
    required: list[str] | None = None
    additionalProperties: bool | None = None


class Change(BaseModel):
    id: int | str = Field(description="The feature's key")
    op: Literal["insert", "update", "delete"]
    time: str = Field(description="When the sync made the change (RFC 3339)")


class Changes(BaseModel):
    collection: str
    since: str
    version: int
    changes: list[Change]
    numberReturned: int
    links: list[Link]


class QuarantineProperties(BaseModel):
    key: str | None = Field(description="The feature's key in the source, when it had one")
    reason: str
    run: int
    runStarted: str
    source: dict[str, Any] = Field(description="The source's fields, as read")


class QuarantinedFeature(Feature):
    properties: QuarantineProperties  # type: ignore[assignment]


class Quarantine(BaseModel):
    """The features the latest sync set aside, as GeoJSON in CRS84."""

    type: Literal["FeatureCollection"]
    features: list[QuarantinedFeature]
    numberMatched: int
    numberReturned: int


class TileCacheCounts(BaseModel):
    hits: int
    misses: int
    dropped: int
    entries: int
    bytes: int
    changes: int
    disk_write_errors: int = Field(
        description="Tiles the disk tier could not keep (a full disk); they were still served"
    )


class LowZoomTiles(BaseModel):
    drawn_ahead: int
    drawing: bool


class ReadReplica(BaseModel):
    """A streaming replica the API reads from (DATABASE_URL_READ), at the watcher's last look."""

    name: str  # host:port/dbname
    serving: bool
    lag_s: float | None  # seconds behind the primary; None when it could not be told
    problem: str | None  # why it does not serve


class Health(BaseModel):
    status: str
    database: str
    database_error: str | None
    tile_cache: TileCacheCounts | None = None
    low_zoom_tiles: LowZoomTiles | None = None
    read_replicas: list[ReadReplica] = []  # empty without DATABASE_URL_READ


class Ready(BaseModel):
    status: Literal["ready"]
    database: str
    layers: int
    migration: str  # the schema's alembic revision (the newest this service knows)
