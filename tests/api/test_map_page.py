"""`/map`, the planners' map, in a real headless Chromium that can reach no host but ours.

One browser for the module, against a real `urbis serve` over the synced sample. Every outside
host is unresolvable (`--host-resolver-rules`), so a request the page makes elsewhere fails and
is caught. Screenshots go to `test-artifacts/map/` (or `$URBIS_TEST_ARTIFACTS/map/`).
"""

from __future__ import annotations

import csv
import io
import math
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlparse

import httpx
import pytest
from pyproj import Transformer
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select
from shapely.geometry import shape

from tests.api.conftest import start_server
from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.api
SHOTS = ARTIFACTS / "map"
VICTOIRE_2 = "Rue de la Victoire 2, 1060 Saint-Gilles"
T = TypeVar("T")
TO_LAMBERT = Transformer.from_crs("EPSG:4326", "EPSG:31370", always_xy=True)
FROM_LAMBERT = Transformer.from_crs("EPSG:31370", "EPSG:4326", always_xy=True)


def wait_for(what: Callable[[], T], seconds: float = 20, message: str = "") -> T:
    deadline = time.monotonic() + seconds
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds} s for {message or what}")
        time.sleep(0.1)


def js(browser: webdriver.Chrome, script: str, *args: Any) -> Any:
    return browser.execute_script(script, *args)


def settled(browser: webdriver.Chrome) -> None:
    """Wait until the page is set up and the map still, with every tile drawn."""
    wait_for(
        lambda: js(
            browser,
            "const m = window.urbisMap; return document.body.dataset.ready === 'true' && "
            "!!m && m.loaded() && m.areTilesLoaded() && !m.isMoving();",
        ),
        30,
        "the map to load",
    )


def open_map(browser: webdriver.Chrome, url: str) -> None:
    browser.get("about:blank")  # a new document: a changed hash alone would not reload
    browser.get(url)
    settled(browser)


