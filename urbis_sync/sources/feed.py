"""`feed` sources: the URBIS download Atom feeds, whose newest entry links the current zip.

URBIS publishes each download product (e.g. UrbIS-Vector as GeoPackage) as an Atom feed whose
entries are the successive editions, each linking one zip. The run reads the feed, takes the
entry with the newest `updated`, and hands the zip to the file reader. The entry's id and date
make a marker the run can store, so a feed whose newest entry was already synced is skipped
without downloading hundreds of megabytes again.

The zip is streamed to disk once per run (never held in memory) and read from there.
"""

from __future__ import annotations

import logging
import re
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from urbis_core.config import FileSource
from urbis_core.errors import SourceError
from urbis_sync.sources.http import HttpFetcher, PermanentError, is_transient_status

log = logging.getLogger(__name__)
ATOM = "{http://www.w3.org/2005/Atom}"
CHUNK = 1 << 20


@dataclass(frozen=True)
class FeedEntry:
    """One edition in a feed: its Atom id, its date, its title and the zip it links."""

    id: str
    updated: datetime
    title: str
    href: str


def entry_marker(entry: FeedEntry) -> str:
    """What the run stores to recognise an entry it already synced (id and date together).

    The date is part of it because a feed may republish a corrected zip under the same id.
    """
    return f"{entry.id}@{entry.updated.isoformat()}"


def newest_entry(feed_url: str, http: HttpFetcher, *, layer_id: str | None = None) -> FeedEntry:
    """Download and parse an Atom feed; the entry with the newest `updated`, with its link."""
    what = f"{_prefix(layer_id)}feed {feed_url}"
    root = http.get(feed_url, None, lambda r: _parse_feed(r, what), what)
    entries = [_entry(element, str(feed_url), what) for element in root.findall(f"{ATOM}entry")]
    if not entries:
        raise SourceError(f"{what}: the feed has no entries")
    newest = max(entries, key=lambda pair: pair[0].updated)
    entry, problem = newest
    if problem:
        raise SourceError(
            f"{what}: the newest entry ({entry.id}, {entry.updated.isoformat()}) {problem}"
        )
    return entry


def feed_file_source(path: Path, layer: str | None, srid: int | None = None) -> FileSource:
    """The file source that reads a downloaded feed zip (for `open_file_source`)."""
    return FileSource(kind="file", path=path, layer=layer, srid=srid)


@contextmanager
def open_feed_source(
    feed_url: str,
    layer: str | None,
    layer_id: str,
    http: HttpFetcher,
    workdir: Path,
    *,
    entry: FeedEntry | None = None,
) -> Iterator[tuple[FeedEntry, Path]]:
    """Download the newest entry's zip once into workdir; yield the entry and the zip's path.

    Pass `entry` (from `newest_entry`) when it was already read to decide whether to sync, so
    the zip downloaded is the one that was decided on. The zip is removed afterwards.
    """
    if entry is None:
        entry = newest_entry(feed_url, http, layer_id=layer_id)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    target = Path(workdir) / _file_name(entry.href)
    what = f"layer '{layer_id}': download {entry.href}"
    try:
        _download(http, entry.href, target, what)
        if not zipfile.is_zipfile(target):
            raise SourceError(
                f"{what}: not a zip archive (feed {feed_url}, entry {entry.id}"
                f"{f', layer {layer}' if layer else ''})"
            )
        yield entry, target
    finally:
        target.unlink(missing_ok=True)
        target.with_name(target.name + ".part").unlink(missing_ok=True)


def _prefix(layer_id: str | None) -> str:
    return f"layer '{layer_id}': " if layer_id else ""


def _parse_feed(response: httpx.Response, what: str) -> ET.Element:
    """The feed's root; a body that is not an Atom feed is an error, not a reason to retry."""
    try:
        root = ET.fromstring(response.content)
    except ET.ParseError as exc:
        start = " ".join(response.text[:80].split())
        raise SourceError(
            f"{what}: not an Atom feed: not XML ({exc}); it starts with '{start}'"
        ) from None
    if root.tag != f"{ATOM}feed":
        raise SourceError(
            f"{what}: not an Atom feed: the root element is <{root.tag}>, "
            f"expected <feed> in namespace {ATOM[1:-1]}"
        )
    return root


