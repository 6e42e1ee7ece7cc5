"""Geocoding on the synced URBIS addresses: free text to address points, and back.

Matching works in two steps. Streets first: the distinct (street, postcode, municipality) of
the address layer, in French and in Dutch, are kept in memory per layer version (a few
thousand for the whole Region) and compared with the query's words by a fuzzy score
(rapidfuzz's WRatio: typos, word order and partial names), after case and accents are
folded. Then numbers: the addresses of the best streets are read from the layer and ranked
by how well their house number fits the one asked for.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from rapidfuzz import fuzz, process
from sqlalchemy.ext.asyncio import AsyncConnection

from geoapi.crs import OutputCrs
from geoapi.features import feature_json
from urbis_core.catalog import LayerEntry
from urbis_core.errors import InvalidParameter, NotFound

MAX_RESULTS = 50
STREET_CANDIDATES = 8  # streets whose addresses are read for one query
MIN_STREET_SCORE = 60.0  # below this, a street is not what the query names
OTHER_POSTCODE_PENALTY = 15.0  # the query gives a postcode and the street has another
# How well a house number fits: exactly, same number with another suffix (23 for 23C), or
# only the nearest number on the street when the one asked for does not exist.
EXACT, SAME_NUMBER, NEAREST_NUMBER = 1.0, 0.9, 0.6
NO_NUMBER = 0.95  # the query names a street only: its addresses, in number order
_POSTCODE = re.compile(r"^1[0-2]\d\d$")  # the Region's postcodes: 1000-1299
_HOUSE_NUMBER = re.compile(r"^(\d+)\s*([a-z]{0,3})$")
_LEADING_DIGITS = re.compile(r"^\d+")


@dataclass(frozen=True)
class AddressFields:
    """Where an address layer keeps its parts (French and Dutch names)."""

    street_fr: str
    street_nl: str
    number: str
    postcode: str
    municipality_fr: str
    municipality_nl: str
    box: str | None = None

    def names(self) -> set[str]:
        return {self.street_fr, self.street_nl, self.number, self.postcode,
                self.municipality_fr, self.municipality_nl}


# The URBIS address schemas: UrbIS-Vector (current) and UrbAdm (legacy).
KNOWN_SCHEMAS = (
    AddressFields("STRNAMEFRE", "STRNAMEDUT", "POLICENUM", "ZIPCODE", "MUNNAMEFRE",
                  "MUNNAMEDUT", box="BOXNUMBER"),
    AddressFields("PW_NAME_FR", "PW_NAME_DU", "ADRN", "PZNC", "MU_NAME_FR", "MU_NAME_DU"),
)


def address_fields(layer: LayerEntry) -> AddressFields | None:
    names = {c.name for c in layer.columns}
    return next((s for s in KNOWN_SCHEMAS if s.names() <= names), None)


def address_layer(layers: Iterable[LayerEntry], wanted: str | None) -> tuple[LayerEntry,
                                                                             AddressFields]:
    """The layer to geocode on: `wanted`, or the first whose fields are an address schema."""
    layers = list(layers)
    if wanted is not None:
        layer = next((x for x in layers if x.id == wanted), None)
        if layer is None:
            raise NotFound(f"no collection '{wanted}'; /collections lists the available ones")
        fields = address_fields(layer)
        if fields is None:
            raise InvalidParameter("collection", f"'{wanted}' is not an address layer (it "
                                   "lacks street, number, postcode and municipality fields)")
        return layer, fields
    for layer in layers:
        fields = address_fields(layer)
        if fields is not None:
            return layer, fields
    raise NotFound("no address layer is synced: geocoding needs a layer with URBIS address "
                   "fields (e.g. STRNAMEFRE, POLICENUM, ZIPCODE, MUNNAMEFRE)")


def fold(text: str) -> str:
    """Lower case, no accents, punctuation as spaces: 'Linière' and 'liniere' meet."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return " ".join(re.sub(r"[^0-9a-z]+", " ", plain).split())


