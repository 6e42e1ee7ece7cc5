"""Every resource a browser opens answers a page, in French, Dutch or English (issue 14).

Against a real `urbis serve` over the synced sample: each resource in each language, chosen by
`lang` and by Accept-Language; `<html lang>`, Content-Language and Vary; features titled by
their names; hostile values shown as text; JSON answers untouched by the language.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.api.conftest import sync_file_layer
from tests.support.layers import file_layer, geojson_feature, point

pytestmark = pytest.mark.api

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
SINCE = "2000-01-01T00:00:00Z"
POINT = "x=4.3445&y=50.8316"  # Saint-Gilles, in the sample's addresses

# Each resource, and strings its page shows in English, French and Dutch; the first of each
# language is shown in that language only (where it differs from the others').
PAGES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "/": (["Find an address"], ["Chercher une adresse"], ["Een adres zoeken"]),
    "/conformance": (
        ["Conformance classes", "conf/core"],
        ["Classes de conformité"],
        ["Conformiteitsklassen"],
    ),
    "/collections": (
        ["Municipalities", "geometry"],
        ["Communes", "géométrie"],
        ["Gemeenten", "geometrie"],
    ),
    "/collections/municipalities": (
        ["Municipalities", "Fields", "last updated"],
        ["Communes", "Champs", "dernière mise à jour"],
        ["Gemeenten", "Velden", "laatst bijgewerkt"],
    ),
    "/collections/municipalities/items?limit=19": (
        ["Municipalities: features", "19 of 19 features", "Filter the features"],
        ["Communes : objets", "19 objets sur 19", "Filtrer les objets"],
        ["Gemeenten: objecten", "19 van 19 objecten", "De objecten filteren"],
    ),
    "/collections/municipalities/items/21009": (
        ["<h1>Ixelles</h1>", "Municipalities, key 21009"],
        ["<h1>Ixelles</h1>", "Communes, clé 21009"],
        ["<h1>Elsene</h1>", "Gemeenten, sleutel 21009"],
    ),
    "/collections/municipalities/queryables": (
        ["Municipalities: queryable properties", "NAME_FRE"],
        ["Communes : propriétés interrogeables"],
        ["Gemeenten: bevraagbare eigenschappen"],
    ),
    "/collections/municipalities/schema": (
        ["Municipalities: schema of the features", "primary-geometry"],
        ["Communes : schéma des objets"],
        ["Gemeenten: schema van de objecten"],
    ),
    "/tiles": (
        ["All layers: tilesets", "WebMercatorQuad"],
        ["Toutes les couches : jeux de tuiles"],
        ["Alle lagen: tegelsets"],
    ),
    "/tiles/WebMercatorQuad": (
        ["Tiles holding data", "Tile URL template"],
        ["Tuiles contenant des données", "Modèle d'URL des tuiles"],
        ["Tegels met gegevens", "URL-sjabloon van de tegels"],
    ),
    "/collections/municipalities/tiles": (
        ["Municipalities: tilesets"],
        ["Communes : jeux de tuiles"],
        ["Gemeenten: tegelsets"],
    ),
    "/collections/municipalities/tiles/BelgianLambert72": (
        ["Municipalities: tiles in BelgianLambert72", "Layers in the tiles"],
        ["Communes : tuiles en BelgianLambert72", "Couches dans les tuiles"],
        ["Gemeenten: tegels in BelgianLambert72", "Lagen in de tegels"],
    ),
    "/tileMatrixSets": (["Tile matrix sets"], ["Grilles de tuiles"], ["Tegelmatrixsets"]),
    "/tileMatrixSets/BelgianLambert72": (
        ["scale denominator"],
        ["dénominateur d'échelle"],
        ["schaalnoemer"],
    ),
    "/styles": (["Map styles"], ["Styles de carte"], ["Kaartstijlen"]),
    "/jobs": (["No job is kept"], ["Aucune tâche"], ["Er wordt geen taak bewaard"]),
    f"/collections/municipalities/changes?since={SINCE}": (
        ["Municipalities: changes since", "inserted"],
        ["Communes : modifications depuis", "ajouté"],
        ["Gemeenten: wijzigingen sinds", "toegevoegd"],
    ),
    "/collections/municipalities/quarantine": (
        ["Municipalities: features set aside"],
        ["Communes : objets écartés"],
        ["Gemeenten: terzijde gelegde objecten"],
    ),
    "/geocode?q=Rue+d'Angleterre+42": (
        ["Find an address", "for “Rue d'Angleterre 42”", "exact"],
        ["Chercher une adresse", "pour « Rue d'Angleterre 42 »", "exacte"],
        ["Een adres zoeken", "voor “Rue d'Angleterre 42”", "exact"],
    ),
    f"/lookup?{POINT}": (
        ["What is here", "Municipalities", "Saint-Gilles"],
        ["Ce qui se trouve ici", "Communes", "Saint-Gilles"],
        ["Wat is hier", "Gemeenten", "Sint-Gillis"],
    ),
    "/collections/addresses/stats?by=municipalities": (
        ["Addresses per Municipalities", "count"],
        ["Adresses par Communes", "nombre"],
        ["Adressen per Gemeenten", "aantal"],
    ),
    f"/collections/addresses/within?{POINT}&distance=50": (
        ["Addresses: within 50 m", "distance"],
        ["Adresses : à moins de 50 m"],
        ["Adressen: binnen 50 m"],
    ),
    f"/collections/addresses/nearest?{POINT}&k=3": (
        ["Addresses: the 3 nearest", "3 of 3 features"],
        ["Adresses : les 3 plus proches", "3 objets sur 3"],
        ["Adressen: de 3 dichtstbijzijnde", "3 van 3 objecten"],
    ),
}
LANGS = ("en", "fr", "nl")


def with_params(path: str, params: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}{params}"


def page_text(response: httpx.Response) -> str:
    """The page with its entities read back (what a reader sees, markup kept)."""
    return html.unescape(response.text)


def assert_page_in(response: httpx.Response, lang: str, path: str) -> None:
    assert response.status_code == 200, (path, response.text[:300])
    assert response.headers["content-type"].startswith("text/html"), path
    assert f'<html lang="{lang}">' in response.text, path
    assert response.headers["content-language"] == lang, path
    shown = page_text(response)
    expected = PAGES[path][LANGS.index(lang)]
    for words in expected:
        assert words in shown, (path, lang, words)
    for other in LANGS:
        first = PAGES[path][LANGS.index(other)][0]
        if first not in expected:
            assert first not in shown, (path, lang, "shows", other, first)


@pytest.mark.parametrize("path", list(PAGES))
def test_each_resource_answers_a_page_in_the_language_lang_names(client, path):
    for lang in LANGS:
        response = client.get(with_params(path, f"f=html&lang={lang}"))
        assert_page_in(response, lang, path)
        # lang chose, not a header: the page does not vary with one
        assert "accept-language" not in response.headers.get("vary", "").lower(), path


@pytest.mark.parametrize("path", list(PAGES))
def test_each_resource_answers_a_browser_in_its_accept_language(client, path):
    for lang, header in (("en", "en-GB,en;q=0.9"), ("fr", "fr-BE,fr;q=0.9"), ("nl", "nl-BE")):
        response = client.get(path, headers={"Accept": BROWSER_ACCEPT, "Accept-Language": header})
        assert_page_in(response, lang, path)
        vary = {v.strip().lower() for v in response.headers["vary"].split(",")}
        assert {"accept", "accept-language"} <= vary, (path, vary)


def test_quality_values_choose_and_an_unknown_language_falls_back(client):
    def language(params: str = "", header: str | None = None) -> str:
        headers = {"Accept-Language": header} if header is not None else {}
        response = client.get(f"/conformance?f=html{params}", headers=headers)
        assert response.status_code == 200
        found = re.search(r'<html lang="(\w+)">', response.text)
        assert found and response.headers["content-language"] == found.group(1)
        return found.group(1)

    assert language(header="de;q=1, nl;q=0.5, fr;q=0.8") == "fr"
    assert language(header="fr;q=0, nl;q=0.1") == "nl"  # q=0: not French
    assert language(header="de, *") == "en"
    assert language(header="") == "en"
    assert language() == "en"
    # a language the pages are not written in is ignored: the header, then English
    assert language("&lang=de") == "en"
    assert language("&lang=de", "nl") == "nl"
    assert language("&lang=fr-BE", "nl") == "fr"
    assert language("&lang=NL") == "nl"


def test_json_answers_do_not_change_with_the_language(client):
    for path in ("/", "/collections", "/collections/municipalities", "/tiles", "/styles"):
        plain = client.get(path)
        for lang in LANGS:
            asked = client.get(with_params(path, f"lang={lang}"), headers={"Accept-Language": lang})
            assert asked.headers["content-type"] == plain.headers["content-type"], path
            assert asked.json() == plain.json(), (path, lang)
            assert "content-language" not in asked.headers
    feature = client.get("/collections/municipalities/items/21009?lang=nl")
    assert feature.json()["properties"]["NAME_FRE"] == "Ixelles"


def test_a_feature_page_is_titled_by_its_name_in_the_readers_language(client):
    found = client.get("/collections/addresses/items", params={"limit": 1, "PZNC": "1060"})
    address = found.json()["features"][0]
    props = address["properties"]
    names = {
        "fr": f"{props['PW_NAME_FR']} {props['ADRN']}",
        "nl": f"{props['PW_NAME_DU']} {props['ADRN']}",
        "en": f"{props['PW_NAME_FR']} {props['ADRN']}",
    }
    assert names["fr"] != names["nl"]
    for lang, name in names.items():
        page = client.get(f"/collections/addresses/items/{address['id']}?f=html&lang={lang}")
        assert f"<h1>{name}</h1>" in page_text(page)
        assert f"<title>{name} - URBIS GeoService</title>" in page_text(page)
    # the items page names each feature the same way, linking to its page
    items = client.get("/collections/addresses/items?f=html&lang=nl&PZNC=1060&limit=5")
    href = f"/collections/addresses/items/{address['id']}?f=html&lang=nl"
    assert f'{href}">{names["nl"]}</a>' in page_text(items)


def test_the_stats_page_names_each_group_in_the_readers_language(client):
    """The JSON has the group's title field (French); the page reads its label per language."""
    stats = client.get("/collections/addresses/stats", params={"by": "municipalities"}).json()
    counted = {row["key"]: row["count"] for row in stats["groups"]}
    assert counted["21013"] == 419 and counted["21004"] == 247  # Saint-Gilles, Bruxelles
    names = {"fr": ("Saint-Gilles", "Bruxelles"), "nl": ("Sint-Gillis", "Brussel")}
    for lang, other in (("fr", "nl"), ("nl", "fr")):
        url = f"/collections/addresses/stats?by=municipalities&f=html&lang={lang}"
        page = page_text(client.get(url))
        rows = re.findall(r"<tr>(.*?)</tr>", page)
        for key, name in zip(("21013", "21004"), names[lang], strict=True):
            (row,) = [r for r in rows if f">{key}</a>" in r]
            assert f"<td>{name}</td>" in row and f"<td>{counted[key]}</td>" in row, row
        assert names[other][0] not in page


