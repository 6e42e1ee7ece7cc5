"""Settings: every environment variable read and checked in one place, passed explicitly.

`Settings.from_env()` reads every `URBIS_*` variable (and `DATABASE_URL`, `DATABASE_URL_API`,
`DATABASE_URL_READ`)
once, each checked with a message naming it; the objects the parts of the service take
(`DatabaseSettings`, `ApiSettings`, `ServerLimits`, `SyncSettings`) are made from it. Nothing
here is a module-level singleton: the CLI builds the settings once and hands them to whatever
needs them; tests build their own. An empty variable counts as unset, but for lists, where it
means none.

One module, over 600 lines: every variable in one place is its job (one list to read, one
reader that names the variable in each message); split by part, a setting shared by two parts
would have no home.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from urbis_core.errors import ConfigError
from urbis_core.paths import DEFAULT_CONFIG, NODE_MODULES, PROJECT_ROOT

MAX_ITEMS_LIMIT = 10_000
# The kinds of database work a request does (geoapi.budgets): each has its statement timeout
# (seconds) and, but for the catalog's small reads, a bound on how many run at once.
QUERY_KINDS = ("catalog", "items", "spatial", "stats", "geocode", "tiles")
DEFAULT_TIMEOUTS = {
    "catalog": 5.0,
    "items": 5.0,
    "spatial": 5.0,
    "stats": 10.0,
    "geocode": 5.0,
    "tiles": 5.0,
}
DEFAULT_CONCURRENCY = {"items": 6, "spatial": 4, "stats": 2, "geocode": 6, "tiles": 4}
MAX_DOWNLOAD_FEATURES = 1_000_000
MAX_WORKERS = 64  # API processes: each holds a pool of URBIS_DB_POOL_SIZE connections
LOOPBACK = ("127.0.0.0/8", "::1/128")  # the peers trusted as proxies unless told otherwise
# Variables whose value no message repeats (a read URL may hold a password).
SECRETS = {"URBIS_ADMIN_TOKEN", "DATABASE_URL_READ"}
DATABASE_VARIABLES = {"DATABASE_URL", "DATABASE_URL_API", "DATABASE_URL_READ"}


def timeout_variable(kind: str) -> str:
    """The environment variable of a kind of query's statement timeout."""
    return f"URBIS_TIMEOUT_{kind.upper()}"


@dataclass(frozen=True)
class DatabaseRoles:
    """The two roles the service's database work is split between (README "Database roles").

    The writer runs the migrations and the sync and owns the service schemas; the reader is
    the API's, allowed SELECT on the layers and the catalog and nothing else.
    """

    reader: str = "urbis_reader"
    writer: str = "urbis_writer"


@dataclass(frozen=True)
class DatabaseSettings:
    """Which database to use.

    `url` is the libpq URL from `DATABASE_URL` (the writer's); when it is None the CLI runs an
    embedded PostgreSQL + PostGIS cluster under `home` (the project's `.urbis/` folder).
    `api_url` (`DATABASE_URL_API`) is the reader's, the one the API connects with.
    `read_urls` (`DATABASE_URL_READ`) are streaming replicas of that database the API reads
    from (one URL each; without a user or database they take the reader's).
    """

    url: str | None
    home: Path
    allow_apt: bool
    api_url: str | None = None
    roles: DatabaseRoles = field(default_factory=DatabaseRoles)
    read_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerLimits:
    """What one request or connection may send the API, and for how long (issue 12).

    Checked by geoapi.request_limits (URL, headers, body) and geoapi.server (the request head's
    deadline, keep-alive); `urbis serve` flags override the environment.
    """

    max_body_bytes: int = 10_000_000  # request bodies, read in pieces: past it a 413
    body_timeout: float = 30.0  # seconds for a whole body once the app reads it: then a 408
    max_url_bytes: int = 8192  # path and query: past it a 414
    max_header_bytes: int = 32_768  # all header lines together: past it a 431
    header_timeout: float = 10.0  # seconds for a request's line and headers: then a 408
    keep_alive_timeout: int = 5  # seconds an idle connection is kept between requests

    def __post_init__(self) -> None:
        for name, variable in LIMIT_VARIABLES.items():
            if getattr(self, name) <= 0:
                raise ConfigError(f"{variable} must be more than 0, not {getattr(self, name)}")


