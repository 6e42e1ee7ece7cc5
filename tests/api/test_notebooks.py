"""The notebooks run, top to bottom, against a real server, say the right things, end on a figure.

The server holds the bundled sample with a history (`tests/support/history_sample.py`: the
municipalities synced, then synced again with a boundary moved). What each notebook prints is
checked against numbers computed here from the sample's files and the database, not copied
from a run.
"""

from __future__ import annotations

import ast
import base64
import math
import os
import re
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import nbformat
import pytest
import sqlalchemy as sa
import yaml
from nbclient import NotebookClient
from shapely import line_merge
from shapely.geometry import box

from tests.api.conftest import start_server, sync_file_layer
from tests.api.geocode_sample import read_sample_addresses
from tests.conftest import ARTIFACTS, ROOT, SAMPLE_CONFIG, drop_database, synced_sample_database
from tests.support.history_sample import GAINER, LOSER, BoundaryCorrection, boundary_correction
from tests.support.sample_cells import read_cells, read_current_municipalities
from urbis_core.db import create_sync_engine

pytestmark = pytest.mark.api

NOTEBOOKS = ROOT / "notebooks"
SECONDS_PER_NOTEBOOK = 60  # each runs in well under 30 s here; the bound catches a hang


@dataclass(frozen=True)
class NotebookServer:
    api: str
    database_url: str
    correction: BoundaryCorrection


@dataclass(frozen=True)
class Run:
    notebook: Any  # the executed nbformat notebook
    text: str  # everything it printed or displayed as text, in order
    seconds: float

    def after(self, words: str) -> str:
        """The rest of the line that follows `words` in the output."""
        assert words in self.text, f"{words!r} not in the notebook's output:\n{self.text}"
        return self.text.split(words, 1)[1].split("\n", 1)[0]


@pytest.fixture(scope="module")
def server(admin_url: str, synced_template_url: str, tmp_path_factory) -> Iterator[NotebookServer]:
    name = f"nb_{uuid.uuid4().hex[:10]}"
    url = synced_sample_database(admin_url, synced_template_url, name)
    correction = boundary_correction(tmp_path_factory.mktemp("history"))
    sync_file_layer(url, correction.config, "municipalities")
    proc, base = start_server(url)
    yield NotebookServer(base, url, correction)
    proc.terminate()
    proc.wait(timeout=10)
    drop_database(admin_url, name)


