"""The three API servers the API benchmark compares, each started as its own subprocess.

- ours: `urbis serve` (uvicorn, one process), from the project's virtualenv;
- tipg: `uvicorn` on tipg's app (one process), in its own virtualenv;
- pygeoapi: gunicorn with one gthread worker on pygeoapi's Flask app (its documented
  production set-up; the gunicorn master only supervises), in its own virtualenv;
- titiler: `uvicorn` on `titiler.application` (one process), in its own virtualenv, for the
  raster tile benchmark (bench.raster_bench).

The peers' virtualenvs are created under `<workdir>/peers/<name>` on first use and reused after,
never in the project's: their dependencies (FastAPI, SQLAlchemy, pydantic...) must not bend ours.
Versions are pinned so that figures from two runs compare; uvicorn is pinned to the project's
own version, so ours and tipg run on the same HTTP server code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
import yaml
from sqlalchemy import make_url

from urbis_core.pgcluster import free_port

URBIS = Path(sys.executable).parent / "urbis"
TIPG_VERSION = "1.6.1"
PYGEOAPI_VERSION = "0.21.0"
TITILER_VERSION = "2.4.0"
REQUIREMENTS = {
    "tipg": [f"tipg=={TIPG_VERSION}", f"uvicorn=={uvicorn.__version__}"],
    "pygeoapi": [
        f"pygeoapi=={PYGEOAPI_VERSION}",
        "gunicorn==27.0.1",
        "psycopg2-binary==2.9.13",
        "geoalchemy2==0.20.0",
    ],
    "titiler": [f"titiler.application=={TITILER_VERSION}", f"uvicorn=={uvicorn.__version__}"],
}
# tipg builds each feature's `item` link with Starlette's url_path_for, which refuses a path
# parameter holding "/" (AssertionError -> HTTP 500 for every page): URBIS keys are URIs
# (https://databrussels.be/id/building/1). This launcher percent-encodes the id in that link,
# as a correct link needs anyway, and changes nothing else; the benchmark reports it.
TIPG_LAUNCHER = '''"""tipg's app, feature ids percent-encoded in item links (bench.api_peers)."""
from urllib.parse import quote

from tipg.factory import EndpointsFactory

_url_for = EndpointsFactory.url_for


def _url_for_quoted(self, request, name, **path_params):
    if "itemId" in path_params:
        path_params["itemId"] = quote(str(path_params["itemId"]), safe="")
    return _url_for(self, request, name, **path_params)


EndpointsFactory.url_for = _url_for_quoted