def shot(browser: webdriver.Chrome, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    browser.save_screenshot(str(path))
    return path


def assert_offline_and_clean(browser: webdriver.Chrome, api: str) -> None:
    """No request to another host, no severe console error."""
    urls = js(browser, "return performance.getEntriesByType('resource').map(e => e.name);")
    ours = urlparse(api).netloc
    foreign = [u for u in urls if urlparse(u).scheme in ("http", "https")]
    assert [u for u in foreign if urlparse(u).netloc != ours] == []
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []


def rendered(browser: webdriver.Chrome, source_layer: str) -> int:
    """Features of a tile layer (any style layer drawing it) rendered in view now."""
    return int(
        js(
            browser,
            "return urbisMap.queryRenderedFeatures().filter(f => f.sourceLayer === arguments[0])"
            ".length;",
            source_layer,
        )
    )


def click_map(browser: webdriver.Chrome, lon: float, lat: float) -> None:
    """A real mouse click on the map's canvas at a longitude/latitude."""
    x, y = js(browser, "const p = urbisMap.project(arguments[0]); return [p.x, p.y];", [lon, lat])
    canvas = browser.find_element(By.CSS_SELECTOR, "#map canvas")
    size = canvas.size
    ActionChains(browser).move_to_element_with_offset(
        canvas, round(x - size["width"] / 2), round(y - size["height"] / 2)
    ).click().perform()


def canvas_pixels(browser: webdriver.Chrome) -> dict[str, float]:
    """Pixel statistics of the map as drawn: share not the ground colour, distinct colours."""
    return browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const map = urbisMap;
        map.once('render', () => {
          const source = map.getCanvas();
          const copy = document.createElement('canvas');
          copy.width = source.width; copy.height = source.height;
          const context = copy.getContext('2d');
          context.drawImage(source, 0, 0);
          const data = context.getImageData(0, 0, copy.width, copy.height).data;
          // The style's ground colour, as the browser reads it.
          const probe = document.createElement('canvas').getContext('2d');
          probe.fillStyle = map.getPaintProperty('background', 'background-color').toString();
          probe.fillRect(0, 0, 1, 1);
          const ground = probe.getImageData(0, 0, 1, 1).data;
          let other = 0, pixels = 0, blank = 0, green = 0;
          const colours = new Set();
          for (let i = 0; i < data.length; i += 16) {  // every fourth pixel
            pixels += 1;
            const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
            if (a === 0) blank += 1;
            if (Math.abs(r - ground[0]) + Math.abs(g - ground[1]) + Math.abs(b - ground[2]) > 24)
              other += 1;
            if (g > r + 40 && g > b + 40) green += 1;
            colours.add((r >> 4) * 256 + (g >> 4) * 16 + (b >> 4));
          }
          done({
            other: other / pixels, blank: blank / pixels, green: green / pixels,
            colours: colours.size,
          });
        });
        map.triggerRepaint();
        """
    )


def address(client: httpx.Client, street: str, number: str) -> dict[str, Any]:
    """The sample's address point, read from its items (not through the geocoder)."""
    page = client.get(
        "/collections/addresses/items", params={"PW_NAME_FR": street, "ADRN": number}
    ).json()
    (feature,) = page["features"]
    return feature


def search(browser: webdriver.Chrome, text: str) -> None:
    box = browser.find_element(By.ID, "search")
    box.clear()
    box.send_keys(text)


def test_the_map_loads_offline_and_draws_our_layers_with_legend_and_attribution(
    offline_browser, api, client
):
    browser = offline_browser
    open_map(browser, f"{api}/map#16/50.8323/4.3455&lang=en")
    stats = canvas_pixels(browser)
    # Municipalities fill the view, addresses dot it: far from a blank or one-colour canvas.
    assert stats["blank"] == 0 and stats["other"] > 0.5 and stats["colours"] >= 6, stats
    assert stats["green"] == 0  # no background: none of the stand-in WMTS's green
    assert rendered(browser, "addresses") > 100 and rendered(browser, "municipalities") >= 1
    assert js(browser, "return document.documentElement.lang") == "en"
    assert browser.find_element(By.ID, "app-title").text == "URBIS map"
    attribution = browser.find_element(By.CSS_SELECTOR, ".maplibregl-ctrl-attrib").text
    assert "UrbIS" in attribution and "CIRB" in attribution
    # The layer list: each collection by its English title, a swatch per style layer.
    titles = {c["id"]: c["titles"]["en"] for c in client.get("/collections").json()["collections"]}
    items = browser.find_elements(By.CSS_SELECTOR, "#layer-list li")
    assert sorted(i.find_element(By.TAG_NAME, "label").text for i in items) == sorted(
        titles.values()
    )
    style = client.get("/styles/default/style.json").json()
    for collection in titles:
        drawn_by = [
            layer
            for layer in style["layers"]
            if layer.get("source-layer") in (collection, f"{collection}_labels")
        ]
        legend = browser.find_element(
            By.XPATH, f"//input[@id='layer-{collection}']/ancestor::li//span[@class='legend']"
        )
        assert len(legend.find_elements(By.TAG_NAME, "svg")) == len(drawn_by)
    fill = next(layer for layer in style["layers"] if layer["id"] == "municipalities-fill")
    rect = browser.find_element(
        By.XPATH, "//input[@id='layer-municipalities']/ancestor::li//*[local-name()='rect']"
    )
    assert rect.get_attribute("fill") == fill["paint"]["fill-color"]
    # Every control has a name a screen reader reads.
    for control in browser.find_elements(By.CSS_SELECTOR, "#sidebar input, #sidebar select"):
        assert js(
            browser,
            "const c = arguments[0]; return !!(c.labels && c.labels.length && "
            "c.labels[0].textContent.trim());",
            control,
        ), control.get_attribute("id")
    shot(browser, "loaded")
    # Where four of the sample's 500 m cells meet (western Anderlecht), the map shows a city.
    lon, lat = FROM_LAMBERT.transform(141_500, 167_500)
    open_map(browser, f"{api}/map#16/{lat:.6f}/{lon:.6f}&lang=en")
    bounds = js(browser, "return urbisMap.getBounds().toArray().flat();")
    in_view = {
        layer: client.get(
            f"/collections/{layer}/items", params={"bbox": ",".join(map(str, bounds)), "limit": 1}
        ).json()["numberMatched"]
        for layer in ("buildings", "street_surfaces", "street_axes")
    }
    assert in_view["buildings"] > 20 and min(in_view.values()) > 0, in_view
    for layer, matched in in_view.items():
        assert rendered(browser, layer) >= matched, layer  # each drawn, at least once
    assert canvas_pixels(browser)["colours"] >= 6
    shot(browser, "city")
    assert_offline_and_clean(browser, api)


def test_search_suggests_as_one_types_then_enter_flies_to_the_address_and_marks_it(
    offline_browser, api, client
):
    browser = offline_browser
    open_map(browser, f"{api}/map#13/50.84/4.36&lang=en")
    # The keyboard: suggestions as one types, an arrow chooses one, Enter goes there.
    waterloo = address(client, "Chaussée de Waterloo", "10")["geometry"]["coordinates"]
    search(browser, "chaussee de waterloo 10")
    suggestions = wait_for(
        lambda: [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#suggestions li")],
        10,
        "suggestions",
    )
    assert suggestions[0] == "Chaussée de Waterloo 10, 1060 Saint-Gilles"
    box = browser.find_element(By.ID, "search")
    assert box.get_attribute("aria-expanded") == "true"
    # A word still being typed is completed: the street it begins is suggested.
    search(browser, "rue de la vic")
    wait_for(
        lambda: (
            [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#suggestions li")][:1]
            == ["Rue de la Victoire, 1060 Saint-Gilles"]
        ),
        10,
        "the completed street suggested first",
    )
    search(browser, "chaussee de waterloo 10")
    wait_for(
        lambda: (
            [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#suggestions li")][:1]
            == ["Chaussée de Waterloo 10, 1060 Saint-Gilles"]
        ),
        10,
        "the suggestions again",
    )
    box.send_keys(Keys.ARROW_DOWN)
    assert box.get_attribute("aria-activedescendant") == "suggestion-0"
    box.send_keys(Keys.ENTER)
    wait_for(lambda: box.get_attribute("aria-expanded") == "false", 5, "the list to close")
    settled(browser)
    centre = js(browser, "const c = urbisMap.getCenter(); return [c.lng, c.lat];")
    assert centre == pytest.approx(waterloo, abs=1e-6)
    # Enter alone: the best answer to the whole text.
    lon, lat = address(client, "Rue de la Victoire", "2")["geometry"]["coordinates"]
    search(browser, VICTOIRE_2)
    browser.find_element(By.ID, "search").send_keys(Keys.ENTER)
    wait_for(
        lambda: browser.find_element(By.ID, "search-status").text == f"Found: {VICTOIRE_2}",
        10,
        "the status to say found",
    )
    settled(browser)
    centre = js(browser, "const c = urbisMap.getCenter(); return [c.lng, c.lat];")
    assert centre == pytest.approx([lon, lat], abs=1e-6)
    assert js(browser, "return urbisMap.getZoom()") == pytest.approx(18)
    # Marked: the marker stands on the address, at the middle of the map on screen.
    marker = browser.find_element(By.CSS_SELECTOR, ".search-marker")
    assert marker.get_attribute("aria-label") == VICTOIRE_2
    assert js(
        browser, "const p = urbisApp.search.marker.getLngLat(); return [p.lng, p.lat];"
    ) == pytest.approx([lon, lat], abs=1e-9)
    box = js(browser, "return arguments[0].getBoundingClientRect().toJSON();", marker)
    canvas = js(
        browser,
        "return document.querySelector('#map canvas').getBoundingClientRect().toJSON();",
    )
    # The pin stands on the map's centre: its tip a few pixels above its shadow's bottom.
    middle = canvas["top"] + canvas["height"] / 2
    assert box["left"] + box["width"] / 2 == pytest.approx(
        canvas["left"] + canvas["width"] / 2, abs=2
    )
    assert middle <= box["bottom"] <= middle + 10 and box["height"] > 20
    assert f"#18/{lat:.6f}/{lon:.6f}&lang=en" in browser.current_url
    shot(browser, "search-found")
    assert_offline_and_clean(browser, api)


def test_a_search_for_what_the_sample_lacks_says_no_result(offline_browser, api):
    browser = offline_browser
    open_map(browser, f"{api}/map#15/50.832/4.345&lang=en")
    before = js(browser, "const c = urbisMap.getCenter(); return [c.lng, c.lat];")
    search(browser, "Zwarte Vijverslaan 999, 9999 Nergensdorp")
    browser.find_element(By.ID, "search").send_keys(Keys.ENTER)
    status = wait_for(
        lambda: (
            browser.find_element(By.ID, "search-status").text.startswith("No result")
            and browser.find_element(By.ID, "search-status").text
        ),
        10,
        "no result",
    )
    assert status == "No result for “Zwarte Vijverslaan 999, 9999 Nergensdorp”."
    assert js(browser, "return urbisApp.search.marker") is None
    assert js(browser, "const c = urbisMap.getCenter(); return [c.lng, c.lat];") == before
    shot(browser, "search-no-result")
    assert_offline_and_clean(browser, api)


def panel_sections(browser: webdriver.Chrome) -> dict[str, list[str]]:
    """The panel's sections: collection id -> the names it lists."""
    return js(
        browser,
        """const out = {};
        for (const s of document.querySelectorAll('#panel-body section[data-collection]'))
          out[s.dataset.collection] = [...s.querySelectorAll('li .name')].map(e => e.textContent);
        return out;""",
    )


def test_a_click_opens_what_is_here_named_with_links_and_both_coordinates(
    offline_browser, api, client
):
    browser = offline_browser
    feature = address(client, "Rue de la Victoire", "2")
    lon, lat = feature["geometry"]["coordinates"]
    open_map(browser, f"{api}/map#19/{lat}/{lon}&lang=en")
    click_map(browser, lon, lat)
    wait_for(
        lambda: js(browser, "return document.getElementById('panel').dataset.state") == "done",
        10,
        "the panel",
    )
    panel = browser.find_element(By.ID, "panel")
    assert panel.is_displayed() and browser.switch_to.active_element == panel
    assert browser.find_element(By.ID, "panel-title").text == "What is here"
    sections = panel_sections(browser)
    municipality = client.get("/collections/municipalities/items/21013").json()
    assert sections["municipalities"] == [municipality["properties"]["NAME_FRE"]]
    assert sections["addresses"] == ["Rue de la Victoire 2"]  # its featureLabel, in French
    assert sections["nearest"] == ["Rue de la Victoire 2"]
    headings = [h.text for h in panel.find_elements(By.TAG_NAME, "h3")]
    assert {"Municipalities", "Addresses", "Nearest address", "Coordinates"} <= set(headings)
    # The links: the feature's page, its JSON and its own history, each answered.
    links = {
        a.get_attribute("data-link"): a.get_attribute("href")
        for a in panel.find_elements(By.CSS_SELECTOR, "section[data-collection=municipalities] a")
    }
    assert links == {
        "page": f"{api}/collections/municipalities/items/21013?f=html",
        "json": f"{api}/collections/municipalities/items/21013?f=json",
        "history": f"{api}/collections/municipalities/changes?since=1970-01-01T00:00:00Z&key=21013",
    }
    assert client.get(links["page"]).headers["content-type"].startswith("text/html")
    assert client.get(links["json"]).json()["id"] == "21013"
    history = client.get(links["history"]).json()
    assert [(c["id"], c["op"]) for c in history["changes"]] == [("21013", "insert")]
    # The clicked point in both systems: within a pixel (0.2 m at zoom 19) of the address.
    lambert = panel.find_element(By.CSS_SELECTOR, "dd[data-crs='31370']")
    wgs84 = panel.find_element(By.CSS_SELECTOR, "dd[data-crs='4326']")
    expected_x, expected_y = TO_LAMBERT.transform(lon, lat)
    assert float(lambert.get_attribute("data-x")) == pytest.approx(expected_x, abs=0.5)
    assert float(lambert.get_attribute("data-y")) == pytest.approx(expected_y, abs=0.5)
    assert float(wgs84.get_attribute("data-lon")) == pytest.approx(lon, abs=1e-5)
    assert float(wgs84.get_attribute("data-lat")) == pytest.approx(lat, abs=1e-5)
    assert "x 148" in lambert.text and "° N" in wgs84.text
    # The features found are drawn over the map.
    drawn = js(
        browser,
        "return urbisMap.queryRenderedFeatures({layers: ['urbis-highlight-fill', "
        "'urbis-highlight-point']}).map(f => f.layer.id);",
    )
    assert set(drawn) == {"urbis-highlight-fill", "urbis-highlight-point"}
    shot(browser, "what-is-here")
    # The keyboard closes it, and asks again about the map's centre with Enter.
    panel.send_keys(Keys.ESCAPE)
    wait_for(lambda: not panel.is_displayed(), 5, "the panel to close")
    browser.find_element(By.CSS_SELECTOR, "#map canvas").send_keys(Keys.ENTER)
    wait_for(lambda: panel_sections(browser).get("municipalities"), 10, "the keyboard's panel")
    assert_offline_and_clean(browser, api)


def inside(client: httpx.Client, collection: str, **params: Any) -> tuple[str, float, float]:
    """The first feature of a polygon layer (with `params`) and a point inside it (lon, lat)."""
    (feature,) = client.get(
        f"/collections/{collection}/items", params={"limit": 1, **params}
    ).json()["features"]
    point = shape(feature["geometry"]).representative_point()
    return str(feature["id"]), point.x, point.y


def holding(client: httpx.Client, collection: str, lon: float, lat: float) -> list[dict]:
    """The features of a layer whose area holds the point, found by a CQL2 filter (not /lookup)."""
    return client.get(
        f"/collections/{collection}/items",
        params={"filter": f"S_INTERSECTS(geom, POINT({lon} {lat}))", "limit": 100},
    ).json()["features"]


def test_a_click_on_a_building_names_it_and_its_municipality_in_both_languages(
    offline_browser, api, client
):
    browser = offline_browser
    # The largest building of the sample, clicked inside.
    key, lon, lat = inside(client, "buildings", sortby="-AREA")
    (municipality,) = holding(client, "current_municipalities", lon, lat)
    names = municipality["properties"]
    open_map(browser, f"{api}/map#18/{lat}/{lon}&lang=fr")
    click_map(browser, lon, lat)
    wait_for(lambda: panel_sections(browser).get("buildings"), 10, "the panel")
    sections = panel_sections(browser)
    assert sections["buildings"] == [key]  # a building has no name: its key (INSPIRE_ID)
    assert sections["current_municipalities"] == [names["NAMEFRE"]]
    legacy = holding(client, "municipalities", lon, lat)
    assert sections["municipalities"] == [f["properties"]["NAME_FRE"] for f in legacy]
    # The nearest address is said only within 250 m (the sample's lie in Saint-Gilles).
    (nearest,) = client.get("/collections/addresses/nearest", params={"x": lon, "y": lat}).json()[
        "features"
    ]
    assert ("nearest" in sections) == (nearest["properties"]["distance"] <= 250)
    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#panel h3")]
    assert "Bâtiments" in headings and "Communes (2026)" in headings
    # Its key is a URI: the links carry it percent-encoded whole, and each answers for it.
    building = browser.find_element(By.CSS_SELECTOR, "#panel section[data-collection=buildings]")
    links = {
        a.get_attribute("data-link"): a.get_attribute("href")
        for a in building.find_elements(By.TAG_NAME, "a")
    }
    assert links["json"].endswith(f"/items/{quote(key, safe='')}?f=json")
    page = client.get(links["page"])
    assert page.status_code == 200 and key in page.text
    assert client.get(links["json"]).json()["id"] == key
    history = client.get(links["history"]).json()
    assert [(c["id"], c["op"]) for c in history["changes"]] == [(key, "insert")]
    shot(browser, "what-is-here-building")
    Select(browser.find_element(By.ID, "language")).select_by_value("nl")
    wait_for(
        lambda: panel_sections(browser).get("current_municipalities") == [names["NAMEDUT"]],
        5,
        "the panel in Dutch",
    )
    assert "Gebouwen" in [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#panel h3")]
    Select(browser.find_element(By.ID, "language")).select_by_value("en")
    assert_offline_and_clean(browser, api)


def test_dutch_for_the_interface_the_labels_and_the_panel_remembered(offline_browser, api, client):
    browser = offline_browser
    open_map(browser, f"{api}/map#16/50.8323/4.3455&lang=en")
    Select(browser.find_element(By.ID, "language")).select_by_value("nl")
    wait_for(lambda: js(browser, "return document.documentElement.lang") == "nl", 5, "nl")
    settled(browser)
    assert browser.find_element(By.ID, "app-title").text == "URBIS-kaart"
    assert browser.find_element(By.CSS_SELECTOR, "label[for=search]").text == "Een adres zoeken"
    assert browser.find_element(By.ID, "layers-title").text == "Lagen"
    layer_names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#layer-list label")]
    assert "Gemeenten" in layer_names and "Adressen" in layer_names
    # The map's municipality labels read the Dutch name field now.
    text_field = js(
        browser,
        "return JSON.stringify(urbisMap.getLayoutProperty('municipalities-label', 'text-field'));",
    )
    assert '"NAME_DUT"' in text_field
    # What the map writes now (the legacy and the current municipalities share their label
    # points: one of the two is drawn, the other left out by collision).
    labels = js(
        browser,
        "return urbisMap.queryRenderedFeatures().filter(f => f.layer.id.endsWith('-label'))"
        ".map(f => String(f.layer.layout['text-field']));",
    )
    municipality = client.get("/collections/municipalities/items/21013").json()["properties"]
    assert municipality["NAME_DUT"] in labels and municipality["NAME_FRE"] not in labels
    assert "lang=nl" in browser.current_url
    lon, lat = address(client, "Rue de la Victoire", "2")["geometry"]["coordinates"]
    click_map(browser, lon, lat)
    wait_for(lambda: panel_sections(browser).get("municipalities"), 10, "the panel")
    sections = panel_sections(browser)
    assert sections["municipalities"] == [municipality["NAME_DUT"]]
    assert sections["addresses"] == ["Overwinningsstraat 2"]
    assert browser.find_element(By.ID, "panel-title").text == "Wat is hier?"
    shot(browser, "dutch")
    # Remembered: the map opened again without a language in its address is in Dutch.
    open_map(browser, f"{api}/map#16/50.8323/4.3455")
    assert js(browser, "return document.documentElement.lang") == "nl"
    assert browser.find_element(By.ID, "app-title").text == "URBIS-kaart"
    Select(browser.find_element(By.ID, "language")).select_by_value("en")
    assert_offline_and_clean(browser, api)


def test_a_layer_toggled_off_leaves_the_map_and_the_address(offline_browser, api, client):
    browser = offline_browser
    others = sorted(
        c["id"] for c in client.get("/collections").json()["collections"] if c["id"] != "addresses"
    )
    open_map(browser, f"{api}/map#17/50.8323/4.3455&lang=en")
    assert rendered(browser, "addresses") > 50
    browser.find_element(By.ID, "layer-addresses").click()
    settled(browser)
    assert rendered(browser, "addresses") == 0
    assert rendered(browser, "municipalities") >= 1  # the others stay
    assert f"&layers={','.join(others)}&" in browser.current_url
    shot(browser, "addresses-off")
    # The address keeps it: opened again, the layer is still off, then back on.
    open_map(browser, browser.current_url)
    assert not browser.find_element(By.ID, "layer-addresses").is_selected()
    assert rendered(browser, "addresses") == 0
    browser.find_element(By.ID, "layer-addresses").click()
    settled(browser)
    assert rendered(browser, "addresses") > 50
    assert "layers=" not in browser.current_url
    assert_offline_and_clean(browser, api)


def test_the_radius_tool_counts_what_within_answers_and_downloads_the_list(
    offline_browser, api, client
):
    browser = offline_browser
    lon, lat = address(client, "Rue de la Victoire", "2")["geometry"]["coordinates"]
    open_map(browser, f"{api}/map#17/{lat}/{lon}&lang=en")
    Select(browser.find_element(By.ID, "radius-layer")).select_by_value("addresses")
    distance = browser.find_element(By.ID, "radius-distance")
    distance.clear()
    distance.send_keys("60")
    browser.find_element(By.ID, "radius-pick").click()
    assert browser.find_element(By.ID, "radius-pick").get_attribute("aria-pressed") == "true"
    click_map(browser, lon, lat)
    status = browser.find_element(By.ID, "radius-status")
    wait_for(lambda: status.get_attribute("data-count"), 10, "the count")
    centre = js(browser, "return urbisApp.radius.last.centre;")
    answer = client.get(
        "/collections/addresses/within",
        params={"x": f"{centre[0]:.7f}", "y": f"{centre[1]:.7f}", "distance": 60, "limit": 1000},
    ).json()
    matched = answer["numberMatched"]
    assert matched > 10  # a street of houses, not an empty answer
    assert int(status.get_attribute("data-count")) == matched
    assert status.text == f"{matched} feature(s) of “Addresses” within 60 m."
    rows = browser.find_elements(By.CSS_SELECTOR, "#radius-result tbody tr")
    assert len(rows) == min(200, matched)
    assert rows[0].find_element(By.TAG_NAME, "td").text == "Rue de la Victoire 2"
    # The CSV holds every feature found, nearest first, as /within lists them.
    link = browser.find_element(By.ID, "radius-csv")
    assert link.get_attribute("download") == "addresses-within-60m.csv"
    text = browser.execute_async_script(
        "fetch(arguments[0]).then(r => r.text()).then(arguments[1]);", link.get_attribute("href")
    )
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == matched
    assert [row["key"] for row in table] == [str(f["id"]) for f in answer["features"]]
    assert table[0]["name"] == "Rue de la Victoire 2" and float(table[0]["distance_m"]) < 1
    assert browser.find_element(By.ID, "radius-pick").get_attribute("aria-pressed") == "false"
    shot(browser, "radius")
    assert_offline_and_clean(browser, api)


def test_the_measure_tool_measures_planar_lambert_72(offline_browser, api):
    browser = offline_browser
    open_map(browser, f"{api}/map#17/50.8323/4.3455&lang=en")
    corners = [(4.3440, 50.8315), (4.3470, 50.8315), (4.3470, 50.8330)]
    browser.find_element(By.ID, "measure-distance").click()
    for lon, lat in corners[:2]:
        click_map(browser, lon, lat)
    status = browser.find_element(By.ID, "measure-status")
    clicked = js(browser, "return urbisApp.measure.points;")
    (x1, y1), (x2, y2) = (TO_LAMBERT.transform(*p) for p in clicked)
    assert float(status.get_attribute("data-value")) == pytest.approx(
        math.hypot(x2 - x1, y2 - y1), abs=0.01
    )
    assert status.text.startswith("Length: ") and status.text.endswith(" m")
    browser.find_element(By.ID, "measure-area").click()
    for lon, lat in corners:
        click_map(browser, lon, lat)
    clicked = js(browser, "return urbisApp.measure.points;")
    xy = [TO_LAMBERT.transform(*p) for p in clicked]
    area = abs(sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(xy, xy[1:] + xy[:1], strict=True))) / 2
    assert float(status.get_attribute("data-value")) == pytest.approx(area, rel=1e-6)
    assert status.text.startswith("Area: ")
    shot(browser, "measure")
    assert_offline_and_clean(browser, api)


def solid_png(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    """A one-colour PNG (what a WMTS answers a tile with, here of a colour none of ours is)."""
    row = b"\x00" + bytes(rgb) * size  # filter type 0, then the pixels
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def tile_server() -> Iterator[tuple[str, list[str]]]:
    """A stand-in for the URBIS WMTS on loopback: one green tile for any path, paths kept."""
    asked: list[str] = []
    tile = solid_png((0, 160, 60))

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(tile)))
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            self.wfile.write(tile)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", asked
    server.shutdown()
    server.server_close()


def test_the_urbis_background_is_offered_only_when_configured_and_drawn_under_our_layers(
    offline_browser, api, synced_database_url, tile_server
):
    browser = offline_browser
    open_map(browser, f"{api}/map#15/50.8323/4.3455&lang=en")
    assert not browser.find_element(By.ID, "background-choice").is_displayed()  # unset: none
    tiles, asked = tile_server
    template = f"{tiles}/wmts/{{layer}}/{{z}}/{{x}}/{{y}}.png"
    proc, base = start_server(synced_database_url, URBIS_BASEMAP_WMTS_URL=template)
    try:
        open_map(browser, f"{base}/map#15/50.8323/4.3455&lang=en")
        choice = Select(browser.find_element(By.ID, "background"))
        assert [o.text for o in choice.options] == [
            "None (our layers alone)",
            "URBIS map (FR)",
            "URBIS map (NL)",
            "URBIS map (grey)",
        ]
        assert choice.first_selected_option.text == "None (our layers alone)" and asked == []
        choice.select_by_value("grey")
        settled(browser)
        # 256-pixel tiles: one zoom deeper than the map's 512-pixel zoom 15
        assert asked and all(p.startswith("/wmts/urbisFRGray/16/") for p in asked)
        layers = js(browser, "return urbisMap.getStyle().layers.map(l => l.id);")
        assert layers[:2] == ["background", "urbis-background"]  # under every layer of ours
        assert "&bg=grey" in browser.current_url
        stats = canvas_pixels(browser)
        assert stats["green"] > 0.5, stats  # the tiles show through our translucent fills
        shot(browser, "background")
        open_map(browser, browser.current_url)  # the address keeps the choice
        assert Select(browser.find_element(By.ID, "background")).first_selected_option.text == (
            "URBIS map (grey)"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    urls = js(browser, "return performance.getEntriesByType('resource').map(e => e.name);")
    hosts = {urlparse(u).netloc for u in urls if u.startswith("http")}
    assert hosts == {urlparse(base).netloc, urlparse(tiles).netloc}
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
