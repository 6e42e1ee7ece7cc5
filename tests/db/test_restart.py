"""The database server restarted while a run applies its changes (a real restart)."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import psycopg
import sqlalchemy as sa

from tests.conftest import wait_for_blocked_update
from tests.db.test_reconcile import Layer, legacy_municipalities
from urbis_core import migrate
from urbis_core.db import create_sync_engine
from urbis_core.pgcluster import EmbeddedCluster


def live(engine: sa.Engine) -> list:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    'SELECT "NAT_CODE", "NAME_FRE", row_hash, valid_from FROM urbis.muni ORDER BY 1'
                )
            )
        )


def test_database_restarted_mid_apply(tmp_path: Path):
    home = Path(tempfile.mkdtemp(prefix="urbis-restart-"))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home, durable=False)
    url = cluster.start().url
    engine = create_sync_engine(url)
    try:
        migrate.upgrade(url)
        frame = legacy_municipalities(tmp_path)
        layer = Layer(tmp_path, frame, "NAT_CODE")
        layer.sync(engine)
        good = live(engine)
        layer.write(frame.assign(NAME_FRE=frame["NAME_FRE"] + " (v2)"))

        blocker = psycopg.connect(url)
        blocker.execute("SELECT 1 FROM urbis.muni WHERE \"NAT_CODE\" = '21001' FOR UPDATE")
        result: dict = {}
        worker = threading.Thread(target=lambda: result.setdefault("r", layer.sync_report(engine)))
        worker.start()
        wait_for_blocked_update(url)
        cluster.stop()  # pg_ctl stop -m fast: every connection goes, the apply included
        cluster.start()
        worker.join(60)
        blocker.close()

        report = result["r"]
        assert report.status == "failed"
        assert (report.error or "").startswith("database error, nothing applied:")
        assert live(engine) == good  # exactly the last good state
        with engine.connect() as conn:
            runs = conn.execute(
                sa.text("SELECT status, error FROM urbis_meta.sync_run ORDER BY id")
            ).all()
            history = conn.execute(sa.text("SELECT count(*) FROM urbis_history.muni")).scalar()
        assert [r.status for r in runs] == ["success", "failed"]
        assert runs[1].error == report.error
        assert history == 0
        after = layer.sync(engine)
        assert (after.updated, after.version) == (19, 2)
    finally:
        engine.dispose()
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)
