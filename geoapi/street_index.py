"""The streets of an address layer, in memory per layer version, and how well words name them.

A street is what its addresses share: the street id when the schema has one, the French and
Dutch names, the postcode and the municipality. One SQL pass per layer version gathers, per
street, its distinct house numbers, its extent and its middle point (the address nearest the
centroid of its addresses); addresses themselves stay in the database. For the whole Region
that is a few tens of thousands of streets and a few thousand distinct names.

A name's score (0-1) compares the query's street words with the name's (`address_words`):
the core words as typed, in any order, or with one typo (OSA distance 1: a letter missing,
extra, wrong or two swapped) score at least `ONE_TYPO`; otherwise 1 - edits / length. A query
naming only some of a name's words, the last one among them ('Volders' for 'Avenue Jean
Volders'), scores `PARTIAL_BASE` plus the share of the name it covers. A kind that differs
from the street's ('Place' for a 'Rue') multiplies the score by `OTHER_KIND`: another street.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from rapidfuzz import process
from rapidfuzz.distance import OSA
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncConnection

from geoapi.address_layers import AddressFields
from geoapi.address_words import StreetWords, fold, street_words, written_out
from urbis_core.catalog import LayerEntry

ONE_TYPO = 0.9  # one edit in a word of 4 letters or more still names the street
INITIAL = 0.9  # 'J.' for 'Jean'
PARTIAL_BASE = 0.6  # a query naming some of the name's words: this plus the share covered
OTHER_KIND = 0.7  # 'Place X' asked, 'Rue X' found: another street, below any minimum score
PREFILTER = 0.5  # names compared in full: those whose plain similarity reaches this
TYPO_MIN_LETTERS = 5  # words shorter than this must be spelled right to match word by word


@dataclass(frozen=True)
class Street:
    """One street of the layer: its fields as stored, and what its addresses tell."""

    street_id: Any
    street_fr: Any
    street_nl: Any
    postcode: Any
    municipality_fr: Any
    municipality_nl: Any
    numbers: tuple[Any, ...]  # its distinct house numbers, as stored
    count: int
    extent: tuple[float, float, float, float]  # in the layer's CRS
    middle: tuple[float, float]  # the address nearest the centroid of its addresses
    centroid: tuple[float, float]
    kinds: tuple[str | None, str | None]  # its kind in French and in Dutch

    def name(self, language: str) -> Any:
        return self.street_fr if language == "fr" else self.street_nl


@dataclass(frozen=True)
class Area:
    """The addresses of a municipality (or of one of its postcodes): where they lie."""

    postcode: Any  # None for a whole municipality that has several
    municipality_fr: Any
    municipality_nl: Any
    count: int
    extent: tuple[float, float, float, float]
    middle: tuple[float, float]  # of its streets' middles, the one nearest its centroid


@dataclass(frozen=True)
class StreetName:
    text: str  # as stored
    language: str
    words: StreetWords
    streets: tuple[int, ...]


@dataclass(frozen=True)
class StreetMatch:
    """A street the query may name: how well, and what was compared."""

    street: Street
    score: float  # name_score, lowered by a postcode or municipality that disagrees
    name_score: float
    name: StreetName  # the name that matched best
    query_words: str  # the query's street words, as compared
    municipality: str | None  # the query's municipality words, when it named one
    municipality_agrees: bool | None
    postcode_agrees: bool | None


@dataclass(frozen=True)
class AreaMatch:
    area: Area
    score: float
    municipality: str | None
    municipality_language: str
    postcode_agrees: bool | None
    municipality_agrees: bool | None


def similarity(a: str, b: str) -> float:
    """1 - edits / length of the longer, and at least ONE_TYPO for one edit in 4+ letters."""
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    edits = OSA.distance(a, b)
    longest = max(len(a), len(b))
    score = 1.0 - edits / longest
    return max(score, ONE_TYPO) if edits == 1 and longest >= 4 else score


def aligned(query: tuple[str, ...], name: tuple[str, ...]) -> float:
    """Word by word: each query word matches a distinct word of the name, or 0.

    A word matches the same word, one typo away (5 letters or more), or as its initial. All
    the name's words matched: the weighted share of exact ones (word order then does not
    matter); only some, the last among them: PARTIAL_BASE plus the share covered.
    """
    if not query or len(query) > len(name):
        return 0.0
    used: dict[int, float] = {}
    for word in query:
        best: tuple[int, float] | None = None
        for j, other in enumerate(name):
            if j in used:
                continue
            if word == other:
                quality = 1.0
            elif len(word) == 1 and other.startswith(word):
                quality = INITIAL
            elif (min(len(word), len(other)) >= TYPO_MIN_LETTERS
                  and OSA.distance(word, other) <= 1):
                quality = ONE_TYPO
            else:
                continue
            if best is None or quality > best[1]:
                best = (j, quality)
        if best is None:
            return 0.0
        used[best[0]] = best[1]
    letters = sum(len(w) for w in name)
    covered = sum(quality * len(name[j]) for j, quality in used.items()) / letters
    if len(used) == len(name):
        return covered
    if len(name) - 1 not in used:
        return 0.0
    return PARTIAL_BASE + (1.0 - PARTIAL_BASE) * covered


def name_score(query: StreetWords, name: StreetWords) -> float:
    """How well the query's street words name this street name (before its kind is checked)."""
    return max(similarity(query.core_text, name.core_text),
               similarity(query.sorted_core_text, name.sorted_core_text),
               aligned(query.core, name.core))