LIMIT_VARIABLES = {
    "max_body_bytes": "URBIS_MAX_BODY_BYTES",
    "body_timeout": "URBIS_BODY_TIMEOUT",
    "max_url_bytes": "URBIS_MAX_URL_BYTES",
    "max_header_bytes": "URBIS_MAX_HEADER_BYTES",
    "header_timeout": "URBIS_HEADER_TIMEOUT",
    "keep_alive_timeout": "URBIS_KEEP_ALIVE_TIMEOUT",
}
LogFormat = Literal["text", "json"]


@dataclass(frozen=True)
class RateLimit:
    """How many requests one client may make (geoapi.rate_limit): a token bucket per client.

    `rate` requests a second on average, `burst` at once; 0 turns the limit off. Loopback
    clients (the machine itself: tests, a local user) are not limited unless `loopback`.
    At most `max_clients` buckets are kept: the least recently seen is dropped past it.
    """

    rate: float = 50.0
    burst: int = 200
    loopback: bool = False
    max_clients: int = 100_000

    @property
    def enabled(self) -> bool:
        return self.rate > 0


@dataclass(frozen=True)
class Compression:
    """Which answers are compressed (geoapi.compression): text of at least `min_bytes`."""

    enabled: bool = True
    min_bytes: int = 1024


@dataclass(frozen=True)
class AdminSettings:
    """The admin API (geoapi.routes.admin): offered only when URBIS_ADMIN_TOKEN is set.

    `database_url` is the one the sync writes with (DATABASE_URL): a run the admin API starts
    runs as the sync does, not over the API's own connections.
    """

    token: str = field(repr=False)
    config: Path  # the layer configuration: the layers a run may sync, what status lists
    database_url: str = field(repr=False)


ADMIN_TOKEN_MIN_LENGTH = 16


