"""Geocoding over HTTP on the synced sample addresses, checked against the source shapefile."""

from __future__ import annotations

import random

import geopandas as gpd
import pytest
import shapely

from tests.api.conftest import assert_problem
from tests.api.geocode_sample import (
    EPSG_31370,
    geocode,
    number_value,
    plain,
    read_sample_addresses,
    swap_typo,
)


@pytest.fixture(scope="module")
def addresses() -> gpd.GeoDataFrame:
    """The sample addresses read straight from the source, with what geocoding matches on."""
    return read_sample_addresses()


@pytest.fixture(scope="module")
def unique_addresses(addresses: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Addresses that no other one shares street and number with: one right answer each."""
    keys = addresses["PW_NAME_FR"] + "|" + addresses["ADRN"]
    return addresses[~keys.duplicated(keep=False) & addresses.PW_NAME_FR.notna()]


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
            assert best["label"] == q and best["match"] == "exact"
            street = row.PW_NAME_FR if language == "fr" else row.PW_NAME_DU
            assert best["compared"]["street"]["matched"] == street
            assert best["compared"]["number"] == {"query": row.ADRN.lower(), "matched": row.ADRN}
            assert best["compared"]["postcode"] == {"query": row.PZNC, "matched": row.PZNC}


def test_case_accents_typos_and_word_order_do_not_matter(client, unique_addresses):
    rng = random.Random(5)
    sample = unique_addresses[unique_addresses.PW_NAME_FR.str.len() > 12].sample(30, random_state=4)
    for key, row in sample.iterrows():
        variants = [
            f"{plain(row.PW_NAME_FR).upper()} {row.ADRN}",
            f"{row.ADRN} {row.PW_NAME_DU.lower()}",
            f"{swap_typo(row.PW_NAME_FR, rng)} {row.ADRN} {row.PZNC}",
            f"{row.PZNC} {row.MU_NAME_DU} {swap_typo(row.PW_NAME_DU, rng)} {row.ADRN}",
        ]
        for q in variants:
            found = geocode(client, q, limit=5)
            assert found and found[0]["id"] == key, (q, [f["properties"]["label"] for f in found])
            assert found[0]["properties"]["score"] >= 0.8, q


def test_the_street_named_comes_before_other_streets_with_the_same_number(client, addresses):
    """Other streets' number 2 only answer when the minimum score lets them, and after."""
    q = "Rue de la Victoire 2, 1060 Saint-Gilles"
    victoire = addresses[addresses.PW_NAME_FR == "Rue de la Victoire"]
    twos = set(victoire.index[victoire.ADRN.str.match(r"^2[A-Z]?$")])
    found = geocode(client, q, limit=10)
    assert {f["id"] for f in found} == twos and found[0]["properties"]["ADRN"] == "2"
    assert [f["properties"]["match"] for f in found] == ["exact"] + ["fuzzy"] * (len(twos) - 1)
    loose = geocode(client, q, limit=20, min_score=0.3)
    streets = [f["properties"]["PW_NAME_FR"] for f in loose]
    assert streets[: len(twos)] == ["Rue de la Victoire"] * len(twos)
    assert len(set(streets)) > 1  # other streets' number 2, worse matches, after
    assert {f["properties"]["ADRN"].rstrip("ABCDEFGH") for f in loose} == {"2"}
    scores = [f["properties"]["score"] for f in loose[len(twos) :]]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 0.8 for s in scores)


def test_a_missing_number_gives_the_streets_nearest_numbers_not_another_streets(client, addresses):
    """Issue 11: 'Rue Haute 1' answered 'Rue de la Victoire 1'."""
    haute = addresses[addresses.PW_NAME_FR == "Rue Haute"]
    assert "1" not in set(haute.ADRN) and "1" in set(addresses.ADRN)
    values = haute.ADRN.map(number_value)
    lowest = set(haute.index[values == values.min()])
    found = geocode(client, "Rue Haute 1", limit=10, min_score=0.3)
    first = found[0]["properties"]
    assert found[0]["id"] in lowest and first["match"] == "nearest_number"
    assert first["score"] == 0.8
    assert first["compared"]["number"] == {"query": "1", "matched": first["ADRN"]}
    # Rue Haute's nearest numbers, then the street itself; other streets' number 1 after
    streets = [f["properties"]["PW_NAME_FR"] for f in found]
    kinds = [f["properties"]["match"] for f in found]
    own = streets.index(next(s for s in streets if s != "Rue Haute"))
    assert "Rue Haute" not in streets[own:]
    assert kinds[:own] == sorted(kinds[:own]) and set(kinds[:own]) == {"nearest_number", "street"}
    assert {f["properties"]["ADRN"].rstrip("ABCDEFGH") for f in found[own:]} == {"1"}
    liniere = addresses[addresses.PW_NAME_FR == "Rue de la Linière"]
    values = liniere.ADRN.map(number_value)
    (found,) = geocode(client, "rue de la liniere 999", limit=1)
    assert found["id"] in set(liniere.index[values == values.max()])
    assert found["properties"]["match"] == "nearest_number"


