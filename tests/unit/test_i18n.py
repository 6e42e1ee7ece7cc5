"""The pages' language: `lang`, then Accept-Language (q-values), then English; the catalogue."""

from __future__ import annotations

import string

import pytest

from geoapi.i18n import (
    LANGUAGES,
    MESSAGES,
    PageLanguage,
    _read_catalogue,
    accept_language,
    catalogue,
    choose_language,
    number,
    text,
)


@pytest.mark.parametrize(
    "header, chosen",
    [
        ("fr", "fr"),
        ("nl-BE,nl;q=0.9,en;q=0.8", "nl"),
        ("de-DE,de;q=0.9,fr;q=0.5,nl;q=0.6", "nl"),  # the highest q of ours wins
        ("en;q=0.5, fr;q=0.5", "en"),  # a tie keeps the header's order
        ("fr;q=0, nl;q=0.1", "nl"),  # q=0: "not this one"
        ("FR-be", "fr"),
        ("de, *", None),  # * names none of ours in particular
        ("fr;q=abc, nl;q=0.2", "nl"),  # a broken quality counts as none
        ("", None),
        (";;,,;q=1", None),
    ],
)
def test_accept_language_honours_quality_values(header, chosen):
    assert accept_language(header) == chosen


def test_lang_wins_then_the_header_then_english():
    assert choose_language("nl", "fr") == PageLanguage("nl", negotiated=False)
    assert choose_language("fr-BE", "") == PageLanguage("fr", negotiated=False)
    assert choose_language(None, "nl") == PageLanguage("nl", negotiated=True)
    assert choose_language("de", "nl") == PageLanguage("nl", negotiated=True)  # de: ignored
    assert choose_language("de", "") == PageLanguage("en", negotiated=True)
    assert choose_language("", "") == PageLanguage("en", negotiated=True)
    assert choose_language('"><script>', "de") == PageLanguage("en", negotiated=True)


def test_numbers_are_written_as_each_language_writes_them():
    assert [number(1234567, lang) for lang in LANGUAGES] == [
        "1,234,567",
        "1\u202f234\u202f567",
        "1.234.567",
    ]
    assert number(1234.5, "fr") == "1\u202f234,5" and number(1234.5, "nl") == "1.234,5"
    assert number(12, "en") == "12"


def test_every_string_is_in_the_three_languages_with_the_same_fields():
    strings = catalogue()
    assert len(strings) > 100
    for key, texts in strings.items():
        fields = [{f for _, f, _, _ in string.Formatter().parse(t) if f} for t in texts]
        assert fields[0] == fields[1] == fields[2], key
        assert all(t.strip() for t in texts), key
        filled = {name: f"<{name}>" for name in fields[0]}
        assert [text(lang, key, **filled) for lang in LANGUAGES] == [
            t.format(**filled) for t in texts
        ]


@pytest.mark.parametrize(
    "table",
    [
        '["page.title"]\nen = "Title"\nfr = "Titre"\n',  # no Dutch
        '["page.title"]\nen = "Title"\nfr = "Titre"\nnl = "Titel"\nde = "Titel"\n',
        '["page.title"]\nen = "Title"\nfr = "Titre"\nnl = 3\n',
    ],
)
def test_a_catalogue_without_exactly_the_three_languages_is_refused_at_once(tmp_path, table):
    path = tmp_path / "messages.toml"
    path.write_text(table)
    with pytest.raises(ValueError, match=r"\[page.title\] must have exactly en, fr and nl"):
        _read_catalogue(path)


def test_the_catalogue_file_reads_as_the_pages_use_it(tmp_path):
    path = tmp_path / "messages.toml"
    path.write_text('["a.b"]\nen = "{n} maps"\nfr = "{n} cartes"\nnl = "{n} kaarten"\n')
    assert _read_catalogue(path) == {"a.b": ("{n} maps", "{n} cartes", "{n} kaarten")}
    assert _read_catalogue(MESSAGES) == catalogue()
