"""What names a feature per language: a configured label, the detected name fields, the key."""

from __future__ import annotations

import pytest

from tests.support.layers import catalog_entry
from urbis_core.catalog import ColumnInfo, LayerEntry
from urbis_core.config import Label
from urbis_core.names import feature_name, label_problems, label_templates, name_fields


def layer(*text_columns: str, label: dict[str, str] | None = None) -> LayerEntry:
    columns = (ColumnInfo("ID", "bigint"), *(ColumnInfo(c, "text") for c in text_columns))
    return catalog_entry("layer", columns, label=label)


MUNICIPALITY = {"ID": 9, "NAME_FRE": "Ixelles", "NAME_DUT": "Elsene", "SHORT_FRE": "IX"}
ADDRESS = {"ID": 1, "PW_NAME_FR": "Rue de la Victoire", "PW_NAME_DU": "Overwinningsstraat",
           "ADRN": "12"}  # fmt: skip


def test_detected_pair_names_in_french_and_dutch_and_english_reads_french():
    municipalities = layer("NAME_FRE", "NAME_DUT", "SHORT_FRE", "SHORT_DUT")
    assert name_fields(municipalities) == ("NAME_FRE", "NAME_DUT")  # NAME before SHORT
    names = {lang: feature_name(municipalities, MUNICIPALITY, lang) for lang in ("fr", "nl", "en")}
    assert names == {"fr": "Ixelles", "nl": "Elsene", "en": "Ixelles"}


def test_a_configured_template_joins_fields_and_the_map_keeps_the_detected_pair():
    addresses = layer(
        "PW_NAME_FR", "PW_NAME_DU", "ADRN",
        label={"fr": "{PW_NAME_FR} {ADRN}", "nl": "{PW_NAME_DU} {ADRN}"},
    )  # fmt: skip
    assert feature_name(addresses, ADDRESS, "nl") == "Overwinningsstraat 12"
    assert feature_name(addresses, ADDRESS, "en") == "Rue de la Victoire 12"
    # a map label is one field per language: templates leave it to the detected pair
    assert name_fields(addresses) == ("PW_NAME_FR", "PW_NAME_DU")


def test_a_configured_bare_field_wins_over_detection():
    municipalities = layer("NAME_FRE", "NAME_DUT", "SHORT_FRE", "SHORT_DUT",
                           label={"fr": "SHORT_FRE", "nl": "SHORT_DUT"})  # fmt: skip
    assert name_fields(municipalities) == ("SHORT_FRE", "SHORT_DUT")
    assert label_templates(municipalities)["en"] == "{SHORT_FRE}"
    assert feature_name(municipalities, MUNICIPALITY, "fr") == "IX"


def test_a_feature_without_a_name_is_called_by_its_key():
    buildings = layer("BLOCK_ID")
    assert label_templates(buildings) == {}
    assert feature_name(buildings, {"ID": 100207, "BLOCK_ID": "7"}, "fr") == "100207"
    municipalities = layer("NAME_FRE", "NAME_DUT")
    assert feature_name(municipalities, {"ID": 21, "NAME_FRE": None, "NAME_DUT": ""}, "nl") == "21"


def test_one_configured_language_names_every_language():
    only_dutch = layer("NAAM", label={"nl": "NAAM"})
    assert label_templates(only_dutch) == {"fr": "{NAAM}", "nl": "{NAAM}", "en": "{NAAM}"}


def test_label_problems_name_each_missing_field_and_the_language():
    problems = label_problems({"fr": "{PW_NAME_FR} {NUMBER}", "nl": "NAAM"}, ["PW_NAME_FR", "ADRN"])
    assert problems == [
        "label.fr: 'NUMBER' not in the source (it has: PW_NAME_FR, ADRN)",
        "label.nl: 'NAAM' not in the source (it has: PW_NAME_FR, ADRN)",
    ]
    assert label_problems({"fr": "{PW_NAME_FR} {ADRN}"}, ["PW_NAME_FR", "ADRN"]) == []


def test_label_config_is_strict_about_languages():
    assert Label.model_validate({"fr": "A"}).fields() == {"fr": "A"}
    with pytest.raises(ValueError, match="de"):
        Label.model_validate({"de": "NAME"})
