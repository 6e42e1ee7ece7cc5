"""Answers of the jobs (zonal statistics of a collection): one job's status, the list."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from geoapi.responses.common import Link


class JobProgress(BaseModel):
    done: int = Field(description="Features whose statistics are computed")
    total: int | None = Field(description="Features of the collection; null until counted")


class Job(BaseModel):
    """A job and where it is. `status` uses OGC API Processes' words.

    Links: `self`; `alternate` (the page); when successful, `results` as CSV and GeoPackage.
    """

    id: str
    process: Literal["zonal"] = Field(description="What the job computes")
    coverage: str
    version: int = Field(description="The coverage's version the statistics are taken from")
    collection: str
    band: int = Field(description="1-based")
    percentiles: list[float]
    status: Literal["accepted", "running", "successful", "failed", "dismissed"] = Field(
        description=(
            "accepted: waiting for a worker; running; successful: the results are ready; "
            "failed: see `error`; dismissed: by a DELETE, its files removed"
        )
    )
    progress: JobProgress
    created: str = Field(description="RFC 3339")
    started: str | None
    finished: str | None
    error: str | None = Field(description="Why the job failed; null otherwise")
    links: list[Link]


class Jobs(BaseModel):
    """Every job kept: waiting, running, and those finished within URBIS_JOB_TTL."""

    jobs: list[Job]
    links: list[Link]
