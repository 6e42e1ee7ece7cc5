"""The HTML pages' little map and the items filter form, in a real headless browser.

Debian's Chromium through WebDriver. The map is MapLibre (served by the API from npm's
package): the page's features drawn over the service's own layers (its default style and
vector tiles). What it drew is read back from MapLibre's rendered features.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.api

PAGE_LAYERS = "['page-fill', 'page-line', 'page-point']"


def drawn(browser: webdriver.Chrome, url: str | None = None) -> int:
    """Open the page (or stay on it), wait until its map has drawn, return how many features
    the map holds."""
    if url is not None:
        browser.get(url)
    the_map = WebDriverWait(browser, 30).until(
        lambda b: (
            b.find_element(By.ID, "map")
            if b.find_element(By.ID, "map").get_attribute("data-features") is not None
            else False
        )
    )
    return int(the_map.get_attribute("data-features"))


def features_in_view(browser: webdriver.Chrome) -> int:
    """The page's features MapLibre rendered within the map's view (each once)."""
    return browser.execute_script(f"""
        const found = window.urbisItemsMap.queryRenderedFeatures({{layers: {PAGE_LAYERS}}});
        return new Set(found.map(f => f.properties.href)).size;""")


def background_features(browser: webdriver.Chrome) -> int:
    """Features of our own layers (the default style's) rendered under the page's."""
    return browser.execute_script("""
        const map = window.urbisItemsMap;
        const ours = map.getStyle().layers
          .filter(l => !l.id.startsWith('page-') && l.source).map(l => l.id);
        return map.queryRenderedFeatures({layers: ours}).length;""")


def errors_and_foreign_requests(browser: webdriver.Chrome, api: str) -> tuple[list, list]:
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    host = urlparse(api).netloc
    urls = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);"
    )
    return errors, [u for u in urls if urlparse(u).netloc != host]


def test_municipalities_page_draws_the_19_polygons_over_our_own_layers(browser, api):
    assert drawn(browser, f"{api}/collections/municipalities/items?f=html&limit=19") == 19
    assert features_in_view(browser) == 19  # fitted: all of them within the view
    assert background_features(browser) > 19  # the layers' tiles under them
    errors, foreign = errors_and_foreign_requests(browser, api)
    assert errors == [] and foreign == []  # MapLibre, style, tiles, glyphs: served by us
    attribution = browser.find_element(By.CSS_SELECTOR, ".maplibregl-ctrl-attrib").text
    assert "UrbIS" in attribution


def test_addresses_page_draws_its_points_and_a_click_links_to_the_feature(browser, api):
    assert drawn(browser, f"{api}/collections/addresses/items?f=html&limit=50&lang=nl") == 50
    assert features_in_view(browser) == 50
    hrefs = browser.execute_script(f"""
        const found = window.urbisItemsMap.queryRenderedFeatures({{layers: {PAGE_LAYERS}}});
        return found.map(f => f.properties.href);""")
    x, y = browser.execute_script("""
        const map = window.urbisItemsMap;
        const point = map.queryRenderedFeatures({layers: ['page-point']})[0];
        const at = map.project(point.geometry.coordinates);
        return [at.x, at.y];""")
    canvas = browser.find_element(By.CSS_SELECTOR, "#map canvas")
    size = canvas.size
    ActionChains(browser).move_to_element_with_offset(
        canvas, int(x - size["width"] / 2), int(y - size["height"] / 2)
    ).click().perform()
    link = WebDriverWait(browser, 10).until(
        lambda b: b.find_element(By.CSS_SELECTOR, ".maplibregl-popup-content a")
    )
    href, name = link.get_attribute("href"), link.text
    assert href in hrefs and "/collections/addresses/items/" in href
    assert href.endswith("?f=html&lang=nl")
    key = urlparse(href).path.rsplit("/", 1)[-1]
    props = httpx.get(f"{api}/collections/addresses/items/{key}").json()["properties"]
    assert name == f"{props['PW_NAME_DU']} {props['ADRN']}"  # named in Dutch
    assert drawn(browser, href) == 1  # the feature's own page has its map too
    assert browser.find_element(By.TAG_NAME, "h1").text == name


def test_markup_in_a_value_is_shown_as_text_not_run(browser, api):
    """A filter that matches nothing still draws an (empty) map, and a hostile value in the
    query string stays text."""
    url = (
        f"{api}/collections/addresses/items?f=html&PW_NAME_FR="
        "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"
    )
    assert drawn(browser, url) == 0
    assert browser.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    field = browser.find_element(By.CSS_SELECTOR, "#filter-form input[name=PW_NAME_FR]")
    assert field.get_attribute("value") == "<img src=x onerror=alert(1)>"


def test_pages_in_another_crs_say_why_there_is_no_map(browser, api):
    browser.get(f"{api}/collections/addresses/items?f=html&limit=5&crs=EPSG:31370")
    assert browser.find_elements(By.ID, "map") == []
    assert "drawn for features in CRS84" in browser.page_source


def submit(browser: webdriver.Chrome) -> dict[str, list[str]]:
    """Submit the filter form, wait for the next page's map; the parameters it was asked with."""
    old = browser.find_element(By.ID, "map")
    browser.find_element(By.CSS_SELECTOR, "#filter-form button[type=submit]").click()
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(old))
    return parse_qs(urlparse(browser.current_url).query, keep_blank_values=True)


