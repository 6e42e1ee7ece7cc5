"""Geocoding on the synced URBIS addresses: free text to the addresses, street or place it names.

The street the query names comes first. Its candidates are scored by name alone
(`street_index`); those under the minimum score are not answers, so a street missing from the
data answers nothing rather than the least bad other street. Streets of equal score form a
tier, and tiers are answered in order:

1. with a house number: the tier's addresses with that number (and box, when asked), then
   those with the same number and another letter or box; if the first tier has none, the
   nearest existing numbers on its streets (below and above), then the streets themselves;
   later tiers (other streets) only add their addresses with the number asked;
2. without a number: the streets themselves, each as its middle address point with its
   extent as `bbox`, carrying the street's fields and empty number fields.

A query naming only a municipality or a postcode answers where its addresses lie, the same way.

One module, over 400 lines: the tiers above are one ranking, and their SQL one query per tier.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import groupby
from typing import Any

import sqlalchemy as sa
from pyproj import Transformer
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from geoapi.address_layers import AddressFields, label
from geoapi.address_words import (
    ParsedQuery,
    fold,
    number_key,
    numeric,
    parse_query,
    require_something,
)
from geoapi.crs import OutputCrs
from geoapi.features import feature_json
from geoapi.street_index import AreaMatch, OffLoop, Street, StreetIndex, StreetMatch
from urbis_core.catalog import LayerEntry

MAX_RESULTS = 50
DEFAULT_MIN_SCORE = 0.8
# What the number found is worth, against the street's score: the number asked (and box), the
# same number with another letter or box, the nearest existing one, the street only.
EXACT, OTHER_LETTER_OR_BOX, NEAREST_NUMBER, STREET_ONLY = 1.0, 0.95, 0.8, 0.7
ENVELOPE_MARGIN_M = 0.01  # a street's extent, a little wider: one address is a point
COMPLETIONS = 5  # the readings of an unfinished last word tried, besides the word as typed
# the letters that end a query still being typed (a number or a space ends a word)
_LAST_LETTERS = re.compile(r"[^\W\d_]+$")
MAX_BOX_SEARCH = 200  # numbers read at most to find a box (a name common to many streets)


@dataclass
class Planned:
    """An answer decided before any address is read: a street's number, or a street/area."""

    match: StreetMatch | None
    fit: float
    number: Any = None  # the stored house number to read, or None for the street itself
    area: AreaMatch | None = None
    tier: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


def _tiers(matches: list[StreetMatch]) -> list[list[StreetMatch]]:
    return [list(t) for _s, t in groupby(matches, key=lambda m: round(m.score, 6))]


def _number_fits(asked: str, street: Street) -> list[tuple[Any, float]]:
    exact = [n for n in street.numbers if number_key(n) == asked]
    wanted = numeric(asked)
    other = [
        n
        for n in street.numbers
        if wanted is not None and numeric(n) == wanted and number_key(n) != asked
    ]
    return [(n, EXACT) for n in sorted(exact, key=_number_order)] + [
        (n, OTHER_LETTER_OR_BOX) for n in sorted(other, key=_number_order)
    ]


def _nearest(asked: str, street: Street) -> list[tuple[int, Any]]:
    """The street's numbers nearest below and above the one asked: (distance, number)."""
    wanted = numeric(asked)
    if wanted is None:
        return []
    known = [(value, n) for n in street.numbers if (value := numeric(n)) is not None]
    below = max((v for v, _n in known if v < wanted), default=None)
    above = min((v for v, _n in known if v > wanted), default=None)
    return [(abs(v - wanted), n) for v, n in known if v in (below, above)]


def _number_order(value: Any) -> tuple[int, str]:
    n = numeric(value)
    return (n if n is not None else 1 << 30, number_key(value))


def plan(query: ParsedQuery, matches: list[StreetMatch], limit: int) -> list[Planned]:
    """What to answer, in order, until `limit` answers are sure (see the module's docstring).

    Each planned number is at least one address. Boxes are not in memory: when one is asked,
    every address of the tier with that number is read, to find the box wherever it is.
    """
    planned: list[Planned] = []
    for position, tier in enumerate(_tiers(matches)):
        if len(planned) >= limit:
            break
        if query.number is None:
            planned += [Planned(m, 1.0, tier=position) for m in tier]
            continue
        found = [(fit, m, n) for m in tier for n, fit in _number_fits(query.number, m.street)]
        found.sort(key=lambda f: -f[0])  # stable: the tier's order, then the numbers'
        planned += [Planned(m, fit, n, tier=position) for fit, m, n in found]
        if found or position > 0:
            continue
        near = sorted(
            (
                (d, _number_order(n), i, n)
                for i, m in enumerate(tier)
                for d, n in _nearest(query.number, m.street)
            ),
            key=lambda x: x[:3],
        )
        planned += [Planned(tier[i], NEAREST_NUMBER, n, tier=position) for _d, _o, i, n in near]
        planned += [Planned(m, STREET_ONLY, tier=position) for m in tier]
    return planned[: MAX_BOX_SEARCH if query.box is not None else limit]