def test_the_language_switcher_keeps_the_query(client):
    page = page_text(client.get("/collections/municipalities/items?f=html&lang=fr&limit=3"))
    for code in LANGS:
        assert f'href="?f=html&limit=3&lang={code}" hreflang="{code}"' in page


HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
KEY = 'k"<1>'  # a key with markup: in links (quoted) and on the page (escaped)


def test_hostile_values_from_the_query_string_stay_text(client):
    quoted = httpx.QueryParams({"q": HOSTILE}).get("q")
    pages = [
        client.get("/geocode", params={"q": HOSTILE, "f": "html"}),
        client.get(
            "/collections/municipalities/items",
            params={"f": "html", "NAME_FRE": HOSTILE, "filter": f"NAME_FRE = '{HOSTILE}'"},
        ),
        client.get("/collections/municipalities/items", params={"f": "html", "lang": HOSTILE}),
        client.get("/lookup", params={"x": "4.3445", "y": "50.8316", "f": "html", "z": "1"}),
    ]
    assert quoted == HOSTILE
    for response in pages[:3]:
        assert response.status_code == 200, response.text[:300]
        assert "<script>alert" not in response.text and "<img src=x" not in response.text
        assert response.headers["content-language"] == "en"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0].text  # shown, as text
    assert 'value="&quot;&gt;&lt;script&gt;' in pages[1].text  # kept in the form, as text
    assert pages[3].status_code == 400  # an unknown parameter is still refused


