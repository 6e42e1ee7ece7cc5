"""The reader and writer roles of a service database, and what each may do.

The writer runs the migrations and the sync: it owns the service schemas and may use temporary
tables. The reader is the API's: USAGE on the schemas it reads and SELECT on their tables,
today's and those the sync makes later (default privileges), nothing else: no CREATE in any
schema, no TEMP, no membership in PostgreSQL's file or program roles. README "Database roles".

Applied by migration 0007 and again by every `urbis migrate`, so that roles an admin makes
after the first migration get their grants. Each step is idempotent and runs in a savepoint: a
step the migrating role may not do is said in a log line, and the others still happen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from urbis_core.settings import DatabaseRoles

log = logging.getLogger("urbis.roles")

# The schemas the API reads (layers, their history, the catalog), and the one only the sync uses.
READ_SCHEMAS = ("urbis", "urbis_history", "urbis_meta")
SERVICE_SCHEMAS = (*READ_SCHEMAS, "urbis_staging")
VERSION_TABLE = "public.urbis_alembic_version"
# PostgreSQL's roles that read or write server files or run programs: never the reader's.
SERVER_ACCESS_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program")


@dataclass(frozen=True)
class Migrator:
    """The role running the migration, and what it may do with roles."""

    name: str
    superuser: bool
    createrole: bool

    @property
    def may_create_roles(self) -> bool:
        return self.superuser or self.createrole


def quoted(name: str) -> str:
    """An identifier for statements that take no bound values (GRANT, ALTER ... OWNER)."""
    return '"' + name.replace('"', '""') + '"'


def apply_roles(conn: Connection, roles: DatabaseRoles) -> None:
    """Create the roles when allowed, then give each what it may do in this database."""
    me = _migrator(conn)
    present = {role for role in (roles.writer, roles.reader) if _ensure_role(conn, role, me)}
    database = quoted(str(conn.execute(text("SELECT current_database()")).scalar_one()))
    if roles.writer in present:
        _equip_writer(conn, roles.writer, me, database)
    if roles.reader in present:
        _equip_reader(conn, roles, me, database, writer_present=roles.writer in present)
    _close_public(conn, database)
    if roles.reader in present:
        _check_reader(conn, roles.reader, database)


def revoke_defaults(conn: Connection, roles: DatabaseRoles) -> None:
    """Undo the default privileges the migrating role gave (migration 0007's downgrade)."""
    if _role_exists(conn, roles.reader):
        _step(
            conn,
            "",
            f"ALTER DEFAULT PRIVILEGES REVOKE SELECT ON TABLES FROM {quoted(roles.reader)}",
        )
    if _role_exists(conn, roles.writer) and _migrator(conn).name != roles.writer:
        _step(
            conn, "", f"ALTER DEFAULT PRIVILEGES REVOKE ALL ON TABLES FROM {quoted(roles.writer)}"
        )


def _migrator(conn: Connection) -> Migrator:
    row = conn.execute(
        text("SELECT rolname, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user")
    ).one()
    return Migrator(name=row[0], superuser=row[1], createrole=row[2])


def _role_exists(conn: Connection, role: str) -> bool:
    found = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
    return found is not None


def _ensure_role(conn: Connection, role: str, me: Migrator) -> bool:
    """Whether the role exists now: made here (without a password) when the migrator may."""
    if _role_exists(conn, role):
        return True
    if not me.may_create_roles:
        log.warning(
            "role %s does not exist and %s may not create roles (it has neither CREATEROLE nor "
            "SUPERUSER): going on without it; an admin can create it (README, Database roles) "
            "and `urbis migrate` then gives it its privileges",
            role,
            me.name,
        )
        return False
    # Roles are cluster-wide: another database's migration may make it at the same moment.
    made = _step(
        conn,
        f"create role {role}",
        "DO $$ BEGIN "
        f"CREATE ROLE {quoted(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
        "NOBYPASSRLS; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
    )
    if made:
        log.info("created role %s (LOGIN, no password: give it one, README Database roles)", role)
    return made


def _may_act_as(conn: Connection, me: Migrator, role: str) -> bool:
    if me.superuser or me.name == role:
        return True
    return bool(
        conn.execute(
            text("SELECT pg_has_role(current_user, :r, 'MEMBER')"), {"r": role}
        ).scalar_one()
    )


def _equip_writer(conn: Connection, writer: str, me: Migrator, database: str) -> None:
    who = quoted(writer)
    if me.name != writer and _may_act_as(conn, me, writer):
        _hand_over(conn, writer)
    _step(
        conn, f"let {writer} connect", f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {who}"
    )
    for schema in _existing(conn, SERVICE_SCHEMAS):
        _steps(
            conn,
            f"give {writer} schema {schema}",
            f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {who}",
            f"GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {who}",
            f"GRANT ALL ON ALL SEQUENCES IN SCHEMA {schema} TO {who}",
        )
    if _relation_exists(conn, VERSION_TABLE):
        _step(conn, f"give {writer} {VERSION_TABLE}", f"GRANT ALL ON {VERSION_TABLE} TO {who}")
    if me.name != writer:
        # What a later migration run by this role creates, the writer may still fill.
        _steps(
            conn,
            f"default privileges of {me.name} for {writer}",
            f"ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO {who}",
            f"ALTER DEFAULT PRIVILEGES GRANT ALL ON SEQUENCES TO {who}",
        )


def _hand_over(conn: Connection, writer: str) -> None:
    """The service schemas and their tables become the writer's: the sync drops and swaps them."""
    who = quoted(writer)
    for schema in _existing(conn, SERVICE_SCHEMAS):
        _step(conn, f"hand schema {schema} to {writer}", f"ALTER SCHEMA {schema} OWNER TO {who}")
    owned = conn.execute(
        text(
            "SELECT format('%I.%I', n.nspname, c.relname), c.relkind FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE (n.nspname = ANY(:schemas) OR "
            "       (n.nspname = 'public' AND c.relname = 'urbis_alembic_version')) "
            "AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relowner <> CAST(:writer AS regrole)"
        ),
        {"schemas": list(SERVICE_SCHEMAS), "writer": writer},
    ).all()
    for name, kind in owned:
        keyword = {"v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE"}.get(kind, "TABLE")
        _step(conn, f"hand {name} to {writer}", f"ALTER {keyword} {name} OWNER TO {who}")


def _equip_reader(
    conn: Connection, roles: DatabaseRoles, me: Migrator, database: str, *, writer_present: bool
) -> None:
    who = quoted(roles.reader)
    _step(conn, f"let {roles.reader} connect", f"GRANT CONNECT ON DATABASE {database} TO {who}")
    for schema in _existing(conn, READ_SCHEMAS):
        _steps(
            conn,
            f"let {roles.reader} read schema {schema}",
            f"GRANT USAGE ON SCHEMA {schema} TO {who}",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {who}",
        )
    if _relation_exists(conn, VERSION_TABLE):
        # So that the API can tell whether the database is migrated.
        _step(
            conn,
            f"let {roles.reader} read the version",
            f"GRANT SELECT ON {VERSION_TABLE} TO {who}",
        )
    # Tables made later (a new layer, a rebuilt one, the next migration's) are readable too.
    # Not per schema: the sync builds a table in urbis_staging and moves it into urbis, and
    # privileges come with a table from where it was made; without USAGE on urbis_staging
    # the reader cannot reach the tables still there.
    _step(
        conn,
        f"default privileges of {me.name} for {roles.reader}",
        f"ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO {who}",
    )
    if writer_present and me.name != roles.writer:
        if _may_act_as(conn, me, roles.writer):
            _step(
                conn,
                f"default privileges of {roles.writer} for {roles.reader}",
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {quoted(roles.writer)} "
                f"GRANT SELECT ON TABLES TO {who}",
            )
        else:
            log.warning(
                "%s may not set the default privileges of %s: tables the sync makes as %s will "
                "not be readable by %s until `urbis migrate` runs as %s or a superuser",
                me.name,
                roles.writer,
                roles.writer,
                roles.reader,
                roles.writer,
            )


def _close_public(conn: Connection, database: str) -> None:
    """What every role may do by default and the reader must not: CREATE in public, TEMP.

    Only the database's owner (or a superuser) can take these from PUBLIC; the writer and the
    owner keep TEMP by their own grants.
    """
    _steps(
        conn,
        "take CREATE on schema public and TEMP from PUBLIC",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC",
    )


def _check_reader(conn: Connection, reader: str, database: str) -> None:
    """Say what the reader may still do that it should not (given to it by someone else)."""
    row = conn.execute(
        text(
            "SELECT r.rolsuper, has_database_privilege(r.oid, current_database(), 'CREATE'), "
            "has_database_privilege(r.oid, current_database(), 'TEMP'), "
            "has_schema_privilege(r.oid, 'public', 'CREATE'), "
            "(SELECT array_agg(s) FROM unnest(CAST(:server AS text[])) s "
            " WHERE pg_has_role(r.oid, s, 'MEMBER')) "
            "FROM pg_roles r WHERE r.rolname = :reader"
        ),
        {"reader": reader, "server": list(SERVER_ACCESS_ROLES)},
    ).one()
    superuser, create_db, temp, create_public, server_roles = row
    problems = [
        *(["it is a SUPERUSER"] if superuser else []),
        *([f"CREATE on database {database}"] if create_db else []),
        *([f"TEMP on database {database}"] if temp else []),
        *(["CREATE on schema public"] if create_public else []),
        *([f"member of {', '.join(server_roles)}"] if server_roles else []),
    ]
    if problems:
        log.warning(
            "the API's role %s may do more than read: %s (README, Database roles)",
            reader,
            "; ".join(problems),
        )


def _existing(conn: Connection, schemas: Iterable[str]) -> list[str]:
    found = conn.execute(
        text("SELECT nspname FROM pg_namespace WHERE nspname = ANY(:s)"), {"s": list(schemas)}
    ).scalars()
    there = set(found)
    return [schema for schema in schemas if schema in there]


def _relation_exists(conn: Connection, name: str) -> bool:
    return conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None


def _steps(conn: Connection, what: str, *statements: str) -> bool:
    return all([_step(conn, what, statement) for statement in statements])


def _step(conn: Connection, what: str, statement: str) -> bool:
    """Run one statement in a savepoint; what the role may not do is logged, not raised."""
    try:
        with conn.begin_nested():
            conn.execute(text(statement))
    except DBAPIError as exc:
        cause = getattr(exc, "orig", None) or exc
        log.warning("could not %s: %s", what or statement, str(cause).strip().splitlines()[0])
        return False
    return True
