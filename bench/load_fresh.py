"""Freshness under load (bench.load_bench): how soon after a sync run commits do the clients'
answers show its change, and does any answer go back to the old state after showing the new?

Two parts, both running beside the load's clients:

- `CommitWatcher` (a thread) notes when each change of the changed layer committed on the
  primary and when the replica replayed it: every WATCH_EVERY seconds it reads the change log
  (`urbis_meta.change_log`, written in the run's own transaction) on both. A row first seen on
  the primary at t committed at most WATCH_EVERY (and one query) before t; first seen on the
  replica, it was replayed then (the same row, the same commit record).
- `probe` (a coroutine among the clients) takes each change the source is given (a sample of
  its inserted, updated and deleted buildings), asks their /items/{id} and their tiles on both
  grids (decoded) through the clients' address once before the run (the old state is seen,
  and nginx and the API cache it), then, once the run committed, again and again until every
  answer shows the new state, and a while more (HOLD seconds) to see none goes back.

The bound each answer is held to (documented in README "Load on the whole" and
bench/README.md): a request sent after the replica replayed the change must be answered with
it for items (they are read from the replica, or from the primary when it lags); for tiles,
TILE_SLACK (3 s) later: the API drops its tiles once the replica replayed the change (it looks
every 20 ms); nginx serves a copy for less than NGINX_FRESH (2 s: `proxy_cache_valid 1s`,
counted on whole seconds of its clock, so a copy stored at 10.0 s is a HIT until 11.999 s)
before it asks again; and a tile whose query read the old rows just before the drop is still
sent, and kept by nginx, when it is drawn (DRAW_IN_FLIGHT, 1 s, allowed for it).
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import brotli
import psycopg

from bench.load_check import item_judged, tile_judged, tile_paths
from bench.load_source import Change
from bench.load_sync import CHANGED, ChangeFeeder
from bench.load_workload import EPSG_31370, feature_path
from bench.rawhttp import RawClient

WATCH_EVERY = 0.02  # seconds between looks at the change log, on the primary and the replica
# deploy/nginx/urbis.conf's `proxy_cache_valid 200 204 1s`: nginx stores valid_sec = now + 1
# in whole seconds and serves the copy while valid_sec >= now, so for up to (not) 2 s
NGINX_FRESH = 2.0
DRAW_IN_FLIGHT = 1.0  # a tile read from the old rows just before the drop, drawn and sent
TILE_SLACK = NGINX_FRESH + DRAW_IN_FLIGHT
ROUND_PAUSE = 0.1  # seconds between two rounds of probes of a change
HOLD = 2.0  # seconds of probing after every answer showed the change
SETTLE_TIMEOUT = 30.0  # seconds after the commit for every answer to show the change
PROBE_KINDS = ("items", "tile WebMercatorQuad", "tile BelgianLambert72")
PROBE_HEADERS = {"Accept-Encoding": "gzip, br"}  # as the clients ask: nginx's same copy


@dataclass
class Committed:
    """One change of the changed layer: its run, and when the bench saw it on each side."""

    run_id: int
    committed: float  # first seen on the primary
    replayed: float | None = None  # first seen on the replica


class CommitWatcher:
    """Reads the change log on the primary and the replica every WATCH_EVERY seconds."""

    def __init__(self, primary: str, replica: str | None) -> None:
        self.primary = primary
        self.replica = replica or primary  # no replica: the primary's commit is the bound
        self.changes: dict[int, Committed] = {}  # change_log id -> what was seen
        self.stop = threading.Event()
        self.failure: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> CommitWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join()

    def after(self, run_id: int) -> Committed | None:
        """The first change committed by a run after `run_id`.

        The source is changed once a run has finished: a run after it that read the file
        before the change found it unchanged, and wrote no change."""
        with self._lock:
            found = [c for c in self.changes.values() if c.run_id > run_id]
        return min(found, key=lambda c: c.run_id) if found else None

    def _run(self) -> None:
        try:
            with (
                psycopg.connect(self.primary, autocommit=True) as primary,
                psycopg.connect(self.replica, autocommit=True) as replica,
            ):
                seen = self._last(primary)
                while not self.stop.wait(WATCH_EVERY):
                    now = time.time()
                    for log_id, run_id in primary.execute(
                        "SELECT id, run_id FROM urbis_meta.change_log "
                        "WHERE layer_id = %s AND id > %s ORDER BY id",
                        (CHANGED, seen),
                    ).fetchall():
                        with self._lock:
                            self.changes[log_id] = Committed(run_id, now)
                        seen = log_id
                    replayed = self._last(replica)
                    now = time.time()
                    with self._lock:
                        for log_id, change in self.changes.items():
                            if change.replayed is None and log_id <= replayed:
                                change.replayed = now
        except Exception as exc:  # reported: the run then fails
            self.failure = f"{type(exc).__name__}: {exc}"

    @staticmethod
    def _last(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute(
            "SELECT coalesce(max(id), 0) FROM urbis_meta.change_log WHERE layer_id = %s",
            (CHANGED,),
        ).fetchone()
        return int(row[0]) if row else 0


# -- the probes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One answer that must come to show a building's new state."""

    kind: str  # one of PROBE_KINDS
    path: str
    key: str
    geom: Any
    area: int | None  # None: the building is deleted