def test_a_street_alone_is_the_street_itself_with_its_fields_extent_and_middle(client, addresses):
    street = addresses[addresses.PW_NAME_FR == "Rue Fontainas"]
    assert 5 < len(street) < 50 and street.PW_ID.nunique() == 1
    for q in ("rue fontainas", "Fontainasstraat", "Rue Fontainas, 1060 Saint-Gilles"):
        (feature,) = geocode(client, q, limit=50, crs=EPSG_31370)
        p = feature["properties"]
        assert p["match"] == "street" and p["score"] == 1.0, q
        assert {
            k: p[k]
            for k in (
                "PW_ID",
                "PW_NAME_FR",
                "PW_NAME_DU",
                "PZNC",
                "MU_NAME_FR",
                "MU_NAME_DU",
                "ADRN",
            )
        } == {
            "PW_ID": street.PW_ID.iloc[0],
            "PW_NAME_FR": "Rue Fontainas",
            "PW_NAME_DU": "Fontainasstraat",
            "PZNC": "1060",
            "MU_NAME_FR": "Saint-Gilles",
            "MU_NAME_DU": "Sint-Gillis",
            "ADRN": None,
        }
        assert feature["bbox"] == pytest.approx(list(street.total_bounds), abs=1e-3)
        point = shapely.Point(feature["geometry"]["coordinates"])
        centroid = shapely.MultiPoint(list(street.geometry)).centroid
        assert street.distance(point).min() < 1e-3  # an address of the street...
        assert point.distance(centroid) == pytest.approx(
            street.distance(centroid).min(), abs=1e-3
        )  # ...the most central
    assert p["label"] == "Rue Fontainas, 1060 Saint-Gilles"
    (feature,) = geocode(client, "fontainasstraat")
    assert feature["properties"]["label"] == "Fontainasstraat, 1060 Sint-Gillis"


def test_a_street_not_in_the_data_answers_nothing(client):
    for q in (
        "Rue de la Loi 16",
        "Wetstraat 16",
        "Avenue Louise 54",
        "Place Fontainas 3",
        "Rue du Midi",
        "zzzzqqqq xxyyzz",
    ):
        assert geocode(client, q) == [], q
    # the least bad street is there for whoever asks for it, well under the minimum score
    (loose,) = geocode(client, "Place Fontainas 3", min_score=0.5, limit=1)
    assert loose["properties"]["PW_NAME_FR"] in ("Rue Fontainas", "Cité Fontainas")
    assert loose["properties"]["score"] == 0.7 and loose["properties"]["match"] == "fuzzy"


def test_suggestions_complete_the_last_word_as_one_types(client, addresses):
    """`complete`: what each prefix of a street name may name, the street first once its
    first letters are typed; the word as typed alone answers nothing."""
    assert geocode(client, "Rue de la Vic") == []
    for q in ("Rue de la Vic", "rue de la vict", "Overwinningsst", "overwinning"):
        first = geocode(client, q, complete="true", limit=5)[0]["properties"]
        assert first["PW_NAME_FR"] == "Rue de la Victoire", q
    # a query ending in a number has no unfinished word: the same answers
    answers = geocode(client, "Rue de la Victoire 1", complete="true", limit=50)
    assert answers == geocode(client, "Rue de la Victoire 1", limit=50)  # a number ends a word
    (place,) = [
        f
        for f in geocode(client, "sint-gi", complete="true")
        if f["properties"]["match"] == "municipality"
    ]
    assert place["properties"]["MU_NAME_DU"] == "Sint-Gillis"  # one place, in either language
    assert place["properties"]["PZNC"] == str(
        addresses[addresses.MU_NAME_DU == "Sint-Gillis"].PZNC.iloc[0]
    )
    # a prefix no name begins, a finished word (a space after it), a one-letter prefix
    assert geocode(client, "Rue de la Xyzq", complete="true") == []
    assert geocode(client, "Rue de la Vic ", complete="true") == []
    one_letter = geocode(client, "Rue de la V", complete="true")
    assert one_letter == geocode(client, "Rue de la V")


