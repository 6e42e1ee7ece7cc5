"""The raster layers on `/map`: imagery backgrounds, data overlays with their legend, the values
at a click, in a real headless Chromium that can reach no host but ours.

The coverages are the coverage tests' own (tests.support.rasters, synced by the
`coverage_api` fixture): a terrain model with nodata holes (style: terrain ramp, hillshade,
units m), the same terrain on a Lambert 2008 grid (greys) and an RGB image. Values shown are
compared with rasterio reading the source files; the page without coverages is the plain
sample's (`api`). Screenshots go to `test-artifacts/map/coverage-*.png`.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import rasterio
from pyproj import Transformer
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.api.conftest import CoverageSources
from tests.api.test_map_page import (
    assert_offline_and_clean,
    click_map,
    js,
    open_map,
    settled,
    shot,
    wait_for,
)
from tests.support import rasters

pytestmark = pytest.mark.api
FROM_LAMBERT = Transformer.from_crs("EPSG:31370", "EPSG:4326", always_xy=True)
TO_LAMBERT = Transformer.from_crs("EPSG:4326", "EPSG:31370", always_xy=True)
# The middle of the test rasters (Lambert 72), seen whole at zoom 14.
CENTRE = FROM_LAMBERT.transform(149_500, 170_000)
VIEW = f"#14/{CENTRE[1]:.6f}/{CENTRE[0]:.6f}"
# Cells of the terrain source (row, column): data, the lake (nodata), and a point west of it.
DATA_CELL = (200, 300)
LAKE_CELL = (120, 420)
OFF_RASTER = FROM_LAMBERT.transform(147_600, 170_000)


def cell_centre(row: int, col: int) -> tuple[float, float]:
    """A source cell's centre in CRS84."""
    x = rasters.ORIGIN[0] + (col + 0.5) * rasters.PIXEL
    y = rasters.ORIGIN[1] - (row + 0.5) * rasters.PIXEL
    return FROM_LAMBERT.transform(x, y)


def sampled_pixels(browser: webdriver.Chrome) -> list[list[int]]:
    """The map as drawn, a pixel in every 97 (RGB), read from the canvas after a repaint."""
    return browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        urbisMap.once('render', () => {
          const source = urbisMap.getCanvas();
          const copy = document.createElement('canvas');
          copy.width = source.width; copy.height = source.height;
          const context = copy.getContext('2d');
          context.drawImage(source, 0, 0);
          const data = context.getImageData(0, 0, copy.width, copy.height).data;
          const out = [];
          for (let i = 0; i < data.length; i += 4 * 97) {
            out.push([data[i], data[i + 1], data[i + 2]]);
          }
          done(out);
        });
        urbisMap.triggerRepaint();
        """
    )


def changed_share(before: list[list[int]], after: list[list[int]]) -> float:
    """The share of sampled pixels whose colour changed noticeably."""
    changed = sum(
        1
        for a, b in zip(before, after, strict=True)
        if sum(abs(p - q) for p, q in zip(a, b, strict=True)) > 30
    )
    return changed / len(before)


def requested(browser: webdriver.Chrome, part: str) -> list[str]:
    """The URLs the page has fetched that hold `part`."""
    urls = js(browser, "return performance.getEntriesByType('resource').map(e => e.name);")
    return [u for u in urls if part in u]


def overlay_titles(browser: webdriver.Chrome) -> list[str]:
    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#overlay-list li .title")]


def panel_done(browser: webdriver.Chrome) -> None:
    wait_for(
        lambda: js(browser, "return document.getElementById('panel').dataset.state") == "done",
        10,
        "the panel",
    )


def raster_section(browser: webdriver.Chrome, coverage: str) -> Any:
    return browser.find_element(By.CSS_SELECTOR, f"#panel section.raster[data-coverage={coverage}]")


def source_value(path: Any, lon: float, lat: float, band: int = 1) -> float | None:
    """What rasterio reads in the source file's cell under the point (None: nodata)."""
    x, y = TO_LAMBERT.transform(lon, lat)
    with rasterio.open(path) as src:
        row, col = src.index(x, y)
        value = src.read(band, window=((row, row + 1), (col, col + 1)))[0, 0]
        return None if value == src.nodata else float(value)


