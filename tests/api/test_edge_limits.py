"""What one request or connection may send a real `urbis serve`, and how it is refused (issue 12).

Bodies are counted while they are read (a 512 MiB upload is a quick 413 and the server's memory,
read in /proc, does not grow by it); URLs and headers are measured (414, 431), also past the
server's own limit on a head; bytes other than visible ASCII in a request target, and requests
that are not HTTP, are 400s in the JSON model; control characters and broken UTF-8 in the path
or the query are 400s naming the parameter before any route runs; request heads and bodies
have deadlines (slowloris: 1,000 half-sent requests are all closed within the deadline while
others are still answered).

Raw sockets where the test must control every byte the server receives; httpx elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import resource
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from geoapi.responses.documented import EXAMPLE_AREA
from tests.api.conftest import URBIS, assert_problem, rss_mib, start_server
from tests.support.processes import alive, spawned_children

pytestmark = pytest.mark.api

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
KEEP_ALIVE = 1
MAX_BODY = 10_000_000  # the defaults: the fixture sets no size
MAX_URL = 8192
MAX_HEADERS = 32_768
HEAD_LIMIT = MAX_URL + MAX_HEADERS + 1024
INTERSECTS = "/collections/municipalities/intersects"
POLYGON = json.dumps(EXAMPLE_AREA).encode()  # the body /docs offers


@dataclass(frozen=True)
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    address: tuple[str, int]


@pytest.fixture(scope="module")
def server(synced_database_url: str) -> Iterator[Server]:
    # The deadlines short, by flag; the variable set too shows that the flag wins over it.
    proc, base = start_server(
        synced_database_url,
        "--header-timeout",
        str(HEADER_TIMEOUT),
        "--body-timeout",
        str(BODY_TIMEOUT),
        "--keep-alive-timeout",
        str(KEEP_ALIVE),
        URBIS_HEADER_TIMEOUT="30",
    )
    host, port = base.removeprefix("http://").split(":")
    yield Server(proc, base, (host, int(port)))
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base, timeout=30) as c:
        yield c


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # from the first byte sent to the connection's end (or the read's)
    closed: bool  # the server ended the connection

    def problem(self) -> dict[str, object]:
        assert self.headers.get("content-type") == "application/problem+json", self.headers
        doc = json.loads(self.body)
        assert set(doc) == {"status", "title", "detail"} and doc["status"] == self.status
        return doc


def parse(raw: bytes, seconds: float, closed: bool) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines[0].startswith("HTTP/1.1 ") else 0
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return Answer(status, headers, body, seconds, closed)


def exchange(
    server: Server,
    first: bytes,
    then: list[bytes] | None = None,
    every: float = 0.0,
    wait: float = 10.0,
) -> Answer:
    """Send `first`, then each of `then` `every` seconds until the server answers; read what
    it says until it closes the connection or `wait` seconds have passed."""
    # The clock starts before the connection: the server's starts when it accepts it, so a
    # timeout it keeps is never measured short here (a client descheduled just after
    # connecting would otherwise start late).
    start = time.monotonic()
    with socket.create_connection(server.address) as sock:
        sock.sendall(first)
        pieces = list(then or [])
        raw = b""
        closed = False
        sock.settimeout(every or wait)
        while time.monotonic() - start < wait:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                if pieces:
                    sock.sendall(pieces.pop(0))
                continue
            except ConnectionResetError:  # after the answer, the rest of a body was refused
                closed = True
                break
            if not data:
                closed = True
                break
            raw += data
            if not closed and b"\r\n\r\n" in raw and _whole(raw):
                sock.settimeout(0.5 if every else wait)  # a little longer, to see it close
                pieces = []
        return parse(raw, time.monotonic() - start, closed)


def _whole(raw: bytes) -> bool:
    head, _, body = raw.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: (\d+)", head)
    return length is not None and len(body) >= int(length.group(1))


def request_head(method: str, target: str, *headers: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- bodies ----------------------------------------------------------------------------------


class Watch:
    """Requests to /conformance every 50 ms in a thread while the block runs."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.answers: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as c:
            while True:  # one request at least, however soon the block ends
                start = time.monotonic()
                status = c.get("/conformance").status_code
                self.answers.append((status, time.monotonic() - start))
                if self._stop.wait(0.05):
                    return

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("POST", INTERSECTS, 413),  # the one endpoint that reads a body
        ("POST", "/collections/addresses/items", 405),  # answered without reading it
        ("GET", "/collections/addresses/items", 200),  # a body where none belongs
    ],
)
def test_a_chunked_512_mib_upload_is_answered_at_once_and_never_held(server, method, path, status):
    sent = 0

    def upload() -> Iterator[bytes]:  # no length: httpx sends it chunked
        nonlocal sent
        piece = b" " * (1 << 20)
        for _ in range(512):
            sent += len(piece)
            yield piece

    before = rss_mib(server.proc.pid)
    with Watch(server.base) as watch:
        start = time.monotonic()
        response = httpx.request(method, server.base + path, content=upload(), timeout=60)
        seconds = time.monotonic() - start
    grown = rss_mib(server.proc.pid) - before
    assert response.status_code == status, response.text
    if status == 413:
        assert_problem(response, 413, "larger than the 10,000,000 bytes")
    assert response.headers["connection"] == "close"
    assert seconds < 5, seconds
    assert sent < 128 << 20, f"{sent:,} bytes sent: the server went on reading"
    assert grown < 40, f"the server grew by {grown:.0f} MiB"
    assert watch.answers and all(s == 200 for s, _ in watch.answers), watch.answers
    assert max(t for _, t in watch.answers) < 1, watch.answers