def test_the_minimum_score_is_the_street_names(client):
    (typo,) = geocode(client, "Rue Hatue 300", limit=1)
    assert typo["properties"]["score"] == 0.9 and typo["properties"]["match"] == "fuzzy"
    assert typo["properties"]["compared"]["street"] == {
        "query": "rue hatue",
        "matched": "Rue Haute",
        "score": 0.9,
    }
    assert geocode(client, "Rue Hatue 300", min_score=0.95) == []
    assert geocode(client, "Rue Haute 300", min_score=1)[0]["properties"]["score"] == 1.0


def test_a_postcode_or_municipality_that_disagrees_lowers_the_score_but_keeps_the_street(
    client, addresses
):
    key = addresses.index[(addresses.PW_NAME_FR == "Rue Haute") & (addresses.ADRN == "300")][0]
    for q, score in (
        ("Rue Haute 300, 1060", 0.85),
        ("Rue Haute 300 Saint-Gilles", 0.85),
        ("Rue Haute 300, 1060 Saint-Gilles", round(0.85 * 0.85, 3)),
        ("Rue Haute 300, 1000 Bruxelles", 1.0),
    ):
        found = geocode(client, q, limit=1)
        assert found and found[0]["id"] == key, q
        p = found[0]["properties"]
        assert p["score"] == score and p["match"] == ("exact" if score == 1.0 else "fuzzy"), q
    compared = geocode(client, "Hoogstraat 300, 1060 Sint-Gillis")[0]["properties"]["compared"]
    assert compared["postcode"] == {"query": "1060", "matched": "1000"}
    assert compared["municipality"] == {"query": "sint gillis", "matched": "Brussel"}


def test_a_postcode_or_municipality_alone_is_where_its_addresses_lie(client, addresses):
    gilles = addresses[addresses.PZNC == "1060"]
    for q, language in (
        ("1060", "fr"),
        ("Saint-Gilles", "fr"),
        ("sint-gillis", "nl"),
        ("1060 Saint-Gilles", "fr"),
        ("St-Gilles", "fr"),
    ):
        (feature,) = geocode(client, q, crs=EPSG_31370)
        p = feature["properties"]
        assert p["match"] == ("postcode" if q == "1060" else "municipality"), q
        assert (p["PZNC"], p["MU_NAME_FR"], p["MU_NAME_DU"]) == (
            "1060",
            "Saint-Gilles",
            "Sint-Gillis",
        )
        assert p["PW_NAME_FR"] is None and p["ADRN"] is None and p["score"] == 1.0
        assert p["language"] == language
        assert feature["bbox"] == pytest.approx(list(gilles.total_bounds), abs=1e-3)
        assert gilles.distance(shapely.Point(feature["geometry"]["coordinates"])).min() < 1e-3
    contradicting = geocode(client, "1060 Bruxelles")
    assert {f["properties"]["MU_NAME_FR"] for f in contradicting} == {"Saint-Gilles", "Bruxelles"}
    assert {f["properties"]["score"] for f in contradicting} == {0.85}
    for absent in ("1050", "Ixelles", "1180 Uccle"):  # real, but not in the sample
        assert geocode(client, absent) == [], absent


def test_the_answer_is_in_the_crs_asked_for(client, unique_addresses):
    street = unique_addresses[unique_addresses.PW_NAME_FR == "Rue de la Victoire"]
    key, row = next(iter(street.iterrows()))
    found = geocode(client, f"{row.PW_NAME_FR} {row.ADRN}", limit=1, crs=EPSG_31370)
    x, y = found[0]["geometry"]["coordinates"]
    assert found[0]["id"] == key
    assert shapely.Point(x, y).distance(row.geometry) < 0.001
    (lambert,) = geocode(client, row.PW_NAME_FR, crs=EPSG_31370)
    (latlon,) = geocode(client, row.PW_NAME_FR, crs="EPSG:4326")
    (lonlat,) = geocode(client, row.PW_NAME_FR)
    middle = (
        gpd.GeoSeries([shapely.Point(lambert["geometry"]["coordinates"])], crs=31370)
        .to_crs(4326)
        .iloc[0]
    )
    assert lonlat["geometry"]["coordinates"] == pytest.approx([middle.x, middle.y], abs=1e-7)
    assert latlon["geometry"]["coordinates"] == pytest.approx([middle.y, middle.x], abs=1e-7)
    # the Lambert extent transformed: it holds every address, within a metre of their bounds
    minx, miny, maxx, maxy = gpd.GeoSeries(street.geometry).to_crs(4326).total_bounds
    west, south, east, north = lonlat["bbox"]
    assert west <= minx and south <= miny and east >= maxx and north >= maxy
    assert lonlat["bbox"] == pytest.approx([minx, miny, maxx, maxy], abs=1.5e-5)
    assert latlon["bbox"] == [south, west, north, east]