def clicked_at(browser: webdriver.Chrome) -> tuple[float, float]:
    """The point the panel was asked about (as sent to the API: 7 decimals)."""
    where = browser.find_element(By.CSS_SELECTOR, "#panel dd[data-crs='4326']")
    return float(where.get_attribute("data-lon")), float(where.get_attribute("data-lat"))


@pytest.fixture(scope="module")
def coverages(coverage_client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in coverage_client.get("/coverages").json()["coverages"]}


def test_the_controls_list_the_coverages_by_title_in_each_language(
    offline_browser, coverage_api, coverages
):
    browser = offline_browser
    open_map(browser, f"{coverage_api}/map{VIEW}&lang=en")
    # Imagery is a background choice; single-band data an overlay each, none on at first.
    choice = Select(browser.find_element(By.ID, "background"))
    assert browser.find_element(By.ID, "background-choice").is_displayed()
    assert [o.text for o in choice.options] == ["None (our layers alone)", "Orthophoto"]
    assert choice.first_selected_option.text == "None (our layers alone)"
    assert browser.find_element(By.ID, "overlays").is_displayed()
    assert browser.find_element(By.ID, "overlays-title").text == "Raster overlays"
    assert overlay_titles(browser) == ["Terrain model", "Terrain (Lambert 2008)"]
    assert [coverages[i]["titles"]["en"] for i in ("terrain", "terrain_l08")] == overlay_titles(
        browser
    )
    assert browser.find_elements(By.CSS_SELECTOR, "#overlay-list .ramp-legend") == []
    raster_layers = "return urbisMap.getStyle().layers.filter(l => l.type === 'raster').length"
    assert js(browser, raster_layers) == 0
    # Every control, the new ones too, has a name a screen reader reads.
    browser.find_element(By.ID, "overlay-terrain").click()
    settled(browser)
    for control in browser.find_elements(By.CSS_SELECTOR, "#sidebar input, #sidebar select"):
        assert js(
            browser,
            "const c = arguments[0]; return !!(c.labels && c.labels.length && "
            "c.labels[0].textContent.trim());",
            control,
        ), control.get_attribute("id")
    slider = browser.find_element(By.ID, "opacity-terrain")
    assert slider.get_attribute("aria-label") == "Opacity of “Terrain model”"
    # In French and Dutch: the titles, the heading and the slider's name.
    # The legend too: its note, and its numbers written the reader's way (a decimal comma).
    low = coverages["terrain"]["style"]["rescale"][0]
    for lang, heading, titles, background, note in (
        (
            "fr",
            "Couches raster",
            ["Modèle de terrain", "Terrain (Lambert 2008)"],
            "Orthophoto",
            "Avec estompage du relief.",
        ),
        (
            "nl",
            "Rasterlagen",
            ["Terreinmodel", "Terrein (Lambert 2008)"],
            "Orthofoto",
            "Met reliëfschaduw.",
        ),
    ):
        Select(browser.find_element(By.ID, "language")).select_by_value(lang)
        assert browser.find_element(By.ID, "overlays-title").text == heading
        assert overlay_titles(browser) == titles
        assert [o.text for o in choice.options][1] == background
        assert titles[0] in browser.find_element(By.ID, "opacity-terrain").get_attribute(
            "aria-label"
        )
        legend = browser.find_element(By.CSS_SELECTOR, "li[data-coverage=terrain] .ramp-legend")
        assert legend.find_element(By.CLASS_NAME, "note").text == note
        assert legend.find_element(By.CLASS_NAME, "low").text == f"{low:.1f} m".replace(".", ",")
    Select(browser.find_element(By.ID, "language")).select_by_value("en")
    assert_offline_and_clean(browser, coverage_api)


