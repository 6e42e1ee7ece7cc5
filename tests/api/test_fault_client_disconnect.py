"""Fault: a client hangs up in the middle of a large download.

Over a raw socket to a real `urbis serve`: the request is sent, part of the answer read (or
none, while a GeoPackage is still being built), and the socket closed. While the client
holds the answer, the API's session is seen busy (so the checks below can fail); after the
close, within a bounded wait, pg_stat_activity shows no session of the API still in a
statement or a transaction, the pool's checked-out count (/metrics) is back to zero, and a
GeoPackage's temporary folder is gone.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import psycopg
import pytest
import shapely
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import start_server, sync_file_layer
from tests.conftest import TEMPLATE_DB, create_database, drop_database

pytestmark = pytest.mark.api

FEATURES = 60_000
NOTE_CHARS = 400  # a CSV of about 25 MB: far more than the sockets' buffers hold
BOUND = 10.0  # seconds the API may take to give its connection back after the client left
# Cancelled, a request lets go of its statement at once (0.01 s here); not cancelled, a
# GeoPackage is built to its end first (1.5 s here, for nobody).
RELEASED = 1.0
BUSY = ("active", "idle in transaction", "idle in transaction (aborted)")


@pytest.fixture(scope="module")
def big_database(admin_url: str, template_url: str, tmp_path_factory) -> Iterator[str]:
    name = f"hangup_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, name, template=TEMPLATE_DB)
    folder = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(16)
    notes = ["".join(rng.choice(list("abcdefghij "), NOTE_CHARS)) for _ in range(50)]
    frame = gpd.GeoDataFrame(
        {
            "BID": np.arange(FEATURES, dtype="int64"),
            "NOTE": [notes[i % 50] for i in range(FEATURES)],
        },
        geometry=shapely.points(
            rng.uniform(145_000, 152_000, FEATURES), rng.uniform(167_000, 173_000, FEATURES)
        ),
        crs=31370,
    )
    frame.to_file(folder / "big.gpkg", layer="big", driver="GPKG")
    config = folder / "big.yaml"
    config.write_text(
        f"layers:\n  big:\n    source: {{kind: file, path: {folder / 'big.gpkg'}}}\n    key: BID\n"
    )
    sync_file_layer(url, config, "big")
    yield url
    drop_database(admin_url, name)


@pytest.fixture(scope="module")
def served(big_database: str, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """The API, with a temporary folder of its own (where GeoPackages are built)."""
    tmp = tmp_path_factory.mktemp("api-tmp")
    proc, base = start_server(big_database, TMPDIR=str(tmp))
    yield base, tmp
    proc.terminate()
    proc.wait(timeout=10)


def api_sessions(url: str) -> list[tuple[str, str, str]]:
    """The API's sessions in a statement or a transaction: (application_name, state, query)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name, state, query FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name LIKE 'urbis-api%%' "
            "AND state = ANY(%s)",
            (list(BUSY),),
        ).fetchall()
    return [(str(a), str(s), str(q)) for a, s, q in rows]


def pool_in_use(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=30).text
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    return samples["urbis_db_pool_in_use"]


def until(what: str, check: Callable[[], Any], seconds: float = BOUND) -> float:
    """Seconds until `check()` is true (asked every 0.1 s), at most `seconds`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds:g} s: {what}"
        time.sleep(0.1)
    return time.monotonic() - started


def ask(base: str, path: str) -> socket.socket:
    """A raw HTTP/1.1 request, its answer left unread."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    return sock


def read_some(sock: socket.socket, wanted: int) -> bytes:
    got = b""
    while len(got) < wanted:
        chunk = sock.recv(65536)
        assert chunk, f"the answer ended after {len(got)} bytes"
        got += chunk
    return got


def released(base: str, database: str) -> None:
    """The client gone: no API session left in a statement or transaction, the pool all back."""
    until(
        "no API session in a statement or transaction",
        lambda: not api_sessions(database),
        RELEASED,
    )
    until("the pool's connections all back", lambda: pool_in_use(base) == 0)


def test_a_client_leaving_a_csv_download_leaves_no_statement_and_no_connection(
    served, big_database
):
    base, _ = served
    assert pool_in_use(base) == 0
    sock = ask(base, "/collections/big/items?f=csv")
    try:
        head = read_some(sock, 256 * 1024)
        assert head.startswith(b"HTTP/1.1 200") and b"text/csv" in head
        time.sleep(0.5)  # the server stalls on the full socket, its cursor open
        held = api_sessions(big_database)
        assert held, "the download should hold a session while its client holds the answer"
        assert pool_in_use(base) == 1
    finally:
        sock.close()
    released(base, big_database)
    # and the API answers as before, the same download whole
    with httpx.stream("GET", f"{base}/collections/big/items?f=csv", timeout=120) as whole:
        lines = sum(chunk.count(b"\n") for chunk in whole.iter_bytes())
    assert lines == FEATURES + 1


def test_a_client_leaving_while_its_geopackage_is_built_leaves_nothing_behind(served, big_database):
    base, tmp = served
    sock = ask(base, "/collections/big/items?f=gpkg")
    try:
        # until the API is building it: its session busy, its folder there
        until("the GeoPackage being built", lambda: list(tmp.glob("urbis-gpkg-*")))
        assert api_sessions(big_database) and pool_in_use(base) == 1
    finally:
        sock.close()
    released(base, big_database)
    until("the GeoPackage's temporary folder gone", lambda: not list(tmp.glob("urbis-gpkg-*")))