def test_the_filter_form_filters_by_property_cql2_and_the_maps_view(browser, api):
    items = f"{api}/collections/municipalities/items"
    assert drawn(browser, f"{items}?f=html&lang=fr&limit=19") == 19
    form = browser.find_element(By.ID, "filter-form")
    form.find_element(By.TAG_NAME, "summary").click()  # folded while nothing filters
    form.find_element(By.CSS_SELECTOR, "input[name=NAME_DUT]").send_keys("Elsene")
    asked = submit(browser)
    assert drawn(browser) == 1
    # the fields left empty are left out: an empty value would filter on ''
    assert asked == {"f": ["html"], "lang": ["fr"], "NAME_DUT": ["Elsene"], "limit": ["19"]}
    assert browser.find_element(By.TAG_NAME, "h1").text == "Communes : objets"
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "tbody td:first-child a")]
    assert names == ["Ixelles"]  # named in French

    # a CQL2 filter, the form open with what filters the page
    form = browser.find_element(By.ID, "filter-form")
    form.find_element(By.CSS_SELECTOR, "input[name=NAME_DUT]").clear()
    cql = "NAT_CODE IN ('21009', '21013') OR NAME_FRE LIKE 'Wat%'"
    form.find_element(By.NAME, "filter").send_keys(cql)
    asked = submit(browser)
    assert asked["filter"] == [cql] and "NAME_DUT" not in asked
    assert drawn(browser) == 3  # Ixelles, Saint-Gilles, Watermael-Boitsfort
    assert features_in_view(browser) == 3

    # only what lies in the map's view: around Saint-Gilles
    browser.find_element(By.NAME, "filter").clear()
    browser.execute_script("window.urbisItemsMap.jumpTo({center: [4.345, 50.829], zoom: 15});")
    browser.find_element(By.ID, "filter-use-view").click()
    asked = submit(browser)
    box = [float(v) for v in asked["bbox"][0].split(",")]
    assert box[0] < 4.345 < box[2] and box[1] < 50.829 < box[3]
    count = drawn(browser)
    expected = httpx.get(f"{items}?bbox={asked['bbox'][0]}&limit=19").json()["numberMatched"]
    assert 1 <= count == expected < 19
    # the map opened on the view it was asked for, the box ticked for the next filter
    assert browser.find_element(By.ID, "filter-use-view").is_selected()
    centre = browser.execute_script("return window.urbisItemsMap.getCenter().toArray();")
    assert abs(centre[0] - 4.345) < 0.002 and abs(centre[1] - 50.829) < 0.002


def test_a_click_on_the_lookup_map_asks_what_is_at_that_point(browser, api):
    """The lookup page's map: the point asked and what is there; a click elsewhere (Ixelles,
    east of Saint-Gilles) opens the lookup of that point, in the page's language."""
    assert drawn(browser, f"{api}/lookup?x=4.3445&y=50.8316&f=html&lang=nl") == 2
    assert "Sint-Gillis" in browser.find_element(By.TAG_NAME, "table").text
    browser.execute_script("window.urbisItemsMap.jumpTo({center: [4.37, 50.826], zoom: 13});")
    x, y = browser.execute_script(
        "const at = window.urbisItemsMap.project([4.3725, 50.8265]); return [at.x, at.y];"
    )
    canvas = browser.find_element(By.CSS_SELECTOR, "#map canvas")
    size = canvas.size
    old = browser.find_element(By.ID, "map")
    ActionChains(browser).move_to_element_with_offset(
        canvas, int(x - size["width"] / 2), int(y - size["height"] / 2)
    ).click().perform()
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(old))
    asked = parse_qs(urlparse(browser.current_url).query)
    assert asked["lang"] == ["nl"] and asked["f"] == ["html"]
    assert abs(float(asked["x"][0]) - 4.3725) < 0.001
    assert abs(float(asked["y"][0]) - 50.8265) < 0.001
    drawn(browser)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Wat is hier"
    assert "Elsene" in browser.find_element(By.TAG_NAME, "table").text
