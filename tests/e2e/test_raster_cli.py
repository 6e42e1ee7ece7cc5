"""`urbis config check`, `sync --once` and `status` with a raster layer beside a vector one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from tests.conftest import SAMPLE_DIR
from tests.e2e.test_cli import clean_env, run
from tests.support import rasters


def test_sync_once_runs_raster_layers_like_vector_ones(database_url: str, tmp_path: Path):
    source = rasters.write_terrain(tmp_path / "dtm.tif")
    config = tmp_path / "urbis.yaml"
    config.write_text(
        "layers:\n"
        "  municipalities:\n"
        f"    source: {{kind: file, path: {SAMPLE_DIR / 'UrbAdm_MUNICIPALITY.shp'}, srid: 31370}}\n"
        "    key: NAT_CODE\n"
        "  terrain:\n"
        "    type: raster\n"
        "    source: {kind: file, path: dtm.tif}\n"
    )
    raster_dir = tmp_path / "cogs"
    env = clean_env(
        DATABASE_URL=database_url, URBIS_CONFIG=str(config), URBIS_RASTER_DIR=str(raster_dir)
    )
    checked = run("config", "check", env=env, check=True)
    assert "OK (2 layers: municipalities, terrain)" in checked.stdout

    first = run("sync", "--once", env=env, check=True).stdout
    assert "municipalities: 19 features read, 19 inserted" in first
    assert "terrain: new COG written (version 1)" in first
    (cog,) = (raster_dir / "terrain").iterdir()
    with rasterio.open(cog) as out, rasterio.open(source) as src:
        assert out.crs.to_epsg() == 31370 and np.array_equal(out.read(), src.read())

    again = run("sync", "--once", "--layer", "terrain", env=env, check=True).stdout
    assert "terrain: source unchanged, nothing written (version 1)" in again

    status = run("status", "--layer", "terrain", env=env, check=True).stdout.splitlines()
    assert len(status) == 2 and status[1].split()[:2] == ["terrain", "1"]

    rasters.write_corrupt(source)
    failed = run("sync", "--once", "--layer", "terrain", env=env)
    assert failed.returncode == 1
    said = failed.stdout + failed.stderr  # a failure is logged, to stderr
    assert "terrain: FAILED" in said and f"{source}: cannot be converted to a COG" in said
    assert list((raster_dir / "terrain").iterdir()) == [cog]