@dataclass(frozen=True)
class ParsedQuery:
    words: str  # folded street (and municipality) words
    number: str | None  # folded house number, e.g. "23c"
    postcode: str | None


def parse_query(q: str) -> ParsedQuery:
    """Split free text into street words, a house number and a postcode.

    A number from 1000 to 1299 is the postcode when another number or a word follows it, or a
    number came before ("Rue X 2, 1060 Saint-Gilles", "1060 Rue X 2"); otherwise a number is
    the house number, with its letter suffix glued or spaced ("23C", "23 c").
    """
    tokens = fold(q).split()
    words: list[str] = []
    number = postcode = None
    i = 0
    while i < len(tokens):
        token, rest = tokens[i], tokens[i + 1:]
        if postcode is None and _POSTCODE.match(token) and (number is not None or rest):
            postcode = token
        elif number is None and _HOUSE_NUMBER.match(token):
            number = token
            if token.isdigit() and rest and len(rest[0]) == 1 and rest[0].isalpha():
                number, i = token + rest[0], i + 1
        else:
            words.append(token)
        i += 1
    if not words:
        raise InvalidParameter("q", "name a street, e.g. 'Rue de la Victoire 2, 1060 "
                               "Saint-Gilles' or 'Overwinningsstraat 2'")
    return ParsedQuery(" ".join(words), number, postcode)


@dataclass(frozen=True)
class Street:
    """One street of the layer as stored (values keep their column types)."""

    street_fr: Any
    street_nl: Any
    postcode: Any
    municipality_fr: Any
    municipality_nl: Any


@dataclass
class StreetIndex:
    streets: list[Street]
    choices: list[str]  # folded names to match against
    owners: list[tuple[int, str]]  # per choice: the street and the language ("fr", "nl")

    @classmethod
    def build(cls, streets: list[Street]) -> StreetIndex:
        choices: list[str] = []
        owners: list[tuple[int, str]] = []
        for i, s in enumerate(streets):
            for lang, name, municipality in (("fr", s.street_fr, s.municipality_fr),
                                             ("nl", s.street_nl, s.municipality_nl)):
                if not name:
                    continue
                # the street alone, and with its municipality for queries that name both
                for choice in (fold(str(name)), fold(f"{name} {municipality or ''}")):
                    choices.append(choice)
                    owners.append((i, lang))
        return cls(streets, choices, owners)

    def best(self, query: ParsedQuery) -> list[tuple[Street, float, str]]:
        """The streets the words name best: (street, score 0-100, language), best first."""
        found = process.extract(query.words, self.choices, scorer=fuzz.WRatio,
                                limit=STREET_CANDIDATES * 8, score_cutoff=MIN_STREET_SCORE)
        scores: dict[int, tuple[float, str]] = {}
        for _choice, score, index in found:
            street, lang = self.owners[index]
            if query.postcode and str(self.streets[street].postcode) != query.postcode:
                score -= OTHER_POSTCODE_PENALTY
            if street not in scores or score > scores[street][0]:
                scores[street] = (score, lang)
        ranked = sorted(scores.items(), key=lambda item: -item[1][0])[:STREET_CANDIDATES]
        return [(self.streets[i], score, lang) for i, (score, lang) in ranked
                if score >= MIN_STREET_SCORE]


class StreetIndexes:
    """One StreetIndex per address layer, rebuilt when the layer's version changes."""

    def __init__(self) -> None:
        self._by_layer: dict[str, tuple[int, StreetIndex]] = {}

    async def get(self, conn: AsyncConnection, layer: LayerEntry,
                  fields: AddressFields) -> StreetIndex:
        cached = self._by_layer.get(layer.id)
        if cached is not None and cached[0] == layer.version:
            return cached[1]
        table = layer.table()
        columns = [table.c[n] for n in (fields.street_fr, fields.street_nl, fields.postcode,
                                        fields.municipality_fr, fields.municipality_nl)]
        rows = await conn.execute(sa.select(*columns).group_by(*columns))
        index = StreetIndex.build([Street(*row) for row in rows])
        self._by_layer[layer.id] = (layer.version, index)
        return index