def test_a_declared_512_mib_body_is_refused_before_it_is_sent(server):
    answer = exchange(
        server,
        request_head(
            "POST", INTERSECTS, "Content-Length: 536870912", "Content-Type: application/geo+json"
        ),
        wait=5,
    )
    assert answer.status == 413 and answer.closed and answer.seconds < 1, answer
    assert "10,000,000 bytes" in str(answer.problem()["detail"])


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_of_the_maximum_is_read_and_one_byte_more_is_a_413(http, chunked):
    exact = POLYGON + b" " * (MAX_BODY - len(POLYGON))

    def content(body: bytes) -> bytes | Iterator[bytes]:
        return (
            iter([body[i : i + (1 << 20)] for i in range(0, len(body), 1 << 20)])
            if chunked
            else body
        )

    response = http.post(
        INTERSECTS, content=content(exact), headers={"Content-Type": "application/geo+json"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["numberMatched"] == 1  # Saint-Gilles, where the polygon lies
    assert_problem(
        http.post(INTERSECTS, content=content(exact + b" ")),
        413,
        "larger than the 10,000,000 bytes",
    )


@pytest.mark.parametrize(
    "head, piece",
    [
        (request_head("POST", INTERSECTS, "Content-Length: 1000") + b'{"type"', b" "),
        (
            request_head("POST", INTERSECTS, "Transfer-Encoding: chunked") + b'7\r\n{"type"\r\n',
            b"1\r\n \r\n",
        ),
    ],
    ids=["content-length", "chunked"],
)
def test_a_body_trickling_in_is_cut_off_with_a_408(server, head, piece):
    answer = exchange(server, head, [piece] * 100, every=0.2, wait=BODY_TIMEOUT + 5)
    assert answer.status == 408 and answer.closed, answer
    assert BODY_TIMEOUT <= answer.seconds < BODY_TIMEOUT + 1.5, answer.seconds
    assert f"did not arrive within {BODY_TIMEOUT:g} s" in str(answer.problem()["detail"])


# -- URL and header sizes ----------------------------------------------------------------------


def test_urls_up_to_the_limit_are_read_and_longer_ones_are_a_414(http):
    def url(length: int) -> str:
        start = "/collections/addresses/items?limit=1&ID="
        return start + "1" * (length - len(start))

    assert http.get(url(MAX_URL)).status_code == 400  # read: the ID is too large a number
    assert_problem(http.get(url(MAX_URL + 1)), 414, f"{MAX_URL + 1:,} bytes long")
    assert_problem(http.get(url(30_000)), 414, f"at most {MAX_URL:,}")


def test_headers_up_to_the_limit_are_read_and_more_are_a_431(server):
    fixed = len("host") + len("test") + 4 + len("x-pad") + 4  # as the limit counts them

    def head(total: int) -> bytes:
        return request_head("GET", "/conformance", "X-Pad: " + "p" * (total - fixed))

    assert exchange(server, head(MAX_HEADERS), wait=2).status == 200
    answer = exchange(server, head(MAX_HEADERS + 1), wait=2)
    assert answer.status == 431, answer
    assert f"{MAX_HEADERS + 1:,} bytes long" in str(answer.problem()["detail"])


@pytest.mark.parametrize(
    "first",
    [
        b"GET /conformance?q=" + b"u" * 60_000,
        b"GET /conformance HTTP/1.1\r\nHost: test\r\nX-Pad: " + b"p" * 60_000,
    ],
    ids=["url", "headers"],
)
def test_a_head_past_the_servers_limit_is_a_fast_431_too(server, first):
    # Sent in pieces, as a slow or hostile client would: the server gives up once a head still
    # incomplete passes its limit (set above ours), and answers and closes.
    pieces = [first[i : i + 4096] for i in range(0, len(first), 4096)]
    answer = exchange(server, pieces[0], pieces[1:], every=0.01, wait=5)
    assert answer.status == 431 and answer.closed and answer.seconds < 2, answer
    assert f"longer than the {HEAD_LIMIT:,} bytes" in str(answer.problem()["detail"])


@pytest.mark.parametrize(
    "head",
    [
        b"GET\r\n\r\n",
        b"G ET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        # geoapi.request_limits relies on these being refused before it: a repeated or
        # malformed Content-Length, a target holding what is not visible ASCII
        b"POST /lookup HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST /lookup HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\n",
        request_head("GET", "/conformance?q=a\tb"),
        request_head("GET", "/conformance?q=\x0cb"),
        request_head("GET", "/conformance?q=café"),
        request_head("GET", "/collections/café"),
        request_head("GET", "/conform\x7fance"),
    ],
    ids=[
        "no-target",
        "bad-method",
        "bad-header-name",
        "two-lengths",
        "bad-length",
        "tab",
        "form-feed",
        "utf8-query",
        "utf8-path",
        "del",
    ],
)
def test_what_is_not_http_is_a_400_in_the_error_model(server, head):
    answer = exchange(server, head, wait=2)
    assert answer.status == 400 and answer.closed, answer
    assert "not a valid HTTP/1.1 request" in str(answer.problem()["detail"])


def test_a_target_escaped_is_read(server):
    assert exchange(server, request_head("GET", "/conformance?q=caf%C3%A9"), wait=2).status == 200


# -- control characters and UTF-8 ----------------------------------------------------------------

NUL = "control character U+0000"
NOT_UTF8 = "is not UTF-8 text"
XY = "x=4.35&y=50.85"


@pytest.mark.parametrize(
    "target, parameter, words",
    [
        # the requests of the issue, which answered 500
        ("/collections/addresses%00/items", "path", NUL),
        (f"/lookup?{XY}&collections=addresses%00", "collections", NUL),
        ("/collections/addresses/items?filter=ADRN%20LIKE%20'%25%00%25'", "filter", NUL),
        # a NUL in every place a path holds an id
        ("/collections/addresses%00", "path", NUL),
        ("/collections/municipalities/items/21009%00", "path", NUL),
        ("/collections/addresses%00/changes?since=2020-01-01", "path", NUL),
        ("/collections/addresses%00/quarantine", "path", NUL),
        ("/collections/addresses%00/queryables", "path", NUL),
        ("/collections/addresses%00/schema", "path", NUL),
        (f"/collections/addresses%00/within?{XY}&distance=10", "path", NUL),
        (f"/collections/addresses%00/nearest?{XY}", "path", NUL),
        ("/collections/addresses%00/intersects?feature=municipalities/21009", "path", NUL),
        ("/collections/addresses%00/stats?by=municipalities", "path", NUL),
        ("/collections/addresses%00/tiles/WebMercatorQuad/15/16807/11024", "path", NUL),
        ("/tiles/WebMercatorQuad%00/15/16807/11024", "path", NUL),
        ("/tileMatrixSets/WebMercatorQuad%00", "path", NUL),
        ("/archives/sample%00/tilejson.json", "path", NUL),
        ("/fonts/Open%00Sans/0-255.pbf", "path", NUL),
        # ... and in every kind of query parameter
        ("/collections/addresses/items?NAME_FRE=a%00b", "NAME_FRE", NUL),
        ("/collections/addresses/items?sortby=%00ID", "sortby", NUL),
        ("/collections/addresses/items?properties=ID%00", "properties", NUL),
        ("/collections/addresses/items?crs=EPSG:4326%00", "crs", NUL),
        ("/collections/addresses/items?bbox=4,50,5,51%00", "bbox", NUL),
        ("/collections/addresses/items?datetime=2020-01-01%00", "datetime", NUL),
        ("/collections/addresses/items?filter-lang=cql2-text%00", "filter-lang", NUL),
        ("/collections/addresses/items?f=json%00", "f", NUL),
        ("/collections/addresses/items?limit=1%00", "limit", NUL),
        ("/geocode?q=Rue%00Neuve", "q", NUL),
        ("/reverse?x=4.35&y=50.85%00", "y", NUL),
        ("/collections/municipalities/intersects?feature=municipalities/21009%00", "feature", NUL),
        ("/collections/addresses/stats?by=municipalities%00", "by", NUL),
        ("/tiles/WebMercatorQuad/15/16807/11024?collections=addresses%00", "collections", NUL),
        # in a parameter's name; other control characters; broken UTF-8
        ("/collections/addresses/items?%00=1", "%00", "name holds the " + NUL),
        ("/collections/addresses/items?limit%0A=1", "limit%0A", "control character U+000A"),
        ("/collections/addresses/items?NAME_FRE=a%01b", "NAME_FRE", "control character U+0001"),
        ("/collections/addresses/items?NAME_FRE=a%1Fb", "NAME_FRE", "control character U+001F"),
        ("/collections/addresses/items?NAME_FRE=a%7Fb", "NAME_FRE", "control character U+007F"),
        ("/collections/addresses/items?NAME_FRE=a%C2%85b", "NAME_FRE", "control character U+0085"),
        ("/collections/addresses%0A/items", "path", "control character U+000A"),
        ("/collections/addresses%09/items", "path", "control character U+0009"),
        ("/collections/addresses%ff/items", "path", NOT_UTF8),
        ("/collections/addresses/items?filter=%ff", "filter", NOT_UTF8),
        ("/collections/addresses/items?NAME_FRE=%C0%80", "NAME_FRE", NOT_UTF8),  # an overlong NUL
        ("/collections/addresses/items?NAME_FRE=%E2%82", "NAME_FRE", NOT_UTF8),  # cut short
        ("/collections/addresses/items?x%ffy=1", "x%ffy", NOT_UTF8),
    ],
)
def test_control_characters_and_broken_utf8_are_400s_naming_the_parameter(
    http, target, parameter, words
):
    response = http.get(target)
    assert_problem(response, 400, f"parameter '{parameter}'")
    assert words in response.json()["detail"]


def test_a_posted_geometry_to_a_path_with_a_nul_is_a_400_before_its_body_is_read(server):
    answer = exchange(
        server,
        request_head(
            "POST", "/collections/addresses%00/intersects", f"Content-Length: {len(POLYGON)}"
        )
        + POLYGON[:10],
        wait=3,
    )
    assert answer.status == 400 and answer.closed and answer.seconds < 1, answer
    assert NUL in str(answer.problem()["detail"])


def test_tab_line_feed_and_carriage_return_are_allowed_in_values(http):
    spread = '{\r\n\t"op": "=",\n\t"args": [{"property": "NAME_FRE"}, "Ixelles"]\n}'
    response = http.get(
        "/collections/municipalities/items",
        params={"filter": spread, "filter-lang": "cql2-json", "properties": "NAME_FRE"},
    )
    assert response.status_code == 200, response.text
    assert [f["id"] for f in response.json()["features"]] == ["21009"]


# -- connections: slowloris, keep-alive --------------------------------------------------------


def test_a_thousand_half_sent_requests_are_closed_in_time_while_others_are_answered(server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    half = b"GET /collections/addresses/items?limit=1 HTTP/1.1\r\nHost: test\r\nX-Slow: "
    selector = selectors.DefaultSelector()
    received: dict[socket.socket, bytes] = {}
    closed_at: list[float] = []
    start = time.monotonic()
    try:
        for _ in range(1000):
            sock = socket.create_connection(server.address)
            sock.sendall(half)
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
            received[sock] = b""
        opened = time.monotonic() - start
        during = []
        with httpx.Client(base_url=server.base, timeout=5) as c:
            for _ in range(5):
                t = time.monotonic()
                response = c.get("/collections/addresses/items", params={"limit": 1})
                during.append(time.monotonic() - t)
                assert response.status_code == 200
        while (
            len(closed_at) < len(received)
            and time.monotonic() - start < opened + HEADER_TIMEOUT + 10
        ):
            for key, _ in selector.select(timeout=0.5):
                sock = key.fileobj  # type: ignore[assignment]
                data = sock.recv(65536)
                received[sock] += data
                if not data:
                    closed_at.append(time.monotonic() - start)
                    selector.unregister(sock)
    finally:
        selector.close()
        for sock in received:
            sock.close()
    assert len(closed_at) == 1000, f"{1000 - len(closed_at)} still open"
    assert max(closed_at) < opened + HEADER_TIMEOUT + 2, (opened, max(closed_at))
    assert max(during) < 0.5, during
    assert {raw.split(b"\r\n")[0] for raw in received.values()} == {b"HTTP/1.1 408 Request Timeout"}


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(server):
    answer = exchange(server, b"", wait=HEADER_TIMEOUT + 5)
    assert answer.closed and answer.status == 0 and answer.body == b"", answer
    assert HEADER_TIMEOUT <= answer.seconds < HEADER_TIMEOUT + 1, answer.seconds


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(server):
    answer = exchange(server, request_head("GET", "/conformance"), wait=KEEP_ALIVE + 5)
    assert answer.status == 200 and answer.closed, answer
    assert KEEP_ALIVE <= answer.seconds < KEEP_ALIVE + 1, answer.seconds


def test_a_second_request_sent_slowly_on_a_kept_alive_connection_is_cut_off_too(server):
    with socket.create_connection(server.address) as sock:
        sock.sendall(request_head("GET", "/conformance"))
        sock.settimeout(5)
        first = b""
        while not _whole(first):
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 OK")
        start = time.monotonic()
        sock.sendall(b"GET /conformance HTTP/1.1\r\nX-Slow: ")
        sock.settimeout(0.2)
        raw = b""
        while time.monotonic() - start < HEADER_TIMEOUT + 5:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                sock.sendall(b"x")  # a byte of headers now and then
                continue
            if not data:
                break
            raw += data
        seconds = time.monotonic() - start
    assert raw.startswith(b"HTTP/1.1 408 Request Timeout"), raw
    assert HEADER_TIMEOUT <= seconds < HEADER_TIMEOUT + 1, seconds


# -- urbis serve's flags -----------------------------------------------------------------------

FLAGS = {
    "--max-body-bytes": "URBIS_MAX_BODY_BYTES",
    "--body-timeout": "URBIS_BODY_TIMEOUT",
    "--max-url-bytes": "URBIS_MAX_URL_BYTES",
    "--max-header-bytes": "URBIS_MAX_HEADER_BYTES",
    "--header-timeout": "URBIS_HEADER_TIMEOUT",
    "--keep-alive-timeout": "URBIS_KEEP_ALIVE_TIMEOUT",
}


def urbis(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(URBIS), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x", **env},
    )


@pytest.mark.parametrize("command", ["serve", "up"])
def test_serve_and_up_document_the_same_limits(command):
    shown = " ".join(urbis(command, "--help").stdout.split())
    for flag, variable in FLAGS.items():
        assert flag in shown and variable in shown, (flag, shown)


@pytest.mark.parametrize(
    "args, env, words",
    [
        (("--header-timeout", "0"), {}, "--header-timeout"),
        (("--max-body-bytes", "-1"), {}, "--max-body-bytes"),
        ((), {"URBIS_MAX_BODY_BYTES": "ten"}, "URBIS_MAX_BODY_BYTES='ten' is not an integer"),
        ((), {"URBIS_BODY_TIMEOUT": "0"}, "URBIS_BODY_TIMEOUT='0' must be more than 0"),
    ],
)
def test_a_limit_that_cannot_be_is_refused_before_serving(args, env, words):
    done = urbis("serve", *args, **env)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_the_processes_that_decode_posted_geometries_end_with_the_server(synced_database_url):
    """A server stopped (SIGTERM, as a supervisor does) leaves none of its worker processes."""
    proc, base = start_server(synced_database_url, URBIS_CPU_PROCESSES="2")
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(4):  # enough work for the pool to start its processes
                response = client.post(
                    INTERSECTS, content=POLYGON, headers={"Content-Type": "application/geo+json"}
                )
                assert response.status_code == 200, response.text
        children = spawned_children(proc.pid)
        assert children  # the pool's decoders, started on the first posted body
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)]
