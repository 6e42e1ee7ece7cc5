"""The sample addresses as the geocoding tests see them: read from the source shapefile, with
the small text helpers the tests use to build queries (none of them from the geocoder's code)."""

from __future__ import annotations

import random
import unicodedata
import warnings

import geopandas as gpd
import httpx

from tests.conftest import SAMPLE_DIR

EPSG_31370 = "http://www.opengis.net/def/crs/EPSG/0/31370"
FIELDS = ["ID", "ADRN", "PW_ID", "PW_NAME_FR", "PW_NAME_DU", "PZNC", "MU_NAME_FR", "MU_NAME_DU"]


def read_sample_addresses() -> gpd.GeoDataFrame:
    """The 666 sample address points straight from the source, indexed by ID."""
    path = SAMPLE_DIR / "UrbAdm_AdPt_sample.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # decimal-comma ANGLE, not used here
        frame = gpd.read_file(f"/vsizip/{path}/shp/UrbAdm_AdPt.shp", columns=FIELDS)
    frame["ID"] = frame["ID"].astype(int)
    return frame.set_crs(31370, allow_override=True).set_index("ID").sort_index()


def plain(text: str) -> str:
    """Without accents."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def swap_typo(name: str, rng: random.Random) -> str:
    """Two neighbouring letters swapped in the longest word (a usual typing slip)."""
    words = name.split()
    longest = max(range(len(words)), key=lambda i: len(words[i]))
    w = words[longest]
    i = rng.randrange(1, len(w) - 2)
    words[longest] = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
    return " ".join(words)


def one_typo(name: str, rng: random.Random) -> str:
    """One slip in the longest word: two letters swapped, one left out, doubled or wrong."""
    words = name.split()
    longest = max(range(len(words)), key=lambda i: len(words[i]))
    w = words[longest]
    letters = [i for i in range(1, len(w) - 1) if w[i].isalpha() and w[i + 1].isalpha()]
    i = rng.choice(letters)
    kind = rng.choice(["swap", "drop", "double", "wrong"])
    if kind == "swap" and w[i] == w[i + 1]:  # swapping 'aa' changes nothing
        kind = "wrong"
    if kind == "swap":
        w = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
    elif kind == "drop":
        w = w[:i] + w[i + 1 :]
    elif kind == "double":
        w = w[:i] + w[i] + w[i:]
    else:
        w = w[:i] + rng.choice([c for c in "aeioulnrst" if c != w[i].lower()]) + w[i + 1 :]
    words[longest] = w
    return " ".join(words)


def number_value(adrn: str) -> int:
    """The number a house number starts with ('23C' -> 23, '27--31' -> 27)."""
    digits = ""
    for c in adrn:
        if not c.isdigit():
            break
        digits += c
    return int(digits)


def geocode(client: httpx.Client, q: str, **params) -> list[dict]:
    response = client.get("/geocode", params={"q": q, **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    return response.json()["features"]
