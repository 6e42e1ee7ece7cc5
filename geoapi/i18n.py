"""The HTML pages' languages: which one a request reads, and every string the pages show.

French, Dutch and English. The `lang` query parameter decides (`fr`, `nl`, `en`; a region such
as `fr-BE` reads as its language); without it, or with a language the pages are not written in,
the Accept-Language header does (its q-values honoured, `q=0` meaning "not this one"); English
when neither names one of the three. JSON answers do not change with the language: a layer's
titles are all in them already.

The strings themselves are in `messages.toml` beside this module, each key with its three
languages side by side so that a translator reads and checks them together; it is read once, on
import, and checked then: a key missing a language is an error at start, not a page that fails.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from geoapi.header_values import weighted

LANGUAGES = ("en", "fr", "nl")
FALLBACK = "en"
LANGUAGE_NAMES = {"en": "English", "fr": "Français", "nl": "Nederlands"}
LANG_DESCRIPTION = (
    "Language of the HTML page: fr, nl or en. Without it (or with another language) the "
    "Accept-Language header chooses, then English. JSON answers are the same in every language"
)


@dataclass(frozen=True)
class PageLanguage:
    code: str  # one of LANGUAGES
    negotiated: bool  # read from Accept-Language: the page varies with that header


def _primary(tag: str) -> str:
    return tag.strip().lower().replace("_", "-").split("-")[0]


def accept_language(header: str) -> str | None:
    """The language of ours the Accept-Language header prefers most (None: none of ours).

    Ties keep the header's order; `*` names none in particular, so it does not choose.
    """
    ranked: list[tuple[float, int, str]] = []
    for position, (tag, quality) in enumerate(weighted(header)):
        if quality is not None and quality > 0 and _primary(tag) in LANGUAGES:
            ranked.append((-quality, position, _primary(tag)))
    return min(ranked)[2] if ranked else None


def choose_language(lang: str | None, header: str) -> PageLanguage:
    if lang and _primary(lang) in LANGUAGES:
        return PageLanguage(_primary(lang), negotiated=False)
    return PageLanguage(accept_language(header) or FALLBACK, negotiated=True)


def number(value: int | float, language: str) -> str:
    """A count as its readers write it: 1,234 (en), 1 234 (fr), 1.234 (nl)."""
    text = f"{value:,}"
    separator = {"en": ",", "fr": "\u202f", "nl": "."}[language]
    if isinstance(value, float):
        whole, _, fraction = text.partition(".")
        decimal = "." if language == "en" else ","
        return whole.replace(",", separator) + (decimal + fraction if fraction else "")
    return text.replace(",", separator)


MESSAGES = Path(__file__).with_name("messages.toml")


def _read_catalogue(path: Path) -> dict[str, tuple[str, str, str]]:
    """Every string by key: (English, French, Dutch), as `text` and `catalogue` give them."""
    with path.open("rb") as file:
        tables = tomllib.load(file)
    catalogue: dict[str, tuple[str, str, str]] = {}
    for key, strings in tables.items():
        missing = [code for code in LANGUAGES if not isinstance(strings.get(code), str)]
        if missing or set(strings) - set(LANGUAGES):
            raise ValueError(f"{path}: [{key}] must have exactly en, fr and nl strings")
        catalogue[key] = (strings["en"], strings["fr"], strings["nl"])
    return catalogue


_CATALOGUE = _read_catalogue(MESSAGES)


def text(language: str, key: str, /, **values: object) -> str:
    """The string `key` in `language`, its `{fields}` filled (plain text, not markup)."""
    english, french, dutch = _CATALOGUE[key]
    chosen = {"en": english, "fr": french, "nl": dutch}[language]
    return chosen.format(**values) if values else chosen


def catalogue() -> dict[str, tuple[str, str, str]]:
    """Every string as written, unfilled: (English, French, Dutch) by key."""
    return dict(_CATALOGUE)
