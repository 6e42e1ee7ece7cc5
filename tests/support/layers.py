"""Small layers a test writes and syncs: GeoJSON in EPSG:31370, and their layer configuration.

The crs member names Lambert 72 the way URBIS exports do, so the sync reads the coordinates
as they are written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from urbis_core.catalog import ColumnInfo, LayerEntry

LAMBERT_72 = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::31370"}}


def geojson_feature(properties: dict[str, Any], geometry: dict[str, Any] | None) -> dict[str, Any]:
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def point(x: float, y: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [x, y]}


def write_geojson(path: Path, features: Iterable[dict[str, Any]]) -> Path:
    """A FeatureCollection of these features, in EPSG:31370."""
    path.write_text(
        json.dumps({"type": "FeatureCollection", "crs": LAMBERT_72, "features": list(features)})
    )
    return path


def file_layer(
    folder: Path,
    layer_id: str,
    key: str,
    features: Iterable[dict[str, Any]],
    tiles: dict[str, Any] | None = None,
) -> Path:
    """`<layer_id>.geojson` and `<layer_id>.yaml` configuring it as a file layer; the config."""
    source = write_geojson(folder / f"{layer_id}.geojson", features)
    settings = ", ".join(f"{name}: {value}" for name, value in (tiles or {}).items())
    config = folder / f"{layer_id}.yaml"
    config.write_text(
        f"layers:\n  {layer_id}:\n    source: {{kind: file, path: {source}}}\n"
        f"    key: {key}\n" + (f"    tiles: {{{settings}}}\n" if tiles else "")
    )
    return config


def catalog_entry(
    layer_id: str,
    columns: tuple[ColumnInfo, ...],
    geometry_type: str = "Polygon",
    label: dict[str, str] | None = None,
) -> LayerEntry:
    """A catalog entry for code that reads one without a database: key `ID`, EPSG:31370."""
    return LayerEntry(
        id=layer_id,
        table_name=layer_id,
        title={"en": layer_id},
        description=None,
        key_field="ID",
        geometry_type=geometry_type,
        srid=31370,
        columns=columns,
        feature_count=0,
        bbox_native=None,
        bbox_crs84=None,
        version=1,
        last_success=None,
        label=label or {},
    )
