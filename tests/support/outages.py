"""A database going away and coming back, as an outage does, for servers under test."""

from __future__ import annotations

import psycopg


def database_away(admin_url: str, name: str, away: bool) -> None:
    """The database refuses new sessions and loses its open ones, as in an outage."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if away else "true"}')
        if away:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