from tipg.main import app  # noqa: E402
'''


@dataclass
class ServerSpec:
    """How to start one server and know it is ready."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    ready_path: str
    collection: str  # the buildings collection's id on this server
    notes: list[str] = field(default_factory=list)


# -- virtualenvs -----------------------------------------------------------------------------


def ensure_venv(root: Path, name: str) -> Path:
    """The peer's virtualenv, created and filled on first use, reused while its pins hold."""
    venv = root / name
    marker = venv / "bench-requirements.json"
    wanted = REQUIREMENTS[name]
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return venv
    print(f"installing {name} into {venv} ...", file=sys.stderr)
    subprocess.run([sys_python(), "-m", "venv", "--clear", str(venv)], check=True)
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", *wanted], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"pip install {' '.join(wanted)} failed:\n{done.stderr[-3000:]}")
    marker.write_text(json.dumps(wanted))
    return venv


def sys_python() -> str:
    """The system's python3: the peers' venvs must not inherit the project's site-packages."""
    return "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"


def installed_version(venv: Path, dist: str) -> str:
    done = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            f"import importlib.metadata as m; print(m.version({dist!r}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


# -- server specs ----------------------------------------------------------------------------


def ours_spec(url: str, config: Path, port: int, pool: int) -> ServerSpec:
    # no tiles drawn ahead in the background: these benchmarks measure requests
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "URBIS_CONFIG": str(config),
        "URBIS_PORT": str(port),
        "URBIS_DB_POOL_SIZE": str(pool),
        "URBIS_TILE_WARM_ZOOM": "-1",
    }
    return ServerSpec(
        "ours",
        [str(URBIS), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env,
        "/readyz",
        "buildings",
        [
            f"urbis serve: uvicorn, one process; pool {pool} connections "
            "(URBIS_DB_POOL_SIZE, no overflow); no tiles drawn ahead "
            "(URBIS_TILE_WARM_ZOOM=-1)"
        ],
    )


def _uvicorn(venv: Path, port: int, *app: str) -> list[str]:
    """A peer's app under its virtualenv's uvicorn, one process, on loopback."""
    return [
        str(venv / "bin" / "uvicorn"),
        *app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def tipg_spec(venv: Path, url: str, port: int, pool: int, properties: list[str]) -> ServerSpec:
    (venv / "urbis_bench_tipg.py").write_text(TIPG_LAUNCHER)
    env = {
        **_clean_env(),
        "DATABASE_URL": url,
        "TIPG_DB_SCHEMAS": '["urbis"]',
        "TIPG_DB_EXCLUDE_FUNCTION_SCHEMAS": '["public"]',
        "TIPG_DB_MIN_CONN_SIZE": str(pool),
        "TIPG_DB_MAX_CONN_SIZE": str(pool),
        # the same properties as ours serves: not the sync's row_hash / valid_from columns
        "TIPG_TABLE_CONFIG__urbis_buildings__properties": json.dumps(properties),
    }
    cmd = _uvicorn(venv, port, "--app-dir", str(venv), "urbis_bench_tipg:app")
    return ServerSpec(
        "tipg",
        cmd,
        env,
        "/collections/urbis.buildings",
        "urbis.buildings",
        [
            f"uvicorn tipg app, one process; asyncpg pool min = max = {pool}",
            "launched through a 10-line wrapper that percent-encodes feature ids in "
            "item links: unpatched tipg answers 500 to every items request here, "
            "because the keys are URIs containing '/'",
        ],
    )


def titiler_spec(venv: Path, port: int) -> ServerSpec:
    """TiTiler's application as its docs run it: uvicorn, here one process (as ours)."""
    env = {
        **_clean_env(),
        # TiTiler's documented GDAL setting for COGs: opening a file lists no sidecar files
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        # only the /cog endpoints are asked for; the others would only slow its start
        "TITILER_API_DISABLE_STAC": "TRUE",
        "TITILER_API_DISABLE_MOSAIC": "TRUE",
        "TITILER_API_DISABLE_ZARR": "TRUE",
    }
    cmd = _uvicorn(venv, port, "titiler.application.main:app")
    return ServerSpec(
        "titiler",
        cmd,
        env,
        "/healthz",
        "",
        [
            f"uvicorn titiler.application {TITILER_VERSION}, one process (its tile endpoint "
            "runs in Starlette's thread pool); GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR; "
            "STAC, mosaic and Zarr endpoints off"
        ],
    )


def pygeoapi_spec(
    venv: Path,
    url: str,
    port: int,
    pool: int,
    properties: list[str],
    workdir: Path,
    crs: tuple[str, ...] = (),
) -> ServerSpec:
    """`crs`: the CRSs pygeoapi may take for bbox-crs and crs besides CRS84 (its default)."""
    config = workdir / "pygeoapi.yml"
    openapi = workdir / "pygeoapi-openapi.yml"
    config.write_text(pygeoapi_config(url, port, properties, crs))
    env = {**_clean_env(), "PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(openapi)}
    done = subprocess.run(
        [
            str(venv / "bin" / "pygeoapi"),
            "openapi",
            "generate",
            str(config),
            "--output-file",
            str(openapi),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not openapi.exists():
        raise SystemExit(f"pygeoapi openapi generate failed:\n{done.stdout}\n{done.stderr}")
    cmd = [
        str(venv / "bin" / "gunicorn"),
        "--workers",
        "1",
        "--worker-class",
        "gthread",
        "--threads",
        str(pool),
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        "300",
        "--no-control-socket",
        "pygeoapi.flask_app:APP",
    ]
    return ServerSpec(
        "pygeoapi",
        cmd,
        env,
        "/collections/buildings",
        "buildings",
        [
            f"gunicorn, one gthread worker process with {pool} threads (the master "
            "only supervises)",
            "no pool setting in pygeoapi 0.21: its PostgreSQL provider uses "
            "SQLAlchemy's default pool (5 kept + 10 overflow); with its "
            f"{pool} threads it holds at most {pool} connections at once",
        ],
    )


def pygeoapi_config(url: str, port: int, properties: list[str], crs: tuple[str, ...] = ()) -> str:
    """A minimal pygeoapi configuration: the buildings table, as ours serves it.

    `crs`: listed in the provider's `crs` (CRS84 first), which is where pygeoapi looks for
    the CRSs it accepts in bbox-crs; none: pygeoapi's default list.
    """
    db = make_url(url)
    data = {
        "host": db.host,
        "port": db.port,
        "dbname": db.database,
        "user": db.username,
        "password": db.password,
        "search_path": ["urbis"],
    }
    provider = {
        "type": "feature",
        "name": "PostgreSQL",
        "data": data,
        "id_field": "INSPIRE_ID",
        "table": "buildings",
        "geom_field": "geom",
        "storage_crs": "http://www.opengis.net/def/crs/EPSG/0/31370",
        "properties": properties,
    }
    if crs:
        provider["crs"] = ["http://www.opengis.net/def/crs/OGC/1.3/CRS84", *crs]
    contact = {
        k: "bench"
        for k in (
            "name",
            "position",
            "address",
            "city",
            "stateorprovince",
            "postalcode",
            "country",
            "phone",
            "fax",
            "hours",
            "instructions",
        )
    }
    doc = {
        "server": {
            "bind": {"host": "127.0.0.1", "port": port},
            "url": f"http://127.0.0.1:{port}",
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "gzip": False,
            "languages": ["en-US"],
            "pretty_print": False,
            "limits": {"default_items": 10, "max_items": 10000},
            "map": {
                "url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                "attribution": "OpenStreetMap",
            },
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": "bench",
                "description": "API benchmark",
                "keywords": ["bench"],
                "keywords_type": "theme",
                "terms_of_service": "https://example.org",
                "url": "https://example.org",
            },
            "license": {"name": "CC0", "url": "https://example.org"},
            "provider": {"name": "bench", "url": "https://example.org"},
            "contact": {
                **contact,
                "email": "bench@example.org",
                "url": "https://example.org",
                "role": "pointOfContact",
            },
        },
        "resources": {
            "buildings": {
                "type": "collection",
                "title": "Buildings",
                "description": "Buildings",
                "keywords": ["buildings"],
                "extents": {
                    "spatial": {
                        "bbox": [4.24, 50.76, 4.48, 50.92],
                        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
                    }
                },
                "providers": [provider],
            }
        },
    }
    return str(yaml.safe_dump(doc, sort_keys=False))


def _clean_env() -> dict[str, str]:
    """The environment without the project's virtualenv, so a peer sees only its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


# -- running ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Running:
    base: str  # http://127.0.0.1:<port>
    group: int  # its process group id (the pid of the process we started)


@contextmanager
def running(spec: ServerSpec, port: int, log: Path, timeout: float = 120.0) -> Iterator[Running]:
    """Start the server, wait until it answers `ready_path` with 200, yield where it runs.

    It runs in its own process group (so the gunicorn worker goes with its master) and is
    always stopped by that group's id, whatever happens in between.
    """
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            spec.cmd,
            env=spec.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
            start_new_session=True,
        )
    try:
        wait_ready(proc, base + spec.ready_path, log, timeout)
        yield Running(base, proc.pid)
    finally:
        stop(proc)


@dataclass(frozen=True)
class Serving:
    running: Running
    spec: ServerSpec


@contextmanager
def all_running(
    made: Mapping[str, Callable[[int], ServerSpec]], rundir: Path
) -> Iterator[dict[str, Serving]]:
    """Every server of `made` started at once, each on a free port, its log `<name>.log`.

    The benchmarks measure them in turn, a scenario at a time: the machine's speed drifts over
    minutes (tipg's feature by key measured 238 and 319 req/s in two runs), and ratios taken a
    scenario at a time drift with it far less than those of servers measured one after the
    other, each through every scenario.
    """
    with ExitStack() as stack:
        served = {}
        for name, spec_at in made.items():
            port = free_port()
            spec = spec_at(port)
            print(f"{name} on port {port}", file=sys.stderr)
            started = stack.enter_context(running(spec, port, rundir / f"{name}.log"))
            served[name] = Serving(started, spec)
        yield served


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} server exited ({proc.returncode}):\n{_tail(log)}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready after {timeout:.0f} s:\n{_tail(log)}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
    try:  # a gunicorn worker left behind by a master that died first
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""
