"""Settings, one object per concern, read from the environment and passed explicitly.

Nothing here is a module-level singleton: the CLI builds the settings once and hands them to
whatever needs them; tests build their own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

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
LOOPBACK = ("127.0.0.0/8", "::1/128")  # the peers trusted as proxies unless told otherwise


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _list(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated variable's items (an empty value: none; unset: `default`)."""
    raw = env.get(name)
    if raw is None:
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def timeout_variable(kind: str) -> str:
    """The environment variable of a kind of query's statement timeout."""
    return f"URBIS_TIMEOUT_{kind.upper()}"


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"environment variable {name}={raw!r} is not a number of seconds"
        ) from None
    if not 0 < value < 86_400:
        raise ConfigError(
            f"environment variable {name}={raw!r} must be more than 0 and "
            "less than a day (in seconds)"
        )
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer") from None


@dataclass(frozen=True)
class DatabaseSettings:
    """Which database to use.

    `url` is the libpq URL from `DATABASE_URL`; when it is None the CLI runs an embedded
    PostgreSQL + PostGIS cluster under `home` (the project's `.urbis/` folder).
    """

    url: str | None
    home: Path
    allow_apt: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> DatabaseSettings:
        url = env.get("DATABASE_URL") or None
        home = Path(env.get("URBIS_HOME") or PROJECT_ROOT / ".urbis").resolve()
        # Installing Debian packages needs root; URBIS_ALLOW_APT=0 forbids it even then.
        allow_apt = _flag(env.get("URBIS_ALLOW_APT"), default=os.geteuid() == 0)
        return cls(url=url, home=home, allow_apt=allow_apt)


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
        for name in (
            "max_body_bytes",
            "max_url_bytes",
            "max_header_bytes",
            "body_timeout",
            "header_timeout",
            "keep_alive_timeout",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"{LIMIT_VARIABLES[name]} must be more than 0, not {getattr(self, name)}"
                )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ServerLimits:
        d, var = cls(), LIMIT_VARIABLES
        return cls(
            max_body_bytes=_int(env, var["max_body_bytes"], d.max_body_bytes),
            body_timeout=_seconds(env, var["body_timeout"], d.body_timeout),
            max_url_bytes=_int(env, var["max_url_bytes"], d.max_url_bytes),
            max_header_bytes=_int(env, var["max_header_bytes"], d.max_header_bytes),
            header_timeout=_seconds(env, var["header_timeout"], d.header_timeout),
            keep_alive_timeout=_int(env, var["keep_alive_timeout"], d.keep_alive_timeout),
        )


LIMIT_VARIABLES = {
    "max_body_bytes": "URBIS_MAX_BODY_BYTES",
    "body_timeout": "URBIS_BODY_TIMEOUT",
    "max_url_bytes": "URBIS_MAX_URL_BYTES",
    "max_header_bytes": "URBIS_MAX_HEADER_BYTES",
    "header_timeout": "URBIS_HEADER_TIMEOUT",
    "keep_alive_timeout": "URBIS_KEEP_ALIVE_TIMEOUT",
}


@dataclass(frozen=True)
class ApiSettings:
    """How the geo-API serves: address, pool size, paging limits, static front-end files."""

    database_url: str
    host: str = "127.0.0.1"
    port: int = 8000
    pool_size: int = 10
    default_limit: int = 10
    max_limit: int = MAX_ITEMS_LIMIT
    # CSV and GeoPackage downloads stream the whole selection up to this many features; past
    # it they answer 413 rather than a part of it.
    download_max_features: int = MAX_DOWNLOAD_FEATURES
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

    @classmethod
    def from_env(cls, database_url: str, env: Mapping[str, str] = os.environ) -> ApiSettings:
        download_max = _int(env, "URBIS_DOWNLOAD_MAX_FEATURES", MAX_DOWNLOAD_FEATURES)
        if download_max < 1:
            raise ConfigError("URBIS_DOWNLOAD_MAX_FEATURES must be at least 1")
        concurrency = {
            kind: _int(env, f"URBIS_CONCURRENCY_{kind.upper()}", default)
            for kind, default in DEFAULT_CONCURRENCY.items()
        }
        if min(concurrency.values()) < 1:
            raise ConfigError("URBIS_CONCURRENCY_* must be at least 1")
        pool_size = _int(env, "URBIS_DB_POOL_SIZE", 10)
        if pool_size < 3:
            raise ConfigError(
                "URBIS_DB_POOL_SIZE must be at least 3 (two are kept for cheap requests)"
            )
        return cls(
            database_url=database_url,
            host=env.get("URBIS_HOST") or "127.0.0.1",
            port=_int(env, "URBIS_PORT", 8000),
            pool_size=pool_size,
            download_max_features=download_max,
            tile_cache_mb=_int(env, "URBIS_TILE_CACHE_MB", 256),
            tile_cache_dir=Path(env["URBIS_TILE_CACHE_DIR"])
            if env.get("URBIS_TILE_CACHE_DIR")
            else None,
            tile_archives=tuple(Path(p) for p in _list(env, "URBIS_TILE_ARCHIVES", ())),
            tile_max_age=_int(env, "URBIS_TILE_MAX_AGE", 0),
            tile_warm_zoom=_int(env, "URBIS_TILE_WARM_ZOOM", 11),
            cors_origins=_list(env, "URBIS_CORS_ORIGINS", ("*",)),
            public_url=env.get("URBIS_PUBLIC_URL") or None,
            trusted_proxies=_list(env, "URBIS_TRUSTED_PROXIES", LOOPBACK),
            statement_timeouts={
                kind: _seconds(env, timeout_variable(kind), default)
                for kind, default in DEFAULT_TIMEOUTS.items()
            },
            concurrency=concurrency,
            queue_timeout=_seconds(env, "URBIS_QUEUE_TIMEOUT", 5.0),
            idle_in_transaction_timeout=_seconds(env, "URBIS_IDLE_IN_TRANSACTION_TIMEOUT", 120.0),
            cpu_threads=max(1, _int(env, "URBIS_CPU_THREADS", 4)),
            cpu_processes=max(1, _int(env, "URBIS_CPU_PROCESSES", 2)),
            max_query_vertices=max(4, _int(env, "URBIS_MAX_QUERY_VERTICES", 20_000)),
            limits=ServerLimits.from_env(env),
        )


@dataclass(frozen=True)
class SyncSettings:
    """How the sync talks to network sources."""

    http_attempts: int = 5
    http_backoff: float = 1.0
    http_timeout: float = 60.0
    # The sync writes whole layers in one transaction: its statements get far longer than
    # the API's, but not for ever (a lock never released, a runaway diff).
    statement_timeout: float = 1800.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SyncSettings:
        return cls(
            http_attempts=_int(env, "URBIS_HTTP_ATTEMPTS", 5),
            http_backoff=float(env.get("URBIS_HTTP_BACKOFF") or 1.0),
            http_timeout=float(env.get("URBIS_HTTP_TIMEOUT") or 60.0),
            statement_timeout=_seconds(env, "URBIS_SYNC_STATEMENT_TIMEOUT", 1800.0),
        )


def config_path(option: Path | None = None, env: Mapping[str, str] = os.environ) -> Path:
    """The layer configuration file: `--config`, else `URBIS_CONFIG`, else the sample's."""
    raw = option or env.get("URBIS_CONFIG")
    return Path(raw).resolve() if raw else DEFAULT_CONFIG
