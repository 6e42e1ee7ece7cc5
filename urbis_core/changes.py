"""The sync's word to the servers: a layer changed (its new version, and where).

On commit, a sync run that changed a layer sends one notification on `CHANNEL`; every API
process listens (tiles.listener) and drops the cached tiles the change touched. Both sides
build and read the message here, so they cannot drift apart. The same holds for what the sync
leaves in the database: the change log (one row per version: counts and where) is written by
`announce`, with the notification, and read by `changes_since` (a tile cache that was away
catches up); the history of features (rows superseded, with when and how) is read by
`feature_changes`, the `/changes` API's query.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import ColumnElement, Connection, func
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from urbis_core.catalog import STORAGE_SRID, LayerEntry, change_log, has_history, layer_catalog
from urbis_core.coverages import coverage_catalog

CHANNEL = "urbis_layer_changed"

# A raster layer's changes and cached tiles go by "coverage:<id>": its own name in the change
# log, the notifications and the tile cache, which a vector layer's id (no colon) cannot take.
COVERAGE_PREFIX = "coverage:"


def coverage_layer(coverage_id: str) -> str:
    """The name a coverage's changes and cached tiles go by (tiles.keys.TileKey.collections)."""
    return COVERAGE_PREFIX + coverage_id


def is_coverage(layer: str) -> bool:
    return layer.startswith(COVERAGE_PREFIX)


Box = tuple[float, float, float, float]  # EPSG:31370


@dataclass(frozen=True)
class LayerChanged:
    layer: str
    version: int | None
    bbox: Box | None  # where the change lies; None: anywhere (drop all the layer's tiles)

    def payload(self) -> str:
        return json.dumps(
            {
                "layer": self.layer,
                "version": self.version,
                "bbox": list(self.bbox) if self.bbox else None,
            }
        )

    @classmethod
    def parse(cls, payload: str) -> LayerChanged:
        """The message of a notification; a ValueError when it is garbled."""
        try:
            change = json.loads(payload)
            bbox, version = change.get("bbox"), change.get("version")
            box: Box | None = (
                (float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])) if bbox else None
            )
            return cls(str(change["layer"]), int(version) if version is not None else None, box)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ValueError(f"unreadable change message {payload!r}: {exc!r}") from None

    def notification(self) -> ColumnElement[Any]:
        """`SELECT` it in the run's transaction: PostgreSQL sends it when that commits."""
        return func.pg_notify(CHANNEL, self.payload())


# -- the change log --------------------------------------------------------------------------


def announce(
    conn: Connection, run_id: int, change: LayerChanged, counts: tuple[int, int, int]
) -> None:
    """A run's change to a layer, told in the run's transaction.

    Its row of the change log (inserted, updated, deleted; where), and the notification
    PostgreSQL sends when the transaction commits.
    """
    inserted, updated, deleted = counts
    conn.execute(
        change_log.insert().values(
            layer_id=change.layer,
            run_id=run_id,
            version=change.version,
            inserted=inserted,
            updated=updated,
            deleted=deleted,
            bbox=func.ST_MakeEnvelope(*change.bbox, STORAGE_SRID) if change.bbox else None,
        )
    )
    conn.execute(sa.select(change.notification()))


async def _fetch(conn: psycopg.AsyncConnection[Any], query: sa.Select[Any]) -> list[Any]:
    """A Core query on a plain psycopg connection (the listener's, which LISTENs too)."""
    compiled = query.compile(dialect=postgresql.psycopg.dialect())
    return await (await conn.execute(str(compiled), compiled.params)).fetchall()


async def layer_versions(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    """Each synced layer's current version; a coverage's under its `coverage_layer` name."""
    rows = await _fetch(conn, sa.select(layer_catalog.c.id, layer_catalog.c.version))
    coverages = await _fetch(conn, sa.select(coverage_catalog.c.id, coverage_catalog.c.version))
    return {row[0]: row[1] for row in rows} | {coverage_layer(r[0]): r[1] for r in coverages}


async def changes_since(
    conn: psycopg.AsyncConnection[Any], layer_id: str, version: int
) -> list[Box | None]:
    """Where each change to a layer after `version` lies (None: a change without a bbox)."""
    bbox = change_log.c.bbox
    rows = await _fetch(
        conn,
        sa.select(
            func.ST_XMin(bbox), func.ST_YMin(bbox), func.ST_XMax(bbox), func.ST_YMax(bbox)
        ).where(change_log.c.layer_id == layer_id, change_log.c.version > version),
    )
    return [None if row[0] is None else (row[0], row[1], row[2], row[3]) for row in rows]


# -- the history of features ------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureChange:
    key: Any  # the feature's key, as the layer types it
    op: str  # insert, update or delete
    at: datetime


async def feature_changes(
    conn: AsyncConnection,
    layer: LayerEntry,
    since: datetime,
    limit: int,
    offset: int,
    only: Callable[[sa.Table], ColumnElement[bool]] | None = None,
) -> list[FeatureChange]:
    """Inserted, updated and deleted keys after `since`, oldest first.

    `only` (a condition on a table of the layer, such as its key's value) keeps one feature's.
    A superseded row tells an update or a delete at the moment it stopped being valid; a row
    whose validity starts after `since` without a superseded row ending at that moment is an
    insert.
    """
    live = layer.table()
    key = layer.key_field

    def kept(table: sa.Table, condition: ColumnElement[bool]) -> ColumnElement[bool]:
        return condition if only is None else sa.and_(condition, only(table))

    starts: list[sa.Select[Any]] = [
        sa.select(live.c[key].label("k"), live.c.valid_from.label("at")).where(
            kept(live, live.c.valid_from > since)
        )
    ]
    ends: list[sa.Select[Any]] = []
    hist = layer.history_table()
    if await has_history(conn, layer):
        starts.append(
            sa.select(hist.c[key].label("k"), hist.c.valid_from.label("at")).where(
                kept(hist, hist.c.valid_from > since)
            )
        )
        ends.append(
            sa.select(
                hist.c[key].label("k"), hist.c.op.label("op"), hist.c.valid_to.label("at")
            ).where(kept(hist, hist.c.valid_to > since))
        )
    begun = sa.union_all(*starts).subquery("begun")
    inserts = sa.select(begun.c.k, sa.literal("insert").label("op"), begun.c.at)
    if ends:
        replaced = sa.select(sa.literal(1)).where(
            hist.c[key] == begun.c.k, hist.c.valid_to == begun.c.at
        )
        inserts = inserts.where(~replaced.exists())
    events = sa.union_all(inserts, *ends).subquery("events")
    rows = await conn.execute(
        sa.select(events.c.k, events.c.op, events.c.at)
        .order_by(events.c.at, events.c.op, sa.cast(events.c.k, sa.Text))
        .limit(limit)
        .offset(offset)
    )
    return [FeatureChange(r.k, r.op, r.at) for r in rows]
