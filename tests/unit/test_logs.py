"""The log's two formats, the setting choosing them, and which request ids are kept."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from geoapi import request_ids
from geoapi.logs import JsonFormatter, RequestIdFilter
from urbis_core.errors import ConfigError
from urbis_core.settings import Settings


@pytest.mark.parametrize(
    ("raw", "expected"), [("json", "json"), (" JSON ", "json"), ("text", "text")]
)
def test_the_log_format_setting(raw, expected):
    assert (
        Settings.from_env({"URBIS_LOG_FORMAT": raw}).api("postgresql://x/y").log_format == expected
    )


def test_the_log_format_defaults_to_text_and_refuses_others():
    assert Settings.from_env({}).api("postgresql://x/y").log_format == "text"
    with pytest.raises(ConfigError, match="URBIS_LOG_FORMAT='xml'.*'text' or 'json'"):
        Settings.from_env({"URBIS_LOG_FORMAT": "xml"})


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("geoapi.access", logging.INFO, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    RequestIdFilter().filter(record)
    return record


def test_a_json_line_carries_the_request_id_of_the_request_it_was_written_for():
    token = request_ids.current.set("abc-1")
    try:
        line = JsonFormatter().format(
            _record('GET "/x"\nfake line', method="GET", status=200, duration_ms=1.5)
        )
    finally:
        request_ids.current.reset(token)
    assert "\n" not in line  # one line whatever the message holds
    parsed = json.loads(line)
    assert parsed["request_id"] == "abc-1" and parsed["message"] == 'GET "/x"\nfake line'
    assert (parsed["method"], parsed["status"], parsed["duration_ms"]) == ("GET", 200, 1.5)
    assert parsed["level"] == "INFO" and parsed["time"].endswith("+00:00")


def test_a_line_outside_any_request_has_no_request_id_and_keeps_its_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    parsed = json.loads(JsonFormatter().format(record))
    assert "request_id" not in parsed and "method" not in parsed
    assert "ValueError: boom" in parsed["exception"]


@pytest.mark.parametrize("good", ["a", "trace-1.2", "x" * 48, "span:7@host+a=b_c"])
def test_sane_request_ids_are_kept(good):
    assert request_ids.accepted(good) == good


@pytest.mark.parametrize("bad", [None, "", "x" * 49, "a b", "a\nb", "a'b", "é", "a;b", "a/b"])
def test_other_request_ids_are_not(bad):
    assert request_ids.accepted(bad) is None


def test_the_application_name_stays_within_postgresqls_63_bytes():
    name = request_ids.application_name("urbis-api", "x" * request_ids.MAX_LENGTH)
    assert name.startswith("urbis-api/") and len(name.encode()) <= 63
    assert request_ids.application_name("urbis-api", None) == "urbis-api"
