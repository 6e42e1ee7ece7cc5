"""The streets of an address layer, in memory per layer version, and how well words name them.

A street is what its addresses share: the street id when the schema has one, the French and
Dutch names, the postcode and the municipality. One SQL pass per layer version gathers, per
street, its distinct house numbers with the extent of each number's addresses (its boxes),
the street's extent and its middle point; the addresses themselves stay in the database,
found again through the GiST index by their number's extent. For the benchmark's 600,000
addresses (4,746 streets) that is about 27 MB, read in a few seconds by the first request.

A name's score (0-1) compares the query's street words with the name's (`address_words`):
the core words as typed, in any order, or with one typo (OSA distance 1: a letter missing,
extra, wrong or two swapped) score at least `ONE_TYPO`; otherwise 1 - edits / length. A query
naming only some of a name's words, the last one among them ('Volders' for 'Avenue Jean
Volders'), scores `PARTIAL_BASE` plus the share of the name it covers. A kind that differs
from the street's ('Place' for a 'Rue') multiplies the score by `OTHER_KIND`: another street.

One module, over 400 lines: the index's layout in memory and the scoring that walks it are
made for each other (arrays per street, read by the scorer without copies).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from array import array
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from rapidfuzz import process
from rapidfuzz.distance import OSA
from sqlalchemy import func
from sqlalchemy.engine import Compiled
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
INDEX_READ_TIMEOUT_S = 120  # reading every street once per layer version
MAX_REMEMBERED = 10_000  # (street municipality, municipality as typed) agreements kept


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
    number_extents: array[float]  # per number: min x, min y, max x, max y of its addresses
    count: int
    extent: tuple[float, float, float, float]  # in the layer's CRS
    middle: tuple[float, float]  # its house number nearest the centroid of its addresses
    centroid: tuple[float, float]
    kinds: tuple[str | None, str | None]  # its kind in French and in Dutch

    def name(self, language: str) -> Any:
        return self.street_fr if language == "fr" else self.street_nl

    def number_extent(self, number: Any) -> tuple[float, float, float, float]:
        at = 4 * self.numbers.index(number)
        x0, y0, x1, y1 = self.number_extents[at : at + 4]
        return x0, y0, x1, y1


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
            elif min(len(word), len(other)) >= TYPO_MIN_LETTERS and OSA.distance(word, other) <= 1:
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
    return max(
        similarity(query.core_text, name.core_text),
        similarity(query.sorted_core_text, name.sorted_core_text),
        aligned(query.core, name.core),
    )


def one_typo_whole(query: StreetWords, name: StreetWords) -> float:
    """The whole name, kind included, within one typo: ONE_TYPO (or 1), else 0.

    This is what finds a typo in the kind ('Reu Haute', 'Vorstse Stenweg': a kind then not
    recognised, or read as another) or in an article ("de leeglise" for "de l'Eglise"), the
    names compared without and with their articles. Beyond one typo the whole names are not
    compared: a shared kind ('...straat') would make unrelated names look alike.
    """
    whole = max(
        similarity(query.full_text, name.full_text), similarity(query.written, name.written)
    )
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
    # the statement that reads addresses, compiled per output CRS for this layer version
    statements: dict[str, Compiled] = field(default_factory=dict)

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
        # every word of the names and municipalities, as written out, with how many use it
        uses: dict[str, int] = {}
        for n in self.names:
            for word in set(fold(n.text).split()):
                uses[word] = uses.get(word, 0) + 1
        for place, (_language, members) in self.municipalities.items():
            for word in place:
                uses[word] = uses.get(word, 0) + len(members)
        self._uses = uses
        self._words = sorted(uses)

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
        names = [
            StreetName(text, language, street_words(fold(text).split()), tuple(members))
            for (language, text), members in by_name.items()
        ]
        index = cls(streets, names, municipalities)
        index.areas_by_municipality = _areas(
            streets, lambda s: (s.municipality_fr, s.municipality_nl)
        )
        index.areas_by_postcode = _areas(
            streets, lambda s: (str(s.postcode), s.municipality_fr, s.municipality_nl)
        )
        return index

    def completions(self, prefix: str, most: int) -> list[str]:
        """The words of the names that `prefix` begins (not itself), most used first."""
        start = bisect.bisect_left(self._words, prefix)
        found = []
        for word in itertools.islice(self._words, start, None):
            if not word.startswith(prefix):
                break
            if word != prefix:
                found.append(word)
        found.sort(key=lambda word: (-self._uses[word], word))
        return found[:most]

    def municipality_named(self, words: tuple[str, ...]) -> set[tuple[int, int]]:
        """Where the words start or end with a municipality's name: (start, end)."""
        found = set()
        for place in self.municipalities:
            k = len(place)
            if k > len(words):
                continue
            for start in {0, len(words) - k}:
                part = words[start : start + k]
                if similarity("".join(part), "".join(place)) >= ONE_TYPO:
                    found.add((start, start + k))
        return found

    def _candidates(self, query: StreetWords, min_score: float) -> set[int]:
        """The names worth comparing in full: near in plain similarity, or sharing a word."""
        if min_score < PREFILTER:
            return set(range(len(self.names)))
        chosen: set[int] = set()
        for text, choices in (
            (query.core_text, self._core),
            (query.sorted_core_text, self._sorted),
            (query.full_text, self._full),
        ):
            if text:
                for _c, _s, i in process.extract(
                    text,
                    choices,
                    scorer=OSA.normalized_similarity,
                    score_cutoff=PREFILTER,
                    limit=None,
                ):
                    chosen.add(i)
        for word in query.core:
            if len(word) < 3:
                continue
            chosen |= self._by_word.get(word, set())
            if len(word) >= TYPO_MIN_LETTERS:
                for other, _d, _i in process.extract(
                    word, self._vocabulary, scorer=OSA.distance, score_cutoff=1, limit=None
                ):
                    chosen |= self._by_word[other]
        return chosen

    def match(
        self, words: tuple[str, ...], postcode: str | None, min_score: float
    ) -> list[StreetMatch]:
        """The streets `words` may name with a score of at least `min_score`, best first.

        The words are tried whole, and without a municipality's name at their start or end
        (which then must be the street's). A postcode or municipality that is not the
        street's lowers its score (`DISAGREEMENT` each) but never drops it.
        """
        best: dict[int, tuple[tuple[float, float, float], StreetMatch]] = {}
        readings = [
            (street_words(part, glued), part, municipality)
            for part, municipality in self.readings(words)
            if part
            for glued in (True, False)
        ]
        for query, street_part, municipality in dict.fromkeys(readings):
            for i in self._candidates(query, min_score):
                name = self.names[i]
                plain = name_score(query, name.words)
                whole = one_typo_whole(query, name.words)
                if max(plain, whole) < min_score:
                    continue
                # equal scores: the name written closer to the query (its language)
                closeness = OSA.normalized_similarity(query.full_text, name.words.full_text)
                for s in name.streets:
                    street = self.streets[s]
                    scored = max(plain * kind_factor(query, street), whole)
                    if scored < min_score:
                        continue
                    postcode_agrees = None if postcode is None else str(street.postcode) == postcode
                    municipality_agrees = (
                        None
                        if municipality is None
                        else self._names_municipality(street, municipality)
                    )
                    score = scored * agreement(postcode_agrees, municipality_agrees)
                    candidate = StreetMatch(
                        street,
                        score,
                        scored,
                        name,
                        " ".join(street_part),
                        municipality,
                        municipality_agrees,
                        postcode_agrees,
                    )
                    kept = best.get(s)
                    if kept is None or (score, scored, closeness) > kept[0]:
                        best[s] = ((score, scored, closeness), candidate)
        return sorted(
            (m for _rank, m in best.values()),
            key=lambda m: (-m.score, -m.name_score, _order(m.street)),
        )

    def _names_municipality(self, street: Street, municipality: str) -> bool:
        key = (street.municipality_fr, street.municipality_nl, municipality)
        known = self._agreements.get(key)
        if known is None:
            asked = "".join(place_words(municipality))
            known = any(similarity("".join(place_words(m)), asked) >= ONE_TYPO for m in key[:2])
            if len(self._agreements) >= MAX_REMEMBERED:  # typed variants are unbounded
                self._agreements.clear()
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
        scored = (
            []
            if municipality is None
            else sorted(
                (
                    (similarity("".join(words), asked), words, language)
                    for words, (language, _s) in self.municipalities.items()
                ),
                reverse=True,
            )
        )
        named = [(words, language) for score, words, language in scored if score >= ONE_TYPO]

        def is_named(area: Area) -> tuple[bool, str]:
            for words, language in named:
                if words in (place_words(area.municipality_fr), place_words(area.municipality_nl)):
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
                found.append(
                    AreaMatch(area, agreement(True, agrees), municipality, language, True, agrees)
                )
            if municipality is not None and not any(m.municipality_agrees for m in found):
                for area in self.areas_by_municipality.values():
                    hit, language = is_named(area)
                    if hit:
                        found.append(
                            AreaMatch(
                                area, agreement(False, True), municipality, language, False, True
                            )
                        )
        return sorted(found, key=lambda m: (-m.score, -m.area.count, str(m.area.municipality_fr)))