def test_an_overlay_draws_our_tiles_under_the_vectors_with_the_styles_legend(
    offline_browser, coverage_api, coverage_client, coverages
):
    browser = offline_browser
    open_map(browser, f"{coverage_api}/map{VIEW}&lang=en")
    without = sampled_pixels(browser)
    shot(browser, "coverage-none")
    browser.find_element(By.ID, "overlay-terrain").click()
    settled(browser)
    # Our raster tiles on WebMercatorQuad, found through the TileJSON, each answered.
    assert requested(browser, "/coverages/terrain/tiles/WebMercatorQuad/tilejson.json")
    # 256-pixel tiles: one zoom deeper than the map's 512-pixel zoom 14
    tiles = requested(browser, "/coverages/terrain/tiles/WebMercatorQuad/15/")
    assert tiles and all(u.endswith(".png") for u in tiles), tiles
    answers = [coverage_client.get(u) for u in tiles]
    assert {a.status_code for a in answers} == {200}
    assert {a.headers["content-type"] for a in answers} == {"image/png"}
    # Drawn: the patch of terrain (about a quarter of the view) changes the picture...
    with_terrain = sampled_pixels(browser)
    assert changed_share(without, with_terrain) > 0.15
    shot(browser, "coverage-terrain")
    # ...under every vector layer of ours.
    layers = js(browser, "return urbisMap.getStyle().layers.map(l => [l.id, l.type]);")
    ids = [i for i, _ in layers]
    first_vector = next(i for i, kind in layers if kind not in ("background", "raster"))
    assert ids.index("coverage-terrain") < ids.index(first_vector)
    assert "overlays=terrain" in browser.current_url
    # The legend: the style's ramp as a gradient, its ends the style's rescale, in metres.
    style = coverages["terrain"]["style"]
    legend = browser.find_element(By.CSS_SELECTOR, "li[data-coverage=terrain] .ramp-legend")
    gradient = js(
        browser,
        "return getComputedStyle(arguments[0]).backgroundImage;",
        legend.find_element(By.CLASS_NAME, "ramp"),
    )
    for where, colour in style["ramp"]:
        r, g, b = bytes.fromhex(colour[1:])
        assert f"rgb({r}, {g}, {b}) {where * 100:g}%" in gradient, (colour, gradient)
    low, high = style["rescale"]
    assert low == coverages["terrain"]["bands"][0]["min"]  # the style's default: the band's range
    digits = 1 if 1 <= high - low < 100 else (0 if high - low >= 100 else 2)
    ends = legend.find_element(By.CLASS_NAME, "ends")
    assert ends.find_element(By.CLASS_NAME, "low").text == f"{low:,.{digits}f} m"
    assert ends.find_element(By.CLASS_NAME, "high").text == f"{high:,.{digits}f} m"
    assert legend.find_element(By.CLASS_NAME, "note").text == "With hillshading."
    # The Lambert 2008 terrain has no unit and no hillshade: plain numbers, no note. Switched
    # on from the keyboard, which stays on its checkbox.
    browser.find_element(By.ID, "overlay-terrain_l08").send_keys(Keys.SPACE)
    settled(browser)
    assert browser.switch_to.active_element.get_attribute("id") == "overlay-terrain_l08"
    other = browser.find_element(By.CSS_SELECTOR, "li[data-coverage=terrain_l08] .ramp-legend")
    l08_low = coverages["terrain_l08"]["style"]["rescale"][0]
    assert other.find_element(By.CLASS_NAME, "low").text == f"{l08_low:,.{digits}f}"
    assert other.find_elements(By.CLASS_NAME, "note") == []
    shot(browser, "coverage-two-overlays")
    browser.find_element(By.ID, "overlay-terrain_l08").click()
    settled(browser)
    # The opacity: Home on the slider takes it to 0, and the map is as without the overlay.
    slider = browser.find_element(By.ID, "opacity-terrain")
    slider.send_keys(Keys.HOME)
    settled(browser)
    opacity = "return urbisMap.getPaintProperty('coverage-terrain', 'raster-opacity')"
    assert js(browser, opacity) == 0
    assert changed_share(without, sampled_pixels(browser)) < 0.01
    for _ in range(10):
        slider.send_keys(Keys.ARROW_RIGHT)
    settled(browser)
    assert js(
        browser, "return urbisMap.getPaintProperty('coverage-terrain', 'raster-opacity')"
    ) == pytest.approx(0.5)
    assert "overlays=terrain:50" in browser.current_url
    # The address keeps the overlay and its opacity; unchecked, it leaves map and address.
    open_map(browser, browser.current_url)
    assert browser.find_element(By.ID, "overlay-terrain").is_selected()
    assert browser.find_element(By.ID, "opacity-terrain").get_attribute("value") == "50"
    assert js(
        browser, "return urbisMap.getPaintProperty('coverage-terrain', 'raster-opacity')"
    ) == pytest.approx(0.5)
    browser.find_element(By.ID, "overlay-terrain").click()
    settled(browser)
    assert js(browser, "return !!urbisMap.getLayer('coverage-terrain')") is False
    assert "overlays=" not in browser.current_url
    assert changed_share(without, sampled_pixels(browser)) < 0.01
    assert_offline_and_clean(browser, coverage_api)


