"""Sync a layer from an OGC API Features server: our own API, serving the synced sample."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from tests.conftest import TEMPLATE_DB, create_database, drop_database
from urbis_core.config import load_config
from urbis_core.db import create_sync_engine
from urbis_core.settings import SyncSettings
from urbis_sync.run import sync_layer

pytestmark = pytest.mark.api


def test_municipalities_from_our_own_ogc_api(api, admin_url, template_url, tmp_path):
    name = f"copy_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, name, template=TEMPLATE_DB)
    engine = create_sync_engine(url)
    try:
        config = tmp_path / "urbis.yaml"
        config.write_text(
            f"layers:\n  communes:\n    source: {{kind: ogcapi, url: '{api}', "
            "collection: municipalities}\n    key: NAT_CODE\n"
        )
        settings = SyncSettings(http_attempts=2, http_backoff=0.01, http_timeout=10)
        report = sync_layer(engine, load_config(config), "communes", settings)
        assert (report.status, report.inserted) == ("success", 19), report.error
        with engine.connect() as conn:
            worst = conn.execute(
                sa.text('SELECT max(abs(ST_Area(geom) - "AREA")) FROM urbis.communes')
            ).scalar()
        assert worst < 1.0
        again = sync_layer(engine, load_config(config), "communes", settings)
        assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    finally:
        engine.dispose()
        drop_database(admin_url, name)