DISAGREEMENT = 0.85  # a postcode or municipality given that is not the street's


def agreement(postcode: bool | None, municipality: bool | None) -> float:
    return (DISAGREEMENT if postcode is False else 1.0) * (
        DISAGREEMENT if municipality is False else 1.0
    )


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
        middle = min((s.middle for s in members), key=lambda p: (p[0] - cx) ** 2 + (p[1] - cy) ** 2)
        extent = (
            min(s.extent[0] for s in members),
            min(s.extent[1] for s in members),
            max(s.extent[2] for s in members),
            max(s.extent[3] for s in members),
        )
        postcodes = {str(s.postcode) for s in members}
        first = members[0]
        areas[k] = Area(
            first.postcode if len(postcodes) == 1 else None,
            first.municipality_fr,
            first.municipality_nl,
            count,
            extent,
            middle,
        )
    return areas


async def read_streets(
    conn: AsyncConnection, layer: LayerEntry, fields: AddressFields
) -> StreetRows:
    """Every street of the layer with its numbers and their extents, in one pass.

    Only numbers are aggregated (no geometry is collected): per house number the extent of
    its addresses; per street their count and centroid.
    """
    # a sort of every address on its street's fields: in memory, and JIT compiling this
    # one-off statement costs more than it saves. It reads the whole layer, once per
    # version: it may take longer than a geocoding query (its timeout is put back after).
    timeout = (
        await conn.execute(
            sa.text(
                "SELECT current_setting('statement_timeout'), set_config('jit', 'off', true), "
                "set_config('work_mem', '64MB', true), set_config('statement_timeout', :t, true)"
            ),
            {"t": f"{INDEX_READ_TIMEOUT_S}s"},
        )
    ).scalar_one()
    table = layer.table()
    # OFFSET 0 keeps the point computed once per address, not once per aggregate using it
    point = (
        sa.select(
            *(table.c[n] for n in fields.street_fields()),
            table.c[fields.number].label("number"),
            func.ST_PointOnSurface(table.c.geom).label("p"),
        )
        .where(table.c.geom.is_not(None))
        .offset(0)
        .subquery("point")
    )
    located = sa.select(
        *(point.c[n] for n in fields.street_fields()),
        point.c.number,
        func.ST_X(point.c.p).label("x"),
        func.ST_Y(point.c.p).label("y"),
    ).subquery("located")
    x, y = located.c.x, located.c.y
    group = [located.c[n] for n in fields.street_fields()]
    per_number = (
        sa.select(
            *group,
            located.c.number,
            func.count().label("n"),
            func.min(x).label("x0"),
            func.min(y).label("y0"),
            func.max(x).label("x1"),
            func.max(y).label("y1"),
            func.sum(x).label("sx"),
            func.sum(y).label("sy"),
        )
        .group_by(*group, located.c.number)
        .subquery("numbers")
    )
    street = [per_number.c[n] for n in fields.street_fields()]
    query = sa.select(
        *street,
        func.array_agg(per_number.c.number),
        *(func.array_agg(per_number.c[c]) for c in ("x0", "y0", "x1", "y1")),
        func.sum(per_number.c.n),
        func.sum(per_number.c.sx),
        func.sum(per_number.c.sy),
    ).group_by(*street)
    rows = (await conn.execute(query)).all()
    await conn.execute(sa.text("SELECT set_config('statement_timeout', :t, true)"), {"t": timeout})
    return rows


