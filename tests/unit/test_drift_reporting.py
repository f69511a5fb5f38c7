"""Drift results are re-written to status only when they change meaningfully."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modeldeploy.controller.probes import meaningfully_different
from modeldeploy.status.compute import DataDriftReport


def report(
    score: float | None, *, drifted: bool = False, insufficient: bool = False, age: float = 0
) -> DataDriftReport:
    stamp = (datetime.now(UTC) - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status: dict[str, object] = {"lastEvaluated": stamp, "samples": 1000}
    if score is not None:
        status["score"] = score
    return DataDriftReport(status=status, drifted=drifted, message="", insufficient=insufficient)


def test_a_small_wiggle_is_not_worth_a_write() -> None:
    assert not meaningfully_different(report(0.10), report(0.105))


def test_a_score_moving_more_than_ten_percent_is() -> None:
    assert meaningfully_different(report(0.10), report(0.12))


def test_a_changed_verdict_always_is() -> None:
    assert meaningfully_different(report(0.19), report(0.21, drifted=True))
    assert meaningfully_different(report(None, insufficient=True), report(0.05))


def test_a_stale_statement_is_refreshed() -> None:
    assert meaningfully_different(report(0.10, age=301), report(0.10))
    assert not meaningfully_different(report(0.10, age=100), report(0.10))