def _address_statement(layer: LayerEntry, fields: AddressFields, crs: OutputCrs) -> sa.Select[Any]:
    """The addresses with given numbers in given extents, found through the GiST index.

    The extents and numbers are bound as arrays (x0, y0, x1, y1, numbers): one statement
    whatever their count.
    """
    table = layer.table()
    m = ENVELOPE_MARGIN_M
    arrays = [sa.bindparam(name, type_=ARRAY(sa.Float)) for name in ("x0", "y0", "x1", "y1")]
    wanted = (
        sa.func.unnest(*arrays, sa.bindparam("numbers", type_=ARRAY(sa.Text)))
        .table_valued("x0", "y0", "x1", "y1", "number")
        .render_derived(name="wanted")
    )
    envelope = sa.func.ST_MakeEnvelope(
        wanted.c.x0 - m, wanted.c.y0 - m, wanted.c.x1 + m, wanted.c.y1 + m, layer.srid
    )
    return (
        sa.select(
            feature_json(layer, table, crs).label("feature"), *(table.c[n] for n in fields.all())
        )
        .select_from(wanted)
        .join(
            table,
            sa.and_(
                table.c.geom.op("&&")(envelope),
                sa.cast(table.c[fields.number], sa.Text) == wanted.c.number,
            ),
        )
    )


async def read_addresses(
    conn: AsyncConnection,
    layer: LayerEntry,
    fields: AddressFields,
    index: StreetIndex,
    planned: list[Planned],
    crs: OutputCrs,
) -> None:
    """Read the planned numbers' addresses (every box of each) into `planned[i].rows`.

    Each number is looked for in the extent of its addresses, through the GiST index; what
    another street's address in that extent brings is left out here. The statement is
    compiled once per layer version and CRS: building and compiling it took longer than
    PostgreSQL takes to answer it.
    """
    wanted = [p for p in planned if p.number is not None and p.match is not None]
    if not wanted:
        return
    looked: dict[tuple[int, Any], tuple[Any, ...]] = {}
    for p in wanted:
        assert p.match is not None
        looked[(id(p.match.street), p.number)] = (
            *p.match.street.number_extent(p.number),
            str(p.number),
        )
    compiled = index.statements.get(crs.uri)
    if compiled is None:
        compiled = index.statements[crs.uri] = _address_statement(layer, fields, crs).compile(
            dialect=conn.dialect
        )
    columns = list(zip(*looked.values(), strict=True))
    values = compiled.construct_params(
        {
            name: list(column)
            for name, column in zip(("x0", "y0", "x1", "y1", "numbers"), columns, strict=True)
        }
    )
    read: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in await conn.exec_driver_sql(compiled.string, values):
        mapping = dict(row._mapping)
        key = (*(mapping[n] for n in fields.street_fields()), mapping[fields.number])
        rows = read.setdefault(key, [])
        if not any(r["feature"] == mapping["feature"] for r in rows):  # extents overlap
            rows.append(mapping)
    for p in wanted:
        assert p.match is not None
        p.rows = read.get((*_street_values(p.match.street), p.number), [])


def _street_values(street: Street) -> tuple[Any, ...]:
    values = (
        street.street_fr,
        street.street_nl,
        street.postcode,
        street.municipality_fr,
        street.municipality_nl,
    )
    return values if street.street_id is None else (street.street_id, *values)


def _box_order(box: Any, asked: str | None) -> tuple[int, int, str]:
    key = number_key(box)
    if asked is not None and key == asked:
        return (0, 0, key)
    n = numeric(box)
    return (1 if not key else 2, n if n is not None else 1 << 30, key)


@lru_cache(maxsize=16)
def _transformer(source: int, target: int) -> Transformer:
    return Transformer.from_crs(source, target, always_xy=True)