def streets_of(rows: StreetRows, fields: AddressFields) -> list[Street]:
    """The streets of `read_streets`' rows, each with its middle (CPU-bound: off the loop).

    The street's middle is the centre of its house number nearest the centroid of its
    addresses: an address, unless the number's boxes lie apart.
    """
    streets = []
    interned: dict[Any, Any] = {}
    kinds_of: dict[Any, str | None] = {}  # per name: tens of thousands of streets share a few

    def kind(name: Any) -> str | None:
        if name not in kinds_of:
            kinds_of[name] = street_words(fold(str(name)).split()).kind if name else None
        return kinds_of[name]

    for row in rows:
        values = list(row)
        if fields.street_id is None:
            values.insert(0, None)
        street_id, fr, nl, postcode, mfr, mnl, numbers, x0, y0, x1, y1 = values[:11]
        count, sx, sy = int(values[11]), float(values[12]), float(values[13])
        cx, cy = sx / count, sy / count
        px = [(a + b) / 2 for a, b in zip(x0, x1, strict=True)]
        py = [(a + b) / 2 for a, b in zip(y0, y1, strict=True)]
        middle = min(
            range(len(numbers)), key=lambda i: ((px[i] - cx) ** 2 + (py[i] - cy) ** 2, px[i], py[i])
        )
        kept = [i for i, n in enumerate(numbers) if n is not None]
        extents = array("d", (v for i in kept for v in (x0[i], y0[i], x1[i], y1[i])))
        streets.append(
            Street(
                street_id,
                fr,
                nl,
                postcode,
                mfr,
                mnl,
                tuple(interned.setdefault(numbers[i], numbers[i]) for i in kept),
                extents,
                count,
                (min(x0), min(y0), max(x1), max(y1)),
                (px[middle], py[middle]),
                (cx, cy),
                (kind(fr), kind(nl)),
            )
        )
    return streets


