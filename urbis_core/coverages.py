"""The raster layers' catalog (`urbis_meta.coverage_catalog`): which COG serves each coverage.

The sync (urbis_sync.raster) writes a row once the COG it names is complete on disk; readers
open the file at `path`. A re-sync writes a new file and then the row, so a reader holds either
the old path or the new one, and the old file stays until the next run has committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from urbis_core.db import META_SCHEMA
from urbis_core.errors import NotFound

coverage_catalog = sa.Table(
    "coverage_catalog",
    sa.MetaData(schema=META_SCHEMA),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("title", JSONB, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("checksum", sa.Text, nullable=False),
    sa.Column("bands", JSONB, nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("resolution", ARRAY(sa.Float), nullable=False),
    sa.Column("bbox_native", ARRAY(sa.Float), nullable=False),
    sa.Column("bbox_crs84", ARRAY(sa.Float), nullable=False),
    sa.Column("srid", sa.Integer, nullable=False),
    sa.Column("style", JSONB, nullable=False),
    sa.Column("last_success", sa.DateTime(timezone=True)),
)


@dataclass(frozen=True)
class BandInfo:
    """One band: its name and type, and statistics over its valid (non-nodata) pixels."""

    name: str
    dtype: str
    nodata: float | None
    min: float | None  # None when every pixel is nodata
    max: float | None
    mean: float | None
    std: float | None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> BandInfo:
        def number(name: str) -> float | None:
            value = raw.get(name)
            return None if value is None else float(value)  # 'nan' (JSON has no NaN) too

        return cls(
            name=str(raw["name"]),
            dtype=str(raw["dtype"]),
            nodata=number("nodata"),
            min=number("min"),
            max=number("max"),
            mean=number("mean"),
            std=number("std"),
        )


@dataclass(frozen=True)
class CoverageEntry:
    id: str
    title: dict[str, str]
    description: str | None
    path: str  # the COG in use (EPSG:31370, internal overviews)
    version: int
    checksum: str
    bands: tuple[BandInfo, ...]
    width: int
    height: int
    resolution: tuple[float, float]  # x, y in metres
    bbox_native: tuple[float, float, float, float]  # EPSG:31370
    bbox_crs84: tuple[float, float, float, float]
    srid: int
    style: dict[str, Any]
    last_success: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> CoverageEntry:
        m = row._mapping
        return cls(
            id=m["id"],
            title=dict(m["title"] or {}),
            description=m["description"],
            path=m["path"],
            version=int(m["version"]),
            checksum=m["checksum"],
            bands=tuple(BandInfo.from_json(b) for b in m["bands"]),
            width=int(m["width"]),
            height=int(m["height"]),
            resolution=(float(m["resolution"][0]), float(m["resolution"][1])),
            bbox_native=_box(m["bbox_native"]),
            bbox_crs84=_box(m["bbox_crs84"]),
            srid=int(m["srid"]),
            style=dict(m["style"] or {}),
            last_success=m["last_success"],
        )


def _box(values: list[float]) -> tuple[float, float, float, float]:
    minx, miny, maxx, maxy = (float(v) for v in values)
    return minx, miny, maxx, maxy


async def list_coverages(conn: AsyncConnection) -> list[CoverageEntry]:
    rows = await conn.execute(sa.select(coverage_catalog).order_by(coverage_catalog.c.id))
    return [CoverageEntry.from_row(r) for r in rows]


async def get_coverage(conn: AsyncConnection, coverage_id: str) -> CoverageEntry:
    """The coverage, or NotFound naming the id asked for and the ones that exist."""
    row = (
        await conn.execute(sa.select(coverage_catalog).where(coverage_catalog.c.id == coverage_id))
    ).first()
    if row is None:
        ids = (await conn.execute(sa.select(coverage_catalog.c.id).order_by("id"))).scalars()
        known = ", ".join(ids) or "none yet"
        raise NotFound(f"no coverage '{coverage_id}' (coverages: {known})")
    return CoverageEntry.from_row(row)


def read_coverage(conn: sa.Connection, coverage_id: str) -> CoverageEntry | None:
    """The sync's read of one coverage's entry (None before its first successful run)."""
    row = conn.execute(
        sa.select(coverage_catalog).where(coverage_catalog.c.id == coverage_id)
    ).first()
    return CoverageEntry.from_row(row) if row else None
