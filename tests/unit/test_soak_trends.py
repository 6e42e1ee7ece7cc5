"""The soak's judgement of a sampled figure (bench.soak_trends) and its cycle plan."""

from __future__ import annotations

import pytest

from bench.soak import SoakPlan, off_plan
from bench.soak_trends import slope, trend

CYCLES = list(range(0, 250, 5))


def test_slope_is_least_squares():
    assert slope([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx(2.0)
    assert slope([0, 1, 2], [5, 5, 5]) == 0.0
    assert slope([3], [1]) == 0.0 and slope([2, 2], [1, 9]) == 0.0


def test_a_leak_past_the_limit_is_flagged_and_noise_is_not():
    leaking = [300 + 0.2 * c for c in CYCLES]  # 20 MiB per 100 cycles
    found = trend("rss", CYCLES, leaking, warm_up=25, max_slope_per_100=10)
    assert found.growing and "slope 20.00" in found.why
    assert found.start == pytest.approx(305) and found.end == pytest.approx(349)

    noisy = [300 + (3 if i % 2 else -3) for i in range(len(CYCLES))]
    assert not trend("rss", CYCLES, noisy, warm_up=25, max_slope_per_100=10).growing


def test_the_warm_up_is_left_out():
    warming = [250 if c < 25 else 300 for c in CYCLES]
    found = trend("rss", CYCLES, warming, warm_up=25, max_slope_per_100=1)
    assert not found.growing and found.start == 300 and found.slope_per_100 == 0


def test_one_descriptor_more_at_the_end_is_growth_within_no_tolerance():
    fds = [30] * 40 + [31] * 10
    assert trend("fds", CYCLES, fds, warm_up=0, tolerance=0).growing
    assert not trend("fds", CYCLES, fds, warm_up=0, tolerance=1).growing
    # a pool opening a connection early and keeping it is not growth
    opened = [5] * 3 + [6] * 47
    assert not trend("conns", CYCLES, opened, warm_up=0, tolerance=0).growing


def test_no_sample_after_the_warm_up_is_an_error():
    with pytest.raises(ValueError, match="no sample after the warm-up"):
        trend("rss", [0, 5], [1.0, 2.0], warm_up=10)


def test_changed_cycles_are_spread_evenly():
    kinds = SoakPlan(unchanged=200, changed=50).kinds()
    assert len(kinds) == 250 and kinds.count("changed") == 50
    assert kinds[:5] == ["same"] * 4 + ["changed"]
    assert SoakPlan(unchanged=3, changed=0).kinds() == ["same"] * 3


def test_a_run_that_missed_or_invented_a_change_is_off_plan():
    run = {"run": 7, "inserted": 0, "updated": 0, "deleted": 0}
    assert off_plan(3, "same", run) is None
    assert "no change applied" in (off_plan(3, "changed", run) or "")
    assert "2 changes" in (off_plan(3, "same", {**run, "updated": 2}) or "")


def test_a_run_that_started_before_its_source_was_replaced_is_the_soak_late():
    run = {"run": 7, "inserted": 0, "updated": 0, "deleted": 0, "started": 100.0}
    assert "0.50 s late" in (off_plan(3, "changed", run, swapped_at=100.5) or "")
    assert "no change applied" in (off_plan(3, "changed", run, swapped_at=99.0) or "")
