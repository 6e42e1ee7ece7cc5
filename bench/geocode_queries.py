"""Geocoder queries for the API benchmark: a realistic mix drawn from the loaded addresses.

What users type, in the shares below: full addresses (French or Dutch name, number, the box
when the address has one, half of them with postcode and municipality), one typo in the
street name, a street alone, a number the street does not have, and real Brussels streets the
generated data does not hold (which must answer nothing). Each query carries what a right
first answer is, so that the benchmark can say the answers it timed were right.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

MIX = {
    "full_address": 0.35,
    "one_typo": 0.2,
    "street_only": 0.15,
    "missing_number": 0.1,
    "absent_street": 0.2,
}
# Real streets of the Region whose names the generator does not use (checked against the
# data before use: one found there is left out).
ABSENT_STREETS = (
    ("Rue Neuve", "Nieuwstraat"),
    ("Rue Haute", "Hoogstraat"),
    ("Rue Blaes", "Blaesstraat"),
    ("Rue des Minimes", "Miniemenstraat"),
    ("Place Flagey", "Flageyplein"),
    ("Rue Antoine Dansaert", "Antoine Dansaertstraat"),
    ("Avenue des Arts", "Kunstlaan"),
    ("Rue du Marché aux Herbes", "Grasmarkt"),
    ("Avenue de Tervueren", "Tervurenlaan"),
    ("Rue de Namur", "Naamsestraat"),
    ("Rue Ducale", "Hertogsstraat"),
    ("Rue du Trône", "Troonstraat"),
    ("Rue de Parme", "Parmastraat"),
    ("Place Morichar", "Moricharplein"),
    ("Avenue Fonsny", "Fonsnylaan"),
    ("Rue de Bosnie", "Bosniëstraat"),
    ("Rue de Danemark", "Denemarkenstraat"),
    ("Rue d'Espagne", "Spanjestraat"),
    ("Rue Rogier", "Rogierstraat"),
    ("Rue de Laeken", "Lakensestraat"),
    ("Rue du Bailli", "Baljuwstraat"),
    ("Place Stéphanie", "Stefaniaplein"),
    ("Rue de Mérode", "de Mérodestraat"),
    ("Avenue de la Couronne", "Kroonlaan"),
    ("Rue Gray", "Graystraat"),
)
BOX_FORMS = ("{n} bte {b}", "{n}/{b}", "{n} bus {b}", "{n} boîte {b}")
SAMPLE_ROWS = 5000  # addresses drawn from the layer to make queries of


@dataclass(frozen=True)
class Query:
    q: str
    kind: str  # a key of MIX
    street: str | None = None  # the street name (as stored) a right answer is on
    number: str | None = None
    box: str | None = None
    postcode: str | None = None


def plain(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text)
    return " ".join(
        re.sub(
            r"[^0-9a-z]+", " ", "".join(c for c in folded if not unicodedata.combining(c)).lower()
        ).split()
    )


def typo(name: str, rng: random.Random) -> str:
    """One slip on a letter of the longest word: two swapped, one left out or a wrong one."""
    words = name.split()
    longest = max(range(len(words)), key=lambda i: len(words[i]))
    w = words[longest]
    i = rng.choice([i for i in range(1, len(w) - 1) if w[i].isalpha() and w[i - 1].isalpha()])
    slip = rng.choice(["swap", "drop", "wrong"]) if w[i] != w[i - 1] else "wrong"
    if slip == "swap":
        w = w[: i - 1] + w[i] + w[i - 1] + w[i + 1 :]
    elif slip == "drop":
        w = w[:i] + w[i + 1 :]
    else:
        w = w[:i] + ("e" if w[i] != "e" else "a") + w[i + 1 :]
    words[longest] = w
    return " ".join(words)


def _rows(url: str, table: sql.Composable, seed: int) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        cur = conn.execute(
            sql.SQL(
                'SELECT "STRNAMEFRE", "STRNAMEDUT", "POLICENUM", "BOXNUMBER", "ZIPCODE", '
                '"MUNNAMEFRE", "MUNNAMEDUT" FROM {} '
                'WHERE "STRNAMEFRE" IS NOT NULL ORDER BY md5("INSPIRE_ID" || %s) LIMIT %s'
            ).format(table),
            (str(seed), SAMPLE_ROWS),
        )
        names = [d.name for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _numbers_on(
    url: str, table: sql.Composable, streets: set[tuple[str, str]]
) -> dict[tuple[str, str], set[int]]:
    """The leading numbers of every address on these (French name, postcode) streets."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            sql.SQL(
                'SELECT "STRNAMEFRE", "ZIPCODE", substring("POLICENUM" from \'^[0-9]+\')::int '
                'FROM {} WHERE ("STRNAMEFRE", "ZIPCODE") IN '
                "(SELECT * FROM unnest(%s::text[], %s::text[]))"
            ).format(table),
            ([s for s, _ in streets], [p for _, p in streets]),
        ).fetchall()
    out: dict[tuple[str, str], set[int]] = {}
    for name, postcode, number in rows:
        if number is not None:
            out.setdefault((name, postcode), set()).add(number)
    return out


