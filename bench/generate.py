"""Deterministic generator of Brussels-scale, URBIS-like vector data for benchmarks.

Why: the sync and serving benchmarks need the volume of the whole Region (hundreds of thousands
of buildings) in the current UrbIS-Vector schema, and the real product is neither redistributed
in the repository nor reachable from CI. This module lays a synthetic city out inside the 19 real
municipality polygons (``data/sample/UrbAdm_MUNICIPALITY.shp``) and writes it as one GeoPackage in
EPSG:31370, with the layer and field names of the current product:

- ``Buildings``: INSPIRE_ID, BLOCK_ID (a block URI or null, as in the real service), AREA
  (integer m², the rounded polygon area), CAPA_ID, CAPAKEY; Polygon, ~3 % MultiPolygon
  (the layer is declared GEOMETRY so that both stay as they are).
- ``StreetAxes``: INSPIRE_ID, TYPE, HIERARCHY, LVL, STARTSN_ID, ENDSN_ID, STRNAMEFRE, STRNAMEDUT,
  SLOPE, LENGTH (the line length); LineString, one per 15 buildings.
- ``Addresses``: INSPIRE_ID, STREET_ID, STRNAMEFRE, STRNAMEDUT, POLICENUM, BOXNUMBER, ZIPCODE,
  MUNNISCODE, MUNNAMEFRE, MUNNAMEDUT; Point just inside the street facade of a building,
  1.2 per building (box and bis numbers), odd and even numbers on either side of a street.

The geometry column is ``GEOM``, the property name of the real WFS.

How the city is laid out, and why: Voronoi cells of about 1 km, each with its own street-grid
angle and block size, so that the city is not one global grid; boulevards along the cell edges;
rectangular blocks between the streets, cut where they cross a cell edge or a municipal border
(every plot lies properly inside one municipality, so every address has one NIS code); plots in
rows along the four sides of each block and, in some blocks, a row of workshops or garages
inside; one footprint per plot (rectangle, L, U, T or a porch-and-notch outline of 5 to 12
vertices, slightly rotated, never overlapping a neighbour) plus garden sheds and detached
annexes. Municipality shares follow their area times a density weight (centre: Saint-Josse,
Saint-Gilles, Ixelles, Etterbeek, Bruxelles; sparse: Uccle, Watermael-Boitsfort, Auderghem):
plots get narrower and block interiors fuller until each municipality can hold its share, and
what one cannot hold goes to the others. Blocks are kept in the order of a smooth noise field,
so the empty ones cluster like parks. Every random draw comes from a generator seeded with the
seed and its purpose, and coordinates are rounded to the millimetre: the same seed and size give
the same rows, whichever layers are written. 500,000 buildings take ~10 s and ~1.3 GB.

Usage::

    python -m bench.generate --out /tmp/bench/brussels.gpkg          # 500,000 buildings, seed 1
    python -m bench.generate --out /tmp/bench/small.gpkg --buildings 20000 --seed 7 \\
        --layers buildings,addresses
    # a changed copy for change-detection benchmarks (1 % of the buildings changed):
    python -m bench.generate --mutate-from /tmp/bench/brussels.gpkg \\
        --out /tmp/bench/brussels-v2.gpkg --fraction 0.01 --seed 2

From Python: ``generate(Path(...), buildings=..., seed=..., layers=...)`` returns the feature
count per layer; ``mutate(src, out, fraction=..., seed=...)`` returns
``{"updated": .., "deleted": .., "inserted": ..}``. Write large outputs under /tmp, never inside
the repository.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

CRS = "EPSG:31370"
URI = "https://databrussels.be/id/"
DEFAULT_MUNICIPALITIES = (
    Path(__file__).resolve().parent.parent / "data" / "sample" / "UrbAdm_MUNICIPALITY.shp"
)
LAYERS = {"buildings": "Buildings", "street_axes": "StreetAxes", "addresses": "Addresses"}
FIELDS = {
    "Buildings": ("INSPIRE_ID", "BLOCK_ID", "AREA", "CAPA_ID", "CAPAKEY"),
    "StreetAxes": (
        "INSPIRE_ID",
        "TYPE",
        "HIERARCHY",
        "LVL",
        "STARTSN_ID",
        "ENDSN_ID",
        "STRNAMEFRE",
        "STRNAMEDUT",
        "SLOPE",
        "LENGTH",
    ),
    "Addresses": (
        "INSPIRE_ID",
        "STREET_ID",
        "STRNAMEFRE",
        "STRNAMEDUT",
        "POLICENUM",
        "BOXNUMBER",
        "ZIPCODE",
        "MUNNISCODE",
        "MUNNAMEFRE",
        "MUNNAMEDUT",
    ),
}
# The GeoServer property name of the geometry in every urbisvector layer.
GEOMETRY_NAME = "GEOM"

# Relative building density per municipality (buildings per km² of municipal area): dense
# 19th-century centre, garden suburbs and forest in the south-east.
DENSITY = {
    "21001": 1.0,
    "21002": 0.6,
    "21003": 1.0,
    "21004": 1.6,
    "21005": 1.9,
    "21006": 1.0,
    "21007": 1.2,
    "21008": 0.9,
    "21009": 2.0,
    "21010": 1.1,
    "21011": 1.6,
    "21012": 1.7,
    "21013": 2.5,
    "21014": 2.6,
    "21015": 1.8,
    "21016": 0.7,
    "21017": 0.45,
    "21018": 0.9,
    "21019": 0.7,
}
ZIPCODES = {
    "21001": "1070",
    "21002": "1160",
    "21003": "1082",
    "21004": "1000",
    "21005": "1040",
    "21006": "1140",
    "21007": "1190",
    "21008": "1083",
    "21009": "1050",
    "21010": "1090",
    "21011": "1081",
    "21012": "1080",
    "21013": "1060",
    "21014": "1210",
    "21015": "1030",
    "21016": "1180",
    "21017": "1170",
    "21018": "1200",
    "21019": "1150",
}
BRUXELLES = "21004"

# Street-name building blocks: (French type, Dutch suffix) and (French rest, Dutch stem).
STREET_KINDS = (
    ("Rue", "straat"),
    ("Avenue", "laan"),
    ("Place", "plein"),
    ("Drève", "dreef"),
    ("Square", "square"),
    ("Clos", "gaarde"),
    ("Chemin", "weg"),
)
STREET_SPECS = (
    ("de la Victoire", "Overwinnings"),
    ("Louise", "Louiza"),
    ("du Midi", "Zuid"),
    ("de la Loi", "Wet"),
    ("Royale", "Konings"),
    ("des Alliés", "Geallieerden"),
    ("de la Station", "Stations"),
    ("de l'Église", "Kerk"),
    ("du Moulin", "Molen"),
    ("des Tilleuls", "Linden"),
    ("du Marché", "Markt"),
    ("de la Paix", "Vrede"),
    ("de l'École", "School"),
    ("des Fleurs", "Bloemen"),
    ("du Château", "Kasteel"),
    ("de la Colline", "Heuvel"),
    ("du Parc", "Park"),
    ("des Champs", "Velden"),
    ("du Pont", "Brug"),
    ("de la Source", "Bron"),
    ("des Roses", "Rozen"),
    ("du Bois", "Bos"),
    ("de la Forêt", "Woud"),
    ("des Peupliers", "Populieren"),
    ("du Lac", "Meer"),
    ("de la Ferme", "Hoeve"),
    ("des Moines", "Monniken"),
    ("de la Croix", "Kruis"),
    ("du Canal", "Kanaal"),
    ("de la Chapelle", "Kapel"),
    ("du Prince", "Prins"),
    ("de la Reine", "Koningin"),
    ("des Betteraves", "Bieten"),
    ("Meylemeersch", "Mijlenmeers"),
    ("Émile Féron", "Emile Féron"),
    ("Anspach", "Anspach"),
    ("Adolphe Max", "Adolphe Max"),
    ("Brugmann", "Brugmann"),
    ("Van Volxem", "Van Volxem"),
    ("Charles Woeste", "Charles Woeste"),
    ("Ernest Allard", "Ernest Allard"),
    ("Defacqz", "Defacqz"),
    ("Américaine", "Amerikaanse"),
    ("de Stalingrad", "Stalingrad"),
    ("Montoyer", "Montoyer"),
    ("Belliard", "Belliard"),
    ("Jourdan", "Jourdan"),
    ("Franklin Roosevelt", "Franklin Roosevelt"),
    ("du Général Jacques", "Generaal Jacques"),
    ("Paul Janson", "Paul Janson"),
    ("Georges Henri", "Georges Henri"),
    ("Jean Volders", "Jean Volders"),
    ("Fernand Bernier", "Fernand Bernier"),
    ("Henri Jaspar", "Henri Jaspar"),
    ("des Sablons", "Zavel"),
    ("des Bouchers", "Beenhouwers"),
    ("de Flandre", "Vlaamse"),
    ("du Noyer", "Notelaars"),
    ("des Coquelicots", "Klaprozen"),
    ("des Écoliers", "Scholieren"),
)
# Radial roads: always a "Chaussée"/"steenweg" (Chaussée de Waterloo / Waterloosesteenweg).
CHAUSSEES = (
    ("de Waterloo", "Waterloose"),
    ("de Ninove", "Ninoofse"),
    ("de Mons", "Bergense"),
    ("de Haecht", "Haachtse"),
    ("de Louvain", "Leuvense"),
    ("de Wavre", "Waverse"),
    ("d'Alsemberg", "Alsembergse"),
    ("de Gand", "Gentse"),
    ("de Vleurgat", "Vleurgatse"),
    ("de Charleroi", "Charleroise"),
    ("d'Anvers", "Antwerpse"),
    ("de Stockel", "Stokkelse"),
    ("de La Hulpe", "Terhulpse"),
    ("de Boondael", "Boondaalse"),
    ("d'Ixelles", "Elsense"),
    ("de Jette", "Jetse"),
    ("de Helmet", "Helmetse"),
    ("de Lennik", "Lennikse"),
)

CELL_SIZE = 1000.0  # mean spacing of the Voronoi seeds: one street-grid orientation per cell
BLOCK_MARGIN = 2.0  # a block must lie this far inside its municipality (rotated footprints)
MIN_FRONTAGE = 4.5  # narrowest mean plot width used to densify the centre
FOOTPRINT_MIX = (0.44, 0.06, 0.22, 0.08, 0.08, 0.07, 0.05)  # RECT5 RECT6 L U T C11 C12
RECT5, RECT6, LSHAPE, USHAPE, TSHAPE, C11, C12 = range(7)
MAX_AREA = 375.0  # main footprint cap; with an annex a building stays under 400 m²
SHED_RATE, MULTI_RATE = 0.12, 0.035
ADDRESSES_PER_BUILDING = 1.2
BUILDINGS_PER_STREET_AXIS = 15


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _rng(seed: int, purpose: str) -> np.random.Generator:
    """One independent stream per purpose, so that a layer left out changes no other layer."""
    return np.random.default_rng([seed, zlib.crc32(purpose.encode())])


def _lerp(sparse: float, dense: float, z: np.ndarray | float) -> np.ndarray:
    """Interpolate a layout parameter between the sparse (z=0) and the dense (z=1) city."""
    return sparse + (dense - sparse) * np.asarray(z, dtype=float)


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Split `total` in proportion to `weights` with parts that add up exactly (largest rest)."""
    weights = np.asarray(weights, dtype=float)
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    raw = weights / weights.sum() * total
    parts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - parts), kind="stable")
    parts[order[: total - int(parts.sum())]] += 1
    return parts


