"""The bundled real URBIS sample, synced into a real PostGIS and checked against itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import sqlalchemy as sa

from tests.conftest import SAMPLE_CONFIG, SAMPLE_COUNTS, SAMPLE_DIR
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
    assert [(r.layer_id, r.status, r.inserted, r.quarantined) for r in reports] == [
        (layer_id, "success", count, 0) for layer_id, count in SAMPLE_COUNTS.items()
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


def test_every_sample_layer_has_its_features_once_valid_in_lambert_72(engine):
    config = load_config(SAMPLE_CONFIG)
    sync_once(engine, config, list(config.layers))
    catalog = {r.id: r for r in rows(engine, "SELECT * FROM urbis_meta.layer_catalog")}
    assert set(catalog) == set(SAMPLE_COUNTS)
    for layer_id, count in SAMPLE_COUNTS.items():
        key = catalog[layer_id].key_field
        stored = rows(
            engine,
            f"""SELECT count(*), count(DISTINCT "{key}"), count(*) FILTER (WHERE "{key}" IS NULL),
                       bool_and(ST_IsValid(geom)), array_agg(DISTINCT ST_SRID(geom)),
                       Find_SRID('urbis', '{layer_id}', 'geom')
                FROM urbis."{layer_id}" """,
        )[0]
        assert tuple(stored) == (count, count, 0, True, [31370], 31370), layer_id
        assert catalog[layer_id].feature_count == count and catalog[layer_id].srid == 31370
    assert {layer_id: catalog[layer_id].key_field for layer_id in list(SAMPLE_COUNTS)[2:]} == {
        "current_municipalities": "NISCODE",
        "street_surfaces": "INSPIRE_ID",
        "buildings": "INSPIRE_ID",
        "street_axes": "INSPIRE_ID",
        "tram_network": "INSPIRE_ID",
        "train_network": "INSPIRE_ID",
    }
    assert catalog["buildings"].geometry_type == "MultiPolygon"
    assert catalog["street_axes"].geometry_type == "LineString"
    assert catalog["current_municipalities"].title == {
        "fr": "Communes (2026)",
        "nl": "Gemeenten (2026)",
        "en": "Municipalities (2026)",
    }
    # GeoServer's transient feature ids are not stored.
    assert not any(c["name"] == "id" for r in catalog.values() for c in r.columns)

    # The street axis and surface two cells both hold, identical, are one feature each, and
    # the run says so.
    for layer_id, key in (
        ("street_axes", "https://databrussels.be/id/streetaxe/99438"),
        ("street_surfaces", "https://databrussels.be/id/streetsurface/37742"),
    ):
        assert (
            scalar(
                engine,
                f"""SELECT count(*) FROM urbis."{layer_id}"
                                  WHERE "INSPIRE_ID" = '{key}'""",
            )
            == 1
        )
        info = scalar(
            engine,
            f"""SELECT source_info FROM urbis_meta.sync_run WHERE layer_id = '{layer_id}'""",
        )
        assert f"1 feature found identical in an earlier file, read once ({key})" in info

    # The current municipalities are the legacy ones under a new identity: same NIS codes and
    # names, each polygon's area its AREA, slightly different outlines (Saint-Josse: 1.4 %).
    pairs = rows(
        engine,
        """SELECT c."NAMEFRE", l."NAME_FRE", abs(ST_Area(c.geom) - c."AREA"),
                  ST_Area(c.geom) / ST_Area(l.geom)
           FROM urbis.current_municipalities c
           JOIN urbis.municipalities l ON l."NAT_CODE"::text = c."NISCODE" """,
    )
    assert len(pairs) == 12
    assert all(
        new == old and error < 0.01 and abs(ratio - 1) < 0.02 for new, old, error, ratio in pairs
    ), pairs
    # The cells' buildings are in Anderlecht and Auderghem, or just over the Region's border
    # (URBIS draws them too: up to 80 m west of Anderlecht, in Flanders).
    assert rows(
        engine,
        """SELECT m."NAME_FRE", count(*), round(max(ST_Distance(b.geom, r.geom)))
           FROM urbis.buildings b
           CROSS JOIN (SELECT ST_Union(geom) geom FROM urbis.municipalities) r
           LEFT JOIN urbis.municipalities m ON ST_Contains(m.geom, ST_PointOnSurface(b.geom))
           GROUP BY 1 ORDER BY 1""",
    ) == [("Anderlecht", 35, 0), ("Auderghem", 2, 0), (None, 28, 80)]

    # A second run finds every feature unchanged by its fingerprint, copies included.
    again = {r.layer_id: r for r in sync_once(engine, config, list(config.layers))}
    for layer_id, count in SAMPLE_COUNTS.items():
        report = again[layer_id]
        assert (report.status, report.fetched, report.inserted, report.updated) == (
            "success",
            count,
            0,
            0,
        ), layer_id
        assert (report.deleted, report.quarantined, report.version) == (0, 0, 1), layer_id
    info = scalar(
        engine,
        """SELECT source_info FROM urbis_meta.sync_run WHERE layer_id = 'street_axes'
           ORDER BY id DESC LIMIT 1""",
    )
    assert "10 unchanged features skipped by fingerprint" in info


def _cells(tmp_path: Path, layer: str) -> Path:
    """Three of the recorded cells copied to tmp_path, and a config reading `layer` from all."""
    for cell in (
        "bxl-e141000-n167000-s500",
        "bxl-e141500-n167000-s500",
        "bxl-e141500-n167500-s500",
    ):
        shutil.copytree(SAMPLE_DIR / "geoserver" / cell, tmp_path / cell)
    config = tmp_path / "urbis.yaml"
    config.write_text(
        f"layers:\n  {layer}:\n    source: {{kind: file, paths: 'bxl-*/{layer}.geojson', "
        "drop_fields: [id]}\n    key: INSPIRE_ID\n"
    )
    return config


def _live(engine: sa.Engine, layer: str) -> list:
    return rows(engine, f'SELECT "INSPIRE_ID", ST_AsBinary(geom) FROM urbis."{layer}" ORDER BY 1')


def test_a_file_of_several_gdal_cannot_read_fails_the_run_naming_it(engine, tmp_path: Path):
    config = load_config(_cells(tmp_path, "buildings"))
    assert sync_layer(engine, config, "buildings").inserted == 6 + 23 + 8
    good = _live(engine, "buildings")

    (tmp_path / "bxl-e141500-n167000-s500/buildings.geojson").write_text('{"type": "Feat')
    report = sync_layer(engine, config, "buildings")
    assert report.status == "failed"
    assert (report.error or "").startswith(
        "bxl-e141500-n167000-s500/buildings.geojson: GDAL cannot read it"
    )
    assert _live(engine, "buildings") == good
    assert scalar(engine, "SELECT version FROM urbis_meta.layer_catalog") == 1
    last = rows(engine, "SELECT status, error FROM urbis_meta.sync_run ORDER BY id DESC LIMIT 1")
    assert (last[0].status, last[0].error) == ("failed", report.error)


def test_a_pattern_that_no_longer_matches_fails_the_run_and_keeps_the_layer(engine, tmp_path: Path):
    config = load_config(_cells(tmp_path, "street_surfaces"))
    assert sync_layer(engine, config, "street_surfaces").inserted == 2 + 3 + 1 - 1
    good = _live(engine, "street_surfaces")
    for cell in tmp_path.glob("bxl-*"):
        shutil.rmtree(cell)  # an unmounted share: no file is not "every feature deleted"
    report = sync_layer(engine, config, "street_surfaces")
    assert report.status == "failed"
    assert report.error == (
        f"layer 'street_surfaces': source.paths: {tmp_path}/bxl-*/street_surfaces.geojson "
        "matches no file"
    )
    assert _live(engine, "street_surfaces") == good


def test_copies_that_differ_are_quarantined_not_one_picked(engine, tmp_path: Path):
    config = load_config(_cells(tmp_path, "street_axes"))
    copy = tmp_path / "bxl-e141500-n167500-s500/street_axes.geojson"
    body = json.loads(copy.read_text())
    assert body["features"][0]["properties"]["INSPIRE_ID"].endswith("/streetaxe/99438")
    body["features"][0]["properties"]["STRNAMEFRE"] += " (bis)"
    copy.write_text(json.dumps(body))
    report = sync_layer(engine, config, "street_axes")
    assert (report.status, report.inserted, report.quarantined) == ("success", 1 + 3 + 1 - 2, 2)
    reasons = rows(engine, "SELECT feature_key, reason FROM urbis_meta.quarantine")
    key = "https://databrussels.be/id/streetaxe/99438"
    assert [tuple(r) for r in reasons] == [
        (key, f"duplicate key INSPIRE_ID={key} (2 features)")
    ] * 2
    assert (
        scalar(engine, f"SELECT count(*) FROM urbis.street_axes WHERE \"INSPIRE_ID\" = '{key}'")
        == 0
    )


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
