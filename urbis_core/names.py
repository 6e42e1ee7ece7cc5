"""What names a layer's features, per language: the configured `label:`, else the name fields.

A label is a field name (`NAME_FRE`) or a template of fields (`"{PW_NAME_FR} {ADRN}"`). Without
one, the French/Dutch pair of name fields the columns show is used (NAME_FRE/NAME_DUT,
NAMEFRE/NAMEDUT, STRNAMEFRE/STRNAMEDUT, PW_NAME_FR/PW_NAME_DU...). English reads the French
name, as Brussels' bilingual labels put French first. A feature with no name is called by its key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from urbis_core.catalog import LayerEntry

LANGUAGES = ("fr", "nl", "en")
_FIELD = re.compile(r"\{([^{}]+)\}")
_FRENCH = re.compile(r"^(?P<stem>.*?)(FRE|_FR|FR)$", re.IGNORECASE)
_DUTCH_ENDINGS = ("DUT", "_DU", "_NL", "NL", "DU")


def template(label: str) -> str:
    """A label as a template: a bare field name becomes `{FIELD}`."""
    return label if _FIELD.search(label) else f"{{{label}}}"


def label_field_names(label: str) -> list[str]:
    """The fields a label reads."""
    return _FIELD.findall(template(label))


def label_problems(label: Mapping[str, str], fields: list[str]) -> list[str]:
    """What is wrong with a configured label for a layer with these fields (empty: nothing)."""
    problems = []
    for language, value in label.items():
        missing = [name for name in label_field_names(value) if name not in fields]
        if missing:
            problems.append(
                f"label.{language}: {', '.join(map(repr, missing))} not in the source "
                f"(it has: {', '.join(fields)})"
            )
    return problems


def detected_name_fields(layer: LayerEntry) -> tuple[str, str] | None:
    """The (French, Dutch) name fields the columns show, those with NAME in them first."""
    text = {c.name for c in layer.columns if c.sql_type == "text"}
    pairs = []
    for name in sorted(text):
        match = _FRENCH.match(name)
        if not match or not match.group("stem"):
            continue
        stem = match.group("stem")
        dutch = next((stem + end for end in _DUTCH_ENDINGS if stem + end in text), None)
        if dutch:
            pairs.append((name, dutch))
    pairs.sort(key=lambda pair: "NAME" not in pair[0].upper())
    return pairs[0] if pairs else None


def name_fields(layer: LayerEntry) -> tuple[str, str] | None:
    """The (French, Dutch) fields map labels show.

    The configured ones when both are bare fields (a map label reads one field per
    language), else those the columns show.
    """
    fr, nl = layer.label.get("fr"), layer.label.get("nl")
    if fr and nl and not _FIELD.search(fr) and not _FIELD.search(nl):
        return fr, nl
    return detected_name_fields(layer)


def label_templates(layer: LayerEntry) -> dict[str, str]:
    """Per language, the template that names a feature; empty for a layer without names."""
    found = {lang: template(value) for lang, value in layer.label.items() if value}
    pair = detected_name_fields(layer)
    if pair:
        found.setdefault("fr", template(pair[0]))
        found.setdefault("nl", template(pair[1]))
    if not found:
        return {}
    first = found.get("fr") or next(iter(found.values()))
    return {lang: found.get(lang, first) for lang in LANGUAGES}


def feature_name(layer: LayerEntry, properties: Mapping[str, Any], language: str) -> str:
    """A feature's name in `language` (fr, nl or en), or its key when it has none."""
    return namer(layer, language)(properties)


def namer(layer: LayerEntry, language: str) -> Callable[[Mapping[str, Any]], str]:
    """`feature_name` for many features of a layer, its label read once.

    A page of thousands of features names each of them.
    """
    chosen = label_templates(layer).get(language)
    key = layer.key_field

    def name_of(properties: Mapping[str, Any]) -> str:
        if chosen:
            name = _FIELD.sub(lambda m: _text(properties.get(m.group(1))), chosen).strip()
            if name:
                return " ".join(name.split())
        return _text(properties.get(key))

    return name_of


def _text(value: Any) -> str:
    return "" if value is None else str(value)
