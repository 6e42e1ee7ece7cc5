"""The bundled sample's current-URBIS layers read straight from their files
(data/sample/geoserver/), as a test computes what the API should answer without asking it."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd

from tests.conftest import SAMPLE_DIR

GEOSERVER = SAMPLE_DIR / "geoserver"


def read_cells(layer: str) -> gpd.GeoDataFrame:
    """One layer of the sample's 500 m cells, each feature once (two cells may both hold it)."""
    frames = [gpd.read_file(path) for path in sorted(GEOSERVER.glob(f"bxl-*/{layer}.geojson"))]
    frames = [frame.to_crs(31370) for frame in frames if len(frame)]
    whole = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=31370)
    return whole.drop_duplicates("INSPIRE_ID").reset_index(drop=True)


def read_current_municipalities() -> gpd.GeoDataFrame:
    paths = sorted((GEOSERVER / "municipalities").glob("*.geojson"))
    frames = [gpd.read_file(path).to_crs(31370) for path in paths]
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=31370)
