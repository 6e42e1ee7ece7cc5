"""What the sync keeps ready for the tiles (Web Mercator geometry, size, measure): made after
each run, never stale, and tiles the same with or without them."""

from __future__ import annotations

import geopandas as gpd
import psycopg
import pytest
import shapely
import sqlalchemy as sa

from tests.db.test_reconcile import Layer, legacy_municipalities, rows, scalar
from tiles.mvt import TileRequest, layer_tile_query
from tiles.tms import get_tms
from urbis_core import migrate
from urbis_core.catalog import TILE_COLUMNS, LayerEntry, layer_catalog
from urbis_sync import tile_geometry

# Every copy is the stored geometry reprojected by PostGIS, bit for bit; the size its bounding
# box's largest side, the measure its area.
STALE_OR_MISSING = """
    SELECT count(*) FROM urbis.muni WHERE geom_3857 IS NULL
        OR NOT ST_AsBinary(geom_3857) = ST_AsBinary(ST_Transform(geom, 3857))
        OR geom_size IS DISTINCT FROM greatest(ST_XMax(geom) - ST_XMin(geom),
                                               ST_YMax(geom) - ST_YMin(geom))
        OR geom_measure IS DISTINCT FROM ST_Area(geom)"""


def test_a_run_leaves_every_row_with_what_tiles_need_ready(engine, tmp_path):
    frame = legacy_municipalities(tmp_path)
    layer = Layer(tmp_path, frame, "NAT_CODE")
    first = layer.sync(engine)
    assert first.tile_ready is not None and first.tile_ready.rows == 19
    assert scalar(engine, STALE_OR_MISSING) == 0
    assert "19 rows made ready for tiles" in first.summary()

    changed = frame.copy()
    jette = changed.index[changed["NAT_CODE"] == "21010"][0]
    changed.loc[jette, "geometry"] = shapely.affinity.translate(
        changed.loc[jette, "geometry"], xoff=25.0
    )
    newcomer = frame[frame["NAT_CODE"] == "21013"].copy()
    newcomer["NAT_CODE"] = "21099"
    newcomer["geometry"] = newcomer.translate(xoff=30_000)
    layer.write(gpd.GeoDataFrame(gpd.pd.concat([changed, newcomer], ignore_index=True), crs=31370))
    second = layer.sync(engine)
    assert (second.inserted, second.updated) == (1, 1)
    assert second.tile_ready is not None and second.tile_ready.rows == 2
    assert scalar(engine, STALE_OR_MISSING) == 0  # Jette's copy moved with it

    again = layer.sync(engine)  # nothing written: nothing to make, not even a look
    assert again.tile_ready is None and again.summary().endswith(f"(run {again.run_id})")


def test_a_tile_is_the_same_whether_they_are_ready_or_not(engine, tmp_path):
    Layer(tmp_path, legacy_municipalities(tmp_path), "NAT_CODE").sync(engine)
    with engine.connect() as conn:
        layer = LayerEntry.from_row(conn.execute(sa.select(layer_catalog)).one())
    settings = layer.tiles
    tms = get_tms("WebMercatorQuad")
    # Brussels' centre at zooms 11 (the whole region, simplified hard) to 16
    tiles = [TileRequest(tms, z, *_tile_of(tms, 485_000.0, 6_594_000.0, z)) for z in range(11, 17)]

    def draw() -> list[bytes]:
        # whole, and cut to the 5 largest municipalities (the size cap's priority order)
        with engine.connect() as conn:
            return [
                bytes(conn.execute(layer_tile_query(layer, tile, settings, limit=limit)).one()[0])
                for tile in tiles
                for limit in (None, 5)
            ]

    with_copies = draw()
    assert all(with_copies)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE urbis.muni SET geom_3857 = NULL, geom_size = NULL, geom_measure = NULL")
        )
    assert draw() == with_copies
    assert rows(engine, "SELECT count(*) FROM urbis.muni WHERE geom_3857 IS NULL")[0][0] == 19


def _tile_of(tms, x: float, y: float, z: int) -> tuple[int, int]:
    columns, tile_rows = tms.tiles_covering(z, (x, y, x, y))
    return columns[0], tile_rows[0]


def test_tables_from_before_get_the_columns_filled_by_the_migration(engine, database_url, tmp_path):
    Layer(tmp_path, legacy_municipalities(tmp_path), "NAT_CODE").sync(engine)
    engine.dispose()  # no connection of ours holds the table while the migrations alter it
    migrate.downgrade(database_url, "0003")
    columns = {
        r[0]
        for r in rows(
            engine,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'urbis' AND table_name = 'muni'",
        )
    }
    assert not columns & set(TILE_COLUMNS)
    migrate.upgrade(database_url)
    assert scalar(engine, STALE_OR_MISSING) == 0


def test_a_fill_of_most_of_a_table_rebuilds_its_indexes_and_vacuums_it(
    engine, database_url, tmp_path
):
    Layer(tmp_path, legacy_municipalities(tmp_path), "NAT_CODE").sync(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE urbis.muni SET geom_3857 = NULL, geom_size = NULL, geom_measure = NULL")
        )
    before = dict(
        rows(
            engine,
            "SELECT indexrelname, indexrelid FROM pg_stat_user_indexes "
            "WHERE schemaname = 'urbis' AND relname = 'muni'",
        )
    )
    # an index build stopped half-way leaves an invalid index behind (here: a unique one that
    # fails): the rebuild drops it
    with psycopg.connect(database_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY half_built ON urbis.muni ((1))")
    assert scalar(engine, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 1

    filled = tile_geometry.fill(engine, "muni", batch_rows=5)  # 19 rows, 4 batches

    assert filled.rows == 19 and scalar(engine, STALE_OR_MISSING) == 0
    after = dict(
        rows(
            engine,
            "SELECT indexrelname, indexrelid FROM pg_stat_user_indexes "
            "WHERE schemaname = 'urbis' AND relname = 'muni'",
        )
    )
    assert set(after) == set(before) and not set(after.values()) & set(before.values())  # new
    assert scalar(
        engine, "SELECT bool_and(indisvalid) FROM pg_index WHERE indrelid = 'urbis.muni'::regclass"
    )  # the half-built one gone
    assert scalar(
        engine,
        "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables "
        "WHERE schemaname = 'urbis' AND relname = 'muni'",
    )
    # a small share of the table: filled in place, nothing rebuilt
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE urbis.muni SET geom_3857 = NULL WHERE \"NAT_CODE\" = '21004'"))
    assert tile_geometry.fill(engine, "muni", batch_rows=5).rows == 1
    assert (
        dict(
            rows(
                engine,
                "SELECT indexrelname, indexrelid FROM pg_stat_user_indexes "
                "WHERE schemaname = 'urbis' AND relname = 'muni'",
            )
        )
        == after
    )
