"""The bundled real URBIS sample, synced into a real PostGIS and checked against itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlalchemy as sa

from tests.conftest import SAMPLE_CONFIG, SAMPLE_DIR
from tests.support.layers import write_geojson
from urbis_core.config import load_config
from urbis_sync.run import sync_layer, sync_once


def scalar(engine: sa.Engine, query: str):
    with engine.connect() as conn:
        return conn.execute(sa.text(query)).scalar()


def rows(engine: sa.Engine, query: str) -> list:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(query)))


def test_sample_sync_counts_areas_and_positions(engine):
    config = load_config(SAMPLE_CONFIG)
    reports = sync_once(engine, config, list(config.layers))
    assert [(r.layer_id, r.status, r.inserted) for r in reports] == [
        ("municipalities", "success", 19),
        ("addresses", "success", 666),
    ]

    # Every polygon's area, computed by PostGIS from what we stored, equals the AREA attribute.
    worst = scalar(engine, 'SELECT max(abs(ST_Area(geom) - "AREA")) FROM urbis.municipalities')
    assert worst < 1.0
    assert scalar(engine, "SELECT count(*) FROM urbis.municipalities") == 19
    assert scalar(engine, 'SELECT count(DISTINCT "NAT_CODE") FROM urbis.municipalities') == 19

    # In Brussels, in lon/lat.
    lon0, lat0, lon1, lat1 = rows(
        engine,
        """
        SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)
        FROM (SELECT ST_Extent(ST_Transform(geom, 4326)) e FROM urbis.municipalities) s""",
    )[0]
    assert 4.24 <= lon0 < lon1 <= 4.49 and 50.76 <= lat0 < lat1 <= 50.92

    # Both layers line up: the documented point-in-polygon split of the address sample.
    split = dict(
        rows(
            engine,
            """
        SELECT m."NAME_FRE", count(*) FROM urbis.addresses a
        JOIN urbis.municipalities m ON ST_Contains(m.geom, a.geom) GROUP BY 1""",
        )
    )
    assert split == {"Saint-Gilles": 419, "Bruxelles": 247}

    # Decimal-comma angles are stored as their real values.
    assert scalar(engine, 'SELECT "ANGLE" FROM urbis.addresses WHERE "ID" = 1116857') == 309.92

    catalog = {r.id: r for r in rows(engine, "SELECT * FROM urbis_meta.layer_catalog")}
    muni = catalog["municipalities"]
    assert muni.key_field == "NAT_CODE" and muni.geometry_type == "MultiPolygon"
    assert muni.feature_count == 19 and muni.version == 1 and muni.srid == 31370
    assert muni.title == {"fr": "Communes", "nl": "Gemeenten", "en": "Municipalities"}
    assert catalog["addresses"].geometry_type == "Point"
    assert catalog["addresses"].feature_count == 666
    bbox = muni.bbox_crs84
    assert 4.24 <= bbox[0] < bbox[2] <= 4.49 and 50.76 <= bbox[1] < bbox[3] <= 50.92


def test_failed_run_keeps_the_last_good_layer(engine, tmp_path: Path):
    config_path = tmp_path / "urbis.yaml"
    shp = tmp_path / "m.shp"
    shutil.copyfile(SAMPLE_DIR / "UrbAdm_MUNICIPALITY.shp", shp)
    shutil.copyfile(SAMPLE_DIR / "UrbAdm_MUNICIPALITY.dbf", tmp_path / "m.dbf")
    config_path.write_text(
        "layers:\n  municipalities:\n    source: {kind: file, path: m.shp, "
        "srid: 31370}\n    key: NAT_CODE\n"
    )
    config = load_config(config_path)
    assert sync_layer(engine, config, "municipalities").status == "success"

    shp.write_bytes(b"this is not a shapefile")
    report = sync_layer(engine, config, "municipalities")
    assert report.status == "failed"
    assert "m.shp" in (report.error or "")
    assert scalar(engine, "SELECT count(*) FROM urbis.municipalities") == 19
    assert scalar(engine, "SELECT version FROM urbis_meta.layer_catalog") == 1
    last = rows(engine, "SELECT status, error FROM urbis_meta.sync_run ORDER BY id DESC LIMIT 1")
    assert last[0].status == "failed" and last[0].error == report.error


def test_features_without_key_or_geometry_are_quarantined(engine, tmp_path: Path):
    features = [
        {
            "type": "Feature",
            "properties": {"K": "a"},
            "geometry": {"type": "Point", "coordinates": [148000, 169000]},
        },
        {
            "type": "Feature",
            "properties": {"K": None},
            "geometry": {"type": "Point", "coordinates": [148001, 169001]},
        },
        {"type": "Feature", "properties": {"K": "b"}, "geometry": None},
        {
            "type": "Feature",
            "properties": {"K": "c"},
            "geometry": {"type": "Point", "coordinates": [148002, 169002]},
        },
        {
            "type": "Feature",
            "properties": {"K": "c"},
            "geometry": {"type": "Point", "coordinates": [148003, 169003]},
        },
    ]
    write_geojson(tmp_path / "p.geojson", features)
    (tmp_path / "urbis.yaml").write_text(
        "layers:\n  points:\n    source: {kind: file, path: p.geojson}\n    key: K\n"
    )
    report = sync_layer(engine, load_config(tmp_path / "urbis.yaml"), "points")
    assert report.status == "success" and report.inserted == 1 and report.quarantined == 4
    reasons = sorted(r.reason for r in rows(engine, "SELECT reason FROM urbis_meta.quarantine"))
    assert reasons == [
        "duplicate key K=c (2 features)",
        "duplicate key K=c (2 features)",
        "empty geometry",
        "no value for key K",
    ]
    assert scalar(engine, 'SELECT "K" FROM urbis.points') == "a"


def test_wrong_declared_crs_is_refused(engine, tmp_path: Path):
    (tmp_path / "urbis.yaml").write_text(
        "layers:\n  addresses:\n    source: {kind: file, path: "
        f"{SAMPLE_DIR / 'UrbAdm_AdPt_sample.zip'}, srid: 4326}}\n    key: ID\n"
    )
    report = sync_layer(engine, load_config(tmp_path / "urbis.yaml"), "addresses")
    assert report.status == "failed"
    assert "source.srid is 4326" in (report.error or "")
    assert scalar(engine, "SELECT count(*) FROM urbis_meta.layer_catalog") == 0