def _entry(element: ET.Element, feed_url: str, what: str) -> tuple[FeedEntry, str | None]:
    """An entry and, when it cannot be downloaded, why (only matters if it is the newest)."""
    entry_id = (element.findtext(f"{ATOM}id") or "").strip()
    stamp = (
        element.findtext(f"{ATOM}updated") or element.findtext(f"{ATOM}published") or ""
    ).strip()
    try:
        updated = datetime.fromisoformat(stamp)
    except ValueError:
        raise SourceError(
            f"{what}: entry '{entry_id}' has no usable <updated> date ('{stamp}')"
        ) from None
    if updated.tzinfo is None:
        updated = updated.replace(tzinfo=UTC)  # Atom requires an offset; assume UTC if missing
    title = " ".join((element.findtext(f"{ATOM}title") or "").split())
    href = _download_link(element)
    entry = FeedEntry(entry_id, updated, title, urljoin(feed_url, href) if href else "")
    return entry, None if href else "links no download (no enclosure, alternate or .zip link)"


def _download_link(element: ET.Element) -> str | None:
    """rel=enclosure, else rel=alternate (Atom's default rel), else the first .zip link."""
    links = [
        (lk.get("rel") or "alternate", (lk.get("href") or "").strip())
        for lk in element.findall(f"{ATOM}link")
    ]
    links = [(rel, href) for rel, href in links if href]
    for wanted in ("enclosure", "alternate"):
        for rel, href in links:
            if rel == wanted:
                return href
    for _, href in links:
        if urlsplit(href).path.lower().endswith(".zip"):
            return href
    return None


def _file_name(href: str) -> str:
    """A safe local name that keeps the product's own file name (it carries the date)."""
    name = Path(urlsplit(href).path).name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return name or "download.zip"


def _download(http: HttpFetcher, url: str, target: Path, what: str) -> None:
    """Stream a URL to target with the fetcher's retry policy; a partial file never remains.

    HttpFetcher.get reads whole bodies into memory, which a product zip must not be, so the
    same policy (5xx/408/429, timeouts and broken connections retried with backoff) is applied
    here to a streamed GET.
    """
    policy = http.policy
    partial = target.with_name(target.name + ".part")
    reason = ""
    for attempt in range(1, policy.attempts + 1):
        try:
            with http.client.stream("GET", url) as response:
                if is_transient_status(response.status_code):
                    reason = f"HTTP {response.status_code}"
                elif response.status_code >= 400:
                    response.read()
                    text = " ".join(response.text.split())[:300]
                    raise PermanentError(
                        f"{what}: HTTP {response.status_code} from {response.url}: {text}"
                    )
                else:
                    with partial.open("wb") as out:
                        for chunk in response.iter_bytes(CHUNK):
                            out.write(chunk)
                    _check_length(response, partial)
                    partial.replace(target)
                    return
        except httpx.TimeoutException:
            reason = f"no answer within {policy.timeout:g} s"
        except httpx.TransportError as exc:
            reason = f"connection broken ({type(exc).__name__}: {exc})"
        except _Truncated as exc:
            reason = str(exc)
        partial.unlink(missing_ok=True)
        if attempt < policy.attempts:
            pause = min(policy.backoff * 2 ** (attempt - 1), policy.max_backoff)
            log.warning(
                "%s: %s; retrying in %.1f s (%d/%d)", what, reason, pause, attempt, policy.attempts
            )
            time.sleep(pause)
    raise SourceError(f"{what}: gave up after {policy.attempts} attempts: {reason}")


class _Truncated(Exception):
    """Fewer bytes arrived than the server announced."""


def _check_length(response: httpx.Response, written: Path) -> None:
    announced = response.headers.get("content-length")
    if (
        announced
        and announced.isdigit()
        and "content-encoding" not in response.headers
        and written.stat().st_size != int(announced)
    ):
        raise _Truncated(f"{written.stat().st_size} of {announced} bytes arrived")
