"""A coverage's drawing style: request over layer over defaults taken from its statistics."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tiles.raster_style import coverage_style, default_rescale, is_imagery, ramp_stops
from urbis_core.coverages import BandInfo, CoverageEntry
from urbis_core.errors import InvalidParameter


def band(low: float | None, high: float | None) -> BandInfo:
    return BandInfo("b", "float32", -9999.0, low, high, None, None)


def entry(bands: tuple[BandInfo, ...], style: dict[str, Any]) -> CoverageEntry:
    return CoverageEntry(
        id="t",
        title={},
        description=None,
        path="/nowhere.tif",
        version=1,
        checksum="x",
        bands=bands,
        width=1,
        height=1,
        resolution=(1.0, 1.0),
        bbox_native=(0, 0, 1, 1),
        bbox_crs84=(0, 0, 1, 1),
        srid=31370,
        style=style,
        last_success=None,
    )


def test_the_request_wins_over_the_layer_which_wins_over_the_statistics():
    terrain = entry((band(12.5, 80.0),), {"colormap": "terrain", "hillshade": True})
    plain = coverage_style(terrain)
    assert (plain.colormap, plain.rescale, plain.hillshade) == ("terrain", (12.5, 80.0), True)
    asked = coverage_style(terrain, colormap="viridis", rescale=(0.0, 10.0), hillshade=False)
    assert (asked.colormap, asked.rescale, asked.hillshade) == ("viridis", (0.0, 10.0), False)
    configured = replace(terrain, style={"rescale": [10, 20]})
    style = coverage_style(configured)
    assert (style.colormap, style.rescale, style.hillshade) == ("greys", (10.0, 20.0), False)


def test_a_band_without_valid_cells_or_range_still_gets_a_usable_rescale():
    assert default_rescale(entry((band(None, None),), {})) == (0.0, 1.0)
    assert default_rescale(entry((band(7.0, 7.0),), {})) == (7.0, 8.0)


def test_an_unknown_ramp_is_a_clear_error_and_imagery_is_three_bands():
    with pytest.raises(InvalidParameter, match="unknown colour ramp 'rainbow'"):
        coverage_style(entry((band(0, 1),), {}), colormap="rainbow")
    assert is_imagery(entry((band(0, 1),) * 3, {})) and not is_imagery(entry((band(0, 1),), {}))
    assert ramp_stops("greys") == [(0.0, "#000000"), (1.0, "#ffffff")]
