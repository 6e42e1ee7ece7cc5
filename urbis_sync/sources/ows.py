"""OWS exception reports: recognised in any answer of an OGC web service, and told apart.

A WFS may answer an `ows:ExceptionReport` whatever format was asked (GeoJSON asked, XML
exception received), with HTTP 200, 400 or 500. The report is read here, so the run fails
with the server's own words (exceptionCode, locator, ExceptionText) instead of "GDAL cannot
read it", and is classified: a report about the request itself (a parameter the server
refuses, an unknown type name) cannot change by asking again, so it fails the run at once;
anything else (NoApplicableCode, a processing failure) is retried like a 5xx unless the
HTTP status itself says the request was wrong.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import httpx

from urbis_sync.sources.http import (
    PermanentError,
    ResponseCheck,
    TransientAnswer,
    is_transient_status,
)

# exceptionCode values (OWS 1.1 and WFS 2.0) that blame the request, not the server's state.
REQUEST_ERRORS = frozenset(
    {
        "InvalidParameterValue",
        "MissingParameterValue",
        "OperationNotSupported",
        "OptionNotSupported",
        "VersionNegotiationFailed",
        "OperationParsingFailed",
        "InvalidUpdateSequence",
        "InvalidFormat",
        "InvalidSRS",
        "LayerNotDefined",
    }
)
_ROOTS = ("ExceptionReport", "ServiceExceptionReport")  # OWS 1.x/2.0, and WFS 1.0 / WMS
_SNIFF = 4096  # an exception report says so in its first bytes; a feature page never does


@dataclass(frozen=True)
class OwsException:
    code: str
    locator: str
    text: str

    def __str__(self) -> str:
        where = f" (locator {self.locator})" if self.locator else ""
        return f"{self.code or 'exception'}{where}: {self.text or 'no text'}"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def exception_report(body: bytes) -> list[OwsException] | None:
    """The exceptions of a body that is an OWS exception report; None for any other body."""
    head = body[:_SNIFF].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"<") or not any(root.encode() in head for root in _ROOTS):
        return None
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None  # not a (whole) report: the caller's own parsing says what is wrong
    if _local(root.tag) not in _ROOTS:
        return None
    found = []
    for element in root.iter():
        if _local(element.tag) not in ("Exception", "ServiceException"):
            continue
        texts = [
            t.strip()
            for child in element
            if _local(child.tag) == "ExceptionText"
            for t in child.itertext()
            if t.strip()
        ]
        if not texts and element.text:  # WFS 1.0: the text is the element's own
            texts = [element.text.strip()]
        found.append(
            OwsException(
                code=element.get("exceptionCode") or element.get("code") or "",
                locator=element.get("locator") or "",
                text=" ".join(" ".join(texts).split())[:500],
            )
        )
    return found or [OwsException("", "", " ".join(" ".join(root.itertext()).split())[:500])]


def is_request_error(exceptions: list[OwsException], status: int) -> bool:
    """A report that asking again cannot change: about the request, or with a 4xx that says so."""
    if any(e.code in REQUEST_ERRORS for e in exceptions):
        return True
    return 400 <= status < 500 and not is_transient_status(status)


def ows_check(what: str) -> ResponseCheck:
    """An `HttpFetcher.get` check that turns an exception report into the right error."""

    def check(response: httpx.Response) -> None:
        exceptions = exception_report(response.content)
        if exceptions is None:
            return
        said = "; ".join(str(e) for e in exceptions)
        message = f"{what}: the server says (HTTP {response.status_code}): {said}"
        if is_request_error(exceptions, response.status_code):
            raise PermanentError(message)
        raise TransientAnswer(f"the server says (HTTP {response.status_code}): {said}")

    return check
