"""The load benchmark's freshness verdicts (bench.load_fresh), on answers whose times are known.

The probe itself runs for real in tests/e2e/test_load.py; here, what it concludes from what it
saw: an answer old past its bound is late, an old answer asked after a new one came is going
back, a target never new is named, and answers inside the bound are fine.
"""

from __future__ import annotations

import shapely

from bench.load_fresh import (
    TILE_SLACK,
    Committed,
    Probed,
    Seen,
    Target,
    freshness_report,
    judged,
)

COMMIT, REPLAYED = 1000.0, 1000.004
BUILDING = shapely.box(150_000, 170_000, 150_010, 170_010)
ITEM = Target("items", "/collections/buildings/items/a", "a", BUILDING, 120)
TILE = Target("tile WebMercatorQuad", "/collections/buildings/tiles/x", "a", BUILDING, 120)


def seen(sent: float, new: bool, took: float = 0.05) -> Seen:
    return Seen(sent, sent + took, new, "" if new else "AREA 100 != 120")


def probed(answers: dict[Target, list[Seen]]) -> Probed:
    return Probed(1, Committed(7, COMMIT, REPLAYED), seen=answers)


def test_answers_within_their_bounds_are_fresh() -> None:
    result = probed(
        {
            ITEM: [
                seen(COMMIT - 5, False),
                seen(REPLAYED - 0.001, False),
                seen(COMMIT + 0.02, True),
            ],
            TILE: [seen(COMMIT - 5, False), seen(REPLAYED + TILE_SLACK - 0.01, False)]
            + [seen(REPLAYED + TILE_SLACK + 0.1, True), seen(REPLAYED + TILE_SLACK + 0.3, True)],
        }
    )
    report = freshness_report([result])
    assert report["ok"], report
    assert report["old_state_seen_before_commit"] == 2
    assert report["kinds"]["items"]["first_new_max_s"] == 0.02
    assert report["kinds"]["tile WebMercatorQuad"]["last_old_max_s"] == round(
        REPLAYED + TILE_SLACK - 0.01 - COMMIT, 3
    )
    assert report["replica_replayed_after_commit_max_s"] == 0.004


def test_an_item_old_after_the_replay_is_late() -> None:
    result = probed({ITEM: [seen(COMMIT - 5, False), seen(REPLAYED + 0.01, False)]})
    result.seen[ITEM].append(seen(REPLAYED + 0.2, True))
    report = freshness_report([result])
    assert not report["ok"]
    assert report["late_count"] == 1 and "bound 0.004 s" in report["late"][0], report["late"]


def test_a_tile_old_past_nginx_and_a_draw_is_late() -> None:
    late = REPLAYED + TILE_SLACK + 0.05
    result = probed({TILE: [seen(COMMIT - 5, False), seen(late, False), seen(late + 0.5, True)]})
    report = freshness_report([result])
    assert not report["ok"] and report["late_count"] == 1, report


def test_an_old_answer_asked_after_a_new_one_came_goes_back() -> None:
    # within the bound, but the tile had already been seen new: a copy gone back
    answers = [seen(COMMIT - 5, False), seen(COMMIT + 0.5, True), seen(COMMIT + 0.6, False)]
    answers.append(seen(COMMIT + 0.8, True))
    report = freshness_report([probed({TILE: answers})])
    assert not report["ok"] and report["back_count"] == 1 and report["late_count"] == 0, report


def test_overlapping_answers_do_not_count_as_going_back() -> None:
    # the old answer was asked before the new one came back: no order between the two
    answers = [seen(COMMIT - 5, False), seen(COMMIT + 0.5, True, took=0.4)]
    answers.append(seen(COMMIT + 0.6, False))
    answers.append(seen(COMMIT + 1.0, True))
    report = freshness_report([probed({TILE: answers})])
    assert report["back_count"] == 0 and report["ok"], report


def test_a_target_never_new_fails() -> None:
    never = freshness_report([probed({ITEM: [seen(COMMIT - 5, False), seen(COMMIT + 9, False)]})])
    assert not never["ok"] and never["never_new"] == [ITEM.path]


def test_a_target_new_before_the_commit_is_reported_not_judged() -> None:
    # e.g. a deleted building a crowded tile never drew: old and new look alike there
    alike = [seen(COMMIT - 1, True), seen(COMMIT + 0.1, True)]
    report = freshness_report([probed({ITEM: [seen(COMMIT - 1, False)], TILE: alike})])
    assert report["indistinct_count"] == 1 and report["indistinct"][0].startswith(TILE.path)
    assert report["never_new"] == [ITEM.path]  # the item is still judged
    only = freshness_report([probed({TILE: alike})])
    assert not only["ok"] and only["old_state_seen_before_commit"] == 0  # nothing to judge


def test_a_change_never_replayed_fails_and_judged_bounds_by_the_replay() -> None:
    answers = [seen(COMMIT - 5, False), seen(COMMIT + 1, True)]
    result = Probed(1, Committed(7, COMMIT, None), seen={ITEM: answers})
    assert not freshness_report([result])["ok"]
    (row,) = judged(probed({ITEM: answers}))["rows"]
    assert row["first_new_s"] == 1.0 and row["late"] == [] and row["back"] == []