def _place_feature(
    layer: LayerEntry,
    fields: AddressFields,
    crs: OutputCrs,
    extent: tuple[float, float, float, float],
    middle: tuple[float, float],
    properties: dict[str, Any],
) -> dict[str, Any]:
    """A street or an area as a feature: its middle point, its extent as `bbox`."""
    x, y = middle
    minx, miny, maxx, maxy = extent
    if crs.srid != layer.srid:
        transform = _transformer(layer.srid, crs.srid)
        x, y = transform.transform(x, y)
        minx, miny, maxx, maxy = transform.transform_bounds(minx, miny, maxx, maxy)
    if crs.lat_first:
        x, y, minx, miny, maxx, maxy = y, x, miny, minx, maxy, maxx
    d = crs.decimals
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [round(x, d), round(y, d)]},
        "bbox": [round(v, d) for v in (minx, miny, maxx, maxy)],
        "properties": properties,
    }


def _compared(
    query: ParsedQuery, m: StreetMatch, number: Any, box: Any
) -> dict[str, dict[str, Any]]:
    """What of the query was compared with what of the answer."""
    street = m.street
    compared: dict[str, dict[str, Any]] = {
        "street": {"query": m.query_words, "matched": m.name.text, "score": round(m.name_score, 3)}
    }
    if query.number is not None:
        compared["number"] = {"query": query.number, "matched": number}
    if query.box is not None:
        compared["box"] = {"query": query.box, "matched": box}
    compared.update(
        _place_compared(
            query.postcode,
            street.postcode,
            m.municipality,
            (street.municipality_fr, street.municipality_nl),
            m.name.language,
        )
    )
    return compared


def _place_compared(
    postcode: str | None,
    matched_postcode: Any,
    municipality: str | None,
    matched_names: tuple[Any, Any],
    language: str,
) -> dict[str, dict[str, Any]]:
    """The postcode and municipality asked for beside those matched (in the query's language)."""
    compared: dict[str, dict[str, Any]] = {}
    if postcode is not None:
        compared["postcode"] = {"query": postcode, "matched": matched_postcode}
    if municipality is not None:
        french, dutch = matched_names
        compared["municipality"] = {
            "query": municipality,
            "matched": french if language == "fr" else dutch,
        }
    return compared


def _how(query: ParsedQuery, m: StreetMatch, number: Any, box: Any) -> str:
    """exact: the street's name, the number and box as asked, nothing disagreeing."""
    exact = (
        m.name_score >= 1.0
        and m.score >= m.name_score
        and (query.number is None or number_key(number) == query.number)
        and (query.box is None or number_key(box) == query.box)
    )
    return "exact" if exact else "fuzzy"


def _street_properties(fields: AddressFields, street: Street) -> dict[str, Any]:
    properties = dict(zip(fields.street_fields(), _street_values(street), strict=True))
    properties[fields.number] = None
    if fields.box:
        properties[fields.box] = None
    return properties


def answer(
    layer: LayerEntry,
    fields: AddressFields,
    query: ParsedQuery,
    planned: list[Planned],
    limit: int,
    crs: OutputCrs,
) -> list[tuple[float, dict[str, Any]]]:
    """The features, tier by tier; in a tier by what the number (and box) are worth.

    Each comes with its tier's score (its street's, or its place's), for merging readings.
    """
    ranked: list[tuple[tuple[Any, ...], Planned, dict[str, Any] | None]] = []
    for i, p in enumerate(planned):
        if p.number is None:
            ranked.append(((p.tier, -p.fit, i), p, None))
        for row in p.rows:
            box = row.get(fields.box) if fields.box else None
            fit = p.fit
            if query.box is not None and number_key(box) != query.box:
                fit = min(fit, OTHER_LETTER_OR_BOX)
            ranked.append(((p.tier, -fit, i, _box_order(box, query.box)), p, row))
    ranked.sort(key=lambda r: r[0])
    return [
        (_tier_score(p), _feature(layer, fields, query, p, row, -order[1], crs))
        for order, p, row in ranked[:limit]
    ]


def _tier_score(p: Planned) -> float:
    matched = p.match if p.match is not None else p.area
    assert matched is not None
    return round(matched.score, 6)  # as `_tiers` groups them


