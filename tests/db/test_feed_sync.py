"""A download feed as a layer source: the newest entry, downloaded once per entry."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from tests.unit.test_source_feed import ZIP_PATH, atom, entry_xml, product_zip, publish
from tests.unit.test_source_feed import site as site  # noqa: F401 - the fixture
from urbis_core.config import load_config
from urbis_core.settings import SyncSettings
from urbis_sync.run import sync_layer

FAST = SyncSettings(http_attempts=2, http_backoff=0.01, http_timeout=5)


def test_feed_entry_applied_once_then_skipped_until_a_new_one(engine, request, tmp_path: Path):
    server = request.getfixturevalue("site")
    feed_url = publish(server)
    config = tmp_path / "urbis.yaml"
    config.write_text(
        f"layers:\n  municipalities:\n    source: {{kind: feed, url: '{feed_url}', "
        "layer: Municipalities}\n    key: NISCODE\n"
    )
    first = sync_layer(engine, load_config(config), "municipalities", FAST)
    assert (first.status, first.inserted, first.version) == ("success", 2, 1), first.error
    zips = [p for p in server.requests if p.endswith(".zip")]
    assert zips == [ZIP_PATH.format("20240601")]

    again = sync_layer(engine, load_config(config), "municipalities", FAST)
    assert (again.status, again.inserted, again.updated, again.version) == ("success", 0, 0, 1)
    assert [p for p in server.requests if p.endswith(".zip")] == zips  # not downloaded again
    with engine.connect() as conn:
        info = conn.execute(
            sa.text("SELECT source_info FROM urbis_meta.sync_run ORDER BY id DESC LIMIT 1")
        ).scalar()
    assert "already applied" in info and "20240601" in info

    newer = ZIP_PATH.format("20240901")
    product_zip(server.root / newer.lstrip("/"))
    (server.root / "atomfeed" / "urbis-vector-fr.xml").write_text(
        atom(
            entry_xml("20240601", f'<link rel="enclosure" href="{ZIP_PATH.format("20240601")}"/>'),
            entry_xml("20240901", f'<link rel="enclosure" href="{newer}"/>'),
        )
    )
    third = sync_layer(engine, load_config(config), "municipalities", FAST)
    assert third.status == "success"
    assert [p for p in server.requests if p.endswith(".zip")][-1] == newer


def test_file_source_by_url(engine, request, tmp_path: Path):
    server = request.getfixturevalue("site")
    archive = "/downloads/UrbISVector.zip"
    product_zip(server.root / archive.lstrip("/"))
    config = tmp_path / "urbis.yaml"
    config.write_text(
        "layers:\n  addresses:\n    source: {kind: file, "
        f"url: 'http://127.0.0.1:{server.server_address[1]}{archive}', "
        "layer: Addresses}\n    key: INSPIRE_ID\n"
    )
    report = sync_layer(engine, load_config(config), "addresses", FAST)
    assert (report.status, report.inserted) == ("success", 1), report.error
    assert archive in server.requests


def test_a_label_edit_between_two_runs_of_one_feed_entry_is_checked_and_kept(
    engine, request, tmp_path: Path
):
    """The entry is not downloaded again, yet the configuration's label is applied or refused."""
    server = request.getfixturevalue("site")
    feed_url = publish(server)
    config = tmp_path / "urbis.yaml"

    def configure(label: str) -> None:
        config.write_text(
            f"layers:\n  municipalities:\n    source: {{kind: feed, url: '{feed_url}', "
            f"layer: Municipalities}}\n    key: NISCODE\n    label: {label}\n"
        )

    def stored_label() -> dict[str, str]:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT label FROM urbis_meta.layer_catalog")).scalar()

    configure("{fr: NAMEFRE}")
    assert sync_layer(engine, load_config(config), "municipalities", FAST).status == "success"
    configure("{fr: NAMEFRE, nl: '{NAMEFRE} ({NISCODE})'}")
    again = sync_layer(engine, load_config(config), "municipalities", FAST)
    assert (again.status, again.version) == ("success", 1)
    assert stored_label() == {"fr": "NAMEFRE", "nl": "{NAMEFRE} ({NISCODE})"}
    configure("{fr: NAMEFRE, nl: NAAM}")
    refused = sync_layer(engine, load_config(config), "municipalities", FAST)
    assert refused.status == "failed" and "label.nl: 'NAAM' not in the source" in refused.error
    assert stored_label() == {"fr": "NAMEFRE", "nl": "{NAMEFRE} ({NISCODE})"}
    assert len([p for p in server.requests if p.endswith(".zip")]) == 1  # downloaded once
