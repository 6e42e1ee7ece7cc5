"""Raster tiles of a coverage on our tile matrix sets (PNG, WebP, GeoTIFF values), TileJSON."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["Coverages"])
