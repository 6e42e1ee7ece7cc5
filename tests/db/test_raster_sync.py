"""Raster layers' sync on real files and a real database: COGs checked against the sources.

Every expected value is computed here from the source with rasterio and numpy (a read, a
`reproject`, numpy statistics), never copied from a run.
"""

from __future__ import annotations

import hashlib
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
import sqlalchemy as sa
from rasterio.warp import Resampling, reproject
from rio_cogeo.cogeo import cog_validate

from tests.support import rasters
from tests.unit.test_source_feed import site as site  # noqa: F401 - the fixture
from urbis_core.config import load_config
from urbis_core.coverages import CoverageEntry, read_coverage
from urbis_core.settings import SyncSettings
from urbis_sync.run import RunReport, sync_layer, sync_once
from urbis_sync.schedule import layer_status


@pytest.fixture
def settings(tmp_path: Path) -> SyncSettings:
    return SyncSettings(raster_dir=tmp_path / "rasters")


def configure(tmp_path: Path, source: str, extra: str = "", layer_id: str = "terrain") -> Path:
    path = tmp_path / "urbis.yaml"
    path.write_text(
        f"layers:\n  {layer_id}:\n    type: raster\n"
        "    title: {fr: Modèle de terrain, nl: Terreinmodel, en: Terrain model}\n"
        f"    source: {source}\n{extra}"
    )
    return path


def sync(engine, config: Path, settings: SyncSettings, layer_id: str = "terrain") -> RunReport:
    return sync_layer(engine, load_config(config), layer_id, settings)


def entry(engine, layer_id: str = "terrain") -> CoverageEntry:
    with engine.connect() as conn:
        found = read_coverage(conn, layer_id)
    assert found is not None
    return found


def runs(engine, layer_id: str = "terrain") -> list[tuple[str, int | None, str | None]]:
    with engine.connect() as conn:
        return [
            (r.status, r.version, r.error)
            for r in conn.execute(
                sa.text(
                    "SELECT status, version, error FROM urbis_meta.sync_run "
                    "WHERE layer_id = :id ORDER BY id"
                ),
                {"id": layer_id},
            )
        ]