def one_typo_whole(query: StreetWords, name: StreetWords) -> float:
    """The whole name, kind included, within one typo: ONE_TYPO (or 1), else 0.

    This is what finds a typo in the kind ('Reu Haute', 'Vorstse Stenweg': a kind then not
    recognised, or read as another). Beyond one typo the whole names are not compared: a
    shared kind ('...straat') would make unrelated names look alike.
    """
    whole = similarity(query.full_text, name.full_text)
    return whole if whole >= ONE_TYPO else 0.0


def kind_factor(query: StreetWords, street: Street) -> float:
    """OTHER_KIND when the query names a kind and the street, in that language, has another."""
    if query.kind is None:
        return 1.0
    kind = street.kinds[0 if query.kind_language == "fr" else 1]
    return 1.0 if kind is None or kind == query.kind else OTHER_KIND


def place_words(value: Any) -> tuple[str, ...]:
    """A municipality name as words, abbreviations written out ('St-Gilles' = 'Saint-Gilles')."""
    return tuple(written_out(token) for token in fold(str(value or "")).split())


@dataclass
class StreetIndex:
    streets: list[Street]
    names: list[StreetName]
    municipalities: dict[tuple[str, ...], tuple[str, list[int]]] = field(default_factory=dict)
    areas_by_municipality: dict[tuple[Any, Any], Area] = field(default_factory=dict)
    areas_by_postcode: dict[tuple[str, Any, Any], Area] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._core = [n.words.core_text for n in self.names]
        self._sorted = [n.words.sorted_core_text for n in self.names]
        self._full = [n.words.full_text for n in self.names]
        self._by_word: dict[str, set[int]] = {}
        for i, n in enumerate(self.names):
            for word in n.words.core:
                self._by_word.setdefault(word, set()).add(i)
        self._vocabulary = [w for w in self._by_word if len(w) >= TYPO_MIN_LETTERS]
        self._agreements: dict[tuple[Any, Any, str], bool] = {}

    @classmethod
    def build(cls, streets: list[Street]) -> StreetIndex:
        by_name: dict[tuple[str, str], list[int]] = {}
        municipalities: dict[tuple[str, ...], tuple[str, list[int]]] = {}
        for i, s in enumerate(streets):
            for language, text in (("fr", s.street_fr), ("nl", s.street_nl)):
                if text:
                    by_name.setdefault((language, str(text)), []).append(i)
            for language, muni in (("fr", s.municipality_fr), ("nl", s.municipality_nl)):
                words = place_words(muni)
                if words:
                    municipalities.setdefault(words, (language, []))[1].append(i)
        names = [StreetName(text, language, street_words(fold(text).split()), tuple(members))
                 for (language, text), members in by_name.items()]
        index = cls(streets, names, municipalities)
        index.areas_by_municipality = _areas(streets, lambda s: (s.municipality_fr,
                                                                 s.municipality_nl))
        index.areas_by_postcode = _areas(streets, lambda s: (str(s.postcode),
                                                             s.municipality_fr,
                                                             s.municipality_nl))
        return index

    def municipality_named(self, words: tuple[str, ...]) -> set[tuple[int, int]]:
        """Where the words start or end with a municipality's name: (start, end)."""
        found = set()
        for place in self.municipalities:
            k = len(place)
            if k > len(words):
                continue
            for start in {0, len(words) - k}:
                part = words[start:start + k]
                if similarity("".join(part), "".join(place)) >= ONE_TYPO:
                    found.add((start, start + k))
        return found

    def _candidates(self, query: StreetWords, min_score: float) -> set[int]:
        """The names worth comparing in full: near in plain similarity, or sharing a word."""
        if min_score < PREFILTER:
            return set(range(len(self.names)))
        chosen: set[int] = set()
        for text, choices in ((query.core_text, self._core),
                              (query.sorted_core_text, self._sorted),
                              (query.full_text, self._full)):
            if text:
                for _c, _s, i in process.extract(text, choices,
                                                 scorer=OSA.normalized_similarity,
                                                 score_cutoff=PREFILTER, limit=None):
                    chosen.add(i)
        for word in query.core:
            if len(word) < 3:
                continue
            chosen |= self._by_word.get(word, set())
            if len(word) >= TYPO_MIN_LETTERS:
                for other, _d, _i in process.extract(word, self._vocabulary,
                                                     scorer=OSA.distance, score_cutoff=1,
                                                     limit=None):
                    chosen |= self._by_word[other]
        return chosen

    def match(self, words: tuple[str, ...], postcode: str | None,
              min_score: float) -> list[StreetMatch]:
        """The streets `words` may name with a score of at least `min_score`, best first.

        The words are tried whole, and without a municipality's name at their start or end
        (which then must be the street's). A postcode or municipality that is not the
        street's lowers its score (`DISAGREEMENT` each) but never drops it.
        """
        best: dict[int, tuple[tuple[float, float, float], StreetMatch]] = {}
        for street_part, municipality in self.readings(words):
            if not street_part:
                continue
            query = street_words(street_part)
            for i in self._candidates(query, min_score):
                name = self.names[i]
                plain = name_score(query, name.words)
                whole = one_typo_whole(query, name.words)
                if max(plain, whole) < min_score:
                    continue
                for s in name.streets:
                    street = self.streets[s]
                    scored = max(plain * kind_factor(query, street), whole)
                    if scored < min_score:
                        continue
                    postcode_agrees = (None if postcode is None
                                       else str(street.postcode) == postcode)
                    municipality_agrees = (None if municipality is None else
                                           self._names_municipality(street, municipality))
                    score = scored * agreement(postcode_agrees, municipality_agrees)
                    candidate = StreetMatch(street, score, scored, name, " ".join(street_part),
                                            municipality, municipality_agrees, postcode_agrees)
                    # equal scores: the name written closer to the query (its language)
                    closeness = OSA.normalized_similarity(query.full_text, name.words.full_text)
                    kept = best.get(s)
                    if kept is None or (score, scored, closeness) > kept[0]:
                        best[s] = ((score, scored, closeness), candidate)
        return sorted((m for _rank, m in best.values()),
                      key=lambda m: (-m.score, -m.name_score, _order(m.street)))

    def _names_municipality(self, street: Street, municipality: str) -> bool:
        key = (street.municipality_fr, street.municipality_nl, municipality)
        known = self._agreements.get(key)
        if known is None:
            asked = "".join(place_words(municipality))
            known = any(similarity("".join(place_words(m)), asked) >= ONE_TYPO
                        for m in key[:2])
            self._agreements[key] = known
        return known

    def readings(self, words: tuple[str, ...]) -> list[tuple[tuple[str, ...], str | None]]:
        """The ways to read the words: all a street, or a street and a municipality."""
        expanded = tuple(written_out(token) for token in words)  # word for word
        readings: list[tuple[tuple[str, ...], str | None]] = [(tuple(words), None)]
        for start, end in sorted(self.municipality_named(expanded)):
            readings.append((words[:start] + words[end:], " ".join(words[start:end])))
        return readings

    def areas(self, municipality: str | None, postcode: str | None) -> list[AreaMatch]:
        """The municipality and/or postcode named alone: where their addresses lie."""
        asked = "".join(place_words(municipality))
        scored = [] if municipality is None else sorted(
            ((similarity("".join(words), asked), words, language)
             for words, (language, _s) in self.municipalities.items()), reverse=True)
        named = [(words, language) for score, words, language in scored if score >= ONE_TYPO]

        def is_named(area: Area) -> tuple[bool, str]:
            for words, language in named:
                if words in (place_words(area.municipality_fr),
                             place_words(area.municipality_nl)):
                    return True, language
            return False, "fr"

        found: list[AreaMatch] = []
        if postcode is None:
            for area in self.areas_by_municipality.values():
                hit, language = is_named(area)
                if hit:
                    found.append(AreaMatch(area, 1.0, municipality, language, None, True))
        else:
            for area in self.areas_by_postcode.values():
                if str(area.postcode) != postcode:
                    continue
                hit, language = is_named(area)
                agrees = None if municipality is None else hit
                found.append(AreaMatch(area, agreement(True, agrees), municipality, language,
                                       True, agrees))
            if municipality is not None and not any(m.municipality_agrees for m in found):
                for area in self.areas_by_municipality.values():
                    hit, language = is_named(area)
                    if hit:
                        found.append(AreaMatch(area, agreement(False, True), municipality,
                                               language, False, True))
        return sorted(found, key=lambda m: (-m.score, -m.area.count,
                                            str(m.area.municipality_fr)))


