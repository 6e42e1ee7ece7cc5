"""What the load benchmark's clients talk to (bench.load_bench): one `urbis serve`, or the whole
of a scaled-out deployment (issue 17): a streaming replica of the database, `urbis serve
--workers 2` reading from it, and nginx with the shipped deploy/nginx/urbis.conf in front.

    with serving(Stack.whole(), url, reader_url, config, rundir, primary) as served:
        ...  # clients ask served.base (nginx), the bench's own checks may ask served.api

The replica is copied from the primary after the layers are loaded (`pg_basebackup -R`,
urbis_core.pgcluster's `standby_of=`), so it starts with what the primary holds and streams
every later change; the API finds it through `DATABASE_URL_READ` (no user in the URL: the
reader's is taken from `DATABASE_URL_API`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import api_peers
from bench.load_sync import CHANGED
from tests.support.nginx import ShippedNginx
from urbis_core.pgcluster import ClusterState, EmbeddedCluster, free_port


@dataclass(frozen=True)
class Stack:
    """How the service is deployed for the run."""

    workers: int = 1  # `urbis serve --workers N`
    nginx: bool = False  # deploy/nginx/urbis.conf in front; the clients ask it
    replica: bool = False  # one streaming replica serving the reads (DATABASE_URL_READ)
    # the replica's hot_standby_feedback: the primary keeps the rows its queries still see, so
    # replaying the primary's cleanup neither waits for them nor cancels them
    feedback: bool = False

    @classmethod
    def whole(cls) -> Stack:
        return cls(workers=2, nginx=True, replica=True)

    @property
    def name(self) -> str:
        parts = [f"{self.workers} API process{'es' if self.workers > 1 else ''}"]
        parts += ["nginx (deploy/nginx/urbis.conf)"] if self.nginx else []
        if self.replica:
            feedback = ", hot_standby_feedback on" if self.feedback else ""
            parts.append(f"1 streaming replica{feedback}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Served:
    base: str  # where the clients send their requests (nginx when it is in front)
    api: str  # the API itself (its port: any of its processes)
    group: int  # the API's process group (its processes' CPU)
    replica_admin: str | None  # the replica's superuser URL, for the bench's own looks at it


@contextmanager
def serving(
    stack: Stack,
    url: str,
    reader_url: str,
    config: Path,
    rundir: Path,
    primary: ClusterState | None,
    settings: tuple[tuple[str, str], ...] = (),
) -> Iterator[Served]:
    """The service as `stack` says, on the loaded database; stopped on leaving."""
    with ExitStack() as stack_of:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DATABASE_URL_API": reader_url,
            "URBIS_CONFIG": str(config),
        }
        replica_admin = None
        if stack.replica:
            if primary is None:
                raise SystemExit("a replica needs the primary's cluster (replication on)")
            standby = stack_of.enter_context(standby_of(primary, stack.feedback))
            env["DATABASE_URL_READ"] = f"postgresql://127.0.0.1:{standby.port}"
            replica_admin = standby.admin_url(database_of(url))
        port = free_port()
        env["URBIS_PORT"] = str(port)
        cmd = [str(api_peers.URBIS), "serve", "--host", "127.0.0.1", "--port", str(port)]
        if stack.workers > 1:
            cmd += ["--workers", str(stack.workers)]
        spec = api_peers.ServerSpec("ours", cmd, {**env, **dict(settings)}, "/readyz", CHANGED)
        server = stack_of.enter_context(api_peers.running(spec, port, rundir / "serve.log"))
        base = server.base
        if stack.nginx:
            # Debian's nginx.conf around the shipped site: the test harness's 64 connections
            # would refuse 50 clients (each request through nginx holds two)
            nginx = ShippedNginx(server.base, rundir, processes="auto", connections=768)
            base = stack_of.enter_context(nginx).url
        yield Served(base, server.base, server.group, replica_admin)


def database_of(url: str) -> str:
    from sqlalchemy import make_url

    return str(make_url(url).database)


@contextmanager
def replicated_cluster(prefix: str) -> Iterator[tuple[str, int, ClusterState]]:
    """A throwaway primary (fsync off) that standbys may stream from: its admin URL, its
    postmaster's pid and its state (which `standby_of` copies)."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home, durable=False, replication=True)
    try:
        state = cluster.start()
        postmaster = int((state.data_dir / "postmaster.pid").read_text().split()[0])
        yield state.admin_url(), postmaster, state
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def standby_of(primary: ClusterState, feedback: bool = False) -> Iterator[ClusterState]:
    """A standby streaming from `primary`, copied from it now; destroyed on leaving."""
    home = Path(tempfile.mkdtemp(prefix="urbis-load-bench-standby-"))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home, durable=False, standby_of=primary)
    try:
        state = cluster.init()
        if feedback:  # read at start: postgresql.auto.conf, as ALTER SYSTEM would write it
            with (state.data_dir / "postgresql.auto.conf").open("a") as auto:
                auto.write("hot_standby_feedback = on\n")
        yield cluster.start()
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)
