"""Raster layers (coverages): list and metadata, values at a point, statistics over a geometry."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["Coverages"])