def test_reverse_gives_the_nearest_address_with_its_distance(client, addresses):
    rng = random.Random(8)
    minx, miny, maxx, maxy = addresses.total_bounds
    for _ in range(25):
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        response = client.get(
            "/reverse", params={"x": x, "y": y, "crs": EPSG_31370, "max_distance": 1000}
        )
        assert response.status_code == 200, response.text
        (feature,) = response.json()["features"]
        distances = addresses.distance(shapely.Point(x, y))
        assert feature["properties"]["distance"] == pytest.approx(distances.min(), abs=0.001)
        assert distances[feature["id"]] == pytest.approx(distances.min(), abs=0.001)
        row = addresses.loc[feature["id"]]
        if isinstance(row.PW_NAME_FR, str):
            assert feature["properties"]["label"] == (
                f"{row.PW_NAME_FR} {row.ADRN}, {row.PZNC} {row.MU_NAME_FR}"
            )


def test_reverse_answers_nothing_beyond_max_distance(client, addresses):
    minx, miny, _maxx, _maxy = addresses.total_bounds
    for far in (150.0, 2000.0):
        x, y = minx - far, miny - far  # south-west of every address, at least `far` away
        nearest = addresses.distance(shapely.Point(x, y)).min()
        assert nearest > far
        params = {"x": x, "y": y, "crs": EPSG_31370}
        response = client.get("/reverse", params=params)  # default: 100 m
        assert response.status_code == 200 and response.json()["features"] == []
        assert response.json()["numberReturned"] == 0
        response = client.get("/reverse", params={**params, "max_distance": nearest - 0.01})
        assert response.json()["features"] == []
        response = client.get("/reverse", params={**params, "max_distance": nearest + 0.01})
        (feature,) = response.json()["features"]
        assert feature["properties"]["distance"] == pytest.approx(nearest, abs=0.001)


def test_reverse_in_dutch_and_in_crs84(client, addresses):
    key, row = next(iter(addresses.iterrows()))
    lon, lat = gpd.GeoSeries([row.geometry], crs=31370).to_crs(4326).iloc[0].coords[0]
    response = client.get("/reverse", params={"x": lon, "y": lat, "lang": "nl"})
    feature = response.json()["features"][0]
    assert feature["properties"]["distance"] < 0.01
    assert feature["properties"]["label"].startswith(row.PW_NAME_DU)


@pytest.mark.parametrize(
    ("path", "params", "status", "words"),
    [
        ("/geocode", {"q": "12"}, 400, "name a street"),
        ("/geocode", {"q": "--, !"}, 400, "name a street"),
        ("/geocode", {"q": ""}, 400, "q"),
        ("/geocode", {}, 400, "q"),
        ("/geocode", {"q": "victoire", "limit": 0}, 400, "limit"),
        ("/geocode", {"q": "victoire", "min_score": -0.1}, 400, "min_score"),
        ("/geocode", {"q": "victoire", "min_score": 1.5}, 400, "min_score"),
        ("/geocode", {"q": "victoire", "min_score": "high"}, 400, "min_score"),
        ("/geocode", {"q": "victoire", "min_score": "nan"}, 400, "min_score"),
        (
            "/geocode",
            {"q": "victoire", "collection": "municipalities"},
            400,
            "not an address layer",
        ),
        ("/geocode", {"q": "victoire", "collection": "nowhere"}, 404, "nowhere"),
        ("/geocode", {"q": "victoire", "crs": "EPSG:9999"}, 400, "crs"),
        ("/geocode", {"q": "victoire", "colour": "red"}, 400, "colour"),
        ("/reverse", {"x": 4.34}, 400, "y"),
        ("/reverse", {"x": 4.34, "y": 50.83, "lang": "de"}, 400, "lang"),
        ("/reverse", {"x": 400, "y": 50.83}, 400, "x"),
        ("/reverse", {"x": 4.34, "y": 50.83, "max_distance": 0}, 400, "max_distance"),
        ("/reverse", {"x": 4.34, "y": 50.83, "max_distance": -5}, 400, "max_distance"),
        ("/reverse", {"x": 4.34, "y": 50.83, "max_distance": 20000}, 400, "max_distance"),
        ("/reverse", {"x": 4.34, "y": 50.83, "max_distance": "far"}, 400, "max_distance"),
        ("/reverse", {"x": 4.34, "y": 50.83, "max_distance": "inf"}, 400, "max_distance"),
    ],
)
def test_bad_requests_get_a_clear_400_or_404(client, path, params, status, words):
    assert_problem(client.get(path, params=params), status, words)
