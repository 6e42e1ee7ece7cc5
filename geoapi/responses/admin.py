"""Answers of the admin API: sync runs, the layers' status, a tile purge."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from geoapi.responses.common import Link


class Run(BaseModel):
    """One sync run of one layer (urbis_meta.sync_run). Links: `self`, the layer's `status`."""

    id: int
    layer: str
    mode: str = Field(description="How the run read its source (reconcile, raster)")
    status: Literal["running", "success", "failed"] = Field(
        description="running; success: its changes are live; failed: nothing applied, see error"
    )
    started: datetime
    finished: datetime | None = Field(description="null while running")
    seconds: float | None = Field(description="How long it took; null while running")
    fetched: int = Field(description="Features read from the source")
    inserted: int
    updated: int
    deleted: int
    repaired: int = Field(description="Geometries made valid")
    quarantined: int = Field(description="Features set aside, not stored")
    version: int | None = Field(description="The layer's version after the run")
    error: str | None = Field(description="Why it failed; null otherwise")
    drift: str | None = Field(description="How the source's schema changed, if it did")
    links: list[Link]


class Runs(BaseModel):
    """The newest runs first. Links: `self`, `next` (older runs) while there are more."""

    runs: list[Run]
    links: list[Link]


class LayerState(BaseModel):
    """What `urbis status` shows of a layer (`urbis status --json` gives the same objects)."""

    layer_id: str
    version: int | None
    feature_count: int | None = Field(description="null for a raster layer, or before a run")
    last_success: datetime | None
    last_failure: datetime | None
    failure_reason: str | None = Field(description="Why the last failed run failed")
    failing_since: datetime | None = Field(
        description="When the first run failed since the last success; null while not failing"
    )
    failures_in_a_row: int = Field(description="Failed runs since the last success")
    quarantined: int
    running: bool = Field(description="Its last run is still going")
    next_run: datetime = Field(description="When the continuous sync runs it next")


class RateLimitState(BaseModel):
    """Requests per client (URBIS_RATE_LIMIT, URBIS_RATE_BURST, URBIS_RATE_LIMIT_LOOPBACK)."""

    requests_per_second: float = Field(description="0: no limit")
    burst: int
    loopback: bool = Field(description="Whether loopback clients are limited too")
    max_clients: int = Field(description="Clients counted at once; the oldest go past it")


class CompressionState(BaseModel):
    """Compressed answers (URBIS_COMPRESS, URBIS_COMPRESS_MIN_BYTES)."""

    enabled: bool
    min_bytes: int


class Limits(BaseModel):
    """What one request or client may cost: the README's "Limits in one place", as set now."""

    max_body_bytes: int
    body_timeout: float
    max_url_bytes: int
    max_header_bytes: int
    header_timeout: float
    keep_alive_timeout: int
    statement_timeouts: dict[str, float] = Field(description="Seconds, per kind of query")
    concurrency: dict[str, int] = Field(description="Requests at once, per kind of query")
    queue_timeout: float
    idle_in_transaction_timeout: float
    max_items_per_page: int
    download_max_features: int
    max_stats_cells: int
    max_query_vertices: int
    job_queue: int
    rate_limit: RateLimitState
    compression: CompressionState


class Status(BaseModel):
    """Every configured layer, in the configuration's order; the limits in force."""

    layers: list[LayerState]
    limits: Limits


class Purged(BaseModel):
    """What a purge dropped from the tile cache: from memory, and from its disk tier."""

    layer: str | None = Field(description="The layer whose tiles were dropped; null: any")
    bbox: list[float] | None = Field(
        description="The area, in EPSG:31370 (the cache's), whose tiles were dropped; "
        "null: anywhere"
    )
    memory: int = Field(description="Tiles dropped from memory")
    disk: int = Field(description="Tiles dropped from the disk tier (0 without one)")
