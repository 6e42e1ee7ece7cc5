"""The coverage tests' shared server: three raster layers synced beside the sample."""

from __future__ import annotations

import httpx

from tests.api.conftest import CoverageSources


def test_the_three_coverages_are_synced_and_the_api_serves(
    coverage_client: httpx.Client, coverage_sources: CoverageSources
):
    assert coverage_client.get("/collections").status_code == 200
    written = sorted(p.name for p in coverage_sources.raster_dir.iterdir())
    assert written == ["imagery", "terrain", "terrain_l08"]
