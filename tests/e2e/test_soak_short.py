"""A short soak (bench.soak): ~30 continuous-sync cycles under light load, nothing may grow.

The real `urbis sync` worker (writer role, `1s` schedule) and `urbis serve` (reader role) on
5,000 generated buildings, the source swapped to a copy with 1 % changed and back every
fourth cycle while three clients ask tiles, items and lookups. No timing is asserted: on a
shared machine durations say little. What is asserted: every run succeeded with exactly the
changes its cycle planned, no client saw an error, neither process logged one, the changes
reached the API's tile cache, and descriptors and database sessions stayed where the warm-up
left them. The full soak (200 + 50 runs of 100,000 buildings) is `python -m bench.soak`; its
figures are in bench/README.md.
"""

from __future__ import annotations

from pathlib import Path

from bench.soak import SoakPlan, generated_sources, soak
from tests.conftest import ROLES, as_role, reader_url

PLAN = SoakPlan(
    unchanged=21,
    changed=7,
    sample_every=1,
    warm_up=4,
    clients=3,
    # what flat means here: not one descriptor or session more at the end than early on
    fd_tolerance=0,
    connection_tolerance=0,
    # memory is reported, judged only by the long soak: 30 cycles are mostly warm-up
    max_rss_slope=1e9,
    server_env={"URBIS_TILE_WARM_ZOOM": "-1"},
    cycle_timeout=60,
)


def test_short_soak_keeps_sessions_and_descriptors_flat(
    admin_url: str, database_url: str, tmp_path: Path
):
    sources = generated_sources(tmp_path / "data", buildings=5000, variants=2)
    result = soak(
        as_role(database_url, ROLES.writer),
        reader_url(database_url),
        database_url,  # the superuser's: it sees every session
        sources,
        tmp_path,
        PLAN,
        roles=(ROLES.reader, ROLES.writer),
    )

    assert result.failed_runs == [] and result.off_plan == []
    assert [r["kind"] for r in result.runs].count("changed") == 7
    changed = [r for r in result.runs if r["kind"] == "changed"]
    assert all(r["inserted"] and r["updated"] and r["deleted"] for r in changed), changed
    assert result.log_errors == []
    requests, errors = result.load.total()
    assert errors == 0, result.load.first_errors
    assert {kind for kind, n in result.load.requests.items() if n > 0} == {
        "tile",
        "items",
        "lookup",
    }
    # the changes' notifications reached the server: cached tiles were dropped
    assert int(result.samples[-1]["tile_cache_dropped"]) > 0  # type: ignore[call-overload]

    after_warm_up = [s for s in result.samples if int(s["cycle"]) >= PLAN.warm_up]  # type: ignore[call-overload]
    assert len(after_warm_up) >= 20
    for name in ("sync_connections", "sync_fds", "sync_processes", "other_connections"):
        assert len({s[name] for s in after_warm_up}) == 1, (name, [s[name] for s in after_warm_up])
    assert 1 <= int(after_warm_up[-1]["sync_connections"]) <= 3  # type: ignore[call-overload]
    # the API's pool opens connections as requests come, never more than its 10 (and the
    # listener's one)
    assert all(int(s["api_connections"]) <= 11 for s in result.samples)  # type: ignore[call-overload]
    # The API's pool opens a connection when requests come together, up to its bound (above),
    # and each is a descriptor: a connection more in the last third than in the first is the
    # pool growing, not a leak, as long as the descriptors grow no more than the connections.
    flagged = {t.name: t.why for t in result.trends if t.growing}
    assert set(flagged) <= {"api_connections", "api_fds"}, flagged
    first = after_warm_up[0]
    pool_grew = max(int(s["api_connections"]) for s in after_warm_up) - int(  # type: ignore[call-overload]
        first["api_connections"]  # type: ignore[call-overload]
    )
    fds_grew = max(int(s["api_fds"]) for s in after_warm_up) - int(first["api_fds"])  # type: ignore[call-overload]
    assert fds_grew <= max(pool_grew, 0), (fds_grew, pool_grew)
