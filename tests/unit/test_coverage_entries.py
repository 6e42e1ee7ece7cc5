"""The raster tiles' memory of the coverage catalog (geoapi.coverage_entries)."""

from __future__ import annotations

import time

from geoapi.coverage_entries import CoverageEntries
from urbis_core.coverages import BandInfo, CoverageEntry


def _entry(version: int) -> CoverageEntry:
    band = BandInfo("height", "float32", -9999.0, 10.0, 90.0, 40.0, 5.0)
    return CoverageEntry(
        id="terrain",
        title={"en": "Terrain"},
        description=None,
        path=f"/cogs/terrain/{version}.tif",
        version=version,
        checksum="x",
        bands=(band,),
        width=10,
        height=10,
        resolution=(5.0, 5.0),
        bbox_native=(0.0, 0.0, 50.0, 50.0),
        bbox_crs84=(4.0, 50.0, 4.1, 50.1),
        srid=31370,
        style={},
        last_success=None,
    )


def test_a_row_is_kept_until_a_change_is_heard():
    entries = CoverageEntries()
    assert entries.get("terrain") is None
    entries.keep(_entry(1), entries.generation, time.monotonic())
    assert entries.get("terrain") == _entry(1)
    entries.forget()
    assert entries.get("terrain") is None


def test_a_row_read_while_a_change_came_is_not_kept():
    entries = CoverageEntries()
    generation, read_at = entries.generation, time.monotonic()
    entries.forget()  # the change notification arrives during the read
    entries.keep(_entry(1), generation, read_at)
    assert entries.get("terrain") is None
    entries.keep(_entry(2), entries.generation, time.monotonic())
    assert entries.get("terrain") == _entry(2)


def test_a_row_is_read_again_after_its_time():
    entries = CoverageEntries(max_age=10.0)
    entries.keep(_entry(1), entries.generation, time.monotonic() - 11.0)
    assert entries.get("terrain") is None
    entries.keep(_entry(1), entries.generation, time.monotonic() - 9.0)
    assert entries.get("terrain") == _entry(1)
