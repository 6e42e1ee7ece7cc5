"""What the load benchmark's clients ask (bench.load_bench): a map viewer's mix of requests.

Each request is drawn at random, with the weights of KINDS, from places in the data (points on
buildings and addresses read once from the loaded tables) and from geocoder queries that users
type (bench.geocode_queries). Tiles come from a small set of popular tiles (the places everyone
looks at: cached after their first answer, and again after each sync that changes them) and
from anywhere (mostly drawn when asked): what the tile cache sees in service.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql

from bench.geocode_queries import draw_queries
from tiles.tms import get_tms

# Kind of request -> its share of all requests: mostly the map's tiles, then what a click or
# the search box asks.
KINDS = {
    "tile WebMercatorQuad": 30,
    "tile BelgianLambert72": 12,
    "items page": 8,
    "items bbox": 10,
    "lookup": 8,
    "within": 5,
    "nearest": 5,
    "geocode": 12,
    "reverse": 10,
}
TILE_LAYERS = {"buildings": 6, "street_axes": 3, "addresses": 1}
TILE_ZOOMS = {
    "WebMercatorQuad": {12: 1, 13: 2, 14: 3, 15: 4, 16: 4, 17: 3, 18: 2},
    "BelgianLambert72": {5: 1, 6: 2, 7: 3, 8: 4, 9: 3, 10: 2},  # about WMQ 12-17 here
}
POPULAR_TILES = 150  # per grid: the tiles most asked for
POPULAR_SHARE = 0.7  # of tile requests, asked among the popular tiles
EPSG_31370 = "http://www.opengis.net/def/crs/EPSG/0/31370"
PLACES = 2000  # points drawn on buildings and on addresses
GEOCODE_QUERIES = 500
PAGE = 100
BBOX_SIDE = (150.0, 400.0)  # metres, a street block to a neighbourhood


@dataclass(frozen=True)
class Places:
    """Where the data lies: points (Lambert 72 and Web Mercator) and what the layers hold."""

    buildings: list[tuple[float, float, float, float]]  # x, y (31370), x, y (3857)
    addresses: list[tuple[float, float]]  # x, y (31370)
    counts: dict[str, int]
    geocode: list[str]


def read_places(url: str, seed: int, geocode_queries: int = GEOCODE_QUERIES) -> Places:
    """Points on random buildings and addresses, the layers' sizes and the geocoder queries."""
    with psycopg.connect(url) as conn:
        # setseed then random(): the same places for the same seed and data
        conn.execute("SELECT setseed(%s)", (((seed * 7919) % 1000) / 1000,))
        buildings = conn.execute(
            "SELECT ST_X(p), ST_Y(p), ST_X(ST_Transform(p, 3857)), ST_Y(ST_Transform(p, 3857)) "
            "FROM (SELECT ST_PointOnSurface(geom) AS p FROM urbis.buildings "
            "ORDER BY random() LIMIT %s) s",
            (PLACES,),
        ).fetchall()
        addresses = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom) FROM urbis.addresses ORDER BY random() LIMIT %s",
            (PLACES,),
        ).fetchall()
        counts = {
            layer: int(
                conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("urbis", layer))
                ).fetchone()[0]  # type: ignore[index]
            )
            for layer in TILE_LAYERS
        }
    queries = [q.q for q in draw_queries(url, geocode_queries, seed)]
    return Places(
        [tuple(map(float, r)) for r in buildings],  # type: ignore[misc]
        [(float(x), float(y)) for x, y in addresses],
        counts,
        queries,
    )


def weighted(rng: random.Random, weights: dict[str, int] | dict[int, int]) -> object:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def tile_path(layer: str, tms: str, z: int, x: int, y: int) -> str:
    return f"/collections/{layer}/tiles/{tms}/{z}/{x}/{y}"


def tile_at(tms_id: str, z: int, x: float, y: float) -> tuple[int, int]:
    """The column and row of the tile of `tms_id` at zoom `z` holding the point (its CRS)."""
    columns, rows = get_tms(tms_id).tiles_covering(z, (x, y, x, y))
    return columns[0], rows[0]


def feature_path(layer: str, key: str) -> str:
    """A feature's URL path; URBIS keys hold '/', sent percent-encoded."""
    return f"/collections/{layer}/items/{quote(key, safe='')}"