@dataclass(frozen=True)
class ApiSettings:
    """How the geo-API serves: address, pool size, paging limits, static front-end files."""

    database_url: str
    host: str = "127.0.0.1"
    port: int = 8000
    # Streaming replicas the API reads from (DATABASE_URL_READ, whole URLs, the reader's), and
    # how far behind the primary one may fall and still serve (geoapi.read_replicas).
    read_database_urls: tuple[str, ...] = ()
    read_max_lag: float = 30.0
    read_check_interval: float = 1.0  # seconds between the watcher's looks at the replicas
    pool_size: int = 10
    default_limit: int = 10
    max_limit: int = MAX_ITEMS_LIMIT
    # CSV and GeoPackage downloads stream the whole selection up to this many features; past
    # it they answer 413 rather than a part of it.
    download_max_features: int = MAX_DOWNLOAD_FEATURES
    # A coverage's statistics (POST /coverages/{id}/stats) read at most this many cells: the
    # window under the area is read whole, as float64 for the percentiles (25 M: ~200 MB).
    max_stats_cells: int = 25_000_000
    node_modules: Path = field(default=NODE_MODULES)
    tile_cache_mb: int = 256  # the in-process tile cache (0: none)
    tile_cache_dir: Path | None = None  # the cache's disk tier, kept across restarts
    tile_archives: tuple[Path, ...] = ()  # seeded PMTiles/MBTiles files served under /archives
    # Browsers may reuse a tile this long without asking; 0 makes them revalidate with the
    # ETag each time (a 304 when the tile did not change), so they never show stale data.
    tile_max_age: int = 0
    # Tiles as coarse as Web Mercator's at this zoom, and coarser, are drawn ahead into the
    # cache (tiles.lowzoom): they read whole layers. -1: none.
    tile_warm_zoom: int = 11
    cors_origins: tuple[str, ...] = ("*",)  # web apps allowed to call the API from a browser
    # The base of every absolute link; unset, links follow the request (and trusted proxies).
    public_url: str | None = None
    # The URBIS base map (WMTS tiles in Web Mercator) /map may show under our layers: a URL
    # template with {z}, {x}, {y} and optionally {layer} (urbisFR, urbisNL, urbisFRGray).
    basemap_wmts_url: str | None = None
    # Peers whose X-Forwarded-* and Forwarded headers are believed (addresses or networks).
    trusted_proxies: tuple[str, ...] = LOOPBACK
    # What one request may cost (geoapi.budgets). Each kind of query's statement timeout, in
    # seconds; past it the query is cancelled and the answer is a 503 with Retry-After.
    statement_timeouts: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))
    # How many requests of each kind run at once; the others wait for their turn, and all
    # but the catalog's together leave two of the pool's connections to the cheap ones.
    concurrency: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_CONCURRENCY))
    # How long a request waits for its turn or a pooled connection before a 503 (seconds).
    queue_timeout: float = 5.0
    # A transaction left idle this long is ended by PostgreSQL (a download whose client
    # stopped reading holds one open between its batches).
    idle_in_transaction_timeout: float = 120.0
    # Worker threads for CPU-bound steps (parsing posted geometries, encoding large answers,
    # writing downloads), so that the event loop keeps answering meanwhile.
    cpu_threads: int = 4
    # Worker processes decoding posted JSON geometries (a decoder no thread can share).
    cpu_processes: int = 2
    # A posted query geometry may have at most this many vertices.
    max_query_vertices: int = 20_000
    limits: ServerLimits = field(default_factory=ServerLimits)
    # Jobs (POST /coverages/{id}/zonal, geoapi.jobs): each runs in a process of its own, at
    # most `job_workers` at once; at most `job_queue` wait (past it a 503); a finished job and
    # its files are kept `job_ttl` seconds, its files under `job_dir`.
    job_workers: int = 1
    job_queue: int = 8
    job_ttl: float = 86_400.0
    job_dir: Path = PROJECT_ROOT / ".urbis" / "jobs"
    # The process's log: `text` for a person at a terminal, `json` (one object a line) for a
    # log collector.
    log_format: LogFormat = "text"
    admin: AdminSettings | None = None  # None: no token, no admin routes
    # Fair use: requests per client, and compressed answers.
    rate_limit: RateLimit = field(default_factory=RateLimit)
    compression: Compression = field(default_factory=Compression)
    # Set by urbis_cli.supervisor when several API processes serve (URBIS_WORKERS > 1): their
    # shared folder, with prometheus_client's multiprocess files (`metrics/`, summed by
    # /metrics) and the tile purges one process tells the others (`purges/`).
    siblings_dir: Path | None = None


@dataclass(frozen=True)
class SyncSettings:
    """How the sync talks to network sources."""

    http_attempts: int = 5
    http_backoff: float = 1.0
    http_timeout: float = 60.0
    # The sync writes whole layers in one transaction: its statements get far longer than
    # the API's, but not for ever (a lock never released, a runaway diff).
    statement_timeout: float = 1800.0
    # Where raster layers' Cloud-Optimized GeoTIFFs live (`<id>/<version>-<checksum12>.tif`).
    raster_dir: Path = PROJECT_ROOT / ".urbis" / "rasters"


# -- reading the environment ------------------------------------------------------------------
# Each check raises ValueError with the words that follow "environment variable NAME='value'".


