"""How the geocoder reads text: queries into parts, street names into comparable words.

A query is split into street words, house number, box and postcode; a street name is reduced
to the words that tell it apart from the others.

The query and the layer's street names go through the same `street_words`, so that
'Av. J. Volders', 'avenue jean volders' and 'Avenue Jean Volders' meet: case, accents and
punctuation are folded, abbreviations written out (av. -> avenue, stwg -> steenweg), and the
street's kind (rue, avenue, ...; straat, laan, ... glued to the Dutch name or not) is kept
apart from its core ('victoire', 'overwinnings'), articles left out. A kind is compared with
a kind, a core with a core: 'Place Fontainas' is not 'Rue Fontainas'.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from urbis_core.errors import InvalidParameter

# Written-out forms of the usual abbreviations (folded, without their dot).
ABBREVIATIONS = {
    "av": "avenue",
    "ave": "avenue",
    "bd": "boulevard",
    "bld": "boulevard",
    "blvd": "boulevard",
    "boul": "boulevard",
    "bvd": "boulevard",
    "ch": "chaussee",
    "chee": "chaussee",
    "chss": "chaussee",
    "chau": "chaussee",
    "r": "rue",
    "pl": "place",
    "sq": "square",
    "imp": "impasse",
    "gal": "galerie",
    "pass": "passage",
    "rte": "route",
    "qu": "quai",
    "crf": "carrefour",
    "str": "straat",
    "ln": "laan",
    "stwg": "steenweg",
    "stw": "steenweg",
    "pln": "plein",
    "drf": "dreef",
    # saint, sainte, sint and their short forms are one word in every name
    "st": "st",
    "ste": "st",
    "saint": "st",
    "sainte": "st",
    "sint": "st",
}
# Dutch kinds are glued to the name ('Overwinningsstraat') and abbreviated glued as well.
GLUED_ABBREVIATIONS = (("stwg", "steenweg"), ("str", "straat"), ("ln", "laan"), ("pln", "plein"))
# A French street name starts with its kind; a Dutch one ends with it.
FRENCH_KINDS = frozenset(
    {
        "rue",
        "ruelle",
        "avenue",
        "boulevard",
        "chaussee",
        "place",
        "square",
        "cite",
        "impasse",
        "allee",
        "quai",
        "chemin",
        "dreve",
        "clos",
        "parvis",
        "galerie",
        "passage",
        "sentier",
        "route",
        "pont",
        "carrefour",
        "esplanade",
        "cour",
        "rampe",
        "venelle",
        "voie",
        "promenade",
        "montee",
        "jardin",
        "parc",
        "rond",
    }
)
DUTCH_KINDS = (
    "steenweg",
    "voorplein",
    "straat",
    "laan",
    "plein",
    "square",
    "hof",
    "dreef",
    "weg",
    "kaai",
    "kade",
    "gaarde",
    "pad",
    "gang",
    "dijk",
    "markt",
    "park",
    "plaats",
    "lei",
    "vest",
    "baan",
    "singel",
    "wegel",
    "galerij",
    "doorgang",
    "brug",
    "rotonde",
    "tuin",
    "steeg",
)
_DUTCH_KINDS_LONGEST_FIRST = tuple(sorted(DUTCH_KINDS, key=len, reverse=True))
ARTICLES = frozenset(
    {
        "de",
        "du",
        "des",
        "la",
        "le",
        "les",
        "l",
        "d",
        "a",
        "au",
        "aux",
        "en",
        "et",
        "het",
        "van",
        "der",
        "den",
        "t",
        "ter",
        "ten",
    }
)
BOX_WORDS = frozenset({"bte", "bt", "boite", "bus", "box"})
BOX_MAX_LENGTH = 6

_POSTCODE = re.compile(r"^1[0-2]\d\d$")  # the Region's postcodes: 1000-1299
_HOUSE_NUMBER = re.compile(r"^\d{1,5}(?:-\d{1,5})?[a-z]{0,2}$")
_LEADING_DIGITS = re.compile(r"^\d+")
_SLASH_BOX = re.compile(r"\b(\d+[a-z]{0,2})\s*/\s*([0-9a-z]{1,6})\b")  # 12/3, 12A/3: box 3
_RANGE = re.compile(r"(\d)\s*-+\s*(\d)")  # 27-31: one number for a range of houses


def fold(text: str) -> str:
    """Lower case, no accents, punctuation as spaces: 'Linière' and 'liniere' meet."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", _plain(text)).split())


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


# Stored house numbers repeat across streets ('1' to a few hundred, with letters): their
# keys are remembered rather than recomputed for every street a query looks at.
@lru_cache(maxsize=1 << 16)
def number_key(value: object) -> str:
    """A house number or box as compared: folded, without spaces ('27--31' -> '27-31')."""
    text = re.sub(r"-+", "-", _plain(str(value or "")))
    return re.sub(r"[^0-9a-z-]+", "", text)


@lru_cache(maxsize=1 << 16)
def numeric(value: object) -> int | None:
    """The number a house number starts with (23 for '23C', 27 for '27-31'), if any."""
    digits = _LEADING_DIGITS.match(number_key(value))
    return int(digits.group()) if digits else None