DISAGREEMENT = 0.85  # a postcode or municipality given that is not the street's


def agreement(postcode: bool | None, municipality: bool | None) -> float:
    return (DISAGREEMENT if postcode is False else 1.0) * (
        DISAGREEMENT if municipality is False else 1.0)


def _order(street: Street) -> tuple[str, str, str]:
    return (str(street.street_fr), str(street.postcode), str(street.street_id))


def _areas(streets: Iterable[Street], key: Any) -> dict[Any, Area]:
    groups: dict[Any, list[Street]] = {}
    for s in streets:
        if s.municipality_fr or s.municipality_nl:
            groups.setdefault(key(s), []).append(s)
    areas = {}
    for k, members in groups.items():
        count = sum(s.count for s in members)
        cx = sum(s.centroid[0] * s.count for s in members) / count
        cy = sum(s.centroid[1] * s.count for s in members) / count
        middle = min((s.middle for s in members),
                     key=lambda p: (p[0] - cx) ** 2 + (p[1] - cy) ** 2)
        extent = (min(s.extent[0] for s in members), min(s.extent[1] for s in members),
                  max(s.extent[2] for s in members), max(s.extent[3] for s in members))
        postcodes = {str(s.postcode) for s in members}
        first = members[0]
        areas[k] = Area(first.postcode if len(postcodes) == 1 else None, first.municipality_fr,
                        first.municipality_nl, count, extent, middle)
    return areas


