"""A real nginx reverse proxy in front of the API, for tests of links behind a proxy.

    with NginxProxy(api_base, tmp_path, {"/urbis/": {"X-Forwarded-Prefix": "/urbis", ...}}) as p:
        httpx.get(f"{p.url}/urbis/collections")

Each location passes requests to the API (with the location's prefix stripped, as a proxy that
publishes an API under a path does) and sets the given request headers; the value `$proxy`
stands for the proxy's own `host:port` as clients reach it. nginx runs unprivileged on a free
loopback port with its pid, logs and temporary files under its own folder (Debian's
`nginx-light`, installed by scripts/install-system-deps.sh), and is stopped on exit.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from urbis_core.pgcluster import free_port

NGINX = "/usr/sbin/nginx"


class NginxProxy:
    def __init__(self, upstream: str, workdir: Path, locations: dict[str, dict[str, str]]) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = Path(tempfile.mkdtemp(prefix="nginx-", dir=workdir))
        self.prefix.chmod(0o755)
        self.locations = locations

    def _config(self) -> str:
        proxy = f"127.0.0.1:{self.port}"
        blocks = []
        for path, headers in self.locations.items():
            sets = "".join(
                f'      proxy_set_header {name} "{_quoted(value, proxy)}";\n'
                for name, value in headers.items()
            )
            blocks.append(
                f"    location {path} {{\n      proxy_pass {self.upstream}/;\n"
                f"      proxy_http_version 1.1;\n      proxy_buffering off;\n"
                f"{sets}    }}\n"
            )
        temp = self.prefix / "tmp"
        temps = "".join(
            f"  {kind}_temp_path {temp / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return (
            f"pid {self.prefix / 'nginx.pid'};\nerror_log {self.prefix / 'error.log'};\n"
            "worker_processes 1;\nevents { worker_connections 64; }\n"
            f"http {{\n  access_log off;\n{temps}"
            f"  server {{\n    listen {proxy};\n{''.join(blocks)}  }}\n}}\n"
        )

    def __enter__(self) -> NginxProxy:
        (self.prefix / "tmp").mkdir()
        (self.prefix / "tmp").chmod(0o777)  # the workers run as nobody when started as root
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


def _quoted(value: str, proxy: str) -> str:
    """A header value inside nginx's double quotes, `$proxy` being the proxy's host:port."""
    return value.replace("$proxy", proxy).replace("\\", "\\\\").replace('"', '\\"')
