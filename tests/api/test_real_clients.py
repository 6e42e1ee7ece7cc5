"""Standard clients against the running API: OWSLib, and schemathesis hunting for 5xx."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from owslib.ogcapi.features import Features

from tests.conftest import SAMPLE_COUNTS

pytestmark = pytest.mark.api

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def test_owslib_features_client(api):
    client = Features(api)
    assert set(client.feature_collections()) == set(SAMPLE_COUNTS)
    assert client.collection("municipalities")["title"] == "Municipalities"
    items = client.collection_items("municipalities", limit=100)
    assert items["numberMatched"] == 19 and len(items["features"]) == 19
    ixelles = client.collection_item("municipalities", "21009")
    assert ixelles["properties"]["NAME_FRE"] == "Ixelles"
    assert (
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
        in client.conformance()["conformsTo"]
    )


def test_schemathesis_finds_no_server_error(api, tmp_path):
    """Every operation of /openapi.json, with generated valid and invalid input: never a 5xx."""
    done = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{api}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--seed",
            "20261128",
            "--phases",
            "examples,coverage,fuzzing",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    summary = done.stdout[-3000:]
    # when schemathesis takes the server for gone, it names the last requests it sent
    gone = done.stdout.find("stopped responding")
    assert done.returncode == 0, (
        done.stdout[gone - 200 : gone + 3000] if gone >= 0 else ""
    ) + summary
    assert "Server error" not in summary
    counted = re.search(r"(\d+) generated", summary)
    assert counted is not None and int(counted.group(1)) > 500, summary  # it really ran
