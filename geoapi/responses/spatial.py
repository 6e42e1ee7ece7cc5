"""Answers of the spatial queries (/lookup, /stats); the others are FeatureCollections."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from geoapi.responses.common import Feature


class Point(BaseModel):
    type: Literal["Point"]
    coordinates: list[float]


class Lookup(BaseModel):
    """The features of each collection at a point, nearest first."""

    point: Point
    crs: str
    results: dict[str, list[Feature]] = Field(description="By collection id")


class StatsGroup(BaseModel):
    key: Any = Field(description="The key of the feature of `by`")
    title: Any = Field(None, description="Its naming field's value, when it has one")
    count: int
    area_m2: float | None = None
    length_m: float | None = None


class Stats(BaseModel):
    collection: str
    by: str
    keyField: str
    titleField: str | None
    measure: Literal["area_m2", "length_m"] | None
    groups: list[StatsGroup]
    numberReturned: int
