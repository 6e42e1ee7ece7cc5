"""The MapLibre style, its label glyphs, and the map page in a real browser."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from selenium import webdriver

from tests.api.conftest import assert_problem

pytestmark = pytest.mark.api
ROOT = Path(__file__).resolve().parents[2]


def read_fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of one protobuf message: varints and length-delimited bytes."""
    i = 0

    def varint() -> int:
        nonlocal i
        shift = value = 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while i < len(data):
        key = varint()
        if key & 7 == 0:
            yield key >> 3, varint()
        else:
            length = varint()
            yield key >> 3, data[i : i + length]
            i += length


def test_the_style_is_valid_maplibre_and_labels_in_french_and_dutch(client, tmp_path):
    style = client.get("/styles/default/style.json").json()
    path = tmp_path / "style.json"
    path.write_text(json.dumps(style))
    validate = subprocess.run(
        [str(ROOT / "node_modules/.bin/gl-style-validate"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    layers = {layer["id"]: layer for layer in style["layers"]}
    assert {
        "municipalities-fill",
        "municipalities-outline",
        "municipalities-label",
        "addresses-point",
        "addresses-number",
    } <= set(layers)
    label = json.dumps(layers["municipalities-label"]["layout"]["text-field"])
    assert '"NAME_FRE"' in label and '"NAME_DUT"' in label
    assert "UrbIS" in style["sources"]["urbis"]["attribution"]
    assert client.get(style["sources"]["urbis"]["url"]).json()["tilejson"] == "3.0.0"
    assert client.get("/styles").json()["styles"][0]["id"] == "default"


def test_the_style_draws_areas_under_surfaces_under_buildings_under_lines(client):
    ids = [layer["id"] for layer in client.get("/styles/default/style.json").json()["layers"]]
    order = [
        ids.index(f"{layer_id}-{part}")
        for layer_id, part in (
            ("current_municipalities", "fill"),
            ("street_surfaces", "fill"),
            ("buildings", "fill"),
            ("buildings", "outline"),
            ("street_axes", "line"),
            ("addresses", "point"),
            ("street_axes", "label"),
        )
    ]
    assert order == sorted(order)
    assert ids.index("municipalities-fill") < ids.index("street_surfaces-fill")
    rails = [ids.index(f"{rail}-line") for rail in ("tram_network", "train_network")]
    assert ids.index("buildings-outline") < min(rails) < max(rails) < ids.index("addresses-point")
    paint = {
        layer["id"]: layer.get("paint", {})
        for layer in client.get("/styles/default/style.json").json()["layers"]
    }
    # Municipalities tint the map (two such layers overlap here); buildings stand out.
    assert paint["municipalities-fill"]["fill-opacity"] < paint["buildings-fill"]["fill-opacity"]


def test_glyph_ranges_hold_sdf_bitmaps_for_french_and_dutch_letters(client):
    response = client.get("/fonts/DejaVu Sans Book/0-255.pbf")
    assert response.status_code == 200
    (stack,) = [v for n, v in read_fields(response.content) if n == 1]
    assert isinstance(stack, bytes)
    fields = list(read_fields(stack))
    assert (1, b"DejaVu Sans Book") in fields and (2, b"0-255") in fields
    glyphs = {}
    for number, value in fields:
        if number == 3:
            assert isinstance(value, bytes)
            glyph = dict(read_fields(value))
            glyphs[glyph[1]] = glyph
    for letter in "AZaz09éèêëçàâîïôûüÉ":
        glyph = glyphs[ord(letter)]
        width, height = glyph[3], glyph[4]
        assert width > 0 and height > 0 and len(glyph[2]) == (width + 6) * (height + 6)
        values = glyph[2]
        assert max(values) > 191 > min(values)  # inside and outside the outline
    assert glyphs[ord(" ")][7] > 0 and 2 not in glyphs[ord(" ")]  # a space: advance only
    assert_problem(client.get("/fonts/DejaVu Sans Book/0-100.pbf"), 400, "range")
    assert_problem(client.get("/fonts/Comic Sans/0-255.pbf"), 404, "DejaVu")


def rendered(browser: webdriver.Chrome, layer: str) -> int:
    """Wait for the map to finish drawing; how many features of a style layer it drew."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = browser.execute_script(
            "const m = window.urbisMap; return !!m && m.loaded() && m.areTilesLoaded();"
        )
        if done:
            break
        time.sleep(0.2)
    return int(
        browser.execute_script(
            "return window.urbisMap.queryRenderedFeatures({layers: [arguments[0]]}).length;", layer
        )
    )


def test_the_map_page_draws_layers_and_bilingual_labels_offline(browser, api):
    browser.get(f"{api}/map#12/50.835/4.35")
    assert rendered(browser, "municipalities-fill") > 5
    assert rendered(browser, "municipalities-label") > 5  # glyphs arrived: text was laid out
    browser.get(f"{api}/map#17.5/50.8323/4.3455")
    browser.refresh()
    assert rendered(browser, "addresses-number") > 20
    # Western Anderlecht: the recorded cells' buildings, streets and railway, from zoom 13.
    browser.get(f"{api}/map#16/50.8183/4.2561")
    browser.refresh()
    for layer in (
        "buildings-fill",
        "street_surfaces-fill",
        "street_axes-line",
        "street_axes-label",
        "train_network-line",
    ):
        assert rendered(browser, layer) > 0, layer
    browser.get(f"{api}/map#12.5/50.8183/4.2561")
    browser.refresh()
    assert rendered(browser, "train_network-line") > 0
    assert rendered(browser, "buildings-fill") == rendered(browser, "street_surfaces-fill") == 0
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    urls = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);"
    )
    assert {urlparse(u).netloc for u in urls} == {urlparse(api).netloc}
