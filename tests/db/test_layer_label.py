"""A layer's `label:` (what names its features per language), checked and kept by the sync."""

from __future__ import annotations

import sqlalchemy as sa

from tests.db.test_reconcile import Layer, legacy_municipalities, scalar


def configure(layer: Layer, label: str) -> None:
    text = layer.config_path.read_text().split("    label:")[0]
    layer.config_path.write_text(text + f"    label: {label}\n")


def stored_label(engine: sa.Engine) -> dict[str, str]:
    return scalar(engine, "SELECT label FROM urbis_meta.layer_catalog WHERE id = 'muni'")


def test_the_label_is_stored_and_a_config_edit_alone_updates_it(engine, tmp_path):
    layer = Layer(tmp_path, legacy_municipalities(tmp_path), "NAT_CODE")
    configure(layer, "{fr: NAME_FRE, nl: NAME_DUT}")
    layer.sync(engine)
    assert stored_label(engine) == {"fr": "NAME_FRE", "nl": "NAME_DUT"}
    configure(layer, "{fr: '{SHORT_FRE} ({NAT_CODE})', nl: SHORT_DUT}")
    again = layer.sync(engine)  # the source did not change: no new version, a new label
    assert (again.inserted, again.updated, again.deleted, again.version) == (0, 0, 0, 1)
    assert stored_label(engine) == {"fr": "{SHORT_FRE} ({NAT_CODE})", "nl": "SHORT_DUT"}


def test_a_label_naming_a_missing_field_fails_the_run_and_keeps_layer_and_label(engine, tmp_path):
    layer = Layer(tmp_path, legacy_municipalities(tmp_path), "NAT_CODE")
    configure(layer, "{fr: NAME_FRE, nl: NAME_DUT}")
    layer.sync(engine)
    configure(layer, "{fr: NAME_FRE, nl: NAAM}")
    report = layer.sync_report(engine)
    assert report.status == "failed"
    assert "label.nl: 'NAAM' not in the source" in report.error
    assert "correct the layer's `label`" in report.error
    assert stored_label(engine) == {"fr": "NAME_FRE", "nl": "NAME_DUT"}
    assert scalar(engine, "SELECT count(*) FROM urbis.muni") == 19


def test_a_first_load_with_a_bad_label_stores_nothing(engine, tmp_path):
    layer = Layer(tmp_path, legacy_municipalities(tmp_path), "NAT_CODE")
    configure(layer, "{fr: '{NAME_FRE} {NUMBER}'}")
    report = layer.sync_report(engine)
    assert report.status == "failed" and "'NUMBER'" in report.error
    assert scalar(engine, "SELECT to_regclass('urbis.muni')") is None
