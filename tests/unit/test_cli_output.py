import io
import json
import logging
import re
import time
from datetime import UTC, datetime

import pytest

from urbis_cli.output import JsonFormatter, PeopleFormatter, ProgressLine, local_time


def test_progress_line_rewrites_itself_on_a_terminal(monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr("sys.stderr", screen)
    progress = ProgressLine()
    progress.enabled = True  # as on a terminal
    progress("buildings", 20_000)
    progress("buildings", 40_000)
    progress.done()
    text = screen.getvalue()
    assert text.count("\r") >= 3
    assert "buildings: 40,000 features read" in text


def test_json_log_lines_carry_the_run_facts():
    record = logging.LogRecord(
        "urbis_sync.run", logging.INFO, __file__, 1, "run %s", ("success",), None
    )
    record.layer = "buildings"
    record.inserted = 3
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "run success" and line["level"] == "info"
    assert line["layer"] == "buildings" and line["inserted"] == 3


ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?[+-]\d\d:\d\d$")


@pytest.fixture
def brussels_time(monkeypatch):
    """The local time zone of the machine set to Brussels' for the test."""
    monkeypatch.setenv("TZ", "Europe/Brussels")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_times_are_local_iso_8601_with_their_offset(brussels_time):
    winter = datetime(2026, 1, 15, 11, 30, 5, 123456, tzinfo=UTC)
    summer = datetime(2026, 7, 15, 11, 30, 5, tzinfo=UTC)
    assert local_time(winter) == "2026-01-15T12:30:05+01:00"
    assert local_time(summer) == "2026-07-15T13:30:05+02:00"
    assert local_time(datetime(2026, 7, 15, 11, 30, 5)) == "2026-07-15T13:30:05+02:00"  # UTC
    assert local_time(None) == "-"


def test_log_lines_carry_their_offset(brussels_time):
    record = logging.LogRecord(
        "urbis_sync.run", logging.INFO, __file__, 1, "run %s", ("success",), None
    )
    record.created = datetime(2026, 7, 15, 11, 30, 5, 250000, tzinfo=UTC).timestamp()
    assert json.loads(JsonFormatter().format(record))["time"] == "2026-07-15T11:30:05.250+00:00"
    people = PeopleFormatter("%(asctime)s %(message)s").format(record)
    assert people == "2026-07-15T13:30:05.250+02:00 run success"
    stamp = people.split()[0]
    assert (
        ISO_WITH_OFFSET.match(stamp) and datetime.fromisoformat(stamp).timestamp() == record.created
    )
