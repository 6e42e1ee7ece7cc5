import io
import json
import logging

from urbis_cli.output import JsonFormatter, ProgressLine


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
    record = logging.LogRecord("urbis_sync.run", logging.INFO, __file__, 1, "run %s", ("success",),
                               None)
    record.layer = "buildings"
    record.inserted = 3
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "run success" and line["level"] == "info"
    assert line["layer"] == "buildings" and line["inserted"] == 3