def number_fit(asked: str | None, stored: Any) -> float:
    """How well a stored house number fits the one asked for (0 when it does not)."""
    if asked is None:
        return NO_NUMBER
    have = fold(str(stored or "")).replace(" ", "")
    if have == asked:
        return EXACT
    digits = _LEADING_DIGITS.match(have)
    wanted = _LEADING_DIGITS.match(asked)
    if digits and wanted and digits.group() == wanted.group():
        return SAME_NUMBER
    return 0.0


def _numeric(value: Any) -> int:
    digits = _LEADING_DIGITS.match(fold(str(value or "")))
    return int(digits.group()) if digits else 0


def label(row: Any, fields: AddressFields, lang: str) -> str:
    """'Rue de la Victoire 2, 1060 Saint-Gilles' in the language the query matched."""
    street = row[fields.street_fr if lang == "fr" else fields.street_nl]
    municipality = row[fields.municipality_fr if lang == "fr" else fields.municipality_nl]
    number = " ".join(str(v) for v in (row[fields.number],
                                        row[fields.box] if fields.box else None) if v)
    return f"{street} {number}, {row[fields.postcode]} {municipality}".replace(" ,", ",")


async def geocode(conn: AsyncConnection, layer: LayerEntry, fields: AddressFields,
                  index: StreetIndex, q: str, limit: int,
                  crs: OutputCrs) -> list[dict[str, Any]]:
    """Addresses matching `q`, best first, each with `score` (0-1) and `label`."""
    query = parse_query(q)
    streets = index.best(query)
    if not streets:
        return []
    table = layer.table()
    street_col, postcode_col = table.c[fields.street_fr], table.c[fields.postcode]
    wanted = {(s.street_fr, s.postcode): (score, lang) for s, score, lang in streets}
    parts = [table.c[n] for n in sorted(fields.names() | ({fields.box} if fields.box else set()))]
    rows = (await conn.execute(
        sa.select(feature_json(layer, table, crs).label("feature"), *parts)
        .where(sa.tuple_(street_col, postcode_col).in_(list(wanted))))).all()
    scored: list[tuple[float, int, str, dict[str, Any]]] = []
    by_street: dict[tuple[Any, Any], list[Any]] = {}
    for row in rows:
        by_street.setdefault((row._mapping[fields.street_fr], row._mapping[fields.postcode]),
                             []).append(row._mapping)
    top = max(score for score, _lang in wanted.values())
    for street_key, members in by_street.items():
        street_score, lang = wanted[street_key]
        fits = [(number_fit(query.number, m[fields.number]), m) for m in members]
        if query.number is not None and street_score == top and not any(f for f, _ in fits):
            # the best street lacks the number asked for: offer its nearest one
            asked = _numeric(query.number)
            nearest = min(members, key=lambda m: abs(_numeric(m[fields.number]) - asked))
            fits = [(NEAREST_NUMBER, nearest)]
        for fit, member in fits:
            if fit:
                scored.append((street_score / 100 * fit, _numeric(member[fields.number]),
                               lang, dict(member)))
    scored.sort(key=lambda s: (-s[0], s[1], label(s[3], fields, s[2])))
    return [_geocoded(member, fields, lang, score)
            for score, _n, lang, member in scored[:limit]]


def _geocoded(member: dict[str, Any], fields: AddressFields, lang: str,
              score: float) -> dict[str, Any]:
    feature: dict[str, Any] = json.loads(member["feature"])
    feature["properties"]["score"] = round(score, 3)
    feature["properties"]["label"] = label(member, fields, lang)
    feature["properties"]["language"] = lang
    return feature
