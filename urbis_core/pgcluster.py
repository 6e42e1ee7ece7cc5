"""An embedded PostgreSQL 15 + PostGIS cluster owned by the project (`urbis db ...`).

The cluster lives under the project's `.urbis/` folder and is reused from run to run. As root,
PostgreSQL must run as the `postgres` user, and that user must be able to reach the data folder;
when the project sits somewhere `postgres` cannot enter (e.g. under /root), the data folder goes
to /var/lib/urbis/<name> and `.urbis/cluster.json` remembers where.

Besides its superuser, the cluster has the service's two roles (urbis_core.roles), each with a
password of its own: the writer owns the `urbis` database (migrations, sync), the reader is
the API's.

A cluster may also be made a streaming replica of another (`standby_of`): copied from it with
`pg_basebackup -R`, read-only, with its primary's roles and passwords. The primary must then
be started with `replication=True`.

One module of about 430 lines: making, starting, copying and stopping a cluster share one
state (its folder, port, roles and passwords, in `.urbis/cluster.json`), which no other module
should read or write.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
import psycopg.sql

from urbis_core.errors import DatabaseError
from urbis_core.settings import DatabaseRoles

PG_BIN = Path("/usr/lib/postgresql/15/bin")
POSTGIS_CONTROL = Path("/usr/share/postgresql/15/extension/postgis.control")
DEBIAN_PACKAGES = ("postgresql-15", "postgresql-15-postgis-3")
DATABASE_NAME = "urbis"
SUPERUSER = "postgres"
EXTERNAL_ROOT = Path("/var/lib/urbis")
DEFAULT_ROLES = DatabaseRoles()


def postgis_installed() -> bool:
    return (PG_BIN / "postgres").exists() and POSTGIS_CONTROL.exists()


def ensure_postgis_installed(allow_apt: bool) -> None:
    """Install PostgreSQL 15 + PostGIS 3 from Debian when missing and allowed, else explain."""
    if postgis_installed():
        return
    install = f"apt-get install {' '.join(DEBIAN_PACKAGES)}"
    if not allow_apt or os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise DatabaseError(
            f"PostgreSQL 15 with PostGIS 3 is not installed: run `sudo {install}` "
            "(or `make up`), or set DATABASE_URL to an existing PostGIS database"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *DEBIAN_PACKAGES],
    ):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise DatabaseError(f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-400:]}")
    if not postgis_installed():
        raise DatabaseError(f"`{install}` ran but PostGIS for PostgreSQL 15 is still missing")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As PostgreSQL does: a port whose old connections linger in TIME_WAIT is free to use,
        # so a restarted cluster keeps its port (and every URL pointing at it stays right).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _postgres_can_enter(folder: Path) -> bool:
    """Tell whether the `postgres` user can traverse every parent of `folder`."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    done = subprocess.run(
        ["runuser", "-u", SUPERUSER, "--", "test", "-x", str(probe)],
        cwd="/",
        capture_output=True,
    )
    return done.returncode == 0


@dataclass(frozen=True)
class ClusterState:
    """What `.urbis/cluster.json` remembers: where the data is, its port and passwords."""

    data_dir: Path
    port: int
    password: str  # the superuser's
    roles: DatabaseRoles = DEFAULT_ROLES
    writer_password: str = ""
    reader_password: str = ""

    def _url(self, user: str, password: str, dbname: str = DATABASE_NAME) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"

    @property
    def url(self) -> str:
        """The writer's: for the migrations and the sync."""
        return self._url(self.roles.writer, self.writer_password)

    @property
    def api_url(self) -> str:
        """The reader's: for the API."""
        return self._url(self.roles.reader, self.reader_password)

    def admin_url(self, dbname: str = "postgres") -> str:
        return self._url(SUPERUSER, self.password, dbname)