def test_an_imagery_background_is_drawn_right_over_the_ground(offline_browser, coverage_api):
    browser = offline_browser
    open_map(browser, f"{coverage_api}/map{VIEW}&lang=en")
    without = sampled_pixels(browser)
    Select(browser.find_element(By.ID, "background")).select_by_visible_text("Orthophoto")
    settled(browser)
    assert requested(browser, "/coverages/imagery/tiles/WebMercatorQuad/15/")
    layers = js(browser, "return urbisMap.getStyle().layers.map(l => l.id);")
    assert layers[:2] == ["background", "coverage-imagery"]
    assert changed_share(without, sampled_pixels(browser)) > 0.15
    assert "&bg=coverage:imagery" in browser.current_url
    shot(browser, "coverage-imagery")
    # With an overlay too: the overlay over the imagery, both under the vectors.
    browser.find_element(By.ID, "overlay-terrain").click()
    settled(browser)
    layers = js(browser, "return urbisMap.getStyle().layers.map(l => l.id);")
    assert layers[:3] == ["background", "coverage-imagery", "coverage-terrain"]
    open_map(browser, browser.current_url)  # the address keeps both
    assert Select(browser.find_element(By.ID, "background")).first_selected_option.text == (
        "Orthophoto"
    )
    assert browser.find_element(By.ID, "overlay-terrain").is_selected()
    Select(browser.find_element(By.ID, "background")).select_by_index(0)
    settled(browser)
    assert js(browser, "return !!urbisMap.getLayer('coverage-imagery')") is False
    assert "bg=" not in browser.current_url
    # An address asking for what the catalog lacks, or a bad opacity: ignored, clamped, default.
    open_map(
        browser,
        f"{coverage_api}/map{VIEW}&lang=en&bg=coverage:nope"
        "&overlays=nope,terrain:abc,terrain_l08:150",
    )
    assert Select(browser.find_element(By.ID, "background")).first_selected_option.text == (
        "None (our layers alone)"
    )
    rasters_drawn = js(
        browser,
        "return urbisMap.getStyle().layers.filter(l => l.type === 'raster')"
        ".map(l => [l.id, l.paint['raster-opacity']]);",
    )
    assert rasters_drawn == [["coverage-terrain", 0.8], ["coverage-terrain_l08", 1]]
    assert "&overlays=terrain,terrain_l08:100" in browser.current_url
    assert "bg=" not in browser.current_url
    assert_offline_and_clean(browser, coverage_api)


