"""Fixtures the unit tests share: the raster layers' COGs (tests/support/raster_cogs.py)."""

from __future__ import annotations

import pytest

from tests.support.raster_cogs import write_rgb, write_terrain


@pytest.fixture(scope="module")
def terrain(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_terrain(tmp_path_factory.mktemp("raster") / "terrain.tif"))


@pytest.fixture(scope="module")
def rgb(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_rgb(tmp_path_factory.mktemp("raster") / "rgb.tif"))
