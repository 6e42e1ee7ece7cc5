"""Feature-level reconciliation on a real PostGIS: inserts, updates, deletes, history, drift."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import geopandas as gpd
import psycopg
import pyogrio
import pytest
import shapely
import sqlalchemy as sa

from tests.conftest import ROOT, SAMPLE_DIR
from tests.support.layers import write_geojson
from urbis_core.changes import CHANNEL
from urbis_core.config import load_config
from urbis_sync.run import sync_layer

GEOSERVER = ROOT / "data" / "sample" / "geoserver"


def rows(engine: sa.Engine, query: str, **params) -> list:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(query), params))


def scalar(engine: sa.Engine, query: str, **params):
    return rows(engine, query, **params)[0][0]


def legacy_municipalities(tmp_path: Path) -> gpd.GeoDataFrame:
    """The bundled legacy shapefile, read from a copy (it ships without .shx)."""
    for suffix in (".shp", ".dbf"):
        shutil.copyfile(SAMPLE_DIR / f"UrbAdm_MUNICIPALITY{suffix}", tmp_path / f"m{suffix}")
    pyogrio.set_gdal_config_options({"SHAPE_RESTORE_SHX": "YES"})
    try:
        frame = gpd.read_file(tmp_path / "m.shp").set_crs(31370)
    finally:
        pyogrio.set_gdal_config_options({"SHAPE_RESTORE_SHX": None})
    return frame


class Layer:
    """A GeoPackage source the test rewrites between runs, and its config."""

    def __init__(self, tmp_path: Path, frame: gpd.GeoDataFrame, key: str) -> None:
        self.path = tmp_path / "layer.gpkg"
        self.config_path = tmp_path / "urbis.yaml"
        self.config_path.write_text(
            f"layers:\n  muni:\n    source: {{kind: file, path: {self.path}}}\n    key: {key}\n"
        )
        self.write(frame)

    def write(self, frame: gpd.GeoDataFrame) -> None:
        frame.to_file(self.path, driver="GPKG", layer="muni", engine="pyogrio")

    def sync_report(self, engine: sa.Engine):
        return sync_layer(engine, load_config(self.config_path), "muni")

    def sync(self, engine: sa.Engine):
        report = self.sync_report(engine)
        assert report.status == "success", report.error
        return report


def test_unchanged_source_writes_nothing(engine, tmp_path):
    layer = Layer(tmp_path, legacy_municipalities(tmp_path), "NAT_CODE")
    first = layer.sync(engine)
    assert (first.inserted, first.version) == (19, 1)
    before = rows(engine, 'SELECT "NAT_CODE", valid_from, xmin::text FROM urbis.muni ORDER BY 1')

    again = layer.sync(engine)
    assert (again.inserted, again.updated, again.deleted, again.version) == (0, 0, 0, 1)
    after = rows(engine, 'SELECT "NAT_CODE", valid_from, xmin::text FROM urbis.muni ORDER BY 1')
    assert after == before  # not one row rewritten (same xmin)
    assert scalar(engine, "SELECT count(*) FROM urbis_history.muni") == 0
    assert scalar(engine, "SELECT count(*) FROM urbis_meta.change_log") == 1  # the first load
    assert scalar(engine, "SELECT version FROM urbis_meta.layer_catalog") == 1


def test_changes_are_applied_by_key_with_history_change_log_and_notify(
    engine, database_url, tmp_path
):
    frame = legacy_municipalities(tmp_path)
    layer = Layer(tmp_path, frame, "NAT_CODE")
    layer.sync(engine)
    loaded_at = scalar(engine, "SELECT max(valid_from) FROM urbis.muni")

    changed = frame.copy()
    forest = changed["NAT_CODE"] == "21007"
    changed.loc[forest, "NAME_FRE"] = "Forest (renamed)"
    jette = changed.index[changed["NAT_CODE"] == "21010"][0]
    changed.loc[jette, "geometry"] = shapely.affinity.translate(
        changed.loc[jette, "geometry"], xoff=2.0
    )
    # Float noise well below the 1 mm grid is not a change.
    evere = changed.index[changed["NAT_CODE"] == "21006"][0]
    changed.loc[evere, "geometry"] = shapely.affinity.translate(
        changed.loc[evere, "geometry"], xoff=1e-7
    )
    changed = changed[changed["NAT_CODE"] != "21011"]  # Koekelberg goes
    newcomer = frame[frame["NAT_CODE"] == "21013"].copy()
    newcomer["NAT_CODE"] = "21099"
    newcomer["geometry"] = newcomer.translate(xoff=30_000)
    changed = gpd.GeoDataFrame(gpd.pd.concat([changed, newcomer], ignore_index=True), crs=31370)
    layer.write(changed)

    listener = psycopg.connect(database_url, autocommit=True)
    listener.execute(f"LISTEN {CHANNEL}")
    report = layer.sync(engine)
    notes = list(listener.notifies(timeout=5, stop_after=1))
    listener.close()
    assert (report.inserted, report.updated, report.deleted) == (1, 2, 1)
    assert report.version == 2
    payload = json.loads(notes[0].payload)
    assert payload["layer"] == "muni" and payload["version"] == 2

    assert (
        scalar(engine, 'SELECT "NAME_FRE" FROM urbis.muni WHERE "NAT_CODE" = \'21007\'')
        == "Forest (renamed)"
    )
    assert scalar(engine, "SELECT count(*) FROM urbis.muni") == 19
    history = {
        r.NAT_CODE: (r.op, r.NAME_FRE)
        for r in rows(engine, 'SELECT "NAT_CODE", "NAME_FRE", op FROM urbis_history.muni')
    }
    assert history == {
        "21007": ("update", "Forest"),
        "21010": ("update", "Jette"),
        "21011": ("delete", "Koekelberg"),
    }
    validity = rows(engine, "SELECT DISTINCT valid_from, valid_to FROM urbis_history.muni")
    assert len(validity) == 1 and validity[0][0] == loaded_at
    inserted_at = scalar(engine, "SELECT valid_from FROM urbis.muni WHERE \"NAT_CODE\" = '21099'")
    assert validity[0][1] == inserted_at

    # The change log's bbox covers what changed (old and new shapes), not the whole layer.
    changed_bbox = rows(
        engine,
        "SELECT ST_XMin(bbox), ST_YMin(bbox), ST_XMax(bbox), "
        "ST_YMax(bbox), inserted, updated, deleted "
        "FROM urbis_meta.change_log WHERE version = 2",
    )[0]
    expected = gpd.GeoSeries(
        [
            *frame[frame["NAT_CODE"].isin(["21007", "21010", "21011"])].geometry,
            changed.loc[jette, "geometry"],
            *newcomer.geometry,
        ],
        crs=31370,
    ).total_bounds
    assert list(changed_bbox[:4]) == pytest.approx(list(expected), abs=1e-6)
    assert tuple(changed_bbox[4:]) == (1, 2, 1)
    run = rows(
        engine,
        "SELECT status, fetched, inserted, updated, deleted, version "
        "FROM urbis_meta.sync_run ORDER BY id DESC LIMIT 1",
    )[0]
    assert tuple(run) == ("success", 19, 1, 2, 1, 2)


def test_schema_drift_rebuilds_and_keeps_history(engine, tmp_path):
    frame = legacy_municipalities(tmp_path)
    layer = Layer(tmp_path, frame, "NAT_CODE")
    layer.sync(engine)
    wider = frame.assign(POPULATION=1000).drop(columns=["SHORT_FRE"])
    layer.write(wider)
    report = layer.sync(engine)
    assert report.drift == "added POPULATION (bigint); dropped SHORT_FRE"
    assert (report.inserted, report.updated, report.deleted, report.version) == (0, 19, 0, 2)
    columns = {
        r[0]
        for r in rows(
            engine,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'urbis' AND table_name = 'muni'",
        )
    }
    assert "POPULATION" in columns and "SHORT_FRE" not in columns
    # History keeps the old rows, with the column that no longer exists.
    assert scalar(engine, 'SELECT count("SHORT_FRE") FROM urbis_history.muni') == 19
    assert (
        scalar(engine, "SELECT drift FROM urbis_meta.sync_run ORDER BY id DESC LIMIT 1")
        == report.drift
    )
    catalog = scalar(engine, "SELECT columns FROM urbis_meta.layer_catalog")
    assert {"name": "POPULATION", "type": "bigint"} in catalog


def current_municipalities(tmp_path: Path) -> Path:
    """The 12 recorded current-schema municipalities merged into one GeoJSON file."""
    features = []
    for path in sorted((GEOSERVER / "municipalities").glob("*.geojson")):
        features += json.loads(path.read_text())["features"]
    return write_geojson(tmp_path / "current.geojson", features)


def test_legacy_to_current_product_is_a_set_of_updates_by_nis_code(engine, tmp_path):
    legacy = legacy_municipalities(tmp_path)
    layer = Layer(tmp_path, legacy, "NAT_CODE")
    layer.sync(engine)
    current = current_municipalities(tmp_path)
    layer.config_path.write_text(
        f"layers:\n  muni:\n    source: {{kind: file, path: {current}}}\n    key: NISCODE\n"
    )
    report = layer.sync(engine)
    assert (report.inserted, report.updated, report.deleted) == (0, 12, 7)
    assert report.drift is not None and "added NISCODE" in report.drift
    ixelles = rows(
        engine,
        'SELECT "NAMEFRE", "INSPIRE_ID", ST_Area(geom) FROM urbis.muni '
        "WHERE \"NISCODE\"::text = '21009'",
    )[0]
    assert ixelles[0] == "Ixelles"
    assert ixelles[1].startswith("https://databrussels.be/id/municipality/")
    assert ixelles[2] == pytest.approx(6_411_275.64, abs=1.0)
    old = rows(
        engine,
        'SELECT "NAME_FRE", "INSPIRE_ID", op, ST_Area(geom) '
        "FROM urbis_history.muni WHERE \"NAT_CODE\" = '21009'",
    )[0]
    legacy_id = legacy.loc[legacy["NAT_CODE"] == "21009", "INSPIRE_ID"].item()
    assert legacy_id.startswith("BE.BRUSSELS.BRIC.ADM.MU.")
    assert old[:3] == ("Ixelles", legacy_id, "update")
    assert old[3] == pytest.approx(6_406_685.25, abs=1.0)


def test_a_table_from_the_full_replace_version_is_upgraded(engine, tmp_path):
    layer = Layer(tmp_path, legacy_municipalities(tmp_path), "NAT_CODE")
    layer.sync(engine)
    with engine.begin() as conn:  # what the first version of the sync left behind
        conn.execute(sa.text("ALTER TABLE urbis.muni DROP COLUMN row_hash, DROP COLUMN valid_from"))
        conn.execute(sa.text("DROP TABLE urbis_history.muni"))
    report = layer.sync(engine)
    assert report.drift is not None and "earlier version" in report.drift
    assert (report.updated, report.version) == (19, 2)
    assert scalar(engine, "SELECT count(*) FROM urbis_history.muni WHERE row_hash IS NULL") == 19
    again = layer.sync(engine)
    assert (again.updated, again.drift, again.version) == (0, None, 2)


def test_unchanged_features_are_skipped_by_fingerprint(engine, tmp_path):
    frame = legacy_municipalities(tmp_path)
    layer = Layer(tmp_path, frame, "NAT_CODE")
    layer.sync(engine)
    changed = frame.copy()
    changed.loc[changed["NAT_CODE"] == "21007", "NAME_FRE"] = "Vorst"
    layer.write(changed)
    report = layer.sync(engine)
    assert (report.updated, report.fetched) == (1, 19)
    info = scalar(engine, "SELECT source_info FROM urbis_meta.sync_run ORDER BY id DESC LIMIT 1")
    assert "18 unchanged features skipped by fingerprint" in info


def test_a_duplicate_key_in_a_later_run_is_quarantined_and_the_key_leaves_the_layer(
    engine, tmp_path
):
    frame = legacy_municipalities(tmp_path)
    layer = Layer(tmp_path, frame, "NAT_CODE")
    layer.sync(engine)
    twin = frame[frame["NAT_CODE"] == "21013"].copy()
    twin["NAME_FRE"] = "Saint-Gilles (twin)"
    layer.write(gpd.GeoDataFrame(gpd.pd.concat([frame, twin], ignore_index=True), crs=31370))
    report = layer.sync(engine)
    assert (report.quarantined, report.deleted, report.updated) == (2, 1, 0)
    assert scalar(engine, "SELECT count(*) FROM urbis.muni WHERE \"NAT_CODE\" = '21013'") == 0
    reasons = {r[0] for r in rows(engine, "SELECT reason FROM urbis_meta.quarantine")}
    assert reasons == {"duplicate key NAT_CODE=21013 (2 features)"}


def test_a_value_that_no_longer_fits_the_column_type_rebuilds_the_layer(engine, tmp_path):
    frame = legacy_municipalities(tmp_path)
    layer = Layer(tmp_path, frame, "NAT_CODE")
    layer.sync(engine)  # POL_ID holds whole numbers: stored as bigint
    assert {"name": "POL_ID", "type": "bigint"} in scalar(
        engine, "SELECT columns FROM urbis_meta.layer_catalog"
    )
    changed = frame.copy()
    changed.loc[changed["NAT_CODE"] == "21007", "POL_ID"] = 7275049.5
    layer.write(changed)
    report = layer.sync(engine)
    assert report.drift == "POL_ID: bigint -> double precision"
    assert (
        scalar(engine, 'SELECT "POL_ID" FROM urbis.muni WHERE "NAT_CODE" = \'21007\'') == 7275049.5
    )


def test_swap_waits_for_readers_with_lock_timeout_and_retries(
    engine, database_url, tmp_path, caplog
):
    frame = legacy_municipalities(tmp_path)
    layer = Layer(tmp_path, frame, "NAT_CODE")
    layer.sync(engine)
    layer.write(frame.assign(POPULATION=1))  # a new field: the table is rebuilt and swapped
    reader = psycopg.connect(database_url)
    reader.execute("SELECT count(*) FROM urbis.muni")  # holds ACCESS SHARE until it ends
    release = threading.Timer(7.0, reader.rollback)
    release.start()
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="urbis_sync.run"):
        report = layer.sync(engine)
    release.join()
    reader.close()
    assert report.drift == "added POPULATION (bigint)"
    assert time.monotonic() - started > 7.0
    assert any("retrying the swap (1/5)" in r.getMessage() for r in caplog.records)
    assert scalar(engine, 'SELECT count("POPULATION") FROM urbis.muni') == 19


def test_a_first_load_widens_to_multi_when_a_multi_polygon_comes_late(
    engine, tmp_path, monkeypatch
):
    """Single polygons first, two multi polygons in a later batch: one read, all stored."""
    monkeypatch.setattr("urbis_sync.sources.file.BATCH_SIZE", 4)
    frame = legacy_municipalities(tmp_path)
    frame = frame.iloc[
        frame.geom_type.map({"Polygon": 0, "MultiPolygon": 1}).argsort(kind="stable")
    ].reset_index(drop=True)
    assert list(frame.geom_type[:17]) == ["Polygon"] * 17
    layer = Layer(tmp_path, frame, "NAT_CODE")
    frame.to_file(
        layer.path,
        driver="GPKG",
        layer="muni",
        engine="pyogrio",
        promote_to_multi=False,
        geometry_type="Unknown",
    )  # as the features come
    from urbis_sync.reconcile.first_load import NextTable

    widened: list[str] = []
    real_widen = NextTable.widen
    monkeypatch.setattr(
        NextTable, "widen", lambda self, kind: (widened.append(kind), real_widen(self, kind))
    )
    report = layer.sync(engine)
    assert (report.fetched, report.inserted, report.quarantined) == (19, 19, 0)
    assert widened == ["MultiPolygon"]
    assert (
        scalar(
            engine,
            "SELECT type FROM geometry_columns WHERE f_table_schema = 'urbis' "
            "AND f_table_name = 'muni'",
        )
        == "MULTIPOLYGON"
    )
    assert scalar(engine, "SELECT geometry_type FROM urbis_meta.layer_catalog") == "MultiPolygon"
    stored = {
        r[0]: shapely.from_wkb(bytes(r[1]))
        for r in rows(engine, 'SELECT "NAT_CODE", ST_AsBinary(geom) FROM urbis.muni')
    }
    for code, geometry in zip(frame.NAT_CODE, frame.geometry, strict=True):
        assert stored[code].equals_exact(
            shapely.multipolygons([geometry]) if geometry.geom_type == "Polygon" else geometry,
            tolerance=0,
        )
    # reals that are all whole became bigint, as in a staged load; AREA has decimals
    types = dict(
        rows(
            engine,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'urbis' AND table_name = 'muni'",
        )
    )
    assert (types["ID"], types["POL_ID"], types["AREA"]) == ("bigint", "bigint", "double precision")