def test_what_is_here_gives_each_shown_rasters_values_nodata_and_outside(
    offline_browser, coverage_api, coverage_client, coverage_sources: CoverageSources
):
    browser = offline_browser
    lon, lat = cell_centre(*DATA_CELL)
    open_map(
        browser,
        f"{coverage_api}/map#17/{lat:.6f}/{lon:.6f}&lang=en&bg=coverage:imagery&overlays=terrain",
    )
    click_map(browser, lon, lat)
    panel_done(browser)
    at = clicked_at(browser)
    terrain = raster_section(browser, "terrain")
    assert terrain.find_element(By.TAG_NAME, "h3").text == "Terrain model"
    (value,) = terrain.find_elements(By.CSS_SELECTOR, "dd[data-band]")
    assert [e.text for e in terrain.find_elements(By.TAG_NAME, "dt")] == ["Value"]
    expected = source_value(coverage_sources.terrain, *at)
    assert expected is not None and float(value.get_attribute("data-value")) == expected
    assert value.text == f"{expected:,.2f} m"
    # The imagery background's three bands, each as rasterio reads the source.
    imagery = raster_section(browser, "imagery")
    bands = imagery.find_elements(By.CSS_SELECTOR, "dd[data-band]")
    names = [b["name"] for b in coverage_client.get("/coverages/imagery").json()["bands"]]
    assert [e.text for e in imagery.find_elements(By.TAG_NAME, "dt")] == names
    assert [float(b.get_attribute("data-value")) for b in bands] == [
        source_value(coverage_sources.imagery, *at, band=n) for n in (1, 2, 3)
    ]
    assert [b.text for b in bands] == [f"{float(b.get_attribute('data-value')):.0f}" for b in bands]
    # An overlay not shown is not asked.
    assert browser.find_elements(By.CSS_SELECTOR, "section.raster[data-coverage=terrain_l08]") == []
    # The vector features stand beside: the coordinates, at least.
    assert browser.find_element(By.CSS_SELECTOR, "#panel section.coordinates")
    shot(browser, "coverage-what-is-here")
    # In the lake: nodata, said as such (and the imagery, flown there, has a value).
    lon, lat = cell_centre(*LAKE_CELL)
    open_map(browser, f"{coverage_api}/map#17/{lat:.6f}/{lon:.6f}&lang=en&overlays=terrain")
    click_map(browser, lon, lat)
    panel_done(browser)
    assert source_value(coverage_sources.terrain, *clicked_at(browser)) is None
    (value,) = raster_section(browser, "terrain").find_elements(By.CSS_SELECTOR, "dd[data-band]")
    assert value.get_attribute("data-value") == "nodata" and value.text == "no data"
    Select(browser.find_element(By.ID, "language")).select_by_value("fr")
    (value,) = raster_section(browser, "terrain").find_elements(By.CSS_SELECTOR, "dd[data-band]")
    assert value.text == "pas de donnée"
    shot(browser, "coverage-nodata-fr")
    # West of the raster: outside, in the page's language.
    lon, lat = OFF_RASTER
    open_map(browser, f"{coverage_api}/map#16/{lat:.6f}/{lon:.6f}&lang=nl&overlays=terrain")
    click_map(browser, lon, lat)
    panel_done(browser)
    terrain = raster_section(browser, "terrain")
    assert terrain.find_elements(By.CSS_SELECTOR, "dd[data-band]") == []
    assert terrain.find_element(By.CSS_SELECTOR, "p[data-outside]").text == "Buiten deze laag."
    Select(browser.find_element(By.ID, "language")).select_by_value("en")
    assert raster_section(browser, "terrain").find_element(By.CSS_SELECTOR, "p").text == (
        "Outside this layer."
    )
    shot(browser, "coverage-outside")
    assert_offline_and_clean(browser, coverage_api)


def test_without_coverages_the_map_has_no_raster_controls(offline_browser, api):
    browser = offline_browser
    open_map(browser, f"{api}/map#15/50.8323/4.3455&lang=en&overlays=terrain&bg=coverage:x")
    assert not browser.find_element(By.ID, "overlays").is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, "#overlay-list li") == []
    assert not browser.find_element(By.ID, "background-choice").is_displayed()
    assert js(browser, "return urbisMap.getStyle().layers.filter(l => l.type === 'raster')") == []
    assert "overlays=" not in browser.current_url and "bg=" not in browser.current_url
    lon, lat = 4.3455, 50.8323
    click_map(browser, lon, lat)
    panel_done(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "#panel section.raster") == []
    assert_offline_and_clean(browser, api)
