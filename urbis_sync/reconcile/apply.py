"""The apply: the layer table becomes the new source state, feature by feature, in ONE transaction.

The caller (`urbis_sync.run`) owns that transaction; nothing here commits. In it: history rows
for what is replaced or deleted, then deletes, updates and inserts by key (`diff`) or, on
schema drift or a first load, a rebuilt table swapped in (`rebuild`); the filter indexes, the
catalog (`catalog_write`); the caller adds the run row and the change log. Readers see the
old layer or the new one, never a mix.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from urbis_core.catalog import read_layer
from urbis_core.config import LayerConfig
from urbis_sync import filter_indexes
from urbis_sync.reconcile.catalog_write import mark_synced, write_catalog
from urbis_sync.reconcile.diff import apply_diff
from urbis_sync.reconcile.history import has_history_columns
from urbis_sync.reconcile.rebuild import rebuild
from urbis_sync.reconcile.shape import LayerShape, describe_drift
from urbis_sync.reconcile.staging import NeedsFullRun
from urbis_sync.reconcile.tables import IncomingLayer, raw


@dataclass(frozen=True)
class ApplyResult:
    version: int
    inserted: int
    updated: int
    deleted: int
    feature_count: int
    changed_bbox: tuple[float, float, float, float] | None
    drift: str | None

    @property
    def changed(self) -> bool:
        return bool(self.inserted or self.updated or self.deleted or self.drift)


def apply(
    conn: Connection,
    layer_id: str,
    layer: LayerConfig,
    shape: LayerShape,
    incoming: str,
    run_id: int,
    unmatched: str | None = None,
) -> ApplyResult:
    """Make the live layer equal to the source; the caller's transaction makes it atomic.

    `incoming` holds the whole layer when `unmatched` is None; otherwise only the features
    whose fingerprint changed, and `unmatched` the fingerprints of the live features that no
    source feature had (changed or gone). When
    `incoming` is the layer's next table (a first load streamed into it), it is swapped in.
    """
    current = read_layer(conn, layer_id)
    rows = IncomingLayer(layer_id, layer.key, shape, incoming, run_id)
    cur = raw(conn).cursor()
    drift = describe_drift(current, shape)
    if current is not None and drift is None and not has_history_columns(cur, layer_id):
        drift = "table rebuilt with row hashes and validity (made by an earlier version)"
    if current is None or drift is not None:
        if unmatched is not None:
            raise NeedsFullRun(drift or "first load")
        counts = rebuild(cur, rows, current)
        bbox = None  # the whole extent, old and new: known once the catalog is written
    else:
        counts, bbox = apply_diff(cur, rows, unmatched)
    filter_indexes.reconcile_indexes(cur, layer_id, layer.key, shape.columns, layer.indexes)
    changed = bool(any(counts) or drift or current is None)
    version = (current.version if current else 0) + (1 if changed else 0)
    if not changed:
        assert current is not None
        mark_synced(conn, layer_id, layer, [c.name for c in shape.columns])
        return ApplyResult(version, 0, 0, 0, current.feature_count, None, None)
    count, extent = write_catalog(conn, layer_id, layer, shape, version)
    if current is None:  # a first load: every feature is new
        counts = (count, 0, 0)
    if bbox is None and extent is not None:
        old = current.bbox_native if current is not None else None
        bbox = (
            extent
            if not old
            else (
                min(extent[0], old[0]),
                min(extent[1], old[1]),
                max(extent[2], old[2]),
                max(extent[3], old[3]),
            )
        )
    inserted, updated, deleted = counts
    return ApplyResult(version, inserted, updated, deleted, count, bbox, drift)
