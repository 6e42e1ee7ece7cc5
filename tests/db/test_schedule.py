"""Continuous mode: schedules, backoff, one process per layer, status."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import SAMPLE_DIR
from urbis_core.catalog import sync_lock_key
from urbis_core.config import load_config, parse_duration
from urbis_sync.run import sync_layer
from urbis_sync.schedule import FIRST_RETRY, _next_run, layer_status, run_continuously


def config_file(tmp_path: Path, schedule: str, broken_schedule: str = "1h") -> Path:
    path = tmp_path / "urbis.yaml"
    path.write_text(
        "layers:\n"
        f"  addresses:\n    source: {{kind: file, path: {SAMPLE_DIR / 'UrbAdm_AdPt_sample.zip'}}}\n"
        f"    key: ID\n    schedule: {schedule}\n"
        f"  broken:\n    source: {{kind: file, path: {tmp_path / 'gone.gpkg'}}}\n"
        f"    key: ID\n    schedule: {broken_schedule}\n"
    )
    return path


def test_durations_and_backoff():
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("1d") == timedelta(days=1)
    with pytest.raises(ValueError):
        parse_duration("0s")
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    day = timedelta(days=1)
    assert _next_run(day, None, 0, now) == now
    assert _next_run(day, now, 0, now) == now + day
    assert [_next_run(day, now, n, now) - now for n in (1, 2, 3)] == [
        FIRST_RETRY,
        FIRST_RETRY * 2,
        FIRST_RETRY * 4,
    ]
    assert _next_run(timedelta(minutes=1), now, 10, now) == now + timedelta(minutes=1)
    # failing for weeks: the backoff stays the schedule, it does not overflow
    assert _next_run(day, now, 500, now) == now + day


def test_runs_each_layer_on_its_schedule_and_a_failing_one_backs_off(engine, tmp_path):
    config = load_config(config_file(tmp_path, "1s"))
    stop = threading.Event()
    reports = []
    worker = threading.Thread(
        target=run_continuously, args=(engine, config, None, stop, reports.append)
    )
    worker.start()
    stop.wait(4.5)
    stop.set()
    worker.join(30)
    by_layer = {
        layer: [r.status for r in reports if r.layer_id == layer]
        for layer in ("addresses", "broken")
    }
    assert len(by_layer["addresses"]) >= 2 and set(by_layer["addresses"]) == {"success"}
    assert by_layer["broken"] == ["failed"]  # next try only after FIRST_RETRY (30 s)

    status = {s.layer_id: s for s in layer_status(engine, config)}
    assert status["addresses"].version == 1 and status["addresses"].feature_count == 666
    assert status["addresses"].failures_in_a_row == 0
    broken = status["broken"]
    assert broken.version is None and broken.failures_in_a_row == 1
    assert "does not exist" in (broken.failure_reason or "")
    assert broken.next_run - broken.last_failure == FIRST_RETRY


def test_one_process_per_layer(engine, tmp_path):
    config = load_config(config_file(tmp_path, "1h"))
    with engine.connect() as other:
        other.execute(sa.select(sa.func.pg_advisory_lock(sync_lock_key("addresses"))))
        busy = sync_layer(engine, config, "addresses")
        other.execute(sa.select(sa.func.pg_advisory_unlock(sync_lock_key("addresses"))))
    assert busy.status == "busy" and busy.run_id is None
    assert sync_layer(engine, config, "addresses").status == "success"


def test_asked_unless_a_run_came_after_the_newest_it_saw(engine, tmp_path):
    """What the admin API asks: no second run when one started since it looked."""
    config = load_config(config_file(tmp_path, "1h"))
    first = sync_layer(engine, config, "addresses")
    assert first.status == "success" and first.run_id is not None
    seen_before = first.run_id - 1  # what a caller saw just before this run started
    skipped = sync_layer(engine, config, "addresses", unless_run_after=seen_before)
    assert (skipped.status, skipped.run_id) == ("superseded", first.run_id)
    assert f"run {first.run_id} started since" in skipped.summary()
    with engine.connect() as conn:
        newest = conn.execute(sa.text("SELECT max(id) FROM urbis_meta.sync_run")).scalar()
    assert newest == first.run_id  # nothing ran
    again = sync_layer(engine, config, "addresses", unless_run_after=first.run_id)
    assert again.status == "success" and again.run_id > first.run_id


def test_a_run_left_running_by_a_dead_process_is_closed_as_failed(engine, tmp_path):
    config = load_config(config_file(tmp_path, "1h"))
    with engine.begin() as conn:  # what a worker killed mid-run leaves behind
        conn.execute(
            sa.text(
                "INSERT INTO urbis_meta.sync_run (layer_id, mode, status) "
                "VALUES ('addresses', 'reconcile', 'running')"
            )
        )
    assert layer_status(engine, config)[0].running
    assert sync_layer(engine, config, "addresses").status == "success"
    with engine.connect() as conn:
        runs = conn.execute(
            sa.text("SELECT status, error FROM urbis_meta.sync_run ORDER BY id")
        ).all()
    assert runs[0].status == "failed" and runs[0].error.startswith("interrupted")
    assert runs[1].status == "success"
    assert not layer_status(engine, config)[0].running


def test_a_layer_failing_for_long_says_since_when(engine, tmp_path):
    """`failing_since` is the first failure after the last success, however many runs ago;
    a run still going neither ends nor extends the streak; a success ends it."""
    config = load_config(config_file(tmp_path, "1h"))
    start = datetime(2026, 12, 1, 8, tzinfo=UTC)

    def add(status: str, minutes: int | None) -> None:
        finished = None if minutes is None else start + timedelta(minutes=minutes)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO urbis_meta.sync_run (layer_id, mode, status, finished_at, "
                    "error) VALUES ('broken', 'reconcile', :status, :finished, :error)"
                ),
                {
                    "status": status,
                    "finished": finished,
                    "error": None if status != "failed" else f"failure {minutes}",
                },
            )

    def broken():
        return next(s for s in layer_status(engine, config) if s.layer_id == "broken")

    assert broken().failing_since is None and broken().failures_in_a_row == 0
    add("failed", 0)  # an old streak, ended by the success below
    add("success", 5)
    for minute in range(10, 10 + 60):  # more runs than the status reads one by one
        add("failed", minute)
    add("running", None)
    status = broken()
    assert status.failing_since == start + timedelta(minutes=10)
    assert status.failures_in_a_row == 60
    assert status.failure_reason == "failure 69" and status.running
    assert status.record()["failing_since"] == "2026-12-01T08:10:00+00:00"
    add("success", 80)
    assert broken().failing_since is None and broken().failures_in_a_row == 0
