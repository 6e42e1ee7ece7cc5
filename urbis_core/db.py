"""Database URLs and engines.

Users give a plain libpq URL (`postgresql://user@host:port/dbname`); SQLAlchemy needs the
driver named, so the conversion happens here and nowhere else.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError

from urbis_core.errors import DatabaseError
from urbis_core.pgcluster import ClusterState, EmbeddedCluster
from urbis_core.settings import DatabaseSettings

log = logging.getLogger(__name__)

LAYER_SCHEMA = "urbis"
META_SCHEMA = "urbis_meta"
STAGING_SCHEMA = "urbis_staging"
HISTORY_SCHEMA = "urbis_history"


def sqlalchemy_url(url: str) -> str:
    """`postgresql://...` -> `postgresql+psycopg://...` (psycopg 3, sync and async)."""
    try:
        parsed = make_url(url)
    except Exception:
        raise DatabaseError(f"DATABASE_URL is not a valid URL: {url!r}") from None
    if parsed.get_backend_name() not in {"postgresql", "postgres"}:
        raise DatabaseError(f"DATABASE_URL must be a postgresql:// URL, not {parsed.drivername}")
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def create_sync_engine(
    url: str,
    *,
    statement_timeout: float | None = None,
    application_name: str = "urbis",
    **kwargs: object,
) -> Engine:
    """An engine; with `statement_timeout` (seconds), no statement of it runs longer.

    Its sessions show as `application_name` in pg_stat_activity (`urbis-sync`, ...), unless
    the URL names one of its own (libpq's fallback_application_name).
    """
    connect_args: dict[str, str] = {"fallback_application_name": application_name}
    if statement_timeout is not None:
        connect_args["options"] = session_options(statement_timeout)
    return create_engine(
        sqlalchemy_url(url), pool_pre_ping=True, connect_args=connect_args, **kwargs
    )


def session_options(
    statement_timeout: float,
    idle_in_transaction: float | None = None,
    application_name: str | None = None,
    **others: str,
) -> str:
    """Libpq `options` setting these for every session of a pool (timeouts in seconds)."""
    settings = {"statement_timeout": f"{round(statement_timeout * 1000)}ms", **others}
    if idle_in_transaction is not None:
        settings["idle_in_transaction_session_timeout"] = f"{round(idle_in_transaction * 1000)}ms"
    if application_name is not None:
        settings["application_name"] = application_name
    return " ".join(f"-c {name}={value}" for name, value in settings.items())


def ensure_postgis(engine: Engine) -> None:
    """Create the PostGIS extension when missing; explain clearly when that is not allowed."""
    try:
        with engine.begin() as conn:
            installed = conn.execute(
                text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")
            ).scalar()
            if not installed:
                conn.execute(text("CREATE EXTENSION postgis"))
    except OperationalError as exc:
        raise DatabaseError(f"cannot connect to the database: {first_line(exc)}") from exc
    except DBAPIError as exc:
        raise DatabaseError(
            f"PostGIS is missing and could not be created: {first_line(exc)}"
        ) from exc


def resolve_database_url(settings: DatabaseSettings, *, start: bool = True) -> str:
    """The writer's URL, for migrations and the sync.

    `DATABASE_URL`, or the embedded cluster's (started when `start`).
    """
    if settings.url:
        return settings.url
    return _embedded_state(settings, start).url


def resolve_api_database_url(settings: DatabaseSettings, *, start: bool = True) -> str:
    """The reader's URL, for the API: `DATABASE_URL_API`, or the embedded cluster's reader.

    With only `DATABASE_URL` set (a deployment from before the roles), the API uses it and
    says, once, that it could write.
    """
    if settings.api_url:
        return settings.api_url
    if settings.url:
        log.warning(
            "DATABASE_URL_API is not set: the API connects with DATABASE_URL, a role that may "
            "write; give it the reader role (README, Database roles)"
        )
        return settings.url
    return _embedded_state(settings, start).api_url


def resolve_read_database_urls(read_urls: tuple[str, ...], api_url: str) -> tuple[str, ...]:
    """The replicas' URLs (`DATABASE_URL_READ`), whole: the API reads as its reader there too.

    Roles replicate with everything else, so a replica's URL without a user (or database)
    takes the reader's user and password (and database) from the API's own URL.
    """
    reader = make_url(sqlalchemy_url(api_url))
    whole = []
    for raw in read_urls:
        url = make_url(sqlalchemy_url(raw))
        if url.username is None:
            url = url.set(username=reader.username, password=reader.password)
        if not url.database:
            url = url.set(database=reader.database)
        whole.append(url.set(drivername="postgresql").render_as_string(hide_password=False))
    return tuple(whole)


def _embedded_state(settings: DatabaseSettings, start: bool) -> ClusterState:
    cluster = EmbeddedCluster(settings.home, allow_apt=settings.allow_apt, roles=settings.roles)
    if start:
        return cluster.start()
    state = cluster.state()
    if state is None:
        raise DatabaseError("no embedded database yet: run `urbis db start` or set DATABASE_URL")
    return state


def first_line(exc: BaseException) -> str:
    """The first line of what the database (or its driver) said."""
    cause = getattr(exc, "orig", None) or exc
    return str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