def _integer(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            raise ValueError("is not an integer") from None
    return raw


def _number(what: str) -> Callable[[Any], Any]:
    def parse(raw: Any) -> Any:
        if isinstance(raw, str):
            try:
                return float(raw.strip())
            except ValueError:
                raise ValueError(f"is not a number of {what}") from None
        return raw

    return parse


def _at_least(low: int, why: str = "") -> Callable[[int], int]:
    def check(value: int) -> int:
        if value < low:
            raise ValueError(f"must be at least {low}{f' ({why})' if why else ''}")
        return value

    return check


def _within_a_day(value: float) -> float:
    if not 0 < value < 86_400:
        raise ValueError("must be more than 0 and less than a day (in seconds)")
    return value


def _within_thirty_days(value: float) -> float:
    if not 0 < value <= 30 * 86_400:
        raise ValueError("must be more than 0 and at most 30 days (2592000 seconds)")
    return value


def _more_than_zero(value: float) -> float:
    if value <= 0:
        raise ValueError("must be more than 0")
    return value


def _flag(raw: Any) -> Any:
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in {"1", "true", "yes", "on"}:
            return True
        if word in {"0", "false", "no", "off"}:
            return False
        raise ValueError("is not one of 1, true, yes, on, 0, false, no, off")
    return raw


def _tile_template(value: str | None) -> str | None:
    """A tile URL template a browser can fill: http(s), with {z}, {x} and {y}."""
    if value is None:
        return None
    if not value.startswith(("http://", "https://")):
        raise ValueError("is not an http(s) URL")
    missing = [part for part in ("{z}", "{x}", "{y}") if part not in value]
    if missing:
        raise ValueError(
            f"lacks {', '.join(missing)}: a tile URL template such as "
            "https://host/wmts?...&LAYER={layer}&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}"
        )
    return value


def _lower(raw: Any) -> Any:
    return raw.strip().lower() if isinstance(raw, str) else raw


def _token(value: str | None) -> str | None:
    """A bearer token: long enough not to be guessed, and sendable in a header as it is."""
    if value is None:
        return None
    if len(value) < ADMIN_TOKEN_MIN_LENGTH:
        raise ValueError(
            f"must be at least {ADMIN_TOKEN_MIN_LENGTH} characters long, not {len(value)} "
            "(a random one: `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    if not all("!" <= char <= "~" for char in value):
        raise ValueError("may hold only printable ASCII characters, no spaces")
    return value


def _role_name(value: str) -> str:
    """A role name written as is into GRANT statements: a plain lower-case identifier."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
        raise ValueError(
            "is not a role name: lower-case letters, digits and _ (not first), at most 63"
        )
    if value.startswith("pg_"):
        raise ValueError("is not a role name: names starting with pg_ are PostgreSQL's own")
    return value


def _comma_list(raw: Any) -> Any:
    """A comma-separated variable's items (an empty value: none)."""
    if isinstance(raw, str):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


_URL_SCHEMES = ("postgresql://", "postgres://")


def _read_urls(raw: Any) -> Any:
    """DATABASE_URL_READ: comma-separated libpq URLs, one a replica.

    A URL naming several hosts (`postgresql://h1:5432,h2:5432/urbis`, libpq's multi-host form)
    counts as one replica per host: libpq would use only the first that answers, where the
    reads are to be spread.
    """
    if not isinstance(raw, str):
        return raw
    if not raw.strip():
        return ()
    urls: list[str] = []
    for number, item in enumerate(re.split(r",\s*(?=postgres(?:ql)?://)", raw.strip()), 1):
        item = item.strip()
        if not item.startswith(_URL_SCHEMES):
            raise ValueError(
                f"item {number} ({_without_password(item)!r}) is not a postgresql:// URL: give "
                "the replicas as postgresql://[user[:password]@]host[:port][/dbname], "
                "separated by commas"
            )
        scheme, rest = item.split("://", 1)
        netloc, slash, path = rest.partition("/")
        userinfo, at, hosts = netloc.rpartition("@")
        for host in (h.strip() for h in hosts.split(",")):
            if not _is_host_port(host):
                raise ValueError(
                    f"item {number} ({_without_password(item)!r}) has a host {host!r} that is "
                    "not host or host:port"
                )
            urls.append(f"{scheme}://{userinfo}{at}{host}{slash}{path}")
    return tuple(urls)


def _is_host_port(host: str) -> bool:
    """`host`, `host:port`, `[ipv6]` or `[ipv6]:port`, with a port from 1 to 65535."""
    name, port = host, ""
    if host.startswith("["):
        name, _, after = host.partition("]")
        port = after.removeprefix(":") if after.startswith(":") else after
    elif ":" in host:
        name, _, port = host.rpartition(":")
    return bool(name.strip("[")) and (not port or (port.isdigit() and 0 < int(port) < 65536))


def _without_password(url: str) -> str:
    """A URL as a message may show it: its password masked."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


Integer = Annotated[int, BeforeValidator(_integer)]
Count = Annotated[int, BeforeValidator(_integer), AfterValidator(_at_least(1))]
Bytes = Annotated[int, BeforeValidator(_integer), AfterValidator(_more_than_zero)]
Seconds = Annotated[float, BeforeValidator(_number("seconds")), AfterValidator(_within_a_day)]
Flag = Annotated[bool, BeforeValidator(_flag)]
CommaList = Annotated[tuple[str, ...], BeforeValidator(_comma_list)]
RoleName = Annotated[str, AfterValidator(_role_name)]
ReadUrls = Annotated[tuple[str, ...], BeforeValidator(_read_urls)]


class Settings(BaseModel):
    """Every variable the service reads, by its name, checked; defaults where unset."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=False)

    # The database (DatabaseSettings)
    database_url: str | None = Field(None, alias="DATABASE_URL")
    api_database_url: str | None = Field(None, alias="DATABASE_URL_API")
    read_database_urls: ReadUrls = Field((), alias="DATABASE_URL_READ", repr=False)
    read_max_lag: Seconds = Field(ApiSettings.read_max_lag, alias="URBIS_READ_MAX_LAG_S")
    read_check_interval: Seconds = Field(
        ApiSettings.read_check_interval, alias="URBIS_READ_CHECK_INTERVAL_S"
    )
    reader_role: RoleName = Field(DatabaseRoles.reader, alias="URBIS_DB_READER_ROLE")
    writer_role: RoleName = Field(DatabaseRoles.writer, alias="URBIS_DB_WRITER_ROLE")
    home: Path = Field(PROJECT_ROOT / ".urbis", alias="URBIS_HOME")
    # Installing Debian packages needs root; URBIS_ALLOW_APT=0 forbids it even then.
    allow_apt: Flag = Field(default_factory=lambda: os.geteuid() == 0, alias="URBIS_ALLOW_APT")
    config: Path = Field(DEFAULT_CONFIG, alias="URBIS_CONFIG")
    # The API (ApiSettings)
    host: str = Field(ApiSettings.host, alias="URBIS_HOST")
    port: Annotated[Integer, Field(ge=0, le=65535)] = Field(ApiSettings.port, alias="URBIS_PORT")
    # API processes `urbis serve` runs (urbis_cli.supervisor); 1: the API in `serve`'s own.
    workers: Annotated[Integer, Field(ge=1, le=MAX_WORKERS)] = Field(1, alias="URBIS_WORKERS")
    pool_size: Annotated[
        int,
        BeforeValidator(_integer),
        AfterValidator(_at_least(3, "two are kept for cheap requests")),
    ] = Field(ApiSettings.pool_size, alias="URBIS_DB_POOL_SIZE")
    download_max_features: Count = Field(
        ApiSettings.download_max_features, alias="URBIS_DOWNLOAD_MAX_FEATURES"
    )
    max_stats_cells: Count = Field(ApiSettings.max_stats_cells, alias="URBIS_MAX_STATS_CELLS")
    tile_cache_mb: Annotated[int, BeforeValidator(_integer), AfterValidator(_at_least(0))] = Field(
        ApiSettings.tile_cache_mb, alias="URBIS_TILE_CACHE_MB"
    )
    tile_cache_dir: Path | None = Field(ApiSettings.tile_cache_dir, alias="URBIS_TILE_CACHE_DIR")
    tile_archives: CommaList = Field((), alias="URBIS_TILE_ARCHIVES")
    tile_max_age: Annotated[int, BeforeValidator(_integer), AfterValidator(_at_least(0))] = Field(
        ApiSettings.tile_max_age, alias="URBIS_TILE_MAX_AGE"
    )
    tile_warm_zoom: Annotated[int, BeforeValidator(_integer), AfterValidator(_at_least(-1))] = (
        Field(ApiSettings.tile_warm_zoom, alias="URBIS_TILE_WARM_ZOOM")
    )
    cors_origins: CommaList = Field(ApiSettings.cors_origins, alias="URBIS_CORS_ORIGINS")
    public_url: str | None = Field(ApiSettings.public_url, alias="URBIS_PUBLIC_URL")
    trusted_proxies: CommaList = Field(ApiSettings.trusted_proxies, alias="URBIS_TRUSTED_PROXIES")
    basemap_wmts_url: Annotated[str | None, AfterValidator(_tile_template)] = Field(
        ApiSettings.basemap_wmts_url, alias="URBIS_BASEMAP_WMTS_URL"
    )
    timeout_catalog: Seconds = Field(DEFAULT_TIMEOUTS["catalog"], alias="URBIS_TIMEOUT_CATALOG")
    timeout_items: Seconds = Field(DEFAULT_TIMEOUTS["items"], alias="URBIS_TIMEOUT_ITEMS")
    timeout_spatial: Seconds = Field(DEFAULT_TIMEOUTS["spatial"], alias="URBIS_TIMEOUT_SPATIAL")
    timeout_stats: Seconds = Field(DEFAULT_TIMEOUTS["stats"], alias="URBIS_TIMEOUT_STATS")
    timeout_geocode: Seconds = Field(DEFAULT_TIMEOUTS["geocode"], alias="URBIS_TIMEOUT_GEOCODE")
    timeout_tiles: Seconds = Field(DEFAULT_TIMEOUTS["tiles"], alias="URBIS_TIMEOUT_TILES")
    concurrency_items: Count = Field(DEFAULT_CONCURRENCY["items"], alias="URBIS_CONCURRENCY_ITEMS")
    concurrency_spatial: Count = Field(
        DEFAULT_CONCURRENCY["spatial"], alias="URBIS_CONCURRENCY_SPATIAL"
    )
    concurrency_stats: Count = Field(DEFAULT_CONCURRENCY["stats"], alias="URBIS_CONCURRENCY_STATS")
    concurrency_geocode: Count = Field(
        DEFAULT_CONCURRENCY["geocode"], alias="URBIS_CONCURRENCY_GEOCODE"
    )
    concurrency_tiles: Count = Field(DEFAULT_CONCURRENCY["tiles"], alias="URBIS_CONCURRENCY_TILES")
    queue_timeout: Seconds = Field(ApiSettings.queue_timeout, alias="URBIS_QUEUE_TIMEOUT")
    idle_in_transaction_timeout: Seconds = Field(
        ApiSettings.idle_in_transaction_timeout, alias="URBIS_IDLE_IN_TRANSACTION_TIMEOUT"
    )
    cpu_threads: Count = Field(ApiSettings.cpu_threads, alias="URBIS_CPU_THREADS")
    cpu_processes: Count = Field(ApiSettings.cpu_processes, alias="URBIS_CPU_PROCESSES")
    max_query_vertices: Annotated[
        int, BeforeValidator(_integer), AfterValidator(_at_least(4, "a closed ring's least"))
    ] = Field(ApiSettings.max_query_vertices, alias="URBIS_MAX_QUERY_VERTICES")
    # Jobs (zonal statistics of a collection)
    job_workers: Count = Field(ApiSettings.job_workers, alias="URBIS_JOB_WORKERS")
    job_queue: Annotated[int, BeforeValidator(_integer), AfterValidator(_at_least(0))] = Field(
        ApiSettings.job_queue, alias="URBIS_JOB_QUEUE"
    )
    job_ttl: Annotated[
        float, BeforeValidator(_number("seconds")), AfterValidator(_within_thirty_days)
    ] = Field(ApiSettings.job_ttl, alias="URBIS_JOB_TTL")
    # Unset: `jobs/` under URBIS_HOME.
    job_dir_setting: Path | None = Field(None, alias="URBIS_JOB_DIR")
    log_format: Annotated[LogFormat, BeforeValidator(_lower)] = Field(
        ApiSettings.log_format, alias="URBIS_LOG_FORMAT"
    )
    # The admin API's bearer token; unset, the admin API is not offered at all.
    admin_token: Annotated[str | None, AfterValidator(_token)] = Field(
        None, alias="URBIS_ADMIN_TOKEN", repr=False
    )
    # Fair use (RateLimit, Compression)
    rate_per_second: Annotated[
        float, BeforeValidator(_number("requests a second")), Field(ge=0, le=1_000_000)
    ] = Field(RateLimit.rate, alias="URBIS_RATE_LIMIT")
    rate_burst: Count = Field(RateLimit.burst, alias="URBIS_RATE_BURST")
    rate_limit_loopback: Flag = Field(RateLimit.loopback, alias="URBIS_RATE_LIMIT_LOOPBACK")
    compress: Flag = Field(Compression.enabled, alias="URBIS_COMPRESS")
    compress_min_bytes: Annotated[int, BeforeValidator(_integer), AfterValidator(_at_least(0))] = (
        Field(Compression.min_bytes, alias="URBIS_COMPRESS_MIN_BYTES")
    )
    # What a request may send (ServerLimits)
    max_body_bytes: Bytes = Field(ServerLimits.max_body_bytes, alias="URBIS_MAX_BODY_BYTES")
    body_timeout: Seconds = Field(ServerLimits.body_timeout, alias="URBIS_BODY_TIMEOUT")
    max_url_bytes: Bytes = Field(ServerLimits.max_url_bytes, alias="URBIS_MAX_URL_BYTES")
    max_header_bytes: Bytes = Field(ServerLimits.max_header_bytes, alias="URBIS_MAX_HEADER_BYTES")
    header_timeout: Seconds = Field(ServerLimits.header_timeout, alias="URBIS_HEADER_TIMEOUT")
    keep_alive_timeout: Bytes = Field(
        ServerLimits.keep_alive_timeout, alias="URBIS_KEEP_ALIVE_TIMEOUT"
    )
    # The sync (SyncSettings)
    http_attempts: Count = Field(SyncSettings.http_attempts, alias="URBIS_HTTP_ATTEMPTS")
    http_backoff: Annotated[float, BeforeValidator(_number("seconds")), Field(ge=0, lt=86_400)] = (
        Field(SyncSettings.http_backoff, alias="URBIS_HTTP_BACKOFF")
    )
    http_timeout: Seconds = Field(SyncSettings.http_timeout, alias="URBIS_HTTP_TIMEOUT")
    sync_statement_timeout: Seconds = Field(
        SyncSettings.statement_timeout, alias="URBIS_SYNC_STATEMENT_TIMEOUT"
    )

    # Unset: `rasters/` under URBIS_HOME, beside the embedded cluster.
    raster_dir_setting: Path | None = Field(None, alias="URBIS_RASTER_DIR")

    @property
    def raster_dir(self) -> Path:
        """Where raster layers' COGs live: URBIS_RASTER_DIR, else `<URBIS_HOME>/rasters`."""
        return (self.raster_dir_setting or self.home / "rasters").resolve()

    @property
    def job_dir(self) -> Path:
        """Where jobs write their results: URBIS_JOB_DIR, else `<URBIS_HOME>/jobs`."""
        return (self.job_dir_setting or self.home / "jobs").resolve()

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        """The settings from these variables; a ConfigError naming each one that is wrong."""
        lists = {"URBIS_TILE_ARCHIVES", "URBIS_CORS_ORIGINS", "URBIS_TRUSTED_PROXIES"}
        given = {
            name: value
            for name, value in env.items()
            if (name.startswith("URBIS_") or name in DATABASE_VARIABLES)
            and (value != "" or name in lists)
        }
        try:
            return cls.model_validate(given)
        except PydanticValidationError as exc:
            raise ConfigError(
                "\n".join(_described(error, given) for error in exc.errors())
            ) from None

    def database(self) -> DatabaseSettings:
        if self.reader_role == self.writer_role:
            raise ConfigError(
                "environment variables URBIS_DB_READER_ROLE and URBIS_DB_WRITER_ROLE name the "
                f"same role {self.reader_role!r}: the API's reader must not be the writer"
            )
        return DatabaseSettings(
            url=self.database_url,
            home=self.home.resolve(),
            allow_apt=self.allow_apt,
            api_url=self.api_database_url,
            roles=DatabaseRoles(reader=self.reader_role, writer=self.writer_role),
            read_urls=self.read_database_urls,
        )

    def limits(self) -> ServerLimits:
        return ServerLimits(**{name: getattr(self, name) for name in LIMIT_VARIABLES})

    def api(self, database_url: str, read_database_urls: tuple[str, ...] = ()) -> ApiSettings:
        """The API's settings; its URLs resolved (urbis_core.db) and handed in."""
        return ApiSettings(
            database_url=database_url,
            read_database_urls=read_database_urls,
            read_max_lag=self.read_max_lag,
            read_check_interval=self.read_check_interval,
            host=self.host,
            port=self.port,
            pool_size=self.pool_size,
            download_max_features=self.download_max_features,
            max_stats_cells=self.max_stats_cells,
            tile_cache_mb=self.tile_cache_mb,
            tile_cache_dir=self.tile_cache_dir,
            tile_archives=tuple(Path(p) for p in self.tile_archives),
            tile_max_age=self.tile_max_age,
            tile_warm_zoom=self.tile_warm_zoom,
            cors_origins=self.cors_origins,
            public_url=self.public_url,
            trusted_proxies=self.trusted_proxies,
            basemap_wmts_url=self.basemap_wmts_url,
            statement_timeouts={kind: getattr(self, f"timeout_{kind}") for kind in QUERY_KINDS},
            concurrency={
                kind: getattr(self, f"concurrency_{kind}") for kind in DEFAULT_CONCURRENCY
            },
            queue_timeout=self.queue_timeout,
            idle_in_transaction_timeout=self.idle_in_transaction_timeout,
            cpu_threads=self.cpu_threads,
            cpu_processes=self.cpu_processes,
            max_query_vertices=self.max_query_vertices,
            limits=self.limits(),
            job_workers=self.job_workers,
            job_queue=self.job_queue,
            job_ttl=self.job_ttl,
            job_dir=self.job_dir,
            log_format=self.log_format,
            rate_limit=RateLimit(
                rate=self.rate_per_second, burst=self.rate_burst, loopback=self.rate_limit_loopback
            ),
            compression=Compression(enabled=self.compress, min_bytes=self.compress_min_bytes),
        )

    def admin(self, database_url: str, config: Path) -> AdminSettings | None:
        """The admin API's settings (None without a token); `database_url` is the writer's."""
        if self.admin_token is None:
            return None
        return AdminSettings(token=self.admin_token, config=config, database_url=database_url)

    def config_path(self, option: Path | None = None) -> Path:
        """The layer configuration file: `--config`, else `URBIS_CONFIG`, else the sample's."""
        return Path(option or self.config).resolve()

    def sync(self) -> SyncSettings:
        return SyncSettings(
            http_attempts=self.http_attempts,
            http_backoff=self.http_backoff,
            http_timeout=self.http_timeout,
            statement_timeout=self.sync_statement_timeout,
            raster_dir=self.raster_dir,
        )


def _described(error: Any, given: Mapping[str, str]) -> str:
    """One problem, naming the variable and what it holds: `environment variable X='y' ...`."""
    name = str(error["loc"][0]) if error["loc"] else "?"
    words = error["msg"].removeprefix("Value error, ")
    if error["type"] not in {"value_error"}:
        words = f"is not valid: {words[0].lower()}{words[1:]}"
    if name in SECRETS:  # never echoed: it may be a real one, one character short
        return f"environment variable {name} {words}"
    return f"environment variable {name}={given.get(name)!r} {words}"