def run_notebook(path: Path, **environment: str) -> Run:
    notebook = nbformat.read(path, as_version=4)
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)  # the kernel inherits the environment
    started = time.monotonic()
    try:
        NotebookClient(
            notebook,
            timeout=SECONDS_PER_NOTEBOOK,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    # A print may reach the notebook in several stream messages: their texts are joined as
    # they came; a displayed value stands on lines of its own.
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                texts.append(output.get("text", ""))
            else:
                texts.append("\n" + output.get("data", {}).get("text/plain", "") + "\n")
    return Run(notebook, "".join(texts), time.monotonic() - started)


def assert_ends_with_a_figure(run: Run, name: str) -> None:
    """The last code cell drew a figure, kept as `test-artifacts/notebooks/<name>.png`."""
    last = [cell for cell in run.notebook.cells if cell.cell_type == "code"][-1]
    images = [
        output["data"]["image/png"]
        for output in last.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert images, [output.get("output_type") for output in last.get("outputs", [])]
    png = base64.b64decode(images[-1])
    assert png.startswith(b"\x89PNG") and len(png) > 10_000  # a drawn figure, not a blank one
    folder = ARTIFACTS / "notebooks"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.png").write_bytes(png)


def municipalities_with_addresses(correction: BoundaryCorrection) -> dict[str, int]:
    """Addresses per municipality, joined here from the sample's own files."""
    joined = gpd.sjoin(
        read_sample_addresses(), correction.after[["NAME_FRE", "geometry"]], predicate="within"
    )
    return joined.groupby("NAME_FRE").size().to_dict()


def test_addresses_per_municipality_notebook(server):
    run = run_notebook(NOTEBOOKS / "01_addresses_per_municipality.ipynb", URBIS_API=server.api)
    assert "31370 19 municipalities, 666 addresses" in run.text
    assert "{'Saint-Gilles': 419, 'Bruxelles': 247}" in run.text
    assert float(run.after("largest area difference: ").split(" m²")[0]) < 1.0
    assert_ends_with_a_figure(run, "01_addresses_per_municipality")


def test_analysts_notebook(server):
    run = run_notebook(NOTEBOOKS / "03_analysts_geodataframes.ipynb", URBIS_API=server.api)
    sample = read_sample_addresses()
    municipalities = server.correction.after
    assert run.after("OAPIF: ") == (
        f"{len(sample)} addresses, {len(municipalities)} municipalities, CRS EPSG:31370"
    )
    assert run.after("OWSLib: ") == (
        f"{len(sample)} addresses in {-(-len(sample) // 500)} pages (numberMatched {len(sample)})"
    )
    same, gap = run.after("same keys: ").split(", largest distance between the two readings: ")
    assert same == "True" and float(gap.split(" mm")[0]) < 1.0  # CRS84 at 9 decimals: < 1 mm
    expected = municipalities_with_addresses(server.correction)
    assert expected == {"Saint-Gilles": 419, "Bruxelles": 247}
    assert ast.literal_eval(run.after("spatial join: ")) == expected
    assert ast.literal_eval(run.after("server's count: ")) == expected
    named = sample.dropna(subset=["MU_NAME_FR"])
    assert run.after("attribute and geometry agree for ") == (
        f"{len(named)} of {len(named)} named addresses; "
        f"{len(sample) - len(named)} without a name in the source"
    )
    areas = municipalities.set_index("NAME_FRE").area / 1e6
    assert run.after("region: ").startswith(f"{areas.sum():.2f} km² in 19 municipalities")
    assert run.after("largest: ") == (
        f"{areas.idxmax()} {areas.max():.2f} km², smallest: {areas.idxmin()} {areas.min():.2f} km²"
    )
    assert float(run.after("largest gap between geometry and AREA: ").split(" m²")[0]) < 1.0
    # Legacy and current outlines, compared here from the files.
    current = read_current_municipalities().set_index("NISCODE")
    legacy = municipalities.set_index("NAT_CODE")
    common = legacy.index.intersection(current.index)
    differing = {
        current.loc[k, "NAMEFRE"]: legacy.geometry[k].symmetric_difference(current.geometry[k]).area
        for k in common
    }
    line = re.search(
        r"^(\d+) municipalities in both products; ground differing: (.*)$", run.text, re.M
    )
    assert line and int(line.group(1)) == len(common) == 12, run.text
    median, largest, name = re.fullmatch(
        r"median ([\d.]+) m², largest ([\d.]+) m² \((.+)\)", line.group(2)
    ).groups()
    assert abs(float(median) - statistics.median(differing.values())) < 1.0
    assert abs(float(largest) - max(differing.values())) < 1.0
    assert name == max(differing, key=differing.__getitem__)
    assert "folium.folium.Map" in run.text  # the interactive map was made
    assert_ends_with_a_figure(run, "03_analysts_geodataframes")


def test_history_notebook(server):
    run = run_notebook(NOTEBOOKS / "04_history.ipynb", URBIS_API=server.api)
    engine = create_sync_engine(server.database_url)
    try:
        with engine.connect() as conn:
            loaded, corrected = conn.execute(
                sa.text("SELECT DISTINCT valid_from FROM urbis.municipalities ORDER BY 1")
            ).scalars()
    finally:
        engine.dispose()
    assert run.after("municipalities (key NAT_CODE, version 2): ") == "2 runs changed it"
    assert f"  {loaded.isoformat()} 19 inserted\n  {corrected.isoformat()} 2 updated" in run.text
    assert run.after(f"since {loaded.isoformat()}: ") == "2 changes {'update': 2}"
    assert run.after("then: ") == "19 features, now: 19 features"
    assert run.after("inserted: ") == "[] deleted: []"
    piece = server.correction.piece.area
    before = server.correction.before.set_index("NAT_CODE").area
    for key, gained in ((GAINER, piece), (LOSER, -piece)):
        line = re.search(rf"^ *{key} .*$", run.text, re.MULTILINE)
        assert line, run.text
        assert "VERSIONID, AREA, BEGIN_LIFE" in line.group()
        then, now, gain, changed = (float(n) for n in line.group().split()[-4:])
        assert abs(then - before[key]) < 0.1 and abs(now - (before[key] + gained)) < 0.1
        assert abs(gain - gained) < 0.2 and abs(changed - piece) < 0.2
    assert_ends_with_a_figure(run, "04_history")


def lookup_lines(run: Run, after: str) -> dict[str, str]:
    """The `  layer: names` lines the notebook printed after the line starting with `after`."""
    block = run.text.split(after, 1)[1].split("\n")[1:]
    found = {}
    for line in block:
        if not line.startswith("  "):
            break
        layer, names = line.strip().split(": ", 1)
        found[layer] = names
    return found


def names_at(frame: gpd.GeoDataFrame, field: str, point) -> str:
    return ", ".join(frame.loc[frame.contains(point), field])


def test_planners_notebook(server):
    run = run_notebook(NOTEBOOKS / "02_planners_questions.ipynb", URBIS_API=server.api)
    municipalities = server.correction.after
    current = read_current_municipalities()
    buildings = read_cells("buildings")
    addresses = read_sample_addresses()

    # The address, where the sample's source puts it, and what lies there.
    victoire = addresses[
        (addresses["PW_NAME_FR"] == "Rue de la Victoire") & (addresses["ADRN"] == "2")
    ]
    assert len(victoire) == 1
    where = victoire.geometry.iloc[0]
    label = "Rue de la Victoire 2, 1060 Saint-Gilles"
    assert run.after(f"geocoded: {label} (exact) at ") == f"{where.x:.1f}, {where.y:.1f}"
    here = lookup_lines(run, f"geocoded: {label}")
    assert here["municipalities"] == names_at(municipalities, "NAME_FRE", where) == "Saint-Gilles"
    assert here["current_municipalities"] == names_at(current, "NAMEFRE", where)
    assert here["addresses"] == "Rue de la Victoire"  # the address itself
    assert "buildings" not in here
    # No sample building near the sample's addresses: the right answer is none.
    expected_near_address = int((buildings.distance(where) <= 200).sum())
    assert expected_near_address == 0
    assert run.after(f"buildings within 200 m of {label}: ") == str(expected_near_address)

    # The middle of the Route de Lennik, from the street axes' files.
    axes = read_cells("street_axes")
    lennik = axes[axes["STRNAMEFRE"] == "Route de Lennik"]
    street = line_merge(lennik.geometry.union_all())
    middle = street.interpolate(0.5, normalized=True)
    assert run.after("Route de Lennik: ") == (
        f"{len(lennik)} axes, {street.length:.1f} m; middle at {middle.x:.1f}, {middle.y:.1f}"
    )
    there = lookup_lines(run, "Route de Lennik: ")
    assert there["municipalities"] == names_at(municipalities, "NAME_FRE", middle) == "Anderlecht"
    assert there["current_municipalities"] == names_at(current, "NAMEFRE", middle)
    assert there["street_axes"] == "Route de Lennik"
    distances = buildings.distance(middle)
    near = buildings[distances <= 200]
    assert len(near) > 10
    assert run.after("buildings within 200 m of the middle of Route de Lennik: ") == (
        f"{len(near)}, {near['AREA'].sum()} m² of footprint (AREA), nearest {distances.min():.1f} m"
    )

    # Per municipality: addresses by a spatial join, buildings by the point on their surface.
    assert ast.literal_eval(run.after("addresses per municipality: ")) == (
        municipalities_with_addresses(server.correction)
    )
    inside = gpd.sjoin(
        gpd.GeoDataFrame(buildings, geometry=buildings.representative_point(), crs=31370),
        municipalities[["NAME_FRE", "geometry"]],
        predicate="within",
    )
    counts = inside.groupby("NAME_FRE").size().to_dict()
    assert ast.literal_eval(run.after("buildings per municipality: ")) == counts
    areas = ast.literal_eval(run.after("building area per municipality (m²): "))
    assert set(areas) == set(counts)
    for name, area in areas.items():
        polygon = municipalities.loc[municipalities["NAME_FRE"] == name].geometry.iloc[0]
        assert abs(area - buildings.intersection(polygon).area.sum()) < 0.1
    assert run.after("buildings in no municipality: ").startswith(
        f"{len(buildings) - sum(counts.values())} of {len(buildings)} "
    )
    assert_ends_with_a_figure(run, "02_planners_questions")


def tiles_over(bounds: tuple[float, float, float, float], z: int) -> list[tuple[int, int]]:
    """The Web Mercator tiles of zoom `z` over a CRS84 box (mercantile's arithmetic)."""

    def tile(lon: float, lat: float) -> tuple[int, int]:
        n = 2**z
        y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
        return int((lon + 180) / 360 * n), int(y)

    (x0, y0), (x1, y1) = tile(bounds[0], bounds[3]), tile(bounds[2], bounds[1])
    return [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def test_tiles_and_exports_notebook(server, tmp_path):
    run = run_notebook(
        NOTEBOOKS / "05_tiles_and_exports.ipynb",
        URBIS_API=server.api,
        DATABASE_URL=server.database_url,  # `urbis tiles seed` reads the database
        URBIS_NOTEBOOK_DIR=str(tmp_path),
    )
    buildings = read_cells("buildings").drop(columns="id")
    layer = yaml.safe_load(SAMPLE_CONFIG.read_text())["layers"]["buildings"]
    assert run.after("TileJSON 3.0.0: ") == (
        f"zooms {layer['tiles']['minzoom']}-22, layer 'buildings' with "
        f"{len(buildings.columns) - 1} fields"
    )
    printed = ast.literal_eval(run.after("bounds: "))
    assert (
        max(abs(a - b) for a, b in zip(printed, buildings.to_crs(4326).total_bounds, strict=True))
        < 1e-3
    )

    # The tile: every building meeting it (grown by the 64/4096 buffer), none smaller than a
    # pixel at zoom 16 in the sample.
    z, x, y = (int(n) for n in run.after("tile ").split(" ")[0].split("/"))
    half = 20037508.342789244
    size = 2 * half / 2**z
    minx, maxy = -half + x * size, half - y * size
    grown = box(minx, maxy - size, minx + size, maxy).buffer(size * 64 / 4096, join_style="mitre")
    meeting = int(buildings.to_crs(3857).intersects(grown).sum())
    assert run.after(f"tile {z}/{x}/{y} from the API: ") == (
        f"{meeting} features of 'buildings', the first feature among them: True"
    )
    assert run.after(f"tile {z}/{x}/{y} from the archive: ") == (
        f"{meeting} features, same as the API's: True"
    )
    assert run.after(f"GeoPackage features meeting tile {z}/{x}/{y} with its buffer: ") == str(
        meeting
    )

    # The archive holds, zoom by zoom, exactly the tiles the server answers with content.
    extent = tuple(buildings.to_crs(4326).total_bounds)
    served: dict[int, int] = {}
    with httpx.Client(base_url=server.api, timeout=30) as client:
        for zoom in (14, 15, 16):
            for col, row in tiles_over(extent, zoom):
                answer = client.get(
                    f"/tiles/WebMercatorQuad/{zoom}/{col}/{row}?collections=buildings"
                )
                assert answer.status_code in (200, 204), answer.text
                served[zoom] = served.get(zoom, 0) + (answer.status_code == 200)
    assert ast.literal_eval(run.after("tiles per zoom: ")) == served
    assert run.after("archive: ").startswith(
        f"{sum(served.values())} tiles, zooms 14-16, "
        f"{(tmp_path / 'buildings.pmtiles').stat().st_size} bytes, layers ['buildings']"
    )

    # The downloads hold every building of the sample, with its area.
    assert run.after("GeoPackage: ") == (
        f"{len(buildings)} features, CRS EPSG:31370; CSV: {len(buildings)} rows; "
        f"featureCount {len(buildings)}"
    )
    assert run.after("same keys: ") == "True"
    areas = re.findall(r"[\d.]+", run.after("total area: "))
    assert abs(float(areas[0]) - buildings.area.sum()) < 0.1
    assert abs(float(areas[1]) - buildings.area.sum()) < 0.1
    assert float(areas[2]) < 0.01  # WKT in millimetres against the GeoPackage's doubles
    assert_ends_with_a_figure(run, "05_tiles_and_exports")
