"""The live configuration can't be exercised here (no network); its structure can."""

import re
from urllib.parse import urlsplit

from tests.conftest import ROOT
from urbis_core.config import FeedSource, WfsSource, load_config

LIVE = ROOT / "config" / "urbis-live.yaml"


def test_live_config_is_valid_and_keys_are_the_natural_ones():
    config = load_config(LIVE)
    wfs = {k: v for k, v in config.layers.items() if isinstance(v.source, WfsSource)}
    assert {"municipalities", "buildings", "addresses", "street_axes"} <= set(wfs)
    assert config.layers["municipalities"].key == "NISCODE"
    for layer_id, layer in wfs.items():
        assert isinstance(layer.source, WfsSource)
        assert layer.source.typename.startswith("urbisvector:"), layer_id
        assert layer.source.url.endswith("/geoserver/urbisvector/wfs"), layer_id
        assert layer.schedule is not None
        if layer_id != "municipalities":
            assert layer.key == "INSPIRE_ID", layer_id
        assert set(layer.title.model_dump().values()) != {None}
    feeds = [v for v in config.layers.values() if isinstance(v.source, FeedSource)]
    assert len(feeds) == 1 and feeds[0].source.layer == "Buildings"


def test_host_names_live_in_configuration_only():
    hosts = re.compile(r"irisnet\.be|datastore\.brussels")
    for folder in ("urbis_core", "urbis_sync", "geoapi", "tiles", "urbis_cli"):
        for path in (ROOT / folder).rglob("*.py"):
            assert not hosts.search(path.read_text()), path


def test_live_config_points_at_the_renamed_wfs_host():
    config = load_config(LIVE)
    hosts = {
        urlsplit(layer.source.url).hostname
        for layer in config.layers.values()
        if isinstance(layer.source, WfsSource)
    }
    assert hosts == {"geoservices-vector.irisnet.be"}
    old = [line for line in LIVE.read_text().splitlines() if "geoservices-urbis" in line]
    assert old and all(line.lstrip().startswith("#") for line in old)  # kept as a comment only