class EmbeddedCluster:
    """A PostgreSQL cluster under `home`.

    `durable=False` (tests only) turns fsync off; the project's own cluster keeps it on.
    `preload` names server libraries loaded at start (`shared_preload_libraries`), e.g. the
    test cluster's pg_stat_statements, which the SQL-injection suite reads.
    `replication=True` lets standbys stream from it (WAL kept for them, replication
    connections from loopback); `standby_of` makes this cluster such a standby of a running
    cluster, copied from it at `init`.
    """

    def __init__(
        self,
        home: Path,
        *,
        durable: bool = True,
        allow_apt: bool = False,
        roles: DatabaseRoles = DEFAULT_ROLES,
        preload: tuple[str, ...] = (),
        replication: bool = False,
        standby_of: ClusterState | None = None,
    ) -> None:
        self.home = home
        self.durable = durable
        self.allow_apt = allow_apt
        self.roles = roles
        self.preload = preload
        self.replication = replication
        self.standby_of = standby_of
        self.state_file = home / "cluster.json"
        self._as_root = os.geteuid() == 0

    # -- state -----------------------------------------------------------------------------
    def state(self) -> ClusterState | None:
        if not self.state_file.exists():
            return None
        raw = json.loads(self.state_file.read_text())
        # A cluster made before the roles has no passwords for them: `start` gives them.
        passwords = raw.get("role_passwords", {})
        return ClusterState(
            Path(raw["data_dir"]),
            int(raw["port"]),
            raw["password"],
            self.roles,
            writer_password=passwords.get(self.roles.writer, ""),
            reader_password=passwords.get(self.roles.reader, ""),
        )

    def _save(self, state: ClusterState) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        old = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        passwords = {
            **old.get("role_passwords", {}),
            state.roles.writer: state.writer_password,
            state.roles.reader: state.reader_password,
        }
        tmp.write_text(
            json.dumps(
                {
                    "data_dir": str(state.data_dir),
                    "port": state.port,
                    "password": state.password,
                    "role_passwords": {role: pw for role, pw in passwords.items() if pw},
                }
            )
        )
        tmp.chmod(0o600)
        tmp.replace(self.state_file)

    def _cluster_root(self) -> Path:
        inside = self.home / "postgres"
        if not self._as_root or _postgres_can_enter(self.home):
            return inside
        digest = hashlib.sha1(str(self.home).encode()).hexdigest()[:10]
        return EXTERNAL_ROOT / f"{self.home.parent.name}-{digest}"

    # -- commands --------------------------------------------------------------------------
    def _run(
        self, *args: str, check: bool = True, password: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", SUPERUSER, "--", *cmd]
        # A client program's password (pg_basebackup) in its environment, which runuser keeps,
        # not on its command line, which any user may read.
        env = None if password is None else {**os.environ, "PGPASSWORD": password}
        done = subprocess.run(cmd, cwd="/", capture_output=True, text=True, env=env)
        if check and done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()[-600:]
            raise DatabaseError(f"`{args[0]}` failed: {detail}")
        return done

    def _make_dir(self, path: Path, mode: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            shutil.chown(path, SUPERUSER, SUPERUSER)
        path.chmod(mode)

    def is_running(self) -> bool:
        state = self.state()
        if state is None or not (state.data_dir / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "status", "-D", str(state.data_dir), check=False).returncode == 0

    def init(self) -> ClusterState:
        """Create the cluster if there is none yet; return its state."""
        existing = self.state()
        if existing is not None and (existing.data_dir / "PG_VERSION").exists():
            return existing
        ensure_postgis_installed(self.allow_apt)
        root = self._cluster_root()
        data_dir = root / "data"
        if data_dir.exists():
            shutil.rmtree(data_dir)  # a half-made cluster from an interrupted init
        self._make_dir(root, 0o755)
        self._make_dir(data_dir, 0o700)
        self._make_dir(root / "sock", 0o755)
        if self.standby_of is not None:
            return self._copy_primary(self.standby_of, data_dir)
        password = secrets.token_urlsafe(18)
        pwfile = root / "initdb.pw"
        pwfile.write_text(password + "\n")
        if self._as_root:
            shutil.chown(pwfile, SUPERUSER, SUPERUSER)
        pwfile.chmod(0o600)
        try:
            self._run(
                "initdb",
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=peer",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        state = ClusterState(
            data_dir=data_dir, port=free_port(), password=password, roles=self.roles
        )
        self._write_conf(state)
        self._save(state)
        return state

    def _copy_primary(self, primary: ClusterState, data_dir: Path) -> ClusterState:
        """A standby's data folder: the primary's, streamed by pg_basebackup.

        `-R` writes `standby.signal` and the primary's conninfo; its `urbis.conf` comes along
        and is rewritten here with the standby's own port and socket folder.
        """
        self._run(
            "pg_basebackup",
            "-D",
            str(data_dir),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            SUPERUSER,
            "-X",
            "stream",
            "-R",
            "--checkpoint=fast",
            password=primary.password,
        )
        state = replace(primary, data_dir=data_dir, port=free_port(), roles=self.roles)
        self._write_conf(state)
        self._save(state)
        return state

    def _write_conf(self, state: ClusterState) -> None:
        lines = [
            "# written by urbis (urbis_core.pgcluster)",
            "listen_addresses = '127.0.0.1'",
            f"port = {state.port}",
            f"unix_socket_directories = '{state.data_dir.parent / 'sock'}'",
            "max_connections = 100",
        ]
        if not self.durable:
            lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        if self.preload:
            lines.append(f"shared_preload_libraries = '{','.join(self.preload)}'")
        if self.replication:
            # WAL kept for a standby that was away a while (restarted, or replay paused)
            lines += ["wal_level = replica", "max_wal_senders = 8", "wal_keep_size = '512MB'"]
            self._allow_replication(state.data_dir)
        if self.standby_of is not None:
            lines.append("hot_standby = on")
        (state.data_dir / "urbis.conf").write_text("\n".join(lines) + "\n")
        conf = state.data_dir / "postgresql.conf"
        text = conf.read_text()
        if "include_if_exists = 'urbis.conf'" not in text:
            conf.write_text(text + "\ninclude_if_exists = 'urbis.conf'\n")

    def _allow_replication(self, data_dir: Path) -> None:
        """Replication connections from loopback, with the password (initdb's default has it)."""
        hba = data_dir / "pg_hba.conf"
        line = "host    replication     all             127.0.0.1/32            scram-sha-256"
        text = hba.read_text()
        if line.split() not in [existing.split() for existing in text.splitlines()]:
            hba.write_text(text + "\n" + line + "\n")

    def start(self) -> ClusterState:
        """Create if needed, start if stopped, and make sure the database and PostGIS exist.

        A standby is read-only: it gets both from its primary, and is only started.
        """
        state = self.init()
        if not self.is_running():
            if not _port_is_free(state.port):
                state = replace(state, port=free_port())
                self._write_conf(state)
                self._save(state)
            log = state.data_dir.parent / "server.log"
            self._run(
                "pg_ctl", "start", "-D", str(state.data_dir), "-l", str(log), "-w", "-t", "60"
            )
        if self.standby_of is not None:
            return state
        self._ensure_database(state)
        return self._ensure_roles(state)

    def stop(self) -> bool:
        """Stop the cluster; False when it was not running."""
        state = self.state()
        if state is None or not self.is_running():
            return False
        self._run("pg_ctl", "stop", "-D", str(state.data_dir), "-m", "fast", "-w")
        return True

    def destroy(self) -> None:
        """Stop and delete the cluster (throwaway test clusters only)."""
        state = self.state()
        self.stop()
        if state is not None:
            shutil.rmtree(state.data_dir.parent, ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)

    def _ensure_database(self, state: ClusterState) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(state.admin_url(), autocommit=True) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
                    ).fetchone()
                    if not exists:
                        conn.execute(f"CREATE DATABASE {DATABASE_NAME}")
                break
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise DatabaseError(f"the embedded cluster does not answer: {exc}") from exc
                time.sleep(0.3)
        with psycopg.connect(state.admin_url(DATABASE_NAME), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    def _ensure_roles(self, state: ClusterState) -> ClusterState:
        """Both roles with their passwords; the database the writer's, with what it holds.

        A cluster made before the roles existed gets them here: its service schemas and tables
        are handed to the writer, which the sync then connects as.
        """
        from sqlalchemy import create_engine

        from urbis_core.roles import apply_roles, quoted

        state = replace(
            state,
            roles=self.roles,
            writer_password=state.writer_password or secrets.token_urlsafe(18),
            reader_password=state.reader_password or secrets.token_urlsafe(18),
        )
        with psycopg.connect(state.admin_url(DATABASE_NAME), autocommit=True) as conn:
            for role, password in (
                (self.roles.writer, state.writer_password),
                (self.roles.reader, state.reader_password),
            ):
                exists = conn.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)
                ).fetchone()
                verb = "ALTER" if exists else "CREATE"
                # A password cannot be a bound value in ALTER ROLE: psycopg quotes it as a literal.
                conn.execute(
                    psycopg.sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                        psycopg.sql.SQL(verb),
                        psycopg.sql.Identifier(role),
                        psycopg.sql.Literal(password),
                    )
                )
            conn.execute(f"ALTER DATABASE {DATABASE_NAME} OWNER TO {quoted(self.roles.writer)}")
        self._save(state)
        engine = create_engine(
            state.admin_url(DATABASE_NAME).replace("postgresql://", "postgresql+psycopg://", 1)
        )
        try:
            with engine.begin() as conn:
                apply_roles(conn, self.roles)
        finally:
            engine.dispose()
        return state
