"""A client generated from the served /openapi.json by a standard generator, used for real.

`openapi-python-client` (PyPI) writes a typed Python package from the definition; the test
imports it and calls a real `urbis serve`: the answers come back as the generated model
classes, and an error as the generated Problem (a definition without answer schemas gives a
client whose calls parse nothing).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

pytestmark = pytest.mark.api

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PACKAGE = "urbis_generated_client"


@pytest.fixture(scope="module")
def generated(client: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("client")
    definition = folder / "openapi.json"
    definition.write_text(json.dumps(client.get("/openapi.json").json()))
    config = folder / "config.yaml"
    # no post hooks: the generated code is imported, not formatted
    config.write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    done = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(definition),
            "--meta",
            "none",
            "--output-path",
            str(folder / PACKAGE),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(folder))
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def module(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


@pytest.fixture(scope="module")
def typed_client(generated: Path, api: str):  # noqa: ANN201 - the generated Client class
    return module("client").Client(base_url=api, raise_on_unexpected_status=True)


def test_the_generated_client_gets_typed_answers(typed_client):
    models = module("models")

    landing = module("api.capabilities.landing").sync(client=typed_client)
    assert isinstance(landing, models.LandingPage)
    assert landing.title == "URBIS GeoService"
    assert any(link.rel == "data" for link in landing.links)

    collections = module("api.data.collections").sync(client=typed_client)
    assert isinstance(collections, models.Collections)
    by_id = {c.id: c for c in collections.collections}
    assert {"addresses", "municipalities"} <= set(by_id)
    assert by_id["addresses"].feature_count > 0 and by_id["addresses"].key_field == "ID"

    page = module("api.data.items").sync("addresses", client=typed_client, limit=5, sortby="-ID")
    assert isinstance(page, models.FeatureCollection)
    assert page.number_returned == 5 == len(page.features)
    assert page.number_matched == by_id["addresses"].feature_count
    first = page.features[0]
    assert isinstance(first, models.Feature) and first.geometry.type_.value == "Point"
    ids = [f.properties["ID"] for f in page.features]
    assert ids == sorted(ids, reverse=True)

    here = module("api.spatial_queries.lookup").sync(
        client=typed_client, x=4.3445, y=50.8316, collections="municipalities"
    )
    assert isinstance(here, models.Lookup)
    municipalities = here.results["municipalities"]
    assert len(municipalities) == 1 and municipalities[0].properties["NAME_FRE"] == "Saint-Gilles"

    found = module("api.geocoding.geocode_address").sync(
        client=typed_client, q="Rue de la Victoire 2, 1060 Saint-Gilles", limit=1
    )
    assert isinstance(found, models.FeatureCollection) and found.number_returned == 1
    assert "Victoire" in found.features[0].properties["label"]


def test_the_generated_client_gets_the_error_model(typed_client):
    models = module("models")
    refused = module("api.data.items").sync_detailed("addresses", client=typed_client, bbox="1,2,3")
    assert refused.status_code == 400
    assert isinstance(refused.parsed, models.Problem)
    assert refused.parsed.status == 400 and "bbox" in refused.parsed.detail

    missing = module("api.data.collection").sync_detailed("nope", client=typed_client)
    assert missing.status_code == 404 and isinstance(missing.parsed, models.Problem)
    assert "no collection 'nope'" in missing.parsed.detail