def _known_names(url: str, table: sql.Composable) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            sql.SQL('SELECT DISTINCT "STRNAMEFRE", "STRNAMEDUT" FROM {}').format(table)
        ).fetchall()
    return {plain(n) for row in rows for n in row if n}


def draw_queries(url: str, count: int, seed: int, layer: str = "addresses") -> list[Query]:
    """`count` distinct queries in the MIX's shares, in a shuffled order."""
    table = sql.Identifier("urbis", layer)
    rng = random.Random(seed)
    rows = _rows(url, table, seed)
    rng.shuffle(rows)
    kinds = [k for k, share in MIX.items() for _ in range(round(share * count))]
    kinds = (kinds + ["full_address"] * count)[:count]
    rng.shuffle(kinds)
    numbers = _numbers_on(url, table, {(r["STRNAMEFRE"], r["ZIPCODE"]) for r in rows})
    known = _known_names(url, table)
    absent = [
        pair
        for pair in ABSENT_STREETS
        if plain(pair[0]) not in known and plain(pair[1]) not in known
    ]
    queries: list[Query] = []
    seen: set[str] = set()
    row_at = iter(rows)
    for kind in kinds:
        for _ in range(100):  # until a query not drawn before
            query = _one(kind, next(row_at), rng, numbers, absent)
            if query is not None and query.q not in seen:
                break
        assert query is not None
        seen.add(query.q)
        queries.append(query)
    return queries


def _one(
    kind: str,
    row: dict[str, Any],
    rng: random.Random,
    numbers: dict[tuple[str, str], set[int]],
    absent: list[tuple[str, str]],
) -> Query | None:
    dutch = rng.random() < 0.4
    name = row["STRNAMEDUT"] if dutch else row["STRNAMEFRE"]
    place = f", {row['ZIPCODE']} {row['MUNNAMEDUT'] if dutch else row['MUNNAMEFRE']}"
    number, box = row["POLICENUM"], row["BOXNUMBER"]
    with_place = rng.random() < 0.5
    if kind == "absent_street":
        fr, nl = rng.choice(absent)
        text = nl if dutch else fr
        return Query(f"{text} {rng.randint(1, 150)}" if rng.random() < 0.6 else text, kind)
    if kind == "street_only":
        return Query(
            name + (place if with_place else ""),
            kind,
            street=name,
            postcode=row["ZIPCODE"] if with_place else None,
        )
    if kind == "missing_number":
        have = numbers.get((row["STRNAMEFRE"], row["ZIPCODE"]), set())
        free = [
            n
            for n in range(max(have, default=0) + 2, max(have, default=0) + 60)
            if n not in have and not 1000 <= n <= 1299
        ]
        return Query(
            f"{name} {rng.choice(free)}{place}", kind, street=name, postcode=row["ZIPCODE"]
        )
    written = number if box is None else rng.choice(BOX_FORMS).format(n=number, b=box)
    street = typo(name, rng) if kind == "one_typo" else name
    return Query(
        f"{street} {written}" + (place if with_place else ""),
        kind,
        street=name,
        number=number,
        box=box,
        postcode=row["ZIPCODE"] if with_place else None,
    )


def right_first(query: Query, features: list[dict[str, Any]]) -> bool:
    """Whether the first answer is a right one for the query's kind."""
    if query.kind == "absent_street":
        return not features
    if not features:
        return False
    p = features[0]["properties"]
    on_street = query.street in (p.get("STRNAMEFRE"), p.get("STRNAMEDUT"))
    in_place = query.postcode is None or p.get("ZIPCODE") == query.postcode
    if query.kind == "street_only":
        return on_street and in_place and p.get("match") == "street"
    if query.kind == "missing_number":
        return on_street and in_place and p.get("match") == "nearest_number"
    # without a box asked, any of the number's addresses (a house's boxes tie)
    return (
        on_street
        and in_place
        and p.get("POLICENUM") == query.number
        and (query.box is None or p.get("BOXNUMBER") == query.box)
    )
