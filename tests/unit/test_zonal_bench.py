"""The zonal statistics benchmark: its comparison with rasterstats, its reading of the job's CSV,
its layer config; and (slow) one whole run through the API at a tiny size."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import zonal_api, zonal_bench
from bench.zonal_api import KEY, compare, read_csv_stats
from bench.zonal_bench import agrees
from urbis_core.config import load_config

THEIRS = {
    "count": 4,
    "nodata": 1.0,
    "min": 10.0,
    "max": 13.0,
    "mean": 11.5,
    "std": 1.118033988749895,
    "percentile_5": 10.15,
    "percentile_50": 11.5,
    "percentile_95": 12.85,
}
EMPTY_THEIRS = {"count": 0, "nodata": None, "min": None, "max": None, "mean": None, "std": None}


def ours(**changes: Any) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "count": 4,
        "nodata_count": 1,
        "min": 10.0,
        "max": 13.0,
        "mean": 11.5,
        "std": 1.118033988749895,
        "percentiles": {5: 10.15, 50: 11.5, 95: 12.85},
    }
    return {**stats, **changes}


def test_the_same_numbers_agree_within_float_tolerance() -> None:
    assert agrees(ours(), THEIRS)
    assert agrees(ours(mean=11.5 + 1e-9), THEIRS)


@pytest.mark.parametrize(
    "changes",
    [
        {"count": 5},
        {"nodata_count": 0},
        {"min": 9.0},
        {"std": 1.2},
        {"percentiles": {5: 10.15, 50: 11.6, 95: 12.85}},
    ],
)
def test_any_statistic_apart_is_a_difference(changes: dict[str, Any]) -> None:
    assert not agrees(ours(**changes), THEIRS)


def test_a_feature_of_no_cells_agrees_with_rasterstats_nones() -> None:
    empty = ours(count=0, nodata_count=0, min=None, max=None, mean=None, std=None)
    assert agrees(empty, EMPTY_THEIRS)
    assert not agrees(empty, {**EMPTY_THEIRS, "nodata": 3.0})


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text(f"{KEY},count,nodata_count,min,max,mean,std,p5,p50,p95\n" + "\n".join(rows))
    return path


def test_the_jobs_csv_reads_as_zonal_stats_numbers_empty_as_none(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "z.csv",
        ["1,4,1,10.0,13.0,11.5,1.118033988749895,10.15,11.5,12.85", "0,0,0,,,,,,,"],
    )
    read = read_csv_stats(path)
    assert sorted(read) == [0, 1]
    assert read[1] == ours()
    assert read[0]["count"] == 0 and read[0]["mean"] is None
    assert read[0]["percentiles"] == {5: None, 50: None, 95: None}


def test_the_check_counts_missing_extra_and_differing_buildings(tmp_path: Path) -> None:
    job = {0: ours(), 1: ours(max=14.0), 7: ours()}
    checked = compare(job, [THEIRS, THEIRS, THEIRS])
    assert checked["missing_from_csv"] == 1  # building 2
    assert checked["extra_in_csv"] == 1  # key 7
    assert checked["differing"] == 1
    assert [e["building"] for e in checked["examples"]] == [1]
    assert compare({0: ours()}, [THEIRS])["differing"] == 0


def test_the_layer_config_is_a_raster_and_a_vector_layer_our_config_accepts(
    tmp_path: Path,
) -> None:
    config = load_config(
        zonal_api.layer_config(tmp_path, tmp_path / "dtm.tif", tmp_path / "b.gpkg")
    )
    assert sorted(config.rasters) == ["terrain"]
    assert config.layer("buildings").key == KEY


@pytest.mark.slow
def test_the_job_is_timed_through_the_api_at_a_tiny_size(tmp_path: Path) -> None:
    """Generation, sync, urbis serve, the job, both downloads, rasterstats, the check."""
    out = tmp_path / "result.json"
    code = zonal_bench.main(
        [
            "--through-api",
            "--buildings=150",
            "--size=300",
            f"--workdir={tmp_path}",
            f"--json={out}",
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    check = result["check"]
    assert check["rows_in_csv"] == check["gpkg_rows"] == check["buildings"] == 150
    assert check["missing_from_csv"] == check["extra_in_csv"] == check["differing"] == 0
    assert result["data"]["features_in_table"] == 150
    assert result["job"]["progress"] == {"done": 150, "total": 150}
    seconds = result["seconds"]
    assert seconds["job: POST to successful"] > 0 and seconds["rasterstats"] > 0
    assert seconds["download csv"] > 0 and seconds["download gpkg"] > 0
    assert result["ratios"]["rasterstats / job"] > 0