@dataclass(frozen=True)
class Seen:
    sent: float  # time.time()
    received: float
    new: bool  # the answer shows the change
    problem: str  # why not, when not


@dataclass
class Probed:
    """Every answer to the targets of one change, and when the change committed."""

    cycle: int
    commit: Committed | None = None
    seen: dict[Target, list[Seen]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def targets(change: Change, per_kind: int) -> list[Target]:
    """Items and both grids' tiles of `per_kind` inserted, updated and deleted buildings."""
    chosen: list[tuple[str, Any, int | None]] = [
        *((k, g, a) for k, (g, a) in list(change.inserted.items())[:per_kind]),
        *((k, g, a) for k, (g, a) in list(change.updated.items())[:per_kind]),
        *((k, g, None) for k, g in list(change.deleted.items())[:per_kind]),
    ]
    found = []
    for key, geom, area in chosen:
        found.append(Target("items", feature_path(CHANGED, key), key, geom, area))
        for path, kind in zip(tile_paths(geom), PROBE_KINDS[1:], strict=True):
            found.append(Target(kind, path, key, geom, area))
    return found


def decoded(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "br":
        return brotli.decompress(body)
    return body


async def ask(base: str, target: Target, probed: Probed) -> Seen | None:
    """One answer, on a new connection: between rounds a probe idles longer than nginx keeps
    an idle connection (keepalive_timeout 5s), and the bench's client does not retry."""
    path = target.path + (f"?crs={EPSG_31370}" if target.kind == "items" else "")
    sent = time.time()
    try:
        async with RawClient(PROBE_HEADERS) as http:
            answer = await http.get(base + path)
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        probed.errors.append(f"{target.path}: {type(exc).__name__} {exc}")
        return None
    received = time.time()
    body = decoded(answer.content, answer.headers.get("content-encoding", ""))
    if target.kind == "items":
        if answer.status_code not in (200, 404):
            probed.errors.append(f"{target.path}: HTTP {answer.status_code}")
            return None
        problems = item_judged(target.key, answer.status_code, body, target.geom, target.area)
    else:
        if answer.status_code not in (200, 204):
            probed.errors.append(f"{target.path}: HTTP {answer.status_code}")
            return None
        problems = tile_judged(target.path, target.key, answer.status_code, body, target.area)
    return Seen(sent, received, not problems, "; ".join(problems))


async def probe_round(base: str, probed: Probed) -> None:
    """Every target once, at once (one connection each)."""
    seen = await asyncio.gather(*(ask(base, t, probed) for t in probed.seen))
    for target, one in zip(probed.seen, seen, strict=True):
        if one is not None:
            probed.seen[target].append(one)


def all_new_since(probed: Probed) -> float | None:
    """When the last target's first new answer came (None: not every target has shown it)."""
    firsts = []
    for seen in probed.seen.values():
        news = [s.received for s in seen if s.new]
        if not news:
            return None
        firsts.append(min(news))
    return max(firsts)


async def probe(
    base: str,
    feeder: ChangeFeeder,
    watcher: CommitWatcher,
    per_kind: int,
    deadline: float,
    results: list[Probed],
) -> None:
    """Each change written before `deadline` (time.perf_counter()) probed, until it shows."""
    handled = 0
    while time.perf_counter() < deadline:
        if len(feeder.written) <= handled:
            await asyncio.sleep(0.1)
            continue
        handled = len(feeder.written)  # the newest only: it is the next run's
        change, after_run = feeder.written[handled - 1][0], feeder.after_run[handled - 1]
        probed = Probed(change.cycle, seen={t: [] for t in targets(change, per_kind)})
        results.append(probed)
        await probe_round(base, probed)  # before the run: the old state
        while (commit := watcher.after(after_run)) is None:
            if time.perf_counter() > deadline:
                return
            await asyncio.sleep(WATCH_EVERY)
        probed.commit = commit
        give_up = commit.committed + SETTLE_TIMEOUT
        while time.time() < give_up:
            await probe_round(base, probed)
            since = all_new_since(probed)
            if since is not None and time.time() > since + HOLD:
                break
            await asyncio.sleep(ROUND_PAUSE)


# -- what they showed ------------------------------------------------------------------------


def judged(probed: Probed) -> dict[str, Any]:
    """Per target: the last old answer and the first new one after the commit (seconds from
    it), answers old past the bound, and answers old again after a new one was received.

    A target not seen in its old state before the commit cannot tell old from new (`distinct`
    False): a small building a crowded tile leaves out, deleted or not, or a change whose run
    committed before the probe, busy with the one before, got to it. It is reported, not
    judged."""
    commit = probed.commit
    assert commit is not None
    replayed = commit.replayed if commit.replayed is not None else float("inf")
    rows = []
    for target, seen in probed.seen.items():
        bound = replayed + (0.0 if target.kind == "items" else TILE_SLACK)
        after = [s for s in seen if s.sent >= commit.committed]
        news = [s for s in after if s.new]
        first_new = min(news, key=lambda s: s.sent) if news else None
        olds = [s for s in after if not s.new]
        first_new_received = min((s.received for s in news), default=float("inf"))
        before = [s for s in seen if s.sent < commit.committed]
        distinct = any(not s.new for s in before) and not any(s.new for s in before)
        if not distinct:
            olds = news = []
            first_new = None
        rows.append(
            {
                "kind": target.kind,
                "path": target.path,
                "key": target.key,
                "deleted": target.area is None,
                "distinct": distinct,
                "first_new_s": round(first_new.sent - commit.committed, 3) if first_new else None,
                "last_old_s": round(max(s.sent for s in olds) - commit.committed, 3)
                if olds
                else None,
                "late": [
                    f"{target.path}: sent {s.sent - commit.committed:.3f} s after the commit "
                    f"(bound {bound - commit.committed:.3f} s): {s.problem}"
                    for s in olds
                    if s.sent > bound
                ],
                "back": [
                    f"{target.path}: old again, sent {s.sent - first_new_received:.3f} s after "
                    f"a new answer came: {s.problem}"
                    for s in olds
                    if s.sent > first_new_received
                ],
            }
        )
    return {"commit": commit, "rows": rows}


def freshness_report(results: list[Probed]) -> dict[str, Any]:
    """Per kind: delays from the commit to the first new answer (max, p99) and to the last old
    one; the replica's replay after the commit; every answer past its bound or gone back."""
    from bench.api_bench import percentile

    done = [judged(p) for p in results if p.commit is not None]
    rows = [r for d in done for r in d["rows"]]
    kinds: dict[str, Any] = {}
    for kind in PROBE_KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        firsts = [r["first_new_s"] for r in mine if r["first_new_s"] is not None]
        lasts = [r["last_old_s"] for r in mine if r["last_old_s"] is not None]
        kinds[kind] = {
            "targets": len(mine),
            "never_new": sum(r["distinct"] and r["first_new_s"] is None for r in mine),
            "first_new_max_s": max(firsts, default=None),
            "first_new_p99_s": round(percentile(firsts, 99), 3) if firsts else None,
            "first_new_p50_s": round(percentile(firsts, 50), 3) if firsts else None,
            "last_old_max_s": max(lasts, default=None),
            "bound_after_replay_s": 0.0 if kind == "items" else TILE_SLACK,
        }
    replays = [
        d["commit"].replayed - d["commit"].committed
        for d in done
        if d["commit"].replayed is not None
    ]
    late = [text for r in rows for text in r["late"]]
    back = [text for r in rows for text in r["back"]]
    indistinct = [
        f"{r['path']}: {r['key']}{' (deleted)' if r['deleted'] else ''}"
        for r in rows
        if not r["distinct"]
    ]
    errors = [e for p in results for e in p.errors]
    never = [r["path"] for r in rows if r["distinct"] and r["first_new_s"] is None]
    return {
        "changes_probed": len(done),
        "changes_written_not_committed_in_time": len(results) - len(done),
        "targets_per_change": len(results[0].seen) if results else 0,
        "answers": sum(len(v) for p in results for v in p.seen.values()),
        "old_state_seen_before_commit": sum(r["distinct"] for r in rows),
        "kinds": kinds,
        "replica_replayed_after_commit_max_s": round(max(replays), 3) if replays else None,
        "replica_replayed_after_commit_p50_s": round(percentile(replays, 50), 3)
        if replays
        else None,
        "late": late[:10],
        "late_count": len(late),
        "back": back[:10],
        "back_count": len(back),
        "indistinct": indistinct[:10],
        "indistinct_count": len(indistinct),
        "never_new": never[:10],
        "errors": errors[:10],
        "error_count": len(errors),
        "ok": any(r["distinct"] for r in rows)
        and not late
        and not back
        and not never
        and not errors
        and all(d["commit"].replayed is not None for d in done),
    }


def wait_replayed(url: str, run_id: int, timeout: float) -> bool:
    """Whether the database at `url` (the replica, or the primary without one) shows the run's
    change within `timeout` seconds: its change log row, written in the run's transaction."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            found = conn.execute(
                "SELECT 1 FROM urbis_meta.change_log WHERE run_id = %s", (run_id,)
            ).fetchone()
            if found:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(WATCH_EVERY)