def read_all(path: str | Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def numpy_stats(band: np.ndarray, nodata: float) -> dict[str, float]:
    valid = band[band != nodata].astype(np.float64)
    return {
        "min": float(valid.min()),
        "max": float(valid.max()),
        "mean": float(valid.mean()),
        "std": float(valid.std()),
    }


def assert_valid_cog(path: str) -> None:
    valid, errors, _warnings = cog_validate(path, strict=True)
    assert valid, errors
    with rasterio.open(path) as ds:
        assert ds.crs.to_epsg() == 31370
        assert ds.overviews(1), "no internal overviews"
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"


def test_first_sync_writes_a_cog_equal_to_the_source(engine, settings, tmp_path):
    source = rasters.write_terrain(tmp_path / "dtm.tif")
    report = sync(engine, configure(tmp_path, "{kind: file, path: dtm.tif}"), settings)
    assert (report.status, report.version) == ("success", 1), report.error
    assert "new COG written" in report.summary()
    cog = entry(engine)
    checksum = hashlib.sha256(source.read_bytes()).hexdigest()
    assert cog.checksum == checksum
    assert cog.path == str(settings.raster_dir / "terrain" / f"1-{checksum[:12]}.tif")
    assert_valid_cog(cog.path)
    with rasterio.open(source) as src, rasterio.open(cog.path) as out:
        assert out.transform == src.transform and out.shape == src.shape
        assert np.array_equal(out.read(), src.read())  # same grid: every value, nodata too
        assert out.nodata == src.nodata == rasters.TERRAIN_NODATA
        assert out.dtypes == ("float32",)
        assert cog.bbox_native == pytest.approx(tuple(src.bounds))
        assert (cog.width, cog.height) == (src.width, src.height)
        assert cog.resolution == pytest.approx(src.res)
        expected = numpy_stats(src.read(1), rasters.TERRAIN_NODATA)
    band = cog.bands[0]
    assert (band.name, band.dtype, band.nodata) == ("band1", "float32", rasters.TERRAIN_NODATA)
    assert {k: getattr(band, k) for k in expected} == pytest.approx(expected, rel=1e-12)
    west, south, east, north = cog.bbox_crs84
    assert 4.30 < west < east < 4.40 and 50.80 < south < north < 50.88  # central Brussels
    assert (cog.srid, cog.version, cog.title["nl"]) == (31370, 1, "Terreinmodel")
    assert runs(engine) == [("success", 1, None)]


def test_a_nan_nodata_is_kept_and_left_out_of_the_statistics(engine, settings, tmp_path):
    source = rasters.write_terrain_nan(tmp_path / "dtm.tif")
    report = sync(engine, configure(tmp_path, "{kind: file, path: dtm.tif}"), settings)
    assert report.status == "success", report.error
    band = entry(engine).bands[0]  # read back through the catalog's JSON, which has no NaN
    assert band.nodata is not None and np.isnan(band.nodata)
    with rasterio.open(source) as src:
        heights = src.read(1).astype(np.float64)
    valid = heights[~np.isnan(heights)]
    assert 0 < valid.size < heights.size  # the holes are there and are NaN
    expected = {"min": valid.min(), "max": valid.max(), "mean": valid.mean(), "std": valid.std()}
    assert {k: getattr(band, k) for k in expected} == pytest.approx(expected, rel=1e-12)
    with rasterio.open(entry(engine).path) as out:
        assert np.isnan(out.nodata)
        assert np.array_equal(np.isnan(out.read(1)), np.isnan(heights))


def test_rgb_image_keeps_its_three_bands(engine, settings, tmp_path):
    source = rasters.write_rgb(tmp_path / "ortho.tif")
    config = configure(tmp_path, "{kind: file, path: ortho.tif}", layer_id="ortho")
    assert sync(engine, config, settings, "ortho").status == "success"
    cog = entry(engine, "ortho")
    assert_valid_cog(cog.path)
    original = read_all(source)
    assert np.array_equal(read_all(cog.path), original)
    assert [b.name for b in cog.bands] == ["red", "green", "blue"]
    for band, values in zip(cog.bands, original, strict=True):
        expected = numpy_stats(values, 0)
        assert band.dtype == "uint8" and band.nodata == 0
        assert {k: getattr(band, k) for k in expected} == pytest.approx(expected, rel=1e-12)


def test_a_source_in_lambert_2008_is_reprojected_to_lambert_72(engine, settings, tmp_path):
    source = rasters.write_terrain_lambert2008(tmp_path / "dtm_3812.tif")
    assert sync(
        engine, configure(tmp_path, "{kind: file, path: dtm_3812.tif}"), settings
    ).status == ("success")
    cog = entry(engine)
    assert_valid_cog(cog.path)
    with rasterio.open(cog.path) as out, rasterio.open(source) as src:
        got = out.read(1)
        expected = np.full(got.shape, rasters.TERRAIN_NODATA, dtype=np.float32)
        reproject(
            source=rasterio.band(src, 1),
            destination=expected,
            dst_transform=out.transform,
            dst_crs=out.crs,
            src_nodata=src.nodata,
            dst_nodata=rasters.TERRAIN_NODATA,
            resampling=Resampling.bilinear,
        )
    nodata = rasters.TERRAIN_NODATA
    # The same warp (GDAL's, bilinear) onto the same grid: the same values, nodata included.
    assert np.array_equal(got, expected)
    both = got != nodata
    assert np.count_nonzero(both) > 0.9 * got.size
    # The terrain itself, evaluated at the COG's pixel centres, says the same within the
    # error of bilinear interpolation on 5 m pixels.
    rows, cols = np.nonzero(both)
    x, y = rasterio.transform.xy(out.transform, rows, cols)
    truth = rasters.terrain_height(np.asarray(x), np.asarray(y))
    assert np.abs(got[both] - truth).max() < 0.5
    band = cog.bands[0]
    stats = numpy_stats(got, nodata)
    assert {k: getattr(band, k) for k in stats} == pytest.approx(stats, rel=1e-12)


def test_an_unchanged_source_writes_nothing(engine, settings, tmp_path):
    rasters.write_terrain(tmp_path / "dtm.tif")
    config = configure(tmp_path, "{kind: file, path: dtm.tif}")
    assert sync(engine, config, settings).status == "success"
    first = entry(engine)
    mtime = Path(first.path).stat().st_mtime_ns
    again = sync(engine, config, settings)
    assert (again.status, again.version) == ("success", 1), again.error
    assert "unchanged, nothing written" in again.summary()
    second = entry(engine)
    assert (second.path, second.version, second.checksum) == (
        first.path,
        first.version,
        first.checksum,
    )
    assert Path(second.path).stat().st_mtime_ns == mtime
    assert sorted(p.name for p in (settings.raster_dir / "terrain").iterdir()) == [
        Path(first.path).name
    ]
    assert runs(engine) == [("success", 1, None), ("success", 1, None)]


def test_a_changed_source_bumps_the_version_and_swaps_the_file(engine, settings, tmp_path):
    source = tmp_path / "dtm.tif"
    config = configure(tmp_path, "{kind: file, path: dtm.tif}")
    paths = []
    for offset in (0.0, 10.0, 20.0):
        rasters.write_terrain(source, offset=offset)
        report = sync(engine, config, settings)
        assert report.status == "success", report.error
        cog = entry(engine)
        assert cog.version == len(paths) + 1
        assert cog.path not in paths
        assert np.array_equal(read_all(cog.path), read_all(source))
        assert cog.bands[0].min == pytest.approx(numpy_stats(read_all(source)[0], -9999)["min"])
        paths.append(cog.path)
    # The file just replaced stays for readers that read its path a moment ago; older ones go.
    kept = sorted(str(p) for p in (settings.raster_dir / "terrain").iterdir())
    assert kept == sorted(paths[1:])
    assert [r[1] for r in runs(engine)] == [1, 2, 3]


@pytest.mark.parametrize(
    ("broken", "why"),
    [
        (rasters.write_corrupt, "cannot be converted to a COG"),
        (rasters.write_garbage, "not a raster GDAL can read"),
        (lambda p: rasters.write_terrain(p, offset=5.0, crs=False), "the file carries no CRS"),
    ],
)
def test_a_bad_source_fails_the_run_and_the_previous_cog_stays(
    engine, settings, tmp_path, broken, why
):
    source = tmp_path / "dtm.tif"
    rasters.write_terrain(source)
    config = configure(tmp_path, "{kind: file, path: dtm.tif}")
    assert sync(engine, config, settings).status == "success"
    before = entry(engine)
    served = Path(before.path).read_bytes()

    broken(source)
    report = sync(engine, config, settings)
    assert report.status == "failed"
    assert str(source) in (report.error or "") and why in (report.error or ""), report.error
    after = entry(engine)
    assert after == before  # the row, untouched
    assert Path(after.path).read_bytes() == served
    assert sorted((settings.raster_dir / "terrain").iterdir()) == [Path(before.path)]
    assert runs(engine)[-1] == ("failed", None, report.error)


def test_a_file_without_crs_is_read_with_the_declared_srid(engine, settings, tmp_path):
    source = rasters.write_terrain(tmp_path / "bare.tif", crs=False, nodata=False)
    config = configure(
        tmp_path, "{kind: file, path: bare.tif}", "    srid: 31370\n    nodata: -9999\n"
    )
    report = sync(engine, config, settings)
    assert report.status == "success", report.error
    cog = entry(engine)
    assert_valid_cog(cog.path)
    with rasterio.open(cog.path) as out:
        assert out.nodata == -9999
    assert np.array_equal(read_all(cog.path), read_all(source))
    assert cog.bands[0].nodata == -9999


def test_tiles_zipped_or_globbed_are_mosaicked(engine, settings, tmp_path):
    whole = read_all(rasters.write_terrain(tmp_path / "whole.tif"))
    tiles = rasters.write_terrain_tiles(tmp_path / "tiles")
    globbed = configure(tmp_path, "{kind: file, paths: ['tiles/dtm_*.tif']}")
    assert sync(engine, globbed, settings).status == "success"
    assert np.array_equal(read_all(entry(engine).path), whole)

    with zipfile.ZipFile(tmp_path / "dtm.zip", "w") as archive:
        for tile in tiles:
            archive.write(tile, f"DTM/{tile.name}")
    zipped = configure(tmp_path, "{kind: file, path: dtm.zip}", layer_id="dtm")
    report = sync(engine, zipped, settings, "dtm")
    assert report.status == "success", report.error
    assert np.array_equal(read_all(entry(engine, "dtm").path), whole)


def test_a_reader_never_sees_a_partial_file_during_swaps(engine, settings, tmp_path):
    source = tmp_path / "dtm.tif"
    config = configure(tmp_path, "{kind: file, path: dtm.tif}")
    versions = {offset: rasters.terrain_array(offset) for offset in (0.0, 1.0)}
    rasters.write_terrain(source, offset=0.0)
    assert sync(engine, config, settings).status == "success"

    stop = threading.Event()
    reads: list[float] = []
    problems: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            path = entry(engine).path  # what the API does: the catalog's path, then the file
            time.sleep(0.02)  # a request's gap between the two, widened so a swap falls in it
            try:
                values = read_all(path)[0]
            except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
                problems.append(f"{path}: {exc}")
                continue
            matched = [o for o, v in versions.items() if np.array_equal(values, v)]
            if matched:
                reads.append(matched[0])
            else:
                problems.append(f"{path}: values of neither version")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for step in range(1, 7):
            rasters.write_terrain(source, offset=float(step % 2))
            assert sync(engine, config, settings).status == "success"
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not problems, problems[:3]
    assert len(reads) > 10 and set(reads) == {0.0, 1.0}
    assert entry(engine).version == 7


def test_status_and_the_schedule_see_raster_layers(engine, settings, tmp_path):
    rasters.write_terrain(tmp_path / "dtm.tif")
    config = load_config(configure(tmp_path, "{kind: file, path: dtm.tif}", "    schedule: 6h\n"))
    before = {s.layer_id: s for s in layer_status(engine, config)}
    assert before["terrain"].version is None and before["terrain"].last_success is None
    (report,) = sync_once(engine, config, config.all_ids(), settings)
    assert report.status == "success", report.error
    after = layer_status(engine, config)[0]
    assert (after.layer_id, after.version, after.feature_count) == ("terrain", 1, None)
    assert after.last_success is not None
    assert (after.next_run - after.last_success).total_seconds() == pytest.approx(6 * 3600, abs=5)


def test_a_zipped_raster_at_a_url_is_downloaded(engine, settings, tmp_path, request):
    server = request.getfixturevalue("site")
    whole = read_all(rasters.write_terrain(tmp_path / "whole.tif"))
    archive = server.root / "downloads" / "DTM.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zipped:
        for tile in rasters.write_terrain_tiles(tmp_path / "tiles"):
            zipped.write(tile, tile.name)
    url = f"http://127.0.0.1:{server.server_address[1]}/downloads/DTM.zip"
    config = configure(tmp_path, f"{{kind: file, url: '{url}'}}")
    assert sync(engine, config, settings).status == "success"
    cog = entry(engine)
    assert cog.checksum == hashlib.sha256(archive.read_bytes()).hexdigest()  # the zip as read
    assert np.array_equal(read_all(cog.path), whole)

    archive.unlink()  # the download fails: the run says so, the COG stays
    report = sync(engine, config, settings)
    assert report.status == "failed" and f"cannot download {url}" in (report.error or "")
    assert entry(engine) == cog and Path(cog.path).is_file()
