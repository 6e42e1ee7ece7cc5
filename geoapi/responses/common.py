"""Members shared by many answers: links, GeoJSON features, the error model."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Link(BaseModel):
    """A link of an OGC API document."""

    href: str
    rel: str
    type: str | None = None
    title: str | None = None
    templated: bool | None = Field(None, description="`href` is a URI template")


class Problem(BaseModel):
    """Every 4xx and 5xx (RFC 9457, application/problem+json): the detail says why and what to do.

    A 503 also has a `Retry-After` header: the seconds after which to ask again.
    """

    status: int
    title: str = Field(description="The status's phrase, e.g. Bad Request")
    detail: str = Field(description="What is wrong, for a person; names the parameter if one is")
    type: str | None = Field(None, description="Absent: about:blank (the status says it all)")


class Geometry(BaseModel):
    """A GeoJSON geometry (RFC 7946), in the CRS the request asked for."""

    type: Literal[
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
    ]
    coordinates: Any = None
    geometries: list[Geometry] | None = None


class Feature(BaseModel):
    """A GeoJSON Feature: the layer's key as `id`, its source's fields as properties."""

    type: Literal["Feature"]
    id: int | str | None = None
    geometry: Geometry | None
    properties: dict[str, Any] | None = Field(
        description="The layer's fields (see the collection's /schema), free-form"
    )
    links: list[Link] | None = None


class FeatureCollection(BaseModel):
    """A GeoJSON FeatureCollection, with OGC API Features' paging members."""

    type: Literal["FeatureCollection"]
    features: list[Feature]
    numberMatched: int | None = Field(None, description="Features matching, over all pages")
    numberReturned: int | None = None
    timeStamp: str | None = None
    links: list[Link] | None = None
