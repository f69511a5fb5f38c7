"""The sliding window: expiry, summing over replicas, first scrapes and counter resets."""

from __future__ import annotations

import math

import pytest

from modeldeploy.drift.histograms import HistogramError
from modeldeploy.drift.window import SlidingWindow, observe_scrape


def test_first_scrape_is_only_a_reference_point() -> None:
    w = SlidingWindow(60, 2)
    assert w.observe("a", 0, (100, 50)) is False
    assert w.samples == 0
    assert w.proportions() is None


def test_sums_deltas_over_replicas_and_expires_old_entries() -> None:
    w = SlidingWindow(60, 2)
    w.observe("a", 0, (1, 1))
    w.observe("a", 10, (3, 1))  # +(2, 0) at t=10
    w.observe("b", 10, (10, 10))  # reference
    w.observe("b", 20, (11, 13))  # +(1, 3) at t=20
    # totals (2+1, 0+3) = (3, 3)
    assert w.totals() == (3.0, 3.0)
    assert w.samples == 6
    assert w.proportions() == (0.5, 0.5)
    w.prune(75)  # cutoff 75-60 = 15: the t=10 entry goes, t=20 stays
    assert w.totals() == (1.0, 3.0)
    assert w.proportions() == (0.25, 0.75)
    w.prune(80)  # cutoff 20: an entry exactly at the cutoff is out
    assert w.samples == 0
    assert len(w) == 0


def test_counter_reset_counts_the_new_process() -> None:
    w = SlidingWindow(60, 2)
    w.observe("a", 0, (5, 5))
    w.observe("a", 10, (7, 5))  # +(2, 0)
    assert w.observe("a", 20, (1, 3)) is True  # went down: restart; +(1, 3)
    assert w.totals() == (3.0, 3.0)
    w.observe("a", 30, (2, 3))  # +(1, 0) relative to the restarted process
    assert w.totals() == (4.0, 3.0)


def test_forget_makes_next_scrape_a_reference_again() -> None:
    w = SlidingWindow(60, 1)
    w.observe("a", 0, (5,))
    w.observe("a", 10, (8,))  # +3
    w.forget("a")
    assert w.replicas() == []
    w.observe("a", 20, (50,))  # reference again, adds nothing
    assert w.samples == 3


def test_out_of_order_entries_expire_by_their_own_time() -> None:
    w = SlidingWindow(10, 1)
    w.add(50, (1,))
    w.add(45, (2,))  # arrives late but is older
    w.add(52, (4,))
    assert w.samples == 7
    w.prune(56)  # cutoff 46: only the t=45 entry goes
    assert w.samples == 5
    w.prune(60)  # cutoff 50: the t=50 entry goes too
    assert w.samples == 4


def test_entries_already_outside_the_window_are_ignored() -> None:
    w = SlidingWindow(10, 1)
    w.add(100, (1,))
    w.add(80, (5,))  # 20 s before the newest time seen: outside a 10 s window
    assert w.samples == 1


def test_rejects_wrong_shapes() -> None:
    w = SlidingWindow(10, 2)
    with pytest.raises(ValueError, match="expected 2 bucket counts"):
        w.add(0, (1, 2, 3))
    with pytest.raises(ValueError, match="non-negative"):
        w.add(0, (1, -2))
    with pytest.raises(ValueError, match="positive"):
        SlidingWindow(0, 2)


def test_observe_scrape_rebuckets_and_reports_unusable_scrapes() -> None:
    w = SlidingWindow(60, 3)
    bounds = [1.0, 2.0]
    # runtime buckets 0.5, 1, 1.5, 2, +Inf; baseline keeps 1 and 2
    assert observe_scrape(w, "a", 0, {0.5: 1, 1.0: 2, 1.5: 2, 2.0: 4, math.inf: 4}, bounds) is False
    assert observe_scrape(w, "a", 10, {0.5: 1, 1.0: 3, 1.5: 5, 2.0: 7, math.inf: 9}, bounds) is False
    # per baseline bucket: before (2, 2, 0), after (3, 4, 2) -> delta (1, 2, 2)
    assert w.totals() == (1.0, 2.0, 2.0)
    missing = observe_scrape(w, "a", 20, {0.5: 1, 1.5: 5, math.inf: 9}, bounds)
    assert isinstance(missing, HistogramError)
    assert "baseline bound 1" in missing.message
    assert w.totals() == (1.0, 2.0, 2.0)
