"""Text from a URL as a value of a column's SQL type (filters, feature ids)."""

from __future__ import annotations

import math
import re
from datetime import date, datetime, time
from typing import Any

_INTEGER = re.compile(r"[-+]?[0-9]+")
_NUMBER = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
_INTEGER_RANGES = {"integer": 2**31, "bigint": 2**63}
EXPECTED = {
    "integer": "an integer",
    "bigint": "an integer",
    "double precision": "a number",
    "boolean": "true or false",
    "date": "a date (YYYY-MM-DD)",
    "timestamptz": "an RFC 3339 date-time with a time zone (e.g. 2026-11-28T12:00:00Z)",
    "time": "a time (HH:MM:SS)",
    "text": "text",
}


def parse_value(sql_type: str, raw: str) -> Any:
    """`raw` as a value of `sql_type`; ValueError when it is not one."""
    if sql_type in _INTEGER_RANGES:
        bound = _INTEGER_RANGES[sql_type]
        if not _INTEGER.fullmatch(raw) or not -bound <= int(raw) < bound:
            raise ValueError(raw)
        return int(raw)
    if sql_type == "double precision":
        if not _NUMBER.fullmatch(raw) or not math.isfinite(float(raw)):
            raise ValueError(raw)
        return float(raw)
    if sql_type == "boolean":
        if raw.lower() not in _BOOLEANS:
            raise ValueError(raw)
        return _BOOLEANS[raw.lower()]
    if sql_type == "date":
        if not _DATE.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)  # ValueError for a day that does not exist
    if sql_type == "time":
        if not _TIME.fullmatch(raw):
            raise ValueError(raw)
        return time.fromisoformat(raw)
    if sql_type == "timestamptz":
        if len(raw) <= 10:
            raise ValueError(raw)
        instant = datetime.fromisoformat(raw)
        if instant.tzinfo is None:
            raise ValueError(raw)
        return instant
    if "\x00" in raw:  # PostgreSQL text cannot hold NUL
        raise ValueError(raw)
    return raw
