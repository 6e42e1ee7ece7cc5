"""The jobs' JSON documents and their HTML pages (fr/nl/en), one read from the other.

A job's page shows what was asked, its status and progress (a progress bar), why it failed,
and links to its results once successful; while it waits or runs it reloads itself every two
seconds, so a browser left on it sees the job end.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from geoapi import html
from geoapi.deps import base_url
from geoapi.i18n import PageLanguage, number, text
from geoapi.job_records import JobRecord
from geoapi.jobs import FINISHED, SUCCESSFUL
from geoapi.links import link
from geoapi.media_types import CSV, GPKG, HTML, JSON

_RELOAD = "<script>setTimeout(() => location.reload(), 2000);</script>"


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def job_doc(job: JobRecord, base: str) -> dict[str, Any]:
    href = f"{base}/jobs/{job.id}"
    links = [
        link("self", href, JSON, "This job"),
        link("alternate", f"{href}?f=html", HTML, "This job as HTML"),
        link("up", f"{base}/jobs", JSON, "Every job"),
        link("related", f"{base}/coverages/{job.coverage_id}", JSON, "The coverage"),
    ]
    if job.status == SUCCESSFUL:
        links += [
            link("results", f"{href}/results?f=csv", CSV, "The statistics as CSV"),
            link("results", f"{href}/results?f=gpkg", GPKG, "The statistics as GeoPackage"),
        ]
    return {
        "id": job.id,
        "process": "zonal",
        "coverage": job.coverage_id,
        "version": job.coverage_version,
        "collection": job.collection,
        "band": job.band,
        "percentiles": list(job.percentiles),
        "status": job.status,
        "progress": {"done": job.done, "total": job.total},
        "created": _time(job.created),
        "started": _time(job.started),
        "finished": _time(job.finished),
        "error": job.error,
        "links": links,
    }


def jobs_doc(jobs: list[JobRecord], base: str) -> dict[str, Any]:
    return {
        "jobs": [job_doc(job, base) for job in jobs],
        "links": [
            link("self", f"{base}/jobs", JSON, "Every job"),
            link("alternate", f"{base}/jobs?f=html", HTML, "Every job as HTML"),
        ],
    }


def _progress(doc: dict[str, Any], lang: str) -> str:
    done, total = doc["progress"]["done"], doc["progress"]["total"]
    if total is None:
        return ""
    words = text(lang, "job.progress_of", done=number(done, lang), total=number(total, lang))
    return f'<progress max="{max(total, 1)}" value="{done}"></progress> {html.esc(words)}'


def _page_href(base: str, job_id: str, lang: str) -> str:
    return f"{base}/jobs/{job_id}?f=html&lang={lang}"


def _title(doc: dict[str, Any], lang: str) -> str:
    return text(lang, "job.title", coverage=doc["coverage"], collection=doc["collection"])


def job_page(request: Request, lang: PageLanguage, doc: dict[str, Any]) -> HTMLResponse:
    code = lang.code
    base = base_url(request)
    facts = [
        (text(code, "job.id"), doc["id"]),
        (text(code, "job.status"), text(code, f"job.status.{doc['status']}")),
        (text(code, "job.coverage"), f"{doc['coverage']} (version {doc['version']})"),
        (text(code, "job.collection"), doc["collection"]),
        (text(code, "job.band"), doc["band"]),
        (text(code, "job.percentiles"), ", ".join(f"{p:g}" for p in doc["percentiles"])),
        (text(code, "job.created"), doc["created"]),
        (text(code, "job.started"), doc["started"] or ""),
        (text(code, "job.finished"), doc["finished"] or ""),
    ]
    if doc["error"]:
        facts.append((text(code, "job.error"), doc["error"]))
    body = html.facts(facts)
    progress = _progress(doc, code)
    if progress:
        body += f'<p class="progress">{html.esc(text(code, "job.progress"))}: {progress}</p>'
    if doc["status"] == SUCCESSFUL:
        href = f"{base}/jobs/{doc['id']}/results"
        body += f"<h2>{html.esc(text(code, 'job.results'))}</h2>" + html.link_list(
            [(f"{href}?f=csv", text(code, "job.csv")), (f"{href}?f=gpkg", text(code, "job.gpkg"))]
        )
    if doc["status"] not in FINISHED:
        body += f"<p>{html.esc(text(code, 'job.refreshing'))}</p>{_RELOAD}"
    return html.page(request, lang, _title(doc, code), body, f"{base}/jobs/{doc['id']}?f=json")


def jobs_page(request: Request, lang: PageLanguage, doc: dict[str, Any]) -> HTMLResponse:
    code = lang.code
    base = base_url(request)
    rows = [
        [
            html.anchor(_page_href(base, job["id"], code), _title(job, code)),
            html.esc(text(code, f"job.status.{job['status']}")),
            _progress(job, code),
            html.esc(job["created"]),
        ]
        for job in doc["jobs"]
    ]
    headers = ["job.id", "job.status", "job.progress", "job.created"]
    body = html.table([text(code, h) for h in headers], rows, none=text(code, "jobs.none"))
    return html.page(request, lang, text(code, "jobs.title"), body, f"{base}/jobs?f=json")