StreetRows = Sequence[Any]  # read_streets' rows: a street's fields, numbers, extents, sums
OffLoop = Callable[..., Awaitable[Any]]  # runs a CPU-bound call off the event loop


class StreetIndexes:
    """One StreetIndex per address layer, rebuilt when the layer's version changes."""

    def __init__(self) -> None:
        self._by_layer: dict[str, tuple[int, StreetIndex]] = {}
        self._building: dict[str, asyncio.Lock] = {}

    async def get(
        self, conn: AsyncConnection, layer: LayerEntry, fields: AddressFields, off_loop: OffLoop
    ) -> StreetIndex:
        cached = self._by_layer.get(layer.id)
        if cached is not None and cached[0] == layer.version:
            return cached[1]
        # one build per layer version, however many requests arrive meanwhile
        async with self._building.setdefault(layer.id, asyncio.Lock()):
            cached = self._by_layer.get(layer.id)
            if cached is not None and cached[0] == layer.version:
                return cached[1]
            rows = await read_streets(conn, layer, fields)
            index = await off_loop(_build, rows, fields)
            self._by_layer[layer.id] = (layer.version, index)
            return index


def _build(rows: StreetRows, fields: AddressFields) -> StreetIndex:
    return StreetIndex.build(streets_of(rows, fields))
