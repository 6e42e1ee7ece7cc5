"""Raster layers in the configuration (`type: raster`): what is accepted, what is refused.

`urbis config check` opening the files (no CRS, no nodata, a corrupt file) is tested here too:
it needs no database.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import rasters
from urbis_core.config import load_config, read_config
from urbis_core.errors import ConfigError
from urbis_core.settings import Settings, SyncSettings
from urbis_sync.check import check_config

VECTOR = "  streets:\n    source: {kind: file, path: streets.gpkg}\n    key: ID\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "urbis.yaml"
    path.write_text(text)
    return path


def problems_of(tmp_path: Path, body: str) -> list[str]:
    return read_config(write(tmp_path, "layers:\n" + body))[1]


def test_a_raster_layer_beside_a_vector_one(tmp_path):
    path = write(
        tmp_path,
        "layers:\n" + VECTOR + "  terrain:\n    type: raster\n"
        "    title: {fr: Modèle de terrain, nl: Terreinmodel, en: Terrain model}\n"
        "    description: Digital terrain model\n"
        "    source: {kind: file, paths: ['dtm/*.tif']}\n"
        "    nodata: -9999\n"
        "    style: {colormap: terrain, rescale: [10, 120], hillshade: true, units: m}\n"
        "    schedule: 1d\n",
    )
    config = load_config(path)
    assert list(config.layers) == ["streets"]  # vector layers, unchanged
    assert list(config.rasters) == ["terrain"]
    assert config.all_ids() == ["streets", "terrain"]
    assert config.select([]) == ["streets", "terrain"]
    terrain = config.raster("terrain")
    assert terrain.title.nl == "Terreinmodel"
    assert terrain.source.paths == [(tmp_path / "dtm/*.tif").resolve()]
    assert terrain.nodata == -9999
    assert (terrain.style.colormap, terrain.style.rescale, terrain.style.hillshade) == (
        "terrain",
        (10.0, 120.0),
        True,
    )
    assert terrain.style.units == "m"
    with pytest.raises(ConfigError, match="'terrain' is a raster layer"):
        config.layer("terrain")
    with pytest.raises(ConfigError, match="'streets' is not a raster layer"):
        config.raster("streets")


def test_type_vector_may_be_said_and_is_the_default(tmp_path):
    config = load_config(
        write(tmp_path, "layers:\n  streets:\n    type: vector\n" + VECTOR.split("\n", 1)[1])
    )
    assert config.layers["streets"].key == "ID" and not config.rasters


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("    key: ID\n", "key"),
        ("    tiles: {maxzoom: 18}\n", "tiles"),
        ("    label: {fr: NAME}\n", "label"),
        ("    indexes: [TYPE]\n", "indexes"),
    ],
)
def test_vector_fields_are_refused_on_a_raster_layer(tmp_path, extra, field):
    problems = problems_of(
        tmp_path, "  terrain:\n    type: raster\n    source: {kind: file, path: a.tif}\n" + extra
    )
    assert problems == [
        f"{tmp_path / 'urbis.yaml'}: layer 'terrain': {field}: not used by a raster layer"
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("    type: grid\n    source: {kind: file, path: a.tif}\n", "type: unknown type 'grid'"),
        ("    type: raster\n", "source: missing (required)"),
        (
            "    type: raster\n    source: {kind: wfs, url: 'http://x', typename: t}\n",
            "source.kind: a raster layer reads files (kind: file), not 'wfs'",
        ),
        (
            "    type: raster\n    source: {kind: file, path: a.tif, srid: 3812}\n",
            "source.srid: not used by a raster layer (a raster layer declares 'srid' beside",
        ),
        (
            "    type: raster\n    source: {kind: file, path: a.tif}\n"
            "    style: {rescale: [9, 2]}\n",
            "style: rescale [9.0, 2.0]: the minimum must be below the maximum",
        ),
        (
            "    type: raster\n    source: {kind: file, path: a.tif}\n"
            "    style: {colormap: rainbow}\n",
            "style: colormap: unknown colour ramp 'rainbow'; one of greys, viridis, terrain",
        ),
        (
            "    type: raster\n    source: {kind: file, path: a.tif}\n    style: {units: ''}\n",
            "style.units: String should have at least 1 character",
        ),
        (
            "    type: raster\n    source: {kind: file, path: a.tif}\n    schedule: often\n",
            "schedule: 'often' is not a duration",
        ),
        (
            "    type: raster\n    source: {kind: file, path: a.tif}\n    colour: red\n",
            "colour: unknown field",
        ),
    ],
)
def test_raster_config_errors_name_the_field(tmp_path, body, expected):
    problems = problems_of(tmp_path, "  terrain:\n" + body)
    assert len(problems) == 1, problems
    assert "layer 'terrain'" in problems[0] and expected in problems[0], problems[0]


def test_sync_of_an_unknown_id_lists_rasters_too(tmp_path):
    config = load_config(
        write(
            tmp_path,
            "layers:\n  terrain:\n    type: raster\n    source: {kind: file, path: a.tif}\n",
        )
    )
    with pytest.raises(ConfigError, match=r"no layer 'dsm' \(configured layers: terrain\)"):
        config.select(["dsm"])


def raster_config(tmp_path: Path, source: str, extra: str = "") -> Path:
    return write(tmp_path, f"layers:\n  terrain:\n    type: raster\n    source: {source}\n{extra}")


def test_config_check_opens_the_raster_files(tmp_path):
    rasters.write_terrain(tmp_path / "dtm.tif")
    rasters.write_rgb(tmp_path / "ortho.tif")
    config = check_config(raster_config(tmp_path, "{kind: file, path: dtm.tif}"))
    assert list(config.rasters) == ["terrain"]


def test_config_check_wants_a_crs_and_a_nodata_for_each_file(tmp_path):
    bare = rasters.write_terrain(tmp_path / "bare.tif", crs=False, nodata=False)
    with pytest.raises(ConfigError) as err:
        check_config(raster_config(tmp_path, "{kind: file, path: bare.tif}"))
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert f"{bare}: the file carries no CRS; declare it with 'srid'" in lines[0]
    assert f"{bare}: the file declares no nodata value; declare it with 'nodata'" in lines[1]
    # Declared, the same file passes.
    check_config(
        raster_config(
            tmp_path, "{kind: file, path: bare.tif}", "    srid: 31370\n    nodata: -9999\n"
        )
    )


def test_config_check_refuses_a_declaration_that_contradicts_the_file(tmp_path):
    rasters.write_terrain(tmp_path / "dtm.tif")
    with pytest.raises(ConfigError) as err:
        check_config(
            raster_config(
                tmp_path, "{kind: file, path: dtm.tif}", "    srid: 3812\n    nodata: 0\n"
            )
        )
    message = str(err.value)
    assert "srid: 3812 is declared but the file says" in message
    assert "nodata: 0.0 is declared but the file says -9999.0" in message


def test_config_check_names_a_corrupt_file_and_a_missing_one(tmp_path):
    garbage = rasters.write_garbage(tmp_path / "garbage.tif")
    with pytest.raises(ConfigError, match=f"{garbage}: not a raster GDAL can read"):
        check_config(raster_config(tmp_path, "{kind: file, path: garbage.tif}"))
    with pytest.raises(ConfigError, match="source.paths: .*nothing-\\*.tif matches no file"):
        check_config(raster_config(tmp_path, "{kind: file, paths: ['nothing-*.tif']}"))


def test_config_check_refuses_a_mosaic_of_different_bands(tmp_path):
    (tmp_path / "tiles").mkdir()
    rasters.write_terrain(tmp_path / "tiles" / "a.tif")
    rgb = rasters.write_rgb(tmp_path / "tiles" / "b.tif")
    with pytest.raises(ConfigError, match=f"{rgb}: bands uint8, uint8, uint8 differ from"):
        check_config(raster_config(tmp_path, "{kind: file, paths: ['tiles/*.tif']}"))


def test_config_check_says_when_a_declared_srid_misplaces_the_data(tmp_path):
    rasters.write_terrain(tmp_path / "bare.tif", crs=False)
    with pytest.raises(ConfigError, match="srid: EPSG:4326 .* does not fit the data"):
        check_config(raster_config(tmp_path, "{kind: file, path: bare.tif}", "    srid: 4326\n"))


def test_raster_dir_defaults_under_the_home_and_is_configurable(tmp_path):
    home = tmp_path / "home"
    assert Settings.from_env({"URBIS_HOME": str(home)}).raster_dir == (home / "rasters").resolve()
    chosen = Settings.from_env({"URBIS_HOME": str(home), "URBIS_RASTER_DIR": str(tmp_path / "r")})
    assert chosen.raster_dir == (tmp_path / "r").resolve()
    assert chosen.sync().raster_dir == (tmp_path / "r").resolve()
    assert SyncSettings().raster_dir.parts[-2:] == (".urbis", "rasters")
