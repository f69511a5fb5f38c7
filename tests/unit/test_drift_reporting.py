"""Drift results are re-written to status only when they change meaningfully."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modeldeploy.controller.probes import meaningfully_different
from modeldeploy.status.compute import DataDriftReport


def report(
    score: float | None,
    *,
    drifted: bool = False,
    insufficient: bool = False,
    age: float = 0,
    unscraped: frozenset[str] = frozenset(),
) -> DataDriftReport:
    stamp = (datetime.now(UTC) - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status: dict[str, object] = {"lastEvaluated": stamp, "samples": 1000}
    if score is not None:
        status["score"] = score
    return DataDriftReport(status=status, drifted=drifted, message="", insufficient=insufficient, unscraped=unscraped)


def test_a_small_wiggle_is_not_worth_a_write() -> None:
    assert not meaningfully_different(report(0.10), report(0.105))


def test_a_score_moving_more_than_ten_percent_is() -> None:
    assert meaningfully_different(report(0.10), report(0.12))


def test_a_changed_verdict_always_is() -> None:
    assert meaningfully_different(report(0.19), report(0.21, drifted=True))
    assert meaningfully_different(report(None, insufficient=True), report(0.05))


def test_a_replica_whose_metrics_cannot_be_read_is_news_and_so_is_its_recovery() -> None:
    """A hostile /metrics body was cut off every round, yet the status never said so."""
    broken = frozenset({"iris-0"})
    assert meaningfully_different(report(0.10), report(0.10, unscraped=broken))
    assert not meaningfully_different(report(0.10, unscraped=broken), report(0.10, unscraped=broken))
    assert meaningfully_different(report(0.10, unscraped=broken), report(0.10))


def test_a_stale_statement_is_refreshed() -> None:
    assert meaningfully_different(report(0.10, age=301), report(0.10))
    assert not meaningfully_different(report(0.10, age=100), report(0.10))


def test_starting_replicas_are_reprobed_with_a_backoff_capped_by_the_interval() -> None:
    import random

    from modeldeploy.controller.probes import LoopState, next_round_in

    random.seed(1)
    loop = LoopState(("ns", "iris"), "iris")
    delays = [next_round_in(30, loop, starting=True) for _ in range(8)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert all(d <= 33 for d in delays)
    assert 27 <= next_round_in(30, loop, starting=False) <= 33
    assert next_round_in(30, loop, starting=True) == 0.5, "a healthy round resets the backoff"