async def read_streets(conn: AsyncConnection, layer: LayerEntry,
                       fields: AddressFields) -> list[Street]:
    """Every street of the layer with its numbers, extent and middle, in one pass."""
    table = layer.table()
    group = [table.c[n] for n in fields.street_fields()]
    points = func.ST_Collect(func.ST_PointOnSurface(table.c.geom))
    inner = (sa.select(*group, func.array_agg(table.c[fields.number].distinct()).label("numbers"),
                       func.count().label("count"), points.label("points"))
             .where(table.c.geom.is_not(None)).group_by(*group).subquery("streets"))
    centroid = func.ST_Centroid(inner.c.points)
    middle = func.ST_ClosestPoint(inner.c.points, centroid)
    query = sa.select(
        *(inner.c[n] for n in fields.street_fields()), inner.c.numbers, inner.c["count"],
        func.ST_XMin(inner.c.points), func.ST_YMin(inner.c.points),
        func.ST_XMax(inner.c.points), func.ST_YMax(inner.c.points),
        func.ST_X(middle), func.ST_Y(middle), func.ST_X(centroid), func.ST_Y(centroid))
    streets = []
    interned: dict[Any, Any] = {}
    for row in await conn.execute(query):
        values = list(row)
        if fields.street_id is None:
            values.insert(0, None)
        street_id, fr, nl, postcode, mfr, mnl, numbers, count = values[:8]
        minx, miny, maxx, maxy, mx, my, cx, cy = values[8:]
        kept = tuple(interned.setdefault(n, n) for n in numbers if n is not None)
        kinds = (street_words(fold(str(fr or "")).split()).kind if fr else None,
                 street_words(fold(str(nl or "")).split()).kind if nl else None)
        streets.append(Street(street_id, fr, nl, postcode, mfr, mnl, kept, int(count),
                              (minx, miny, maxx, maxy), (mx, my), (cx, cy), kinds))
    return streets


class StreetIndexes:
    """One StreetIndex per address layer, rebuilt when the layer's version changes."""

    def __init__(self) -> None:
        self._by_layer: dict[str, tuple[int, StreetIndex]] = {}
        self._building: dict[str, asyncio.Lock] = {}

    async def get(self, conn: AsyncConnection, layer: LayerEntry,
                  fields: AddressFields) -> StreetIndex:
        cached = self._by_layer.get(layer.id)
        if cached is not None and cached[0] == layer.version:
            return cached[1]
        # one build per layer version, however many requests arrive meanwhile
        async with self._building.setdefault(layer.id, asyncio.Lock()):
            cached = self._by_layer.get(layer.id)
            if cached is not None and cached[0] == layer.version:
                return cached[1]
            index = StreetIndex.build(await read_streets(conn, layer, fields))
            self._by_layer[layer.id] = (layer.version, index)
            return index