class Workload:
    """Draws the next request (its kind and path) for one client, from its own random stream."""

    def __init__(self, places: Places, seed: int, popular: dict[str, list[str]]) -> None:
        self.places = places
        self.rng = random.Random(seed)
        self.popular = popular
        self.geocode_at = self.rng.randrange(len(places.geocode)) if places.geocode else 0
        self.draw = {
            "tile WebMercatorQuad": self._tile,
            "tile BelgianLambert72": self._tile,
            "items page": self._items_page,
            "items bbox": self._items_bbox,
            "lookup": self._lookup,
            "within": self._within,
            "nearest": self._nearest,
            "geocode": self._geocode,
            "reverse": self._reverse,
        }
        assert set(self.draw) == set(KINDS)

    @classmethod
    def popular_tiles(cls, places: Places, seed: int) -> dict[str, list[str]]:
        """Per grid, the tiles most looked at: the same for every client."""
        rng = random.Random(seed)
        return {
            tms: [cls._any_tile(places, rng, tms) for _ in range(POPULAR_TILES)]
            for tms in TILE_ZOOMS
        }

    @staticmethod
    def _any_tile(places: Places, rng: random.Random, tms: str) -> str:
        lx, ly, mx, my = rng.choice(places.buildings)
        z = int(weighted(rng, TILE_ZOOMS[tms]))  # type: ignore[call-overload]
        x, y = tile_at(tms, z, *((mx, my) if tms == "WebMercatorQuad" else (lx, ly)))
        return tile_path(str(weighted(rng, TILE_LAYERS)), tms, z, x, y)

    def next(self) -> tuple[str, str]:
        """(kind, path and query) of the client's next request."""
        kind = str(weighted(self.rng, KINDS))
        return kind, self.draw[kind](kind)

    # -- one method per kind ------------------------------------------------------------------

    def _tile(self, kind: str) -> str:
        tms = kind.split()[1]
        if self.rng.random() < POPULAR_SHARE:
            return self.rng.choice(self.popular[tms])
        return self._any_tile(self.places, self.rng, tms)

    def _items_page(self, kind: str) -> str:
        layer = self.rng.choice(("buildings", "addresses"))
        offset = self.rng.randrange(max(1, self.places.counts[layer] - PAGE))
        return f"/collections/{layer}/items?" + urlencode({"limit": PAGE, "offset": offset})

    def _items_bbox(self, kind: str) -> str:
        x, y = self._near_building(20.0)
        half = self.rng.uniform(*BBOX_SIDE) / 2
        box = ",".join(f"{v:.2f}" for v in (x - half, y - half, x + half, y + half))
        return "/collections/buildings/items?" + urlencode(
            {"bbox": box, "bbox-crs": EPSG_31370, "limit": 500}
        )

    def _lookup(self, kind: str) -> str:
        x, y = self._near_building(2.0)
        return "/lookup?" + urlencode({"x": f"{x:.2f}", "y": f"{y:.2f}", "crs": "EPSG:31370"})

    def _within(self, kind: str) -> str:
        x, y = self._near_address(30.0)
        layer = self.rng.choice(("addresses", "buildings"))
        query = {"x": f"{x:.2f}", "y": f"{y:.2f}", "distance": 50, "crs": "EPSG:31370"}
        return f"/collections/{layer}/within?" + urlencode(query)

    def _nearest(self, kind: str) -> str:
        x, y = self._near_address(30.0)
        layer = self.rng.choice(("addresses", "buildings"))
        query = {"x": f"{x:.2f}", "y": f"{y:.2f}", "k": 5, "crs": "EPSG:31370"}
        return f"/collections/{layer}/nearest?" + urlencode(query)

    def _geocode(self, kind: str) -> str:
        self.geocode_at = (self.geocode_at + 1) % len(self.places.geocode)
        return "/geocode?" + urlencode({"q": self.places.geocode[self.geocode_at]})

    def _reverse(self, kind: str) -> str:
        x, y = self._near_address(40.0)
        return "/reverse?" + urlencode({"x": f"{x:.2f}", "y": f"{y:.2f}", "crs": "EPSG:31370"})

    def _near_building(self, metres: float) -> tuple[float, float]:
        x, y, _, _ = self.rng.choice(self.places.buildings)
        return x + self.rng.uniform(-metres, metres), y + self.rng.uniform(-metres, metres)

    def _near_address(self, metres: float) -> tuple[float, float]:
        x, y = self.rng.choice(self.places.addresses)
        return x + self.rng.uniform(-metres, metres), y + self.rng.uniform(-metres, metres)
