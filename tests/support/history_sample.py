"""The bundled sample with a history: the municipalities synced twice, a boundary moved between.

The notebooks about history need a layer that changed after its first load. The legacy
municipalities are synced as `make up` syncs them, then again from a copy in which a piece of
Schaerbeek along its border with Evere has passed to Evere (a boundary correction, the kind of
change URBIS versions record: both outlines, `AREA`, `VERSIONID` and `BEGIN_LIFE` change).
Nothing else changes, so the sample's addresses (in Saint-Gilles and Bruxelles) keep their
municipality.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow as pa
import pyogrio
import yaml
from shapely import Geometry

from tests.conftest import SAMPLE_CONFIG, SAMPLE_DIR

LOSER, GAINER = "21015", "21006"  # Schaerbeek gives, Evere gets
PIECE_RADIUS_M = 250.0
CORRECTED_ON = date(2026, 12, 1)


@dataclass(frozen=True)
class BoundaryCorrection:
    before: gpd.GeoDataFrame  # the 19 municipalities as the sample ships them
    after: gpd.GeoDataFrame  # the corrected copy
    piece: Geometry  # the territory that changed municipality (EPSG:31370)
    config: Path  # a configuration of the one layer, read from the copy


def sample_municipalities(folder: Path) -> gpd.GeoDataFrame:
    """The bundled legacy shapefile, read from a copy (it ships without .shx)."""
    for suffix in (".shp", ".dbf"):
        shutil.copyfile(SAMPLE_DIR / f"UrbAdm_MUNICIPALITY{suffix}", folder / f"m{suffix}")
    pyogrio.set_gdal_config_options({"SHAPE_RESTORE_SHX": "YES"})
    try:
        return gpd.read_file(folder / "m.shp").set_crs(31370)
    finally:
        pyogrio.set_gdal_config_options({"SHAPE_RESTORE_SHX": None})


def boundary_correction(folder: Path) -> BoundaryCorrection:
    """Write the corrected copy (a shapefile, as the sample's) and a configuration reading it."""
    before = sample_municipalities(folder)
    loser = before.index[before["NAT_CODE"] == LOSER][0]
    gainer = before.index[before["NAT_CODE"] == GAINER][0]
    border = before.geometry[loser].intersection(before.geometry[gainer].boundary)
    centre = border.interpolate(0.5, normalized=True)
    piece = before.geometry[loser].intersection(centre.buffer(PIECE_RADIUS_M))
    after = before.copy()
    after.loc[loser, "geometry"] = before.geometry[loser].difference(piece)
    after.loc[gainer, "geometry"] = before.geometry[gainer].union(piece)
    for row in (loser, gainer):
        after.loc[row, "AREA"] = round(after.geometry[row].area, 2)
        after.loc[row, "VERSIONID"] = before.loc[row, "VERSIONID"] + 1
        after.loc[row, "BEGIN_LIFE"] = pd.Timestamp(CORRECTED_ON)
    path = folder / "corrected" / "UrbAdm_MUNICIPALITY.shp"
    path.parent.mkdir()
    # Written through Arrow with the sample's own field types (dates as dates, the empty
    # NAT_LEVEL an integer): a retyped field would be schema drift, every row an update.
    typed = after.astype(
        {
            "BEGIN_LIFE": pd.ArrowDtype(pa.date32()),
            "END_LIFE": pd.ArrowDtype(pa.date32()),
            "NAT_LEVEL": "Int32",
        }
    )
    typed.to_file(path, engine="pyogrio", use_arrow=True)
    path.with_suffix(".prj").unlink(missing_ok=True)  # as the sample: the config says 31370
    # The sample's own entry for the layer (titles, key, srid), reading the copy. Syncing one
    # layer leaves the others as they are.
    layer = yaml.safe_load(SAMPLE_CONFIG.read_text())["layers"]["municipalities"]
    layer["source"]["path"] = str(path)
    config = {"layers": {"municipalities": layer}}
    config_path = folder / "urbis.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return BoundaryCorrection(before, after, piece, config_path)
