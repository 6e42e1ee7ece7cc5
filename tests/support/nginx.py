"""A real nginx reverse proxy in front of the API: for tests of links behind a proxy, and the
project's shipped configuration (deploy/nginx/urbis.conf) with its cache.

    with NginxProxy(api_base, tmp_path, {"/urbis/": {"X-Forwarded-Prefix": "/urbis", ...}}) as p:
        httpx.get(f"{p.url}/urbis/collections")

Each location passes requests to the API (with the location's prefix stripped, as a proxy that
publishes an API under a path does) and sets the given request headers; the value `$proxy`
stands for the proxy's own `host:port` as clients reach it. nginx runs unprivileged on a free
loopback port with its pid, logs and temporary files under its own folder (Debian's
`nginx-light`, installed by scripts/install-system-deps.sh), and is stopped on exit.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from urbis_core.pgcluster import free_port

NGINX = "/usr/sbin/nginx"
SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "urbis.conf"


class Nginx:
    """nginx on a free loopback port with `http_body` inside `http {}`, stopped on exit.

    `listen` in the body is where nginx listens (`self.port`); pid, logs, temporary files and
    caches live under its own folder. One worker of 64 connections suits a test's few
    clients; a load test gives Debian's nginx.conf defaults (`worker_processes auto`, 768
    connections each: a proxied request holds two, the client's and the API's).
    """

    def __init__(self, workdir: Path, processes: str = "1", connections: int = 64) -> None:
        self.processes = processes
        self.connections = connections
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.listen = f"127.0.0.1:{self.port}"
        self.prefix = Path(tempfile.mkdtemp(prefix="nginx-", dir=workdir))
        self.prefix.chmod(0o755)

    def http_body(self) -> str:
        raise NotImplementedError

    def _config(self) -> str:
        temp = self.prefix / "tmp"
        temps = "".join(
            f"  {kind}_temp_path {temp / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return (
            f"pid {self.prefix / 'nginx.pid'};\nerror_log {self.prefix / 'error.log'};\n"
            # as root, workers would run as nobody, who cannot enter the test's folders
            f"{'user root;' if os.geteuid() == 0 else ''}\n"
            f"worker_processes {self.processes};\n"
            f"events {{ worker_connections {self.connections}; }}\n"
            f"http {{\n  access_log off;\n{temps}{self.http_body()}}}\n"
        )

    def __enter__(self) -> Self:
        for folder in ("tmp", "cache"):
            (self.prefix / folder).mkdir()
        conf = self.prefix / "nginx.conf"
        conf.write_text(self._config())
        subprocess.run(
            [NGINX, "-p", str(self.prefix), "-c", str(conf)],
            check=True,
            capture_output=True,
            timeout=30,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(self.url, timeout=1)
                return self
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        "nginx did not start: " + (self.prefix / "error.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.05)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        subprocess.run(
            [NGINX, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"), "-s", "stop"],
            capture_output=True,
            timeout=30,
        )
        pid_file = self.prefix / "nginx.pid"
        deadline = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(self.prefix, ignore_errors=True)


class NginxProxy(Nginx):
    """Locations passing requests to the API with their prefix stripped, with set headers."""

    def __init__(self, upstream: str, workdir: Path, locations: dict[str, dict[str, str]]) -> None:
        super().__init__(workdir)
        self.upstream = upstream.rstrip("/")
        self.locations = locations

    def http_body(self) -> str:
        blocks = []
        for path, headers in self.locations.items():
            sets = "".join(
                f'      proxy_set_header {name} "{_quoted(value, self.listen)}";\n'
                for name, value in headers.items()
            )
            blocks.append(
                f"    location {path} {{\n      proxy_pass {self.upstream}/;\n"
                f"      proxy_http_version 1.1;\n      proxy_buffering off;\n"
                f"{sets}    }}\n"
            )
        return f"  server {{\n    listen {self.listen};\n{''.join(blocks)}  }}\n"


class ShippedNginx(Nginx):
    """nginx with the project's own deploy/nginx/urbis.conf in front of the API at `upstream`.

    Only the lines the file marks `# test:` change: the cache folder, the API's address and
    where nginx listens. Anything else the file says is what the test runs.
    """

    def __init__(
        self, upstream: str, workdir: Path, processes: str = "1", connections: int = 64
    ) -> None:
        super().__init__(workdir, processes, connections)
        self.upstream = httpx.URL(upstream)

    def http_body(self) -> str:
        shipped = SHIPPED_CONFIG.read_text()
        marked = {
            "cache": (r"proxy_cache_path \S+", f"proxy_cache_path {self.prefix / 'cache'}"),
            "api": (r"server \S+;", f"server {self.upstream.host}:{self.upstream.port};"),
            "listen": (r"listen \S+;", f"listen {self.listen};"),
        }
        lines = []
        for line in shipped.splitlines():
            found = re.search(r"# test: (\w+)$", line)
            if found:
                pattern, replacement = marked[found.group(1)]
                line, count = re.subn(pattern, replacement, line)
                assert count == 1, f"deploy/nginx/urbis.conf: cannot change the line {line!r}"
            lines.append(line)
        return "\n".join(lines) + "\n"


def _quoted(value: str, proxy: str) -> str:
    """A header value inside nginx's double quotes, `$proxy` being the proxy's host:port."""
    return value.replace("$proxy", proxy).replace("\\", "\\\\").replace('"', '\\"')
