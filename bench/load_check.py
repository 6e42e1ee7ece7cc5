"""Whether the API serves a change the sync applied (bench.load_bench, after the load): each
inserted and updated building through /items with its new geometry and AREA, each deleted one
a 404, and each in (or gone from) its decoded vector tile on both grids."""

from __future__ import annotations

import json
from typing import Any

import httpx
import mapbox_vector_tile
import shapely
from pyproj import Transformer

from bench.load_source import Change
from bench.load_sync import CHANGED
from bench.load_workload import EPSG_31370, feature_path, tile_at, tile_path

CHECK_ZOOMS = {"WebMercatorQuad": 17, "BelgianLambert72": 10}
TO_MERCATOR = Transformer.from_crs(31370, 3857, always_xy=True)


def check_change(base: str, change: Change) -> list[str]:
    """What the API does not serve of `change` (nothing when it serves all of it)."""
    problems: list[str] = []
    with httpx.Client(base_url=base, timeout=60, headers={"Accept-Encoding": "identity"}) as http:
        for key, (geom, area) in {**change.inserted, **change.updated}.items():
            problems += item_problems(http, key, geom, area)
            problems += tile_problems(http, key, geom, area)
        for key, geom in change.deleted.items():
            answer = http.get(feature_path(CHANGED, key))
            problems += item_judged(key, answer.status_code, answer.content, geom, None)
            problems += tile_problems(http, key, geom, None)
    return problems


def item_problems(http: httpx.Client, key: str, geom: Any, area: int) -> list[str]:
    """Whether /items serves the building with this geometry (within 1 cm) and AREA."""
    answer = http.get(feature_path(CHANGED, key), params={"crs": EPSG_31370})
    return item_judged(key, answer.status_code, answer.content, geom, area)


def item_judged(key: str, status: int, body: bytes, geom: Any, area: int | None) -> list[str]:
    """What an /items/{key} answer (in EPSG:31370) does not show of the building's new state
    (`area` None: it must be gone, a 404)."""
    if area is None:
        return [] if status == 404 else [f"items {key} (deleted): HTTP {status}"]
    if status != 200:
        return [f"items {key}: HTTP {status} {body[:200]!r}"]
    feature = json.loads(body)
    problems = []
    if feature["properties"].get("AREA") != area:
        problems.append(f"items {key}: AREA {feature['properties'].get('AREA')} != {area}")
    if shapely.hausdorff_distance(shapely.geometry.shape(feature["geometry"]), geom) > 0.01:
        problems.append(f"items {key}: the geometry served is not the new one")
    return problems


def tile_paths(geom: Any) -> list[str]:
    """The building's tile on each grid (at CHECK_ZOOMS), where its representative point is."""
    point = geom.representative_point()
    paths = []
    for tms, z in CHECK_ZOOMS.items():
        xy = (
            TO_MERCATOR.transform(point.x, point.y) if tms == "WebMercatorQuad" else point.coords[0]
        )
        paths.append(tile_path(CHANGED, tms, z, *tile_at(tms, z, *xy)))
    return paths


def tile_problems(http: httpx.Client, key: str, geom: Any, area: int | None) -> list[str]:
    """Whether the building is in its tile on each grid (`area` None: it must be gone)."""
    problems = []
    for path in tile_paths(geom):
        answer = http.get(path)
        problems += tile_judged(path, key, answer.status_code, answer.content, area)
    return problems


def tile_judged(path: str, key: str, status: int, mvt: bytes, area: int | None) -> list[str]:
    """What a tile answer (its MVT, decompressed) does not show of the building's new state."""
    if status not in (200, 204):
        return [f"tile {path}: HTTP {status}"]
    layers = mapbox_vector_tile.decode(mvt) if mvt else {}
    found = [
        f["properties"]
        for f in layers.get(CHANGED, {}).get("features", [])
        if f["properties"].get("INSPIRE_ID") == key
    ]
    if area is None and found:
        return [f"tile {path}: deleted {key} still drawn"]
    if area is not None and not found:
        return [f"tile {path}: {key} missing"]
    if area is not None and found[0].get("AREA") != area:
        return [f"tile {path}: {key} AREA {found[0].get('AREA')} != {area}"]
    return []
