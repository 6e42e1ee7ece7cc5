"""Validation of query parameters at the edge: bad values become 400s that say what is wrong."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import Query

from geoapi.query_models import PropertyFilter, SortKey
from geoapi.values import EXPECTED, parse_value
from urbis_core.errors import InvalidParameter

if TYPE_CHECKING:  # only its fields are read: the edge imports no SQL module
    from urbis_core.catalog import LayerEntry

# --- Paging: what PostgreSQL takes ----------------------------------------------------------

# OFFSET is bound as a bigint (at most 2^63 - 1) and LIMIT as an integer (at most 2^31 - 1); a
# larger number fails in the database. An offset is refused past MAX_OFFSET, a 400 naming it:
# that is past every layer there can be, and a page's size added to it (the next link) stays
# a bigint. A limit is never refused for being large (OGC API Features reduces it): the SQL
# takes at most SQL_MAX_LIMIT, where no page maximum reduces it first (a CSV page).
MAX_OFFSET = 10**18
SQL_MAX_LIMIT = 2**31 - 1

Offset = Annotated[
    int,
    Query(
        ge=0, le=MAX_OFFSET, description=(f"Features to skip (paging): 0 to {MAX_OFFSET:,} (10^18)")
    ),
]


def sql_limit(limit: int) -> int:
    """`limit` as the database takes it: larger values, past any page it can give, reduced."""
    return min(limit, SQL_MAX_LIMIT)


def reject_unknown(
    params: Iterable[str], allowed: set[str], layer: LayerEntry | None = None
) -> None:
    """A 400 for the first parameter that is neither in `allowed` nor a property of `layer`.

    With a layer, its properties are accepted as `<property>=<value>` equality filters.
    """
    properties = {c.name for c in layer.columns} if layer is not None else set()
    unknown = sorted(set(params) - allowed - properties)
    if unknown:
        hint = next(
            (
                f" (did you mean '{n}'?)"
                for n in sorted(allowed | properties)
                if n.lower() == unknown[0].lower()
            ),
            "",
        )
        message = f"unknown parameter{hint}; this resource accepts {', '.join(sorted(allowed))}"
        if layer is not None:
            message += f", and the properties of '{layer.id}' as filters: " + ", ".join(
                c.name for c in layer.columns
            )
        raise InvalidParameter(unknown[0], message)


def parse_instant(raw: str | None, parameter: str) -> datetime | None:
    """An RFC 3339 instant (a plain date means its midnight, UTC); intervals are refused."""
    if raw is None or raw == "":
        return None
    example = "e.g. 2026-11-28T12:00:00Z"
    if "/" in raw:
        raise InvalidParameter(
            parameter, f"only a single instant is supported ({example}), not an interval"
        )
    try:
        if len(raw) == 10:
            return datetime.fromisoformat(raw).replace(tzinfo=UTC)
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidParameter(
            parameter, f"'{raw}' is not an RFC 3339 date-time ({example})"
        ) from None
    if value.tzinfo is None:
        raise InvalidParameter(parameter, f"'{raw}' needs a time zone, Z or +01:00 ({example})")
    return value


# --- Properties: selection, sorting, equality filters ---------------------------------------


def _property_names(layer: LayerEntry) -> str:
    return ", ".join(c.name for c in layer.columns)


def _unknown_property(parameter: str, name: str, layer: LayerEntry) -> InvalidParameter:
    hint = next(
        (f" (did you mean '{c.name}'?)" for c in layer.columns if c.name.lower() == name.lower()),
        "",
    )
    return InvalidParameter(
        parameter,
        f"unknown property '{name}'{hint}; collection '{layer.id}' has {_property_names(layer)}",
    )


def parse_properties(raw: str | None, layer: LayerEntry) -> tuple[str, ...] | None:
    """`properties=a,b`: these catalog properties, in this order; None when absent.

    An empty value selects no property at all (the feature id and geometry remain).
    """
    if raw is None:
        return None
    known = {c.name for c in layer.columns}
    names: list[str] = []
    for part in raw.split(","):
        name = part.strip()
        if not name:
            if raw.strip():
                raise InvalidParameter("properties", "empty name in the list")
            continue
        if name not in known:
            raise _unknown_property("properties", name, layer)
        if name not in names:
            names.append(name)
    return tuple(names)


def parse_sortby(raw: str | None, layer: LayerEntry) -> tuple[SortKey, ...]:
    """`sortby=+NAME_FRE,-AREA`: `+` (the default) ascending, `-` descending.

    A `+` left unencoded in a URL arrives as a space, which is read as `+`.
    """
    if raw is None or not raw.strip():
        return ()
    known = {c.name for c in layer.columns}
    keys: list[SortKey] = []
    for part in raw.split(","):
        entry = part.strip()
        descending = entry.startswith("-")
        name = entry[1:].strip() if entry[:1] in ("+", "-") else entry
        if not name:
            raise InvalidParameter(
                "sortby", f"'{raw}' has an empty entry; expected e.g. +NAME_FRE,-AREA"
            )
        if name not in known:
            raise _unknown_property("sortby", name, layer)
        if any(k.name == name for k in keys):
            raise InvalidParameter("sortby", f"property '{name}' is given twice")
        keys.append(SortKey(name, descending))
    return tuple(keys)


def parse_equals(
    params: Iterable[tuple[str, str]], layer: LayerEntry, reserved: set[str]
) -> tuple[PropertyFilter, ...]:
    """`<property>=<value>` pairs for catalog properties (other names are left alone).

    Each value is converted to its column's type; one that cannot be is a 400 naming the
    property and the type expected. Names in `reserved` (the resource's own parameters) win.
    """
    types = {c.name: c.sql_type for c in layer.columns}
    filters: list[PropertyFilter] = []
    for name, raw in params:
        if name in reserved or name not in types:
            continue
        sql_type = types[name]
        try:
            value = parse_value(sql_type, raw)
        except ValueError:
            expected = EXPECTED.get(sql_type, "text")
            raise InvalidParameter(
                name, f"property '{name}' is {sql_type}: expected {expected}, got '{raw}'"
            ) from None
        filters.append(PropertyFilter(name, value))
    return tuple(filters)