def _fit_to_capacity(targets: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Move what a full municipality cannot hold to the others, so that the total stays exact."""
    total = int(targets.sum())
    if int(capacity.sum()) < total:
        raise ValueError(
            f"{total} buildings do not fit in the region (at most {int(capacity.sum())})"
        )
    result = np.minimum(targets, capacity)
    for _ in range(len(targets) + 1):
        missing = total - int(result.sum())
        if missing == 0:
            return result
        free = capacity - result
        share = _allocate(missing, np.where(free > 0, np.maximum(targets, 1), 0))
        result = np.minimum(result + share, capacity)
    for i in np.argsort(-(capacity - result), kind="stable"):  # rounding leftovers, if any
        result[i] += min(total - int(result.sum()), int(capacity[i] - result[i]))
    return result


def _unique_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Distinct positive identifiers with gaps, like real URBIS numbering."""
    return rng.choice(2 * n + 1000, size=n, replace=False).astype(np.int64) + 1


def _uris(kind: str, ids: np.ndarray) -> np.ndarray:
    """INSPIRE-style URIs such as https://databrussels.be/id/building/100207."""
    prefix = f"{URI}{kind}/"
    return np.array([f"{prefix}{i}" for i in ids.tolist()], dtype=object)


def _to_world(
    origin: np.ndarray, ax: np.ndarray, ay: np.ndarray, x: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """Map frame coordinates (x along `ax`, y along `ay`) to millimetre-rounded world points."""
    if x.ndim == 2:
        origin, ax, ay = origin[:, None, :], ax[:, None, :], ay[:, None, :]
    world = origin + x[..., None] * ax + y[..., None] * ay
    return np.round(world, 3)


# --------------------------------------------------------------------------------------------
# Municipalities
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Municipalities:
    """The 19 real municipalities: they bound the city and give each address its NIS code."""

    nis: np.ndarray  # NIS codes as text, sorted
    name_fre: np.ndarray
    name_dut: np.ndarray
    geoms: np.ndarray  # 2D (Multi)Polygons in EPSG:31370
    region: shapely.Geometry  # union of the 19, prepared

    @property
    def density(self) -> np.ndarray:
        """Building-density score z in [0, 1] used to pick block and plot sizes."""
        weights = np.array([DENSITY.get(code, 1.0) for code in self.nis])
        low, high = min(DENSITY.values()), max(DENSITY.values())
        return np.clip((weights - low) / (high - low), 0.0, 1.0)


def load_municipalities(path: Path = DEFAULT_MUNICIPALITIES) -> Municipalities:
    """Read the legacy municipality shapefile from a temporary copy.

    The file has no .shx and no .prj: GDAL restores the .shx next to the file it reads, so it
    reads a copy (the bundled sample is never written to), and the CRS is set here.
    """
    with tempfile.TemporaryDirectory(prefix="urbis-bench-") as tmp:
        for part in sorted(path.parent.glob(path.stem + ".*")):
            if part.suffix.lower() in {".shp", ".dbf", ".cpg", ".shx", ".prj"}:
                shutil.copyfile(part, Path(tmp) / part.name)
        previous = pyogrio.get_gdal_config_option("SHAPE_RESTORE_SHX")
        pyogrio.set_gdal_config_options({"SHAPE_RESTORE_SHX": "YES"})
        try:
            frame = pyogrio.read_dataframe(
                Path(tmp) / path.name, columns=["NAT_CODE", "NAME_FRE", "NAME_DUT"]
            )
        finally:
            pyogrio.set_gdal_config_options({"SHAPE_RESTORE_SHX": previous})
    frame = frame.sort_values("NAT_CODE", kind="stable").reset_index(drop=True)
    geoms = shapely.make_valid(shapely.force_2d(np.asarray(frame.geometry.array)))
    region = shapely.union_all(geoms)
    shapely.prepare(region)
    return Municipalities(
        nis=np.array([str(v) for v in frame["NAT_CODE"]], dtype=object),
        name_fre=np.array(list(frame["NAME_FRE"]), dtype=object),
        name_dut=np.array(list(frame["NAME_DUT"]), dtype=object),
        geoms=geoms,
        region=region,
    )


def building_targets(munis: Municipalities, buildings: int) -> np.ndarray:
    """Buildings per municipality: its area times its density weight, adding up exactly."""
    weights = shapely.area(munis.geoms) * np.array([DENSITY.get(c, 1.0) for c in munis.nis])
    return _allocate(buildings, weights)


# --------------------------------------------------------------------------------------------
# Street grid and blocks
# --------------------------------------------------------------------------------------------
@dataclass
class Blocks:
    """Rectangular city blocks; local frame per Voronoi cell (u along e_u, v along e_v)."""

    cell: np.ndarray
    centre: np.ndarray  # (n, 2) origin of the cell frame
    eu: np.ndarray  # (n, 2)
    ev: np.ndarray  # (n, 2)
    u0: np.ndarray
    u1: np.ndarray
    v0: np.ndarray
    v1: np.ndarray
    street: np.ndarray  # street width between facing blocks
    depth: np.ndarray  # plot depth
    lines: np.ndarray  # (n, 4) street lines facing sides south, north, west, east
    nodes: np.ndarray  # (n, 4) node ids at corners (u0,v0) (u1,v0) (u0,v1) (u1,v1)
    in_cell: np.ndarray  # whole block inside its (shrunk) cell; else its plots are tested
    muni: np.ndarray  # municipality holding the whole block, -1 if it straddles a border
    ref: np.ndarray  # municipality at (or nearest to) the block centre: layout parameters

    def corners(self, margin: float = 0.0) -> np.ndarray:
        """(n, 5, 2) closed world outline of each block, grown by `margin`."""
        m = margin
        local = [
            (self.u0 - m, self.v0 - m),
            (self.u1 + m, self.v0 - m),
            (self.u1 + m, self.v1 + m),
            (self.u0 - m, self.v1 + m),
            (self.u0 - m, self.v0 - m),
        ]
        return np.stack(
            [self.centre + u[:, None] * self.eu + v[:, None] * self.ev for u, v in local], axis=1
        )


def _cells(
    munis: Municipalities, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voronoi cells of jittered seeds: each gets its own street-grid angle and block size."""
    xmin, ymin, xmax, ymax = shapely.total_bounds(munis.geoms)
    xs = np.arange(xmin - CELL_SIZE / 2, xmax + CELL_SIZE, CELL_SIZE)
    ys = np.arange(ymin - CELL_SIZE / 2, ymax + CELL_SIZE, CELL_SIZE)
    gx, gy = np.meshgrid(xs, ys)
    seeds = np.column_stack([gx.ravel(), gy.ravel()])
    seeds = seeds + rng.uniform(-0.35, 0.35, seeds.shape) * CELL_SIZE
    frame = shapely.box(xmin - 3000, ymin - 3000, xmax + 3000, ymax + 3000)
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=frame, ordered=True)
    )
    keep = shapely.intersects(munis.region, cells)
    edges = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=frame, only_edges=True)
    )
    edges = edges[shapely.intersects(munis.region, edges)]
    return seeds[keep], cells[keep], edges


def _nearest_municipality(munis: Municipalities, xy: np.ndarray) -> np.ndarray:
    """Index of the municipality containing (or, outside the region, nearest to) each point.

    Point-in-polygon on the prepared municipalities first: distances to their long outlines
    are far slower and only needed for the few points outside the region.
    """
    result = np.full(len(xy), -1, dtype=np.int64)
    for index, geom in enumerate(munis.geoms):
        shapely.prepare(geom)
        result[(result < 0) & shapely.contains_xy(geom, xy[:, 0], xy[:, 1])] = index
    outside = np.flatnonzero(result < 0)
    if len(outside):  # layout parameters only: 50 m simplified outlines are close enough
        pairs = shapely.STRtree(shapely.simplify(munis.geoms, 50.0)).query_nearest(
            shapely.points(xy[outside]), all_matches=False
        )
        result[outside[pairs[0]]] = pairs[1]
    return result


def _grid_lines(
    rng: np.random.Generator,
    radius: float,
    pitch: float,
    street: float,
    spread: tuple[float, float],
) -> np.ndarray:
    """Street centre-line positions across a cell, with irregular spacing like a real city."""
    count = int(np.ceil(2 * radius / (pitch * spread[0]))) + 2
    steps = pitch * rng.uniform(*spread, count) + street
    return -radius - rng.uniform(0, pitch) + np.concatenate([[0.0], np.cumsum(steps)])


def _cell_blocks(
    rng: np.random.Generator,
    shrunk: shapely.Geometry,
    radius: float,
    seed: np.ndarray,
    z: float,
    line_base: int,
    node_base: int,
) -> tuple[dict, int, int]:
    """Blocks of one cell that reach into its shrunk outline (partial ones are clipped later).

    The cell is shrunk by three quarters of a street width, so that the plots of neighbouring
    cells never meet, and a street node next to a whole block stays inside the cell.
    """
    theta = rng.uniform(-np.pi / 4, np.pi / 4)
    street = float(_lerp(13.0, 9.5, z)) * rng.uniform(0.9, 1.1)
    length = float(_lerp(150.0, 80.0, z)) * rng.uniform(0.85, 1.15)
    width = float(_lerp(90.0, 60.0, z)) * rng.uniform(0.9, 1.1)
    depth = float(_lerp(30.0, 19.0, z)) * rng.uniform(0.9, 1.1)
    pu = _grid_lines(rng, radius, length, street, (0.75, 1.3))
    pv = _grid_lines(rng, radius, width, street, (0.85, 1.2))
    eu = np.array([np.cos(theta), np.sin(theta)])
    ev = np.array([-np.sin(theta), np.cos(theta)])
    i, j = np.meshgrid(np.arange(len(pu) - 1), np.arange(len(pv) - 1), indexing="ij")
    i, j = i.ravel(), j.ravel()
    u0, u1 = pu[i] + street / 2, pu[i + 1] - street / 2
    v0, v1 = pv[j] + street / 2, pv[j + 1] - street / 2
    corner_in = np.stack(
        [
            shapely.contains_xy(shrunk, *(seed + cu[:, None] * eu + cv[:, None] * ev).T)
            for cu, cv in ((u0, v0), (u1, v0), (u0, v1), (u1, v1))
        ],
        axis=1,
    )
    keep = corner_in.any(axis=1)
    i, j, u0, u1, v0, v1 = (a[keep] for a in (i, j, u0, u1, v0, v1))
    rows = len(pv)
    lines = np.column_stack(
        [
            line_base + len(pu) + j,
            line_base + len(pu) + j + 1,
            line_base + i,
            line_base + i + 1,
        ]
    )
    nodes = node_base + np.column_stack(
        [
            i * rows + j,
            (i + 1) * rows + j,
            i * rows + j + 1,
            (i + 1) * rows + j + 1,
        ]
    )
    n = len(i)
    arrays = dict(
        centre=np.tile(seed, (n, 1)),
        eu=np.tile(eu, (n, 1)),
        ev=np.tile(ev, (n, 1)),
        u0=u0,
        u1=u1,
        v0=v0,
        v1=v1,
        street=np.full(n, street),
        depth=np.minimum(depth, np.minimum(u1 - u0, v1 - v0) / 2 - 3.0),
        lines=lines,
        nodes=nodes,
        in_cell=corner_in[keep].all(axis=1),
    )
    return arrays, len(pu) + rows, len(pu) * rows


def _whole_block_municipality(blocks: Blocks, munis: Municipalities) -> np.ndarray:
    """Municipality holding each whole block (with a margin), -1 for blocks across a border.

    Testing the 19 prepared municipalities against a tree of blocks is much cheaper than
    testing every plot; only the plots of border blocks are tested one by one.
    """
    tree = shapely.STRtree(shapely.polygons(blocks.corners(BLOCK_MARGIN)))
    result = np.full(len(blocks.u0), -1, dtype=np.int64)
    for index, geom in enumerate(munis.geoms):
        result[tree.query(geom, predicate="contains_properly")] = index
    return result


@dataclass
class Cells:
    """Voronoi cells (each with its own street grid) and the same shrunk by a street width."""

    outline: np.ndarray
    shrunk: np.ndarray
    edges: np.ndarray  # the Voronoi edges that reach into the region (boulevards)


def build_blocks(munis: Municipalities, seed: int) -> tuple[Blocks, Cells, int]:
    """Candidate blocks of the region, the cells, and the number of street lines."""
    rng = _rng(seed, "blocks")
    seeds, cells, edges = _cells(munis, rng)
    z = munis.density[_nearest_municipality(munis, seeds)]
    parts, shrunk_cells, line_base, node_base = [], [], 0, 0
    for k in range(len(cells)):
        radius = float(np.max(np.hypot(*(shapely.get_coordinates(cells[k]) - seeds[k]).T)))
        shrunk = shapely.buffer(cells[k], -0.75 * float(_lerp(13.0, 9.5, z[k])) * 1.1)
        shapely.prepare(shrunk)
        arrays, n_lines, n_nodes = _cell_blocks(
            rng, shrunk, radius, seeds[k], z[k], line_base, node_base
        )
        arrays["cell"] = np.full(len(arrays["u0"]), k)
        parts.append(arrays)
        shrunk_cells.append(shrunk)
        line_base, node_base = line_base + n_lines, node_base + n_nodes
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    n = len(merged["u0"])
    blocks = Blocks(muni=np.full(n, -1), ref=np.zeros(n, dtype=np.int64), **merged)
    blocks.muni = _whole_block_municipality(blocks, munis)
    middle = blocks.corners()[:, :4].mean(axis=1)
    blocks.ref = np.where(blocks.muni >= 0, blocks.muni, _nearest_municipality(munis, middle))
    return blocks, Cells(cells, np.array(shrunk_cells, dtype=object), edges), line_base


# --------------------------------------------------------------------------------------------
# Plots and footprints
# --------------------------------------------------------------------------------------------
@dataclass
class Plots:
    """Plots along the block sides (and units inside blocks); frame: x along the street."""

    block: np.ndarray
    side: np.ndarray  # 0 south, 1 north, 2 west, 3 east, 4 inside the block (no street)
    origin: np.ndarray  # (n, 2) world position of the front-left corner
    ax: np.ndarray  # (n, 2) unit vector along the street
    ay: np.ndarray  # (n, 2) unit vector into the block
    width: np.ndarray
    depth: np.ndarray
    line: np.ndarray  # street line the plot faces (-1 inside the block)
    along: np.ndarray  # position of the plot along that line (house numbering)
    muni: np.ndarray
    z: np.ndarray

    def take(self, index: np.ndarray) -> Plots:
        """Subset of the plots, keeping every array aligned."""
        return Plots(**{k: v[index] for k, v in vars(self).items()})

    @property
    def interior(self) -> np.ndarray:
        """Units inside the block: workshops and garages, without an address."""
        return self.side == 4


@dataclass
class Layout:
    """Per-municipality plot width and how much extra building the block interiors get."""

    frontage: np.ndarray
    boost: np.ndarray  # 0: natural city, 1: as dense as the layout allows
    density: np.ndarray  # density score of each municipality


def plan_layout(blocks: Blocks, cells: Cells, munis: Municipalities, targets: np.ndarray) -> Layout:
    """Narrow the plots, then fill block interiors, where a municipality needs more buildings.

    The street frontage each municipality really offers is measured on probe plots (10 m
    wide, clipped like the real ones); what the plan still misses is later spilled over to
    the other municipalities, so the total stays exact.
    """
    probe = Layout(
        frontage=np.full(len(munis.nis), 10.0),
        boost=np.zeros(len(munis.nis)),
        density=munis.density,
    )
    plots = clip_plots(build_plots(blocks, probe, 0, interior=False), blocks, cells, munis)
    perimeter = np.bincount(plots.muni, plots.width, minlength=len(munis.nis))
    natural = _lerp(17.0, 6.0, munis.density)
    wanted = 1.05 * np.maximum(targets, 1)
    frontage = np.maximum(np.minimum(natural, perimeter / wanted), MIN_FRONTAGE)
    shortfall = wanted * frontage / np.maximum(perimeter, 1.0)
    return Layout(
        frontage=frontage, boost=np.clip(shortfall - 1.0, 0.0, 1.0), density=munis.density
    )


def _split_sides(
    rng: np.random.Generator,
    lengths: np.ndarray,
    mean_width: np.ndarray,
    spread: tuple[float, float],
    wide: float,
) -> tuple[np.ndarray, ...]:
    """Cut each side into plots: side index, width and offset from the side start per plot."""
    count = np.where(lengths > 0, np.floor(lengths / mean_width), 0).astype(np.int64)
    side = np.repeat(np.arange(len(lengths)), count)
    share = rng.uniform(*spread, len(side)) * np.where(rng.random(len(side)) < wide, 2.5, 1.0)
    totals = np.bincount(side, share, minlength=len(lengths))
    width = lengths[side] * share / totals[side]
    first = np.concatenate([[0], np.cumsum(count)[:-1]])[side]
    offset = np.cumsum(width) - width
    return side, width, offset - offset[first]


def _street_plots(rng: np.random.Generator, blocks: Blocks, layout: Layout) -> dict:
    """Plots in rows along the four sides of each block, facing its streets."""
    short = blocks.v1 - blocks.v0 - 2 * blocks.depth
    lengths = np.stack([blocks.u1 - blocks.u0, blocks.u1 - blocks.u0, short, short], axis=1)
    start_u = np.stack([blocks.u0, blocks.u1, blocks.u0, blocks.u1], axis=1)
    start_v = np.stack(
        [blocks.v0, blocks.v1, blocks.v1 - blocks.depth, blocks.v0 + blocks.depth], axis=1
    )
    mean_width = np.repeat(layout.frontage[blocks.ref], 4)
    side_index, width, offset = _split_sides(rng, lengths.ravel(), mean_width, (0.8, 1.2), 0.06)
    block, side = side_index // 4, side_index % 4
    du, dv = np.array([1.0, -1.0, 0.0, 0.0])[side], np.array([0.0, 0.0, -1.0, 1.0])[side]
    su = start_u.ravel()[side_index] + du * offset
    sv = start_v.ravel()[side_index] + dv * offset
    along = np.where(side < 2, su + du * width / 2, sv + dv * width / 2)
    return dict(
        block=block,
        side=side,
        su=su,
        sv=sv,
        du=du,
        dv=dv,
        width=width,
        depth=blocks.depth[block],
        line=blocks.lines[block, side],
        along=along,
    )


def _interior_plots(rng: np.random.Generator, blocks: Blocks, layout: Layout) -> dict:
    """Rows of workshops and garages in the middle of some blocks (more where it is dense)."""
    n = len(blocks.u0)
    chance = np.clip(
        _lerp(0.15, 0.5, layout.density[blocks.ref]) + layout.boost[blocks.ref], 0.0, 1.0
    )
    depth = np.minimum(rng.uniform(5.0, 10.0, n), blocks.v1 - blocks.v0 - 2 * blocks.depth - 2)
    lengths = blocks.u1 - blocks.u0 - 2 * blocks.depth - 2
    lengths = np.where((rng.random(n) < chance) & (depth >= 4.5), lengths, 0.0)
    block, width, offset = _split_sides(rng, lengths, np.full(n, 6.0), (0.6, 1.6), 0.05)
    su = blocks.u0[block] + blocks.depth[block] + 1 + offset
    sv = (blocks.v0 + blocks.v1)[block] / 2 - depth[block] / 2
    ones = np.ones(len(block))
    return dict(
        block=block,
        side=np.full(len(block), 4),
        su=su,
        sv=sv,
        du=ones,
        dv=0 * ones,
        width=width,
        depth=depth[block],
        line=np.full(len(block), -1),
        along=su,
    )


def build_plots(blocks: Blocks, layout: Layout, seed: int, interior: bool = True) -> Plots:
    """Street plots and interior units of every block, as frames in world coordinates."""
    rng = _rng(seed, "plots")
    parts = [_street_plots(rng, blocks, layout)]
    if interior:
        parts.append(_interior_plots(rng, blocks, layout))
    p = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    block = p["block"]
    eu, ev = blocks.eu[block], blocks.ev[block]
    ax = p["du"][:, None] * eu + p["dv"][:, None] * ev
    ay = np.column_stack([-ax[:, 1], ax[:, 0]])  # left of the street direction: into the block
    return Plots(
        block=block,
        side=p["side"],
        origin=blocks.centre[block] + p["su"][:, None] * eu + p["sv"][:, None] * ev,
        ax=ax,
        ay=ay,
        width=p["width"],
        depth=p["depth"],
        line=p["line"],
        along=p["along"],
        muni=blocks.muni[block],
        z=np.zeros(len(block)),
    )


def clip_plots(plots: Plots, blocks: Blocks, cells: Cells, munis: Municipalities) -> Plots:
    """Keep the plots of partial blocks that lie in their cell and properly in one municipality.

    Blocks cut by a cell edge or a municipal border keep the plots that fit, as real blocks
    along a boulevard or a border do; every kept plot gets a single municipality.
    """
    m = 1.0  # footprints turn by up to 0.6 m about their centre
    x = np.stack(
        [-m + 0 * plots.width, plots.width + m, plots.width + m, -m + 0 * plots.width], axis=1
    )
    y = np.stack(
        [-m + 0 * plots.depth, -m + 0 * plots.depth, plots.depth + m, plots.depth + m], axis=1
    )
    ring = (
        plots.origin[:, None, :]
        + x[..., None] * plots.ax[:, None, :]
        + y[..., None] * plots.ay[:, None, :]
    )
    ok = np.ones(len(plots.width), dtype=bool)
    partial = np.flatnonzero(~blocks.in_cell[plots.block])
    cell = blocks.cell[plots.block[partial]]
    for k, idx in _by_cell(cell, partial, len(cells.shrunk)):
        inside = [
            shapely.contains_xy(cells.shrunk[k], ring[idx, c, 0], ring[idx, c, 1]) for c in range(4)
        ]
        ok[idx] = np.logical_and.reduce(inside)
    muni = plots.muni.copy()
    border = np.flatnonzero(ok & (muni < 0))
    tree = shapely.STRtree(
        shapely.polygons(np.concatenate([ring[border], ring[border, :1]], axis=1))
    )
    for index, geom in enumerate(munis.geoms):
        muni[border[tree.query(geom, predicate="contains_properly")]] = index
    plots.muni = muni
    kept = plots.take(np.flatnonzero(ok & (muni >= 0)))
    kept.z = munis.density[kept.muni]
    return kept


def _by_cell(cell: np.ndarray, items: np.ndarray, n_cells: int) -> Iterable[tuple[int, np.ndarray]]:
    """Group `items` by their cell number, for per-cell geometry tests."""
    order = np.argsort(cell, kind="stable")
    bounds = np.searchsorted(cell[order], np.arange(n_cells + 1))
    for k in np.flatnonzero(np.diff(bounds)):
        yield int(k), items[order[bounds[k] : bounds[k + 1]]]


def _outline(kind: int, p: dict[str, np.ndarray]) -> np.ndarray:
    """Closed unit-square outline (n, k, 2) of one footprint family, front edge on y = 0.

    The front band (y < 5 %) is solid in every family at x = 0.12, where the address goes.
    """
    o = np.zeros_like(p["a"])
    i = np.ones_like(o)
    a, b, c, e, q, t = p["a"], p["b"], p["c"], p["e"], p["q"], p["t"]
    if kind == RECT5:
        pts = [(o, o), (i, o), (i, i), (o, i)]
    elif kind == RECT6:  # an extra (collinear) vertex on the facade, as in real data
        pts = [(o, o), (t, o), (i, o), (i, i), (o, i)]
    elif kind == LSHAPE:
        pts = [(o, o), (i, o), (i, 1 - c), (1 - a, 1 - c), (1 - a, i), (o, i)]
    elif kind == USHAPE:
        wing = 0.25 + 0.6 * (a - 0.3)  # 0.25 .. 0.43: two back wings around a courtyard
        pts = [
            (o, o),
            (i, o),
            (i, i),
            (1 - wing, i),
            (1 - wing, 1 - c),
            (wing, 1 - c),
            (wing, i),
            (o, i),
        ]
    elif kind == TSHAPE:
        narrow = 0.1 + 0.5 * (b - 0.3)  # 0.1 .. 0.2
        pts = [
            (o, o),
            (i, o),
            (i, e),
            (1 - narrow, e),
            (1 - narrow, i),
            (narrow, i),
            (narrow, e),
            (o, e),
        ]
    else:  # C11 / C12: a porch recess in the facade and a notch at the back
        porch = 0.25 + 0.3 * (a - 0.3)  # 0.25 .. 0.34
        pts = [
            (o, o),
            (porch * i, o),
            (porch * i, q),
            (1 - porch, q),
            (1 - porch, o),
            (i, o),
            (i, 1 - c),
            (1 - b, 1 - c),
            (1 - b, i),
            (o, i),
        ]
        if kind == C12:
            pts.append((o, 0.5 * i))
    pts.append(pts[0])
    return np.stack([np.stack(xy, axis=-1) for xy in pts], axis=1)


@dataclass
class Houses:
    """Main footprint per plot (frame units), its annex and its garden shed, if any."""

    kind: np.ndarray
    mirror: np.ndarray
    params: dict[str, np.ndarray]
    gap: np.ndarray
    setback: np.ndarray
    bw: np.ndarray
    bh: np.ndarray
    angle: np.ndarray
    annex: np.ndarray  # (n, 4) x, y, w, h or NaN
    shed: np.ndarray  # (n, 4) x, y, w, h or NaN


def design_houses(plots: Plots, layout: Layout, seed: int) -> Houses:
    """Draw the footprint of every plot: terraced in the centre, detached in the suburbs."""
    rng = _rng(seed, "houses")
    n, z, w, d = len(plots.width), plots.z, plots.width, plots.depth
    inner = plots.interior
    detached = (w >= 9.5) & (rng.random(n) < 1 - 0.85 * z) & ~inner
    gap = np.where(
        detached, np.minimum(rng.uniform(1.0, 3.0, n), 0.2 * w), rng.uniform(0.1, 0.2, n)
    )
    gap[inner] = 0.25
    setback = np.where(detached, rng.uniform(1.5, 7.0, n) * (1 - 0.5 * z), rng.uniform(0.0, 0.5, n))
    setback[inner] = 0.25
    bw = w - 2 * gap
    bh = np.minimum(rng.uniform(8.0, 12.0 + 6.0 * z), d - setback - 1.0)
    bh[inner] = d[inner] - 0.5
    bh = np.maximum(np.minimum(bh, MAX_AREA / bw), 4.0)
    kind = rng.choice(len(FOOTPRINT_MIX), n, p=FOOTPRINT_MIX)
    kind = np.where((bw < 5.0) & (kind > LSHAPE), LSHAPE, kind)
    kind[inner] = np.where(kind[inner] == LSHAPE, LSHAPE, RECT5)
    params = {
        "a": rng.uniform(0.3, 0.6, n),
        "b": rng.uniform(0.3, 0.5, n),
        "c": rng.uniform(0.25, 0.5, n),
        "e": rng.uniform(0.4, 0.7, n),
        "q": rng.uniform(0.05, 0.12, n),
        "t": rng.uniform(0.3, 0.7, n),
    }
    mirror = rng.random(n) < 0.5
    radius = np.hypot(bw, bh) / 2
    angle = rng.uniform(-1, 1, n) * np.minimum(0.9 * gap, 0.6) / radius
    back = setback + bh + 1.2  # annex and shed start 1.2 m behind the main footprint
    room = np.where(inner, 0.0, d - 0.3 - back)
    annex_size = rng.uniform(2.5, 4.5, (n, 2))
    can_annex = (room >= annex_size[:, 1]) & (bw >= annex_size[:, 0])
    rate = MULTI_RATE / max(float(can_annex.mean()), 1e-9)
    annex_on = can_annex & (rng.random(n) < rate)
    annex_x = gap + rng.random(n) * (bw - annex_size[:, 0])
    annex = np.full((n, 4), np.nan)
    annex[annex_on] = np.column_stack([annex_x, back, annex_size])[annex_on]
    shed_size = rng.uniform(2.5, 4.5, (n, 2))
    shed_w = np.minimum(shed_size[:, 0], w - 0.6)
    shed_h = shed_size[:, 1]
    can_shed = ~annex_on & (room >= shed_h) & (shed_w >= 2.5)
    shed_rate = SHED_RATE + 0.5 * layout.boost[plots.muni]
    shed_on = can_shed & (rng.random(n) < shed_rate)
    shed_x = 0.3 + rng.random(n) * (w - 0.6 - shed_w)
    shed = np.full((n, 4), np.nan)
    shed[shed_on] = np.column_stack([shed_x, d - 0.3 - shed_h, shed_w, shed_h])[shed_on]
    return Houses(kind, mirror, params, gap, setback, bw, bh, angle, annex, shed)


def _main_outlines(h: Houses, index: np.ndarray, plots: Plots) -> np.ndarray:
    """Main footprints of the given plots as world polygons, one vectorised pass per family."""
    out = np.empty(len(index), dtype=object)
    for kind in range(len(FOOTPRINT_MIX)):
        sel = np.flatnonzero(h.kind[index] == kind)
        if len(sel) == 0:
            continue
        k = index[sel]
        unit = _outline(kind, {key: v[k] for key, v in h.params.items()})
        flip = h.mirror[k]
        unit[flip] = unit[flip][:, ::-1] * [-1, 1] + [1, 0]
        x = h.gap[k, None] + unit[..., 0] * h.bw[k, None]
        y = h.setback[k, None] + unit[..., 1] * h.bh[k, None]
        x, y = _rotate(x, y, h, k)
        out[sel] = shapely.polygons(_to_world(plots.origin[k], plots.ax[k], plots.ay[k], x, y))
    return out


def _rotate(x: np.ndarray, y: np.ndarray, h: Houses, k: np.ndarray) -> tuple[np.ndarray, ...]:
    """Turn frame points about the footprint centre by the house's small angle."""
    cx, cy = h.gap[k] + h.bw[k] / 2, h.setback[k] + h.bh[k] / 2
    cos, sin = np.cos(h.angle[k]), np.sin(h.angle[k])
    if x.ndim == 2:
        cx, cy, cos, sin = cx[:, None], cy[:, None], cos[:, None], sin[:, None]
    return cx + (x - cx) * cos - (y - cy) * sin, cy + (x - cx) * sin + (y - cy) * cos


def _rectangles(rect: np.ndarray, index: np.ndarray, plots: Plots) -> np.ndarray:
    """Axis-aligned (in the plot frame) rectangles x, y, w, h as world polygons."""
    x0, y0, w, h = (rect[:, c][:, None] for c in range(4))
    x = x0 + np.array([0.0, 1.0, 1.0, 0.0, 0.0]) * w
    y = y0 + np.array([0.0, 0.0, 1.0, 1.0, 0.0]) * h
    world = _to_world(plots.origin[index], plots.ax[index], plots.ay[index], x, y)
    return shapely.polygons(world)


# --------------------------------------------------------------------------------------------
# Selection of the buildings
# --------------------------------------------------------------------------------------------
def _noise(xy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field (a few kilometre-scale waves) to group empty blocks into parks."""
    value = np.zeros(len(xy))
    for _ in range(6):
        angle, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        wavelength = rng.uniform(1500, 4000)
        direction = np.array([np.cos(angle), np.sin(angle)])
        value += np.sin(xy @ direction * 2 * np.pi / wavelength + phase)
    return value


@dataclass
class Selection:
    """The buildings kept: plot index and whether each is the house (0) or its shed (1)."""

    plot: np.ndarray
    shed: np.ndarray
    block_used: np.ndarray  # bool per block


def select_buildings(
    blocks: Blocks, plots: Plots, houses: Houses, targets: np.ndarray, seed: int
) -> Selection:
    """Keep exactly the target count per municipality, block by block in noise order."""
    rng = _rng(seed, "select")
    mid = blocks.corners()[:, :4].mean(axis=1)
    rank_key = _noise(mid, rng) + 0.6 * rng.random(len(mid))
    block_rank = np.empty(len(mid), dtype=np.int64)
    block_rank[np.argsort(rank_key, kind="stable")] = np.arange(len(mid))
    has_shed = np.flatnonzero(~np.isnan(houses.shed[:, 0]))
    plot = np.concatenate([np.arange(len(plots.width)), has_shed])
    shed = np.concatenate([np.zeros(len(plots.width), bool), np.ones(len(has_shed), bool)])
    muni = plots.muni[plot]
    order = np.lexsort((shed, plot, block_rank[plots.block[plot]], muni))
    quota = _fit_to_capacity(targets, np.bincount(muni, minlength=len(targets)))
    sorted_muni = muni[order]
    starts = np.searchsorted(sorted_muni, np.arange(len(targets)))
    position = np.arange(len(order)) - starts[sorted_muni]
    keep = order[position < quota[sorted_muni]]
    keep = keep[np.lexsort((shed[keep], plot[keep]))]  # file order follows the streets
    used = np.zeros(len(mid), dtype=bool)
    used[plots.block[plot[keep]]] = True
    return Selection(plot=plot[keep], shed=shed[keep], block_used=used)


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------
@dataclass
class City:
    """Everything the three layers are cut from."""

    munis: Municipalities
    blocks: Blocks
    cells: Cells
    plots: Plots
    houses: Houses
    selection: Selection
    n_lines: int


def build_city(buildings: int, seed: int, municipalities: Path = DEFAULT_MUNICIPALITIES) -> City:
    """Lay out blocks, plots and footprints, and select exactly `buildings` of them."""
    if buildings <= 0:
        raise ValueError("buildings must be positive")
    munis = load_municipalities(municipalities)
    blocks, cells, n_lines = build_blocks(munis, seed)
    targets = building_targets(munis, buildings)
    layout = plan_layout(blocks, cells, munis, targets)
    plots = clip_plots(build_plots(blocks, layout, seed), blocks, cells, munis)
    houses = design_houses(plots, layout, seed)
    selection = select_buildings(blocks, plots, houses, targets, seed)
    return City(munis, blocks, cells, plots, houses, selection, n_lines)


def buildings_layer(city: City, seed: int) -> gpd.GeoDataFrame:
    """Buildings: footprints with INSPIRE_ID, BLOCK_ID, AREA, CAPA_ID, CAPAKEY."""
    rng = _rng(seed, "buildings")
    sel, plots, houses = city.selection, city.plots, city.houses
    n = len(sel.plot)
    geoms = np.empty(n, dtype=object)
    main = np.flatnonzero(~sel.shed)
    geoms[main] = _main_outlines(houses, sel.plot[main], plots)
    multi = main[~np.isnan(houses.annex[sel.plot[main], 0])]
    if len(multi):
        annex = _rectangles(houses.annex[sel.plot[multi]], sel.plot[multi], plots)
        geoms[multi] = shapely.multipolygons(np.column_stack([geoms[multi], annex]))
    sheds = np.flatnonzero(sel.shed)
    geoms[sheds] = _rectangles(houses.shed[sel.plot[sheds]], sel.plot[sheds], plots)
    block_ids = _uris("block", _unique_ids(rng, len(city.blocks.u0)))
    block_id = block_ids[plots.block[sel.plot]]
    block_id[rng.random(n) < 0.4] = None
    capa = _unique_ids(rng, len(plots.width))
    return gpd.GeoDataFrame(
        {
            "INSPIRE_ID": _uris("building", _unique_ids(rng, n)),
            "BLOCK_ID": block_id,
            "AREA": np.rint(shapely.area(geoms)).astype(np.int64),
            "CAPA_ID": capa[sel.plot],
            "CAPAKEY": _capakeys(city, rng, sel.plot),
        },
        geometry=geoms,
        crs=CRS,
    )


def _capakeys(city: City, rng: np.random.Generator, index: np.ndarray) -> np.ndarray:
    """Cadastral keys of the plots `index`, e.g. 21001A0123/00B000 (division, section...).

    Drawn for every plot (so a plot's key does not depend on the selection), formatted only
    for the plots asked for.
    """
    plots = city.plots
    n = len(plots.width)
    section = np.array(list("ABCDEFGHIKL"))[city.blocks.cell[plots.block[index]] % 11]
    radical = rng.integers(1, 10000, n)[index]
    bis = np.where(rng.random(n) < 0.8, 0, rng.integers(1, 60, n))[index]
    letter = np.array(list("ABCDEFGHKLMNPRSTVWXYZ"))[rng.integers(0, 21, n)][index]
    power = np.where(rng.random(n) < 0.9, 0, rng.integers(1, 20, n))[index]
    division = city.munis.nis[plots.muni[index]]
    return np.array(
        [
            f"{d}{s}{r:04d}/{b:02d}{x}{p:03d}"
            for d, s, r, b, x, p in zip(
                division.tolist(),
                section.tolist(),
                radical.tolist(),
                bis.tolist(),
                letter.tolist(),
                power.tolist(),
                strict=True,
            )
        ],
        dtype=object,
    )


@dataclass
class Streets:
    """Name, street-name id and hierarchy of every street line of the grid."""

    fre: np.ndarray
    dut: np.ndarray
    street_id: np.ndarray
    hierarchy: np.ndarray


def street_names(n_lines: int, n_boulevards: int, seed: int) -> Streets:
    """French/Dutch name pairs: grid lines first, then the boulevards between cells."""
    rng = _rng(seed, "streets")
    names = [(f"{kf} {sf}", f"{sd}{kd}") for kf, kd in STREET_KINDS for sf, sd in STREET_SPECS]
    radial = [(f"Chaussée {sf}", f"{sd}steenweg") for sf, sd in CHAUSSEES]
    wide = [(f"Boulevard {sf}", f"{sd}laan") for sf, sd in STREET_SPECS] + radial
    table = np.array([(fr, nl[0].upper() + nl[1:]) for fr, nl in names], dtype=object)
    is_radial = rng.random(n_lines) < 0.05
    chosen = table[rng.integers(0, len(table), n_lines)]
    chosen[is_radial] = np.array(radial, dtype=object)[
        rng.integers(0, len(radial), int(is_radial.sum()))
    ]
    hierarchy = rng.choice(
        np.array([None, "DR", "IDR"], dtype=object), n_lines, p=[0.55, 0.33, 0.12]
    )
    hierarchy[is_radial] = "IDR"
    boulevards = np.array(wide, dtype=object)[rng.integers(0, len(wide), n_boulevards)]
    chosen = np.concatenate([chosen, boulevards.reshape(-1, 2)])
    hierarchy = np.concatenate(
        [hierarchy, rng.choice(np.array(["IDR", "DR"], dtype=object), n_boulevards, p=[0.6, 0.4])]
    )
    total = n_lines + n_boulevards
    return Streets(
        chosen[:, 0], chosen[:, 1], _uris("streetname", _unique_ids(rng, total)), hierarchy
    )


def street_axes_layer(city: City, streets: Streets, count: int, seed: int) -> gpd.GeoDataFrame:
    """StreetAxes: grid segments (those along kept blocks first) and boulevards between cells.

    When the network has fewer segments than asked for, the longest are split at new nodes,
    as real axes are at every side street and attribute change.
    """
    rng = _rng(seed, "street_axes")
    grid, next_node = _grid_segments(city)
    boulevards, next_node = _boulevard_segments(city, next_node)
    cand = {key: np.concatenate([grid[key], boulevards[key]]) for key in grid}
    order = np.lexsort((rng.random(len(cand["line"])), ~cand["priority"]))
    order = np.sort(order[:count])
    length = np.hypot(*(cand["b_xy"] - cand["a_xy"])[order].T)
    pieces = 1 + _allocate(count - len(order), length)
    seg = _split_segments(
        *(cand[key][order] for key in ("a_xy", "b_xy", "start", "stop", "line")), pieces, next_node
    )
    seg["bendable"] = cand["bendable"][order][seg["source"]]
    return _axes_frame(rng, streets, seg, city.munis.region)


def _grid_segments(city: City) -> tuple[dict, int]:
    """Unique grid segments between street nodes, cut back to their (convex) cell.

    Cutting at the cell edge (a junction with the boulevard there) keeps the grids of two
    cells from crossing; what is left must lie inside the region.
    """
    b = city.blocks
    node_xy = b.corners()[:, [0, 1, 3, 2]]  # corner order of `nodes`
    offset = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]]) * (b.street / 2)[:, None, None]
    node_xy = node_xy + offset[..., :1] * b.eu[:, None, :] + offset[..., 1:] * b.ev[:, None, :]
    ends = np.array([[0, 1], [2, 3], [2, 0], [1, 3]])  # south, north, west, east
    start, stop = b.nodes[:, ends[:, 0]].ravel(), b.nodes[:, ends[:, 1]].ravel()
    next_node = int(b.nodes.max(initial=0)) + 1
    key = np.minimum(start, stop) * next_node + np.maximum(start, stop)
    unique, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    priority = np.zeros(len(unique), dtype=bool)
    priority[inverse[np.repeat(city.selection.block_used, 4)]] = True
    seg = dict(
        a_xy=node_xy[:, ends[:, 0]].reshape(-1, 2)[first],
        b_xy=node_xy[:, ends[:, 1]].reshape(-1, 2)[first],
        start=start[first],
        stop=stop[first],
        line=b.lines.ravel()[first],
        priority=priority,
        bendable=np.ones(len(unique), dtype=bool),
    )
    keep = np.zeros(len(unique), dtype=bool)
    cell = b.cell[first // 4]
    for k, idx in _by_cell(cell, np.arange(len(cell)), len(city.cells.outline)):
        next_node = _clip_to_cell(seg, idx, city.cells.outline[k], keep, next_node)
    lines = shapely.linestrings(np.stack([seg["a_xy"], seg["b_xy"]], axis=1))
    keep &= shapely.contains(city.munis.region, lines)
    return {key: value[keep] for key, value in seg.items()}, next_node


def _clip_to_cell(
    seg: dict, idx: np.ndarray, outline: shapely.Geometry, keep: np.ndarray, next_node: int
) -> int:
    """Cut the segments `idx` of one cell to its outline; a cut end gets a new node id."""
    a_xy, b_xy = seg["a_xy"][idx], seg["b_xy"][idx]
    inside = shapely.contains_xy(outline, *a_xy.T) & shapely.contains_xy(outline, *b_xy.T)
    keep[idx[inside]] = True
    cut = ~inside
    clipped = shapely.intersection(shapely.linestrings(np.stack([a_xy, b_xy], 1)[cut]), outline)
    good = (shapely.get_type_id(clipped) == 1) & (shapely.length(clipped) >= 15.0)
    rows, clipped = idx[cut][good], clipped[good]
    c0 = shapely.get_coordinates(shapely.get_point(clipped, 0))
    c1 = shapely.get_coordinates(shapely.get_point(clipped, -1))
    a_xy, b_xy = seg["a_xy"][rows], seg["b_xy"][rows]
    swap = np.hypot(*(c0 - a_xy).T) > np.hypot(*(c1 - a_xy).T)
    c0, c1 = np.where(swap[:, None], c1, c0), np.where(swap[:, None], c0, c1)
    moved_a, moved_b = np.hypot(*(c0 - a_xy).T) > 1e-6, np.hypot(*(c1 - b_xy).T) > 1e-6
    fresh = next_node + np.arange(2 * len(rows)).reshape(2, -1)
    seg["start"][rows] = np.where(moved_a, fresh[0], seg["start"][rows])
    seg["stop"][rows] = np.where(moved_b, fresh[1], seg["stop"][rows])
    seg["a_xy"][rows], seg["b_xy"][rows] = c0, c1
    keep[rows] = True
    return next_node + 2 * len(rows)


def _boulevard_segments(city: City, next_node: int) -> tuple[dict, int]:
    """Edges between cells, in the gap the shrunk cells leave: boulevards cut every ~120 m."""
    edges = city.cells.edges
    a_xy = shapely.get_coordinates(shapely.get_point(edges, 0))
    b_xy = shapely.get_coordinates(shapely.get_point(edges, -1))
    vertex = np.unique(np.round(np.concatenate([a_xy, b_xy]), 2), axis=0, return_inverse=True)[
        1
    ].ravel()
    start, stop = next_node + vertex[: len(edges)], next_node + vertex[len(edges) :]
    next_node += int(vertex.max(initial=-1)) + 1
    pieces = np.maximum(1, np.round(shapely.length(edges) / 120.0)).astype(np.int64)
    line = city.n_lines + np.arange(len(edges))
    seg = _split_segments(a_xy, b_xy, start, stop, line, pieces, next_node)
    next_node += int((pieces - 1).sum())
    lines = shapely.linestrings(np.stack([seg["a_xy"], seg["b_xy"]], axis=1))
    keep = shapely.contains(city.munis.region, lines) & (shapely.length(lines) >= 15.0)
    seg["priority"] = np.ones(len(keep), dtype=bool)
    seg["bendable"] = np.zeros(len(keep), dtype=bool)
    del seg["source"]
    return {key: value[keep] for key, value in seg.items()}, next_node


def _split_segments(
    a_xy: np.ndarray,
    b_xy: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    line: np.ndarray,
    pieces: np.ndarray,
    next_node: int,
) -> dict:
    """Cut segment i into pieces[i] equal parts, numbering the new nodes from `next_node`."""
    source = np.repeat(np.arange(len(pieces)), pieces)
    k = np.arange(len(source)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    total = pieces[source]
    vector = (b_xy - a_xy)[source]
    inner_base = next_node + np.repeat(np.cumsum(pieces - 1) - (pieces - 1), pieces)
    return dict(
        a_xy=a_xy[source] + vector * (k / total)[:, None],
        b_xy=a_xy[source] + vector * ((k + 1) / total)[:, None],
        start=np.where(k == 0, start[source], inner_base + k - 1),
        stop=np.where(k == total - 1, stop[source], inner_base + k),
        line=line[source],
        source=source,
    )


def _axes_frame(
    rng: np.random.Generator, streets: Streets, seg: dict, region: shapely.Geometry
) -> gpd.GeoDataFrame:
    """Segment geometries (some grid ones slightly bent) and StreetAxes attributes."""
    a_xy, b_xy, start, stop, line = (seg[k] for k in ("a_xy", "b_xy", "start", "stop", "line"))
    n = len(line)
    flip = rng.random(n) < 0.5
    a_xy, b_xy = np.where(flip[:, None], b_xy, a_xy), np.where(flip[:, None], a_xy, b_xy)
    start, stop = np.where(flip, stop, start), np.where(flip, start, stop)
    direction = (b_xy - a_xy) / np.hypot(*(b_xy - a_xy).T)[:, None]
    bend = np.column_stack([-direction[:, 1], direction[:, 0]]) * rng.uniform(-1.5, 1.5, (n, 1))
    mid = (a_xy + b_xy) / 2 + bend
    bent = (rng.random(n) < 0.3) & seg["bendable"]
    geoms = shapely.linestrings(np.round(np.stack([a_xy, b_xy], axis=1), 3))
    curved = shapely.linestrings(np.round(np.stack([a_xy, mid, b_xy], axis=1), 3)[bent])
    geoms[np.flatnonzero(bent)[shapely.contains(region, curved)]] = curved[
        shapely.contains(region, curved)
    ]
    node_uri = _uris("streetnode", np.concatenate([start, stop]) + 1)
    node_uri[rng.random(2 * n) < 0.02] = f"{URI}streetnode/"  # quirk of the real service
    slope = np.round(rng.exponential(2.0, n), 2)
    return gpd.GeoDataFrame(
        {
            "INSPIRE_ID": _uris("streetaxe", _unique_ids(rng, n)),
            "TYPE": np.full(n, "S", dtype=object),
            "HIERARCHY": streets.hierarchy[line],
            "LVL": np.zeros(n, dtype=np.int64),
            "STARTSN_ID": node_uri[:n],
            "ENDSN_ID": node_uri[n:],
            "STRNAMEFRE": streets.fre[line],
            "STRNAMEDUT": streets.dut[line],
            "SLOPE": np.where(rng.random(n) < 0.08, np.nan, slope),
            "LENGTH": shapely.length(geoms),
        },
        geometry=geoms,
        crs=CRS,
    )


def addresses_layer(city: City, streets: Streets, count: int, seed: int) -> gpd.GeoDataFrame:
    """Addresses: one per house facade plus boxes and bis numbers, numbered along streets."""
    rng = _rng(seed, "addresses")
    plots, houses, munis = city.plots, city.houses, city.munis
    sel = city.selection
    house = np.sort(sel.plot[~sel.shed & ~plots.interior[sel.plot]])
    number = _house_numbers(plots, house)
    weight = (houses.bw[house] * houses.bh[house]) ** 1.5
    extra = max(count - len(house), 0)
    per_house = 1 + np.bincount(
        rng.choice(len(house), extra, p=weight / weight.sum()), minlength=len(house)
    )
    row = np.repeat(np.arange(len(house)), per_house)[:count]
    rank = np.arange(len(row)) - np.repeat(np.cumsum(per_house) - per_house, per_house)[:count]
    bis_mode = (rng.random(len(house)) < 0.3) & (per_house <= 6)
    rc_mode = rng.random(len(house)) < 0.25
    police, box = _labels(number[row], rank, per_house[row], bis_mode[row], rc_mode[row])
    plot = house[row]
    ux = 0.12 + np.where(bis_mode[row], 0.02 * np.minimum(rank, 4), 0.0)
    x = houses.gap[plot] + ux * houses.bw[plot]
    y = houses.setback[plot] + np.minimum(0.3, 0.05 * houses.bh[plot])
    x, y = _rotate(x, y, houses, plot)
    xy = _to_world(plots.origin[plot], plots.ax[plot], plots.ay[plot], x, y)
    muni, line = plots.muni[plot], plots.line[plot]
    return gpd.GeoDataFrame(
        {
            "INSPIRE_ID": _uris("address", _unique_ids(rng, len(row))),
            "STREET_ID": streets.street_id[line],
            "STRNAMEFRE": streets.fre[line],
            "STRNAMEDUT": streets.dut[line],
            "POLICENUM": police,
            "BOXNUMBER": box,
            "ZIPCODE": _zipcodes(munis.nis[muni], xy),
            "MUNNISCODE": munis.nis[muni],
            "MUNNAMEFRE": munis.name_fre[muni],
            "MUNNAMEDUT": munis.name_dut[muni],
        },
        geometry=shapely.points(xy),
        crs=CRS,
    )


def _house_numbers(plots: Plots, house: np.ndarray) -> np.ndarray:
    """Belgian numbering: odd on one side of a street, even on the other, rising along it."""
    line, parity, along = plots.line[house], plots.side[house] % 2, plots.along[house]
    order = np.lexsort((along, parity, line))
    group = np.concatenate([[True], (np.diff(line[order]) != 0) | (np.diff(parity[order]) != 0)])
    starts = np.maximum.accumulate(np.where(group, np.arange(len(order)), 0))
    number = np.empty(len(house), dtype=np.int64)
    number[order] = 2 * (np.arange(len(order)) - starts) + 1 + parity[order]
    return number


def _labels(
    number: np.ndarray, rank: np.ndarray, total: np.ndarray, bis: np.ndarray, rc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """POLICENUM ("12", "12A") and BOXNUMBER ("1", "RC" or null) of each address."""
    letters = " ABCDEF"
    police, box = [], []
    for num, k, tot, is_bis, is_rc in zip(
        number.tolist(), rank.tolist(), total.tolist(), bis.tolist(), rc.tolist(), strict=True
    ):
        if tot == 1 or is_bis:
            police.append(f"{num}{letters[k].strip()}")
            box.append(None)
        else:
            police.append(str(num))
            box.append(("RC" if k == 0 else str(k)) if is_rc else str(k + 1))
    return np.array(police, dtype=object), np.array(box, dtype=object)


def _zipcodes(nis: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Postcode of the municipality; Bruxelles has several (Laeken, Neder-over-Heembeek...)."""
    codes = np.array([ZIPCODES.get(c, "1000") for c in nis.tolist()], dtype=object)
    city = nis == BRUXELLES
    x, y = xy[:, 0], xy[:, 1]
    codes[city & (y < 167500)] = "1050"
    codes[city & (y > 172500)] = "1020"
    codes[city & (y > 172500) & (x > 149500)] = "1120"
    codes[city & (y > 172500) & (x > 152000)] = "1130"
    return codes


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def _write(frame: gpd.GeoDataFrame, out: Path, layer: str) -> None:
    """One GeoPackage layer; Polygon and MultiPolygon stay as they are (no promotion)."""
    pyogrio.write_dataframe(
        frame,
        out,
        layer=layer,
        driver="GPKG",
        promote_to_multi=False,
        layer_options={"GEOMETRY_NAME": GEOMETRY_NAME},
    )


def _layer_keys(layers: Iterable[str] | str) -> list[str]:
    """Accept "buildings,street_axes" or layer names ("Buildings") and keep the file order."""
    if isinstance(layers, str):
        layers = layers.split(",")
    wanted = set()
    for name in layers:
        key = name.strip()
        key = next((k for k, v in LAYERS.items() if key in (k, v)), key)
        if key not in LAYERS:
            raise ValueError(f"unknown layer {name!r}; choose from {', '.join(LAYERS)}")
        wanted.add(key)
    return [k for k in LAYERS if k in wanted]


def generate(
    out: Path,
    buildings: int = 500_000,
    seed: int = 1,
    layers: Iterable[str] | str = tuple(LAYERS),
    municipalities: Path = DEFAULT_MUNICIPALITIES,
) -> dict[str, int]:
    """Write the synthetic GeoPackage and return the feature count per layer name.

    The address count is 1.2 x buildings and the street-axis count buildings / 15, whichever
    layers are asked for (the city is the same; only what is written changes).
    """
    keys = _layer_keys(layers)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    city = build_city(buildings, seed, municipalities)
    streets = street_names(city.n_lines, len(city.cells.edges), seed)
    counts: dict[str, int] = {}
    for key in keys:
        if key == "buildings":
            frame = buildings_layer(city, seed)
        elif key == "street_axes":
            count = max(1, round(buildings / BUILDINGS_PER_STREET_AXIS))
            frame = street_axes_layer(city, streets, count, seed)
        else:
            count = round(ADDRESSES_PER_BUILDING * buildings)
            frame = addresses_layer(city, streets, count, seed)
        _write(frame, out, LAYERS[key])
        counts[LAYERS[key]] = len(frame)
        del frame
    return counts


# --------------------------------------------------------------------------------------------
# Changed copy
# --------------------------------------------------------------------------------------------
def _translate(geoms: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Move each geometry by its own offset (a survey correction of half a metre)."""
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    moved = np.array(geoms, dtype=object, copy=True)
    return shapely.set_coordinates(moved, np.round(coords + delta[index], 3))


def _shift_vertex(geoms: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Move the first vertex of single-ring polygons; others (or invalid results) translate."""
    single = (shapely.get_type_id(geoms) == 3) & (shapely.get_num_interior_rings(geoms) == 0)
    result = _translate(geoms, delta)
    idx = np.flatnonzero(single)
    if len(idx) == 0:
        return result
    coords, index = shapely.get_coordinates(geoms[idx], return_index=True)
    first = np.searchsorted(index, np.arange(len(idx)))
    last = np.r_[first[1:], len(coords)] - 1
    coords[first] = np.round(coords[first] + delta[idx], 3)
    coords[last] = coords[first]
    shifted = shapely.set_coordinates(np.array(geoms[idx], dtype=object, copy=True), coords)
    valid = shapely.is_valid(shifted)
    result[idx[valid]] = shifted[valid]
    return result


def _rebuilt(geoms: np.ndarray) -> np.ndarray:
    """A new building on a demolished one's site: its oriented box, a bit smaller."""
    boxes = shapely.oriented_envelope(geoms)
    centre = shapely.get_coordinates(shapely.centroid(boxes))
    scale = np.sqrt(np.clip(380.0 / shapely.area(boxes), None, 0.85))
    scale = np.where(shapely.area(boxes) * scale**2 < 6.5, 1.0, scale)
    coords, index = shapely.get_coordinates(boxes, return_index=True)
    coords = centre[index] + (coords - centre[index]) * scale[index, None]
    return shapely.set_coordinates(np.array(boxes, dtype=object, copy=True), np.round(coords, 3))


def _new_block_id(rng: np.random.Generator, current: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """A different BLOCK_ID: a null gets a block, a block gets another block or null."""
    n = len(current)
    out = np.array(pool[rng.integers(0, len(pool), n)] if len(pool) else current, dtype=object)
    is_null = np.array([c is None for c in current.tolist()], dtype=bool)
    out[~is_null & (rng.random(n) < 0.5)] = None
    same = np.array(
        [a == b for a, b in zip(out.tolist(), current.tolist(), strict=True)], dtype=bool
    )
    out[same & ~is_null] = None  # drew its own block
    out[same & is_null] = f"{URI}block/0"  # a null without any block to draw from
    return out


def mutate(src: Path, out: Path, fraction: float = 0.01, seed: int = 2) -> dict[str, int]:
    """Copy `src` to `out` with `fraction` of the Buildings changed, for change benchmarks.

    Of the changed ones ~70 % are updated (moved 0.5 m, one vertex shifted with AREA following,
    or BLOCK_ID changed), ~15 % deleted, and as many new buildings inserted on the sites of the
    deleted ones under new INSPIRE_IDs. The other layers are copied unchanged.
    """
    src, out = Path(src), Path(out)
    if src.resolve() == out.resolve():
        raise ValueError("mutate writes a copy: out must differ from src")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("fraction must be between 0 and 1")
    rng = _rng(seed, "mutate")
    frame = pyogrio.read_dataframe(src, layer="Buildings")
    n = len(frame)
    changed = min(round(fraction * n), n)
    deleted = round(0.15 * changed)
    updated = changed - 2 * deleted
    picked = rng.choice(n, updated + deleted, replace=False)
    upd, dele = np.sort(picked[:updated]), np.sort(picked[updated:])
    geoms = np.asarray(frame.geometry.array, dtype=object).copy()
    kind = rng.choice(3, updated, p=[0.35, 0.35, 0.30])
    angle = rng.uniform(0, 2 * np.pi, updated)
    delta = 0.5 * np.column_stack([np.cos(angle), np.sin(angle)])
    moved, shifted = upd[kind == 0], upd[kind == 1]
    geoms[moved] = _translate(geoms[moved], delta[kind == 0])
    geoms[shifted] = _shift_vertex(geoms[shifted], delta[kind == 1])
    area = frame["AREA"].to_numpy().copy()
    area[shifted] = np.rint(shapely.area(geoms[shifted])).astype(np.int64)
    block = np.array([v if isinstance(v, str) else None for v in frame["BLOCK_ID"]], dtype=object)
    pool = np.array(sorted({b for b in block.tolist() if b is not None}), dtype=object)
    block[upd[kind == 2]] = _new_block_id(rng, block[upd[kind == 2]], pool)
    frame = frame.assign(AREA=area, BLOCK_ID=block).set_geometry(geoms, crs=CRS)
    new = frame.iloc[dele].copy()
    new_geoms = _rebuilt(np.asarray(new.geometry.array, dtype=object))
    top = max((int(uri.rsplit("/", 1)[1]) for uri in frame["INSPIRE_ID"]), default=0)
    new = new.assign(
        INSPIRE_ID=_uris("building", np.arange(top + 1, top + 1 + deleted)),
        AREA=np.rint(shapely.area(new_geoms)).astype(np.int64),
    ).set_geometry(new_geoms, crs=CRS)
    keep = np.ones(n, dtype=bool)
    keep[dele] = False
    result = gpd.GeoDataFrame(
        pd.concat([frame[keep], new], ignore_index=True), geometry="geometry", crs=CRS
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    shutil.copyfile(src, out)
    _write(result, out, "Buildings")
    conn = sqlite3.connect(out, isolation_level=None)
    try:
        conn.execute("VACUUM")  # the replaced table left its pages behind
    finally:
        conn.close()
    return {"updated": int(updated), "deleted": int(deleted), "inserted": int(deleted)}


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench.generate --out X.gpkg [...]`: print the counts and the time as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.generate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="GeoPackage to write")
    parser.add_argument("--buildings", type=int, default=500_000)
    parser.add_argument(
        "--seed", type=int, default=None, help="random seed (default 1, or 2 with --mutate-from)"
    )
    parser.add_argument(
        "--layers", default=",".join(LAYERS), help="comma-separated subset of " + ",".join(LAYERS)
    )
    parser.add_argument(
        "--mutate-from",
        type=Path,
        default=None,
        help="write a changed copy of this GeoPackage instead of generating",
    )
    parser.add_argument(
        "--fraction", type=float, default=0.01, help="share of Buildings changed by --mutate-from"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.mutate_from is not None:
        seed = 2 if args.seed is None else args.seed
        counts = mutate(args.mutate_from, args.out, fraction=args.fraction, seed=seed)
    else:
        seed = 1 if args.seed is None else args.seed
        counts = generate(args.out, buildings=args.buildings, seed=seed, layers=args.layers)
    report = {
        "out": str(args.out),
        "seed": seed,
        "counts": counts,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
