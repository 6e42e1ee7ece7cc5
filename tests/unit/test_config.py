from pathlib import Path

import pytest

from tests.conftest import SAMPLE_CONFIG, SAMPLE_DIR, SAMPLE_LAYERS
from urbis_core.config import FileSource, load_config, read_config
from urbis_core.errors import ConfigError
from urbis_core.paths import DEFAULT_CONFIG
from urbis_core.settings import ApiSettings, DatabaseRoles, ServerLimits, Settings, SyncSettings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "urbis.yaml"
    path.write_text(text)
    return path


def test_sample_config_resolves_paths_against_its_folder():
    config = load_config(SAMPLE_CONFIG)
    assert list(config.layers) == SAMPLE_LAYERS
    source = config.layers["municipalities"].source
    assert isinstance(source, FileSource)
    assert source.path is not None
    assert source.path.resolve() == (SAMPLE_DIR / "UrbAdm_MUNICIPALITY.shp").resolve()
    assert source.srid == 31370
    assert config.layers["municipalities"].title.nl == "Gemeenten"
    assert config.layers["addresses"].key == "ID"
    buildings = config.layers["buildings"].source
    assert isinstance(buildings, FileSource)  # one pattern, resolved against the folder too
    assert buildings.paths == [(SAMPLE_DIR / "geoserver/bxl-*/buildings.geojson").resolve()]
    assert buildings.drop_fields == ["id"]


def test_unknown_kind_names_file_layer_and_field(tmp_path):
    path = write(tmp_path, "layers:\n  streets:\n    source: {kind: ftp, url: x}\n    key: ID\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.count("\n") == 0
    assert str(path) in message and "layer 'streets'" in message
    assert "source.kind: unknown kind 'ftp'" in message


def test_missing_key_is_named(tmp_path):
    path = write(tmp_path, "layers:\n  streets:\n    source: {kind: file, path: a.gpkg}\n")
    with pytest.raises(ConfigError, match=r"layer 'streets': key: missing"):
        load_config(path)


def test_file_source_needs_exactly_one_location(tmp_path):
    path = write(tmp_path, "layers:\n  a:\n    source: {kind: file}\n    key: ID\n")
    with pytest.raises(ConfigError, match="exactly one of 'path', 'paths' or 'url'"):
        load_config(path)


def test_paths_take_one_pattern_or_a_list_never_none_and_never_with_path(tmp_path):
    path = write(
        tmp_path,
        "layers:\n  a:\n    source: {kind: file, paths: [x/*.geojson, y.gpkg]}\n    key: K\n"
        "  b:\n    source: {kind: file, paths: []}\n    key: K\n"
        "  c:\n    source: {kind: file, path: a.gpkg, paths: b.gpkg}\n    key: K\n",
    )
    config, problems = read_config(path)
    source = config.layers["a"].source
    assert isinstance(source, FileSource)
    assert source.paths == [tmp_path / "x/*.geojson", tmp_path / "y.gpkg"]
    assert problems == [
        f"{path}: layer 'b': source: 'paths' is empty: list the files or glob patterns to read",
        f"{path}: layer 'c': source: a file source needs exactly one of 'path', 'paths' or 'url'",
    ]


def test_a_dropped_field_cannot_be_the_key(tmp_path):
    path = write(
        tmp_path,
        "layers:\n  a:\n    source: {kind: file, path: a.geojson, drop_fields: [id]}\n"
        "    key: id\n",
    )
    with pytest.raises(ConfigError, match=r"layer 'a': source.drop_fields: drops the key$"):
        load_config(path)


def test_wfs_source_fields_are_checked(tmp_path):
    path = write(
        tmp_path,
        "layers:\n  b:\n    source: {kind: wfs, url: 'https://x/wfs'}\n    key: INSPIRE_ID\n",
    )
    with pytest.raises(ConfigError, match=r"layer 'b': source.typename: missing"):
        load_config(path)


def test_unknown_field_and_bad_layer_id(tmp_path):
    path = write(
        tmp_path,
        "layers:\n  Bad-Id:\n    source: {kind: file, path: a}\n"
        "    key: K\n  ok:\n    source: {kind: file, path: a}\n"
        "    key: K\n    colour: red\n",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert "layer 'Bad-Id'" in lines[0] and "lower case" in lines[0]
    assert "layer 'ok': colour: unknown field" in lines[1]


def test_not_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "layers: [unclosed"))
    with pytest.raises(ConfigError, match="non-empty 'layers'"):
        load_config(write(tmp_path, "layers: {}\n"))


def test_schedule_must_be_a_duration(tmp_path):
    path = write(
        tmp_path,
        "layers:\n  a:\n    source: {kind: file, path: a}\n    key: K\n    schedule: weekly\n",
    )
    with pytest.raises(ConfigError, match="schedule: 'weekly' is not a duration"):
        load_config(path)