def _feature(
    layer: LayerEntry,
    fields: AddressFields,
    query: ParsedQuery,
    p: Planned,
    row: dict[str, Any] | None,
    fit: float,
    crs: OutputCrs,
) -> dict[str, Any]:
    if p.area is not None:
        return _area_feature(layer, fields, query, p.area, crs)
    m = p.match
    assert m is not None
    language = m.name.language
    if row is None:
        properties = _street_properties(fields, m.street)
        properties.update(
            score=round(m.score * fit, 3),
            label=label(properties, fields, language),
            language=language,
            match="street",
            compared=_compared(query, m, None, None),
        )
        return _place_feature(layer, fields, crs, m.street.extent, m.street.middle, properties)
    box = row.get(fields.box) if fields.box else None
    how = "nearest_number" if p.fit == NEAREST_NUMBER else _how(query, m, p.number, box)
    feature: dict[str, Any] = json.loads(row["feature"])
    feature["properties"].update(
        score=round(m.score * fit, 3),
        label=label(row, fields, language),
        language=language,
        match=how,
        compared=_compared(query, m, p.number, box),
    )
    return feature


def _area_feature(
    layer: LayerEntry, fields: AddressFields, query: ParsedQuery, m: AreaMatch, crs: OutputCrs
) -> dict[str, Any]:
    area = m.area
    properties: dict[str, Any] = {n: None for n in fields.all()}
    properties.update(
        {
            fields.postcode: area.postcode,
            fields.municipality_fr: area.municipality_fr,
            fields.municipality_nl: area.municipality_nl,
        }
    )
    compared = _place_compared(
        query.postcode,
        area.postcode,
        m.municipality,
        (area.municipality_fr, area.municipality_nl),
        m.municipality_language,
    )
    properties.update(
        score=round(m.score, 3),
        label=label(properties, fields, m.municipality_language),
        language=m.municipality_language,
        match="municipality" if m.municipality is not None else "postcode",
        compared=compared,
    )
    return _place_feature(layer, fields, crs, area.extent, area.middle, properties)


async def geocode(
    conn: AsyncConnection,
    layer: LayerEntry,
    fields: AddressFields,
    index: StreetIndex,
    q: str,
    limit: int,
    min_score: float,
    crs: OutputCrs,
    off_loop: OffLoop,
    complete: bool = False,
) -> list[dict[str, Any]]:
    """What `q` names, best first, each with `score` (0-1), `match`, `compared` and `label`.

    `complete`: the last word may be unfinished (as one types): `q` is also read with it
    completed into the names' words it begins, and the answers of every reading are merged.
    """
    require_something(parse_query(q))
    found: dict[Any, tuple[tuple[float, float, int, int], dict[str, Any]]] = {}
    for reading, text in enumerate(completed(index, q) if complete else [q]):
        query = parse_query(text)
        if not query.words and query.postcode is None:
            continue
        planned, place_only = await off_loop(_plan_query, index, query, limit, min_score)
        if not place_only:
            await read_addresses(conn, layer, fields, index, planned, crs)
        for position, (tier_score, feature) in enumerate(
            answer(layer, fields, query, planned, limit, crs)
        ):
            # an address by its key; a street or area by its extent (its French and Dutch
            # names are one place)
            same = feature.get("id") or (feature["properties"]["match"], str(feature["bbox"]))
            order = (-tier_score, -float(feature["properties"]["score"]), reading, position)
            if same not in found or order < found[same][0]:
                found[same] = (order, feature)
    # Tier by tier, as in one reading: the better street (or place) first, whichever reading
    # named it, so a street's nearest numbers (0.8) come before its namesake's number in
    # another postcode (0.85); among equal streets by what the number is worth; then the
    # reading as typed first, then the most used completions.
    return [feature for _order, feature in sorted(found.values(), key=lambda f: f[0])][:limit]


def completed(index: StreetIndex, q: str) -> list[str]:
    """`q`, then `q` with its unfinished last word completed (at most `COMPLETIONS` ways)."""
    last = _LAST_LETTERS.search(q)
    if last is None or len(fold(last.group(0))) < 2:
        return [q]
    words = index.completions(fold(last.group(0)), COMPLETIONS)
    return [q] + [q[: last.start()] + word for word in words]


def _plan_query(
    index: StreetIndex, query: ParsedQuery, limit: int, min_score: float
) -> tuple[list[Planned], bool]:
    """What to answer, before any address is read (CPU-bound: matching every street name).

    True with areas when the query names only a municipality or a postcode.
    """
    readings = index.readings(query.words) if query.words else [((), None)]
    place_only = [municipality for words, municipality in readings if not words]
    if place_only:
        areas = index.areas(place_only[0], query.postcode)
        return [Planned(None, 1.0, area=a) for a in areas], True
    return plan(query, index.match(query.words, query.postcode, min_score), limit), False