def test_lang_is_documented_where_pages_are_offered(client):
    definition = client.get("/openapi.json").json()
    offered = 0
    for path, operations in definition["paths"].items():
        for operation in operations.values():
            content = operation["responses"].get("200", {}).get("content", {})
            names = {p["name"] for p in operation.get("parameters", [])}
            if "text/html" in content and path not in ("/map", "/docs"):
                offered += 1
                assert "lang" in names, path
    assert offered >= len({p.split("?")[0] for p in PAGES})


@pytest.fixture(scope="module")
def hostile_layer(synced_database_url: str, tmp_path_factory) -> str:
    """A layer whose names and key hold markup, synced into the server's database."""
    folder = tmp_path_factory.mktemp("hostile")
    features = [
        geojson_feature(
            {"CODE": KEY, "NAME_FRE": HOSTILE, "NAME_DUT": "<b>vet</b> & co"},
            point(149_000, 170_000),
        )
    ]
    sync_file_layer(synced_database_url, file_layer(folder, "hostile", "CODE", features), "hostile")
    return "hostile"


def test_hostile_values_from_the_data_stay_text(client, browser, api, hostile_layer):
    items = client.get(f"/collections/{hostile_layer}/items?f=html&lang=fr")
    feature = client.get(f"/collections/{hostile_layer}/items/{quote(KEY, safe='')}?f=html")
    dutch = client.get(f"/collections/{hostile_layer}/items/{quote(KEY, safe='')}?f=html&lang=nl")
    for page in (items, feature, dutch):
        assert page.status_code == 200, page.text[:300]
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert "<b>vet</b>" not in page.text
    assert f"<h1>{html.escape(HOSTILE)}</h1>" in feature.text  # the name, as text
    assert "<h1>&lt;b&gt;vet&lt;/b&gt; &amp; co</h1>" in dutch.text
    # in a browser: nothing it holds runs or becomes an element, on the page or on the map
    browser.get(f"{api}/collections/{hostile_layer}/items/{quote(KEY, safe='')}?f=html")
    WebDriverWait(browser, 30).until(
        lambda b: b.find_element(By.ID, "map").get_attribute("data-features") == "1"
    )
    assert browser.find_element(By.TAG_NAME, "h1").text == HOSTILE
    assert browser.find_elements(By.CSS_SELECTOR, "img[src='x'], h1 script") == []


