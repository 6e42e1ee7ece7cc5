"""The HTML pages' map, in a real headless browser (Debian's Chromium through WebDriver)."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.api


def drawn(browser: webdriver.Chrome, url: str) -> int:
    """Open the page, wait for the map script to finish, return how many features it drew."""
    browser.get(url)
    the_map = WebDriverWait(browser, 20).until(
        lambda b: (
            b.find_element(By.ID, "map")
            if b.find_element(By.ID, "map").get_attribute("data-features") is not None
            else False
        )
    )
    return int(the_map.get_attribute("data-features"))


def shapes_inside_the_map(browser: webdriver.Chrome) -> int:
    """Leaflet's vector shapes that lie within the map's box on screen (fitted, not off-view)."""
    return browser.execute_script("""
        const box = document.getElementById('map').getBoundingClientRect();
        return [...document.querySelectorAll('#map path.leaflet-interactive')].filter(p => {
          const r = p.getBoundingClientRect();
          return r.width + r.height > 0 && r.left >= box.left - 1 && r.right <= box.right + 1
                 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
        }).length;""")


def errors_and_foreign_requests(browser: webdriver.Chrome, api: str) -> tuple[list, list]:
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    host = urlparse(api).netloc
    urls = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);"
    )
    return errors, [u for u in urls if urlparse(u).netloc != host]


def test_municipalities_page_draws_the_19_polygons_from_local_files(browser, api):
    assert drawn(browser, f"{api}/collections/municipalities/items?f=html&limit=19") == 19
    assert shapes_inside_the_map(browser) == 19
    errors, foreign = errors_and_foreign_requests(browser, api)
    assert errors == [] and foreign == []  # Leaflet served by us: works offline
    attribution = browser.find_element(By.CSS_SELECTOR, ".leaflet-control-attribution").text
    assert "UrbIS" in attribution


def test_addresses_page_draws_its_page_of_points_and_links_each_to_its_page(browser, api):
    assert drawn(browser, f"{api}/collections/addresses/items?f=html&limit=50") == 50
    assert shapes_inside_the_map(browser) == 50
    first = browser.find_elements(By.CSS_SELECTOR, "#map path.leaflet-interactive")[0]
    browser.execute_script(
        "arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}));", first
    )
    link = WebDriverWait(browser, 10).until(
        lambda b: b.find_element(By.CSS_SELECTOR, ".leaflet-popup-content a")
    )
    href = link.get_attribute("href")
    assert "/collections/addresses/items/" in href and href.endswith("?f=html")
    assert drawn(browser, href) == 1  # the feature's own page has its map too
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Addresses ")


def test_markup_in_a_value_is_shown_as_text_not_run(browser, api):
    """A filter that matches nothing still draws an (empty) map, and a hostile value in the
    query string stays text."""
    url = (
        f"{api}/collections/addresses/items?f=html&PW_NAME_FR="
        "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"
    )
    assert drawn(browser, url) == 0
    assert browser.find_elements(By.CSS_SELECTOR, "img[src='x']") == []


def test_pages_in_another_crs_say_why_there_is_no_map(browser, api):
    browser.get(f"{api}/collections/addresses/items?f=html&limit=5&crs=EPSG:31370")
    assert browser.find_elements(By.ID, "map") == []
    assert "drawn for features in CRS84" in browser.page_source