def test_every_problem_of_the_file_in_one_pass(tmp_path):
    path = write(
        tmp_path,
        "layers:\n"
        "  a:\n    source: {kind: ftp, url: x}\n"
        "  b:\n    source: {kind: wfs, url: 'https://x/wfs', format: kml}\n"
        "    key: K\n    schedule: weekly\n"
        "  Bad-Id:\n    source: {kind: file, path: a}\n    key: K\n"
        "  ok:\n    source: {kind: file, path: a.gpkg}\n    key: K\n"
        "colours: red\n",
    )
    config, problems = read_config(path)
    assert list(config.layers) == ["ok"]  # the valid layers are kept for the source checks
    assert problems == [
        f"{path}: layer 'a': source.kind: unknown kind 'ftp' (expected one of: file, wfs, "
        "ogcapi, feed)",
        f"{path}: layer 'a': key: missing (required)",
        f"{path}: layer 'b': source.typename: missing (required)",
        f"{path}: layer 'b': source.format: Input should be 'geojson' or 'gml'",
        f"{path}: layer 'b': schedule: 'weekly' is not a duration such as 15m, 6h or 1d",
        f"{path}: layer 'Bad-Id': the id must be lower case letters, digits and _ (it names "
        "the table and the collection)",
        f"{path}: unknown top-level key 'colours'",
    ]
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).splitlines() == problems


def test_wfs_format_is_auto_unless_forced(tmp_path):
    path = write(
        tmp_path,
        "layers:\n  a:\n    source: {kind: wfs, url: u, typename: t}\n"
        "    key: K\n  b:\n    source: {kind: wfs, url: u, typename: t, "
        "format: gml}\n    key: K\n",
    )
    config = load_config(path)
    assert [layer.source.format for layer in config.layers.values()] == [None, "gml"]


def test_select_checks_the_layer_ids_and_lists_the_known_ones():
    config = load_config(SAMPLE_CONFIG)
    assert config.select([]) == SAMPLE_LAYERS
    assert config.select(["addresses", "municipalities", "addresses"]) == [
        "addresses",
        "municipalities",
    ]
    with pytest.raises(ConfigError) as err:
        config.select(["addresses", "streets", "blocks"])
    assert str(err.value) == (
        f"{config.path}: no layer 'streets', 'blocks' (configured "
        f"layers: {', '.join(sorted(SAMPLE_LAYERS))})"
    )


def test_config_option_wins_over_the_environment(tmp_path):
    env = {"URBIS_CONFIG": str(tmp_path / "from-env.yaml")}
    settings = Settings.from_env(env)
    assert settings.config_path(None) == tmp_path / "from-env.yaml"
    assert settings.config_path(tmp_path / "option.yaml") == tmp_path / "option.yaml"
    assert Settings.from_env({}).config_path(None) == DEFAULT_CONFIG


def test_unset_variables_give_the_settings_objects_their_own_defaults():
    settings = Settings.from_env({})
    assert settings.api("postgresql://x@y/z") == ApiSettings(database_url="postgresql://x@y/z")
    assert settings.sync() == SyncSettings()
    assert settings.limits() == ServerLimits()


def test_the_basemap_is_a_tile_url_template_or_unset():
    assert Settings.from_env({}).api("postgresql://x@y/z").basemap_wmts_url is None
    template = "https://tiles.example.org/wmts/{layer}/{z}/{x}/{y}.png"
    settings = Settings.from_env({"URBIS_BASEMAP_WMTS_URL": template})
    assert settings.api("postgresql://x@y/z").basemap_wmts_url == template
    for bad, words in (
        ("tiles.example.org/{z}/{x}/{y}", "is not an http(s) URL"),
        ("https://tiles.example.org/wmts?REQUEST=GetCapabilities", "lacks {z}, {x}, {y}"),
    ):
        with pytest.raises(ConfigError) as err:
            Settings.from_env({"URBIS_BASEMAP_WMTS_URL": bad})
        assert str(err.value).startswith(f"environment variable URBIS_BASEMAP_WMTS_URL={bad!r}")
        assert words in str(err.value)


def test_the_database_roles_and_the_api_url():
    database = Settings.from_env({}).database()
    assert database.roles == DatabaseRoles("urbis_reader", "urbis_writer")
    assert database.api_url is None
    database = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://w@db/urbis",
            "DATABASE_URL_API": "postgresql://r@db/urbis",
            "URBIS_DB_READER_ROLE": "geo_read",
            "URBIS_DB_WRITER_ROLE": "geo_write",
        }
    ).database()
    assert (database.url, database.api_url) == (
        "postgresql://w@db/urbis",
        "postgresql://r@db/urbis",
    )
    assert database.roles == DatabaseRoles(reader="geo_read", writer="geo_write")


@pytest.mark.parametrize(
    "name, words",
    [
        ('reader"; DROP ROLE x; --', "is not a role name"),
        ("Reader", "is not a role name"),
        ("pg_read_server_files", "PostgreSQL's own"),
        ("r" * 64, "is not a role name"),
    ],
)
def test_a_role_name_is_a_plain_identifier(name, words):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"URBIS_DB_READER_ROLE": name})
    assert str(err.value).startswith(f"environment variable URBIS_DB_READER_ROLE={name!r}")
    assert words in str(err.value)


def test_the_reader_is_not_the_writer():
    settings = Settings.from_env({"URBIS_DB_READER_ROLE": "urbis_writer"})
    with pytest.raises(ConfigError) as err:
        settings.database()
    assert "the API's reader must not be the writer" in str(err.value)