def test_a_browser_asking_for_a_page_gets_its_error_as_one(client):
    """The same problem (status, detail) as a page in the reader's language; JSON clients and
    `f=json` keep the problem document; values from the URL stay text."""
    asked = {"accept": BROWSER_ACCEPT, "accept-language": "fr-BE,fr;q=0.9,en;q=0.5"}
    page = client.get("/collections/nowhere", headers=asked)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-language"] == "fr" and '<html lang="fr">' in page.text
    assert (
        "Erreur 404 : introuvable" in page.text and "no collection &#x27;nowhere&#x27;" in page.text
    )
    assert "Accept" in page.headers["vary"] and "Accept-Language" in page.headers["vary"]
    problem = client.get("/collections/nowhere", headers={"accept": "application/json"})
    assert problem.status_code == 404
    assert problem.headers["content-type"] == "application/problem+json"
    assert problem.json()["detail"] == html.unescape(
        re.search(r"<blockquote>(.*?)</blockquote>", page.text).group(1)
    )
    assert client.get("/collections/nowhere?f=json", headers=asked).json()["status"] == 404
    # a bad parameter on a page asked for by f=html, in Dutch
    bad = client.get("/collections/addresses/items?f=html&lang=nl&limit=lots")
    assert bad.status_code == 400 and "Fout 400: onbruikbare aanvraag" in bad.text
    assert "limit" in bad.text
    (json_link,) = re.findall(r'href="([^"]*f=json[^"]*)"', bad.text)
    again = client.get(html.unescape(json_link))
    assert again.status_code == 400 and again.json()["detail"] in html.unescape(bad.text)
    hostile = client.get("/collections/%3Cscript%3Ealert(1)%3C%2Fscript%3E?f=html")
    assert hostile.status_code == 404 and "<script>alert(1)" not in hostile.text
    assert "&lt;script&gt;alert(1)" in hostile.text