@dataclass(frozen=True)
class ParsedQuery:
    words: tuple[str, ...]  # folded words: the street, and maybe a municipality
    number: str | None  # as `number_key` writes it, e.g. "23c"
    box: str | None
    postcode: str | None


def parse_query(q: str) -> ParsedQuery:
    """Split free text into words, a house number, a box and a postcode.

    A number from 1000 to 1299 is the postcode when another number or a word follows it, or a
    number came before ("Rue X 2, 1060 Saint-Gilles", "1060 Rue X 2"); otherwise the first
    number is the house number, with its letter suffix glued or spaced ("23C", "23 c"). A box
    follows the number: "12 bte 3", "12 boîte 3", "12 bus 3", "12/3".
    """
    text = _SLASH_BOX.sub(r"\1 bte \2", _plain(q))
    text = _RANGE.sub(r"\1-\2", text)
    tokens = re.sub(r"[^0-9a-z-]+", " ", text).replace(" -", " ").replace("- ", " ").split()
    tokens = [
        t
        for part in tokens
        for t in (part.split("-") if not _HOUSE_NUMBER.match(part) else [part])
        if t
    ]
    words: list[str] = []
    number = box = postcode = None
    i = 0
    while i < len(tokens):
        token, rest = tokens[i], tokens[i + 1 :]
        if postcode is None and _POSTCODE.match(token) and (number is not None or rest):
            postcode = token
        elif number is None and _HOUSE_NUMBER.match(token):
            number = token
            # a spaced letter suffix ('23 c'), unless it is an abbreviation ('12 r. Haute')
            if (
                token[-1].isdigit()
                and rest
                and len(rest[0]) == 1
                and rest[0].isalpha()
                and rest[0] not in ABBREVIATIONS
            ):
                number, i = token + rest[0], i + 1
        elif (
            number is not None
            and box is None
            and token in BOX_WORDS
            and rest
            and len(rest[0]) <= BOX_MAX_LENGTH
        ):
            box, i = rest[0], i + 1
        else:
            words.append(token)
        i += 1
    if not words and postcode is None and number is not None and _POSTCODE.match(number):
        number, postcode = None, number  # "1060" alone: a postcode, not a house number
    return ParsedQuery(tuple(words), number, box, postcode)


def require_something(query: ParsedQuery) -> None:
    if not query.words and query.postcode is None:
        raise InvalidParameter(
            "q",
            "name a street (e.g. 'Rue de la Victoire 2, 1060 "
            "Saint-Gilles' or 'Overwinningsstraat 2'), a municipality or a "
            "postcode of the Region (1000-1299)",
        )


@dataclass(frozen=True)
class StreetWords:
    """A street name (or the street part of a query) as the geocoder compares it."""

    kind: str | None  # 'rue', 'straat', ... (None: not recognised)
    kind_language: str | None  # 'fr' or 'nl'
    core: tuple[str, ...]  # what names this street among those of its kind
    full: tuple[str, ...]  # kind and core, articles left out
    written: str = ""  # every word, articles too, joined: 'avenuedeleglise'

    @property
    def core_text(self) -> str:
        return "".join(self.core)

    @property
    def sorted_core_text(self) -> str:
        return "".join(sorted(self.core))

    @property
    def full_text(self) -> str:
        return "".join(self.full)


def written_out(token: str, glued: bool = True) -> str:
    """A folded word with its abbreviation written out (one word for one word).

    With `glued`, also a Dutch kind abbreviated at the end of a word ('Overwinningsstr').
    """
    if token in ABBREVIATIONS:
        return ABBREVIATIONS[token]
    for short, long in GLUED_ABBREVIATIONS if glued else ():
        if token.endswith(short) and len(token) > len(short) + 2:
            return token[: -len(short)] + long
    return token


def street_words(words: tuple[str, ...] | list[str], glued: bool = True) -> StreetWords:
    """The kind, core and full words of folded street words (a name or a query).

    `glued`: see `written_out`; a query is read both ways, since 'mouln' may be a slip for
    'moulin' rather than an abbreviated 'moulaan'.
    """
    tokens = [written_out(token, glued) for token in words]
    kind = language = None
    core = [t for t in tokens if t not in ARTICLES]
    if core and core[0] in FRENCH_KINDS and len(core) > 1:
        kind, language, core = core[0], "fr", core[1:]
    elif core:
        last = core[-1]
        for suffix in _DUTCH_KINDS_LONGEST_FIRST:
            if last == suffix and len(core) > 1:
                kind, language, core = suffix, "nl", core[:-1]
                break
            if last.endswith(suffix) and len(last) >= len(suffix) + 2:
                kind, language, core = suffix, "nl", [*core[:-1], last[: -len(suffix)]]
                break
    full = ([kind] if language == "fr" else []) + core + ([kind] if language == "nl" else [])
    return StreetWords(kind, language, tuple(core), tuple(w for w in full if w), "".join(tokens))
