from pathlib import Path

import pytest

from urbis_core import pgcluster
from urbis_core.errors import DatabaseError


def test_missing_postgis_is_explained_when_install_is_not_allowed(monkeypatch):
    monkeypatch.setattr(pgcluster, "POSTGIS_CONTROL", Path("/nonexistent/postgis.control"))
    with pytest.raises(DatabaseError) as err:
        pgcluster.ensure_postgis_installed(allow_apt=False)
    message = str(err.value)
    assert "apt-get install postgresql-15 postgresql-15-postgis-3" in message
    assert "DATABASE_URL" in message


def test_free_port_is_bindable():
    port = pgcluster.free_port()
    assert 1024 < port < 65536
    assert pgcluster._port_is_free(port)
