"""Zonal statistics of a coverage over a whole vector collection, run as a job."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["Coverages"])
