"""What the sync keeps ready for the tiles (Web Mercator geometry, size, measure): made after
each run, never stale, and tiles the same with or without them."""

from __future__ import annotations

import geopandas as gpd
import shapely
import sqlalchemy as sa

from tests.db.test_reconcile import Layer, legacy_municipalities, rows, scalar
from tiles.mvt import LayerTileSettings, TileRequest, layer_tile_query
from tiles.tms import get_tms
from urbis_core import migrate
from urbis_core.catalog import TILE_COLUMNS, LayerEntry, layer_catalog

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
    changed.loc[jette, "geometry"] = shapely.affinity.translate(changed.loc[jette, "geometry"],
                                                                xoff=25.0)
    newcomer = frame[frame["NAT_CODE"] == "21013"].copy()
    newcomer["NAT_CODE"] = "21099"
    newcomer["geometry"] = newcomer.translate(xoff=30_000)
    layer.write(gpd.GeoDataFrame(gpd.pd.concat([changed, newcomer], ignore_index=True),
                                 crs=31370))
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
    settings = LayerTileSettings.of(layer)
    tms = get_tms("WebMercatorQuad")
    # Brussels' centre at zooms 11 (the whole region, simplified hard) to 16
    tiles = [TileRequest(tms, z, *_tile_of(tms, 485_000.0, 6_594_000.0, z)) for z in range(11, 17)]

    def draw() -> list[bytes]:
        # whole, and cut to the 5 largest municipalities (the size cap's priority order)
        with engine.connect() as conn:
            return [bytes(conn.execute(layer_tile_query(layer, tile, settings, limit=limit))
                          .one()[0]) for tile in tiles for limit in (None, 5)]

    with_copies = draw()
    assert all(with_copies)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE urbis.muni "
                             "SET geom_3857 = NULL, geom_size = NULL, geom_measure = NULL"))
    assert draw() == with_copies
    assert rows(engine, "SELECT count(*) FROM urbis.muni WHERE geom_3857 IS NULL")[0][0] == 19


def _tile_of(tms, x: float, y: float, z: int) -> tuple[int, int]:
    columns, tile_rows = tms.tiles_covering(z, (x, y, x, y))
    return columns[0], tile_rows[0]


def test_tables_from_before_get_the_columns_filled_by_the_migration(engine, database_url,
                                                                    tmp_path):
    Layer(tmp_path, legacy_municipalities(tmp_path), "NAT_CODE").sync(engine)
    engine.dispose()  # no connection of ours holds the table while the migrations alter it
    migrate.downgrade(database_url, "0003")
    columns = {r[0] for r in rows(engine, "SELECT column_name FROM information_schema.columns "
                                          "WHERE table_schema = 'urbis' AND table_name = 'muni'")}
    assert not columns & set(TILE_COLUMNS)
    migrate.upgrade(database_url)
    assert scalar(engine, STALE_OR_MISSING) == 0
