"""Geocoding over HTTP on the synced sample addresses, checked against the source shapefile."""

from __future__ import annotations

import random
import unicodedata
import warnings

import geopandas as gpd
import httpx
import pytest
import shapely

from tests.api.conftest import assert_problem
from tests.conftest import SAMPLE_DIR

EPSG_31370 = "http://www.opengis.net/def/crs/EPSG/0/31370"


@pytest.fixture(scope="module")
def addresses() -> gpd.GeoDataFrame:
    """The sample addresses read straight from the source, with what geocoding matches on."""
    path = SAMPLE_DIR / "UrbAdm_AdPt_sample.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # decimal-comma ANGLE, not used here
        frame = gpd.read_file(f"/vsizip/{path}/shp/UrbAdm_AdPt.shp",
                              columns=["ID", "ADRN", "PW_NAME_FR", "PW_NAME_DU", "PZNC",
                                       "MU_NAME_FR", "MU_NAME_DU"])
    frame["ID"] = frame["ID"].astype(int)
    return frame.set_crs(31370, allow_override=True).set_index("ID").sort_index()


@pytest.fixture(scope="module")
def unique_addresses(addresses: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Addresses that no other one shares street and number with: one right answer each."""
    keys = addresses["PW_NAME_FR"] + "|" + addresses["ADRN"]
    return addresses[~keys.duplicated(keep=False)]


def plain(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(c))


def typo(word: str, rng: random.Random) -> str:
    """Two neighbouring letters swapped in the longest word (a usual typing slip)."""
    words = word.split()
    longest = max(range(len(words)), key=lambda i: len(words[i]))
    w = words[longest]
    i = rng.randrange(1, len(w) - 2)
    words[longest] = w[:i] + w[i + 1] + w[i] + w[i + 2:]
    return " ".join(words)


def geocode(client: httpx.Client, q: str, **params) -> list[dict]:
    response = client.get("/geocode", params={"q": q, **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    return response.json()["features"]


def test_full_addresses_in_french_and_dutch_find_the_address(client, unique_addresses):
    sample = unique_addresses.sample(40, random_state=3)
    for key, row in sample.iterrows():
        fr = f"{row.PW_NAME_FR} {row.ADRN}, {row.PZNC} {row.MU_NAME_FR}"
        nl = f"{row.PW_NAME_DU} {row.ADRN}, {row.PZNC} {row.MU_NAME_DU}"
        for q, language in ((fr, "fr"), (nl, "nl")):
            found = geocode(client, q, limit=3)
            assert found and found[0]["id"] == key, (q, [f["properties"]["label"] for f in found])
            best = found[0]["properties"]
            assert best["score"] == 1.0 and best["language"] == language
            assert best["label"] == q


def test_case_accents_typos_and_word_order_do_not_matter(client, unique_addresses):
    rng = random.Random(5)
    sample = unique_addresses[unique_addresses.PW_NAME_FR.str.len() > 12].sample(
        30, random_state=4)
    for key, row in sample.iterrows():
        variants = [
            f"{plain(row.PW_NAME_FR).upper()} {row.ADRN}",
            f"{row.ADRN} {row.PW_NAME_DU.lower()}",
            f"{typo(row.PW_NAME_FR, rng)} {row.ADRN} {row.PZNC}",
            f"{row.PZNC} {row.MU_NAME_DU} {typo(row.PW_NAME_DU, rng)} {row.ADRN}",
        ]
        for q in variants:
            found = geocode(client, q, limit=5)
            assert found and found[0]["id"] == key, (q, [f["properties"]["label"] for f in found])
            assert found[0]["properties"]["score"] >= 0.8, q


def test_results_are_ranked_best_first_with_scores_between_0_and_1(client):
    found = geocode(client, "Rue de la Victoire 2, 1060 Saint-Gilles", limit=10)
    scores = [f["properties"]["score"] for f in found]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    assert len(found) > 3  # other streets' number 2, worse matches
    assert {f["properties"]["ADRN"].rstrip("ABCDEFGH") for f in found} == {"2"}


def test_a_street_alone_lists_its_addresses_in_number_order(client, addresses):
    street = addresses[addresses.PW_NAME_FR == "Rue Fontainas"]
    assert 5 < len(street) < 50
    found = geocode(client, "rue fontainas", limit=50)
    first = found[:len(street)]
    assert {f["id"] for f in first} == set(street.index)
    assert {f["properties"]["score"] for f in first} == {0.95}
    numbers = [int(f["properties"]["ADRN"].rstrip("ABCDEFGH").split("-")[0]) for f in first]
    assert numbers == sorted(numbers)
    assert all(f["properties"]["score"] < 0.95 for f in found[len(street):])  # other streets


def test_a_number_the_street_lacks_gives_its_nearest_number(client, addresses):
    street = addresses[addresses.PW_NAME_FR == "Rue de la Linière"]
    numbers = street.ADRN.str.extract(r"^(\d+)")[0].astype(int)
    highest = street.loc[numbers.idxmax()]
    found = geocode(client, "rue de la liniere 999", limit=1)
    assert found[0]["properties"]["score"] == 0.6
    assert found[0]["properties"]["ADRN"] == highest.ADRN


def test_the_answer_is_in_the_crs_asked_for(client, unique_addresses):
    key, row = next(iter(unique_addresses.iterrows()))
    found = geocode(client, f"{row.PW_NAME_FR} {row.ADRN}", limit=1, crs=EPSG_31370)
    x, y = found[0]["geometry"]["coordinates"]
    assert found[0]["id"] == key
    assert shapely.Point(x, y).distance(row.geometry) < 0.001


def test_nonsense_finds_nothing(client):
    assert geocode(client, "zzzzqqqq xxyyzz") == []


def test_reverse_gives_the_nearest_address_with_its_distance(client, addresses):
    rng = random.Random(8)
    minx, miny, maxx, maxy = addresses.total_bounds
    for _ in range(25):
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        response = client.get("/reverse", params={"x": x, "y": y, "crs": EPSG_31370})
        assert response.status_code == 200, response.text
        (feature,) = response.json()["features"]
        distances = addresses.distance(shapely.Point(x, y))
        assert feature["properties"]["distance"] == pytest.approx(distances.min(), abs=0.001)
        assert distances[feature["id"]] == pytest.approx(distances.min(), abs=0.001)
        row = addresses.loc[feature["id"]]
        assert feature["properties"]["label"] == (
            f"{row.PW_NAME_FR} {row.ADRN}, {row.PZNC} {row.MU_NAME_FR}")


def test_reverse_in_dutch_and_in_crs84(client, addresses):
    key, row = next(iter(addresses.iterrows()))
    lon, lat = gpd.GeoSeries([row.geometry], crs=31370).to_crs(4326).iloc[0].coords[0]
    response = client.get("/reverse", params={"x": lon, "y": lat, "lang": "nl"})
    feature = response.json()["features"][0]
    assert feature["properties"]["distance"] < 0.01
    assert feature["properties"]["label"].startswith(row.PW_NAME_DU)


@pytest.mark.parametrize(("path", "params", "status", "words"), [
    ("/geocode", {"q": "1060"}, 400, "name a street"),
    ("/geocode", {"q": ""}, 400, "q"),
    ("/geocode", {}, 400, "q"),
    ("/geocode", {"q": "victoire", "limit": 0}, 400, "limit"),
    ("/geocode", {"q": "victoire", "collection": "municipalities"}, 400,
     "not an address layer"),
    ("/geocode", {"q": "victoire", "collection": "nowhere"}, 404, "nowhere"),
    ("/geocode", {"q": "victoire", "crs": "EPSG:9999"}, 400, "crs"),
    ("/geocode", {"q": "victoire", "colour": "red"}, 400, "colour"),
    ("/reverse", {"x": 4.34}, 400, "y"),
    ("/reverse", {"x": 4.34, "y": 50.83, "lang": "de"}, 400, "lang"),
    ("/reverse", {"x": 400, "y": 50.83}, 400, "x"),
])
def test_bad_requests_get_a_clear_400_or_404(client, path, params, status, words):
    assert_problem(client.get(path, params=params), status, words)
