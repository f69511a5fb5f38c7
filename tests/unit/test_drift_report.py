"""The drift verdict of one probe round as it goes on the status: status.drift.data and the Drifted message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modeldeploy.api.v1alpha1 import DataDriftStatus, DriftSpec
from modeldeploy.drift.evaluate import DriftResult
from modeldeploy.drift.report import DataDriftReport, drift_report, meaningfully_different
from modeldeploy.probing.metrics import MetricQuery
from tests.conftest import petal_length_drift

SPEC = DriftSpec.model_validate(petal_length_drift())
PETAL = MetricQuery.of("modelserver_feature_value", {"feature": "petal_length"})
SEPAL = MetricQuery.of("modelserver_feature_value", {"feature": "sepal_length"})
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("results", "drifted", "problems", "message", "insufficient"),
    [
        (
            [(PETAL, DriftResult(0.05, 400, False, "psi 0.05 <= 0.2"))],
            False,
            [],
            "modelserver_feature_value: psi 0.05 over 400 samples",
            False,
        ),
        (
            [
                (PETAL, DriftResult(0.31, 400, True, "psi 0.31 > 0.2")),
                (SEPAL, DriftResult(0.52, 380, True, "psi 0.52 > 0.2")),
            ],
            True,
            [],
            'data drift on modelserver_feature_value{feature="sepal_length"}: psi 0.52 > 0.2 (380 samples)',
            False,
        ),
        (
            [(PETAL, DriftResult(None, 12, False, "too few", insufficient_samples=True))],
            False,
            ["pod-a: metrics body exceeds 2097152 bytes"],
            "fewer than 300 samples in the window yet: modelserver_feature_value: psi n/a over 12 samples"
            " (scrape problems: pod-a: metrics body exceeds 2097152 bytes)",
            True,
        ),
        ([], False, [], "fewer than 300 samples in the window yet: no drift metrics", True),
    ],
)
def test_the_round_becomes_a_status_and_a_message(
    results: list[tuple[MetricQuery, DriftResult]], drifted: bool, problems: list[str], message: str, insufficient: bool
) -> None:
    report = drift_report(SPEC, results, drifted, problems, {"pod-a"} if problems else set(), NOW)
    assert report.message == message
    assert report.drifted is drifted
    assert report.insufficient is insufficient
    assert report.status.drifted is drifted
    assert report.status.samples == min((int(r.samples) for _, r in results), default=0)
    assert report.unscraped == (frozenset({"pod-a"}) if problems else frozenset())


def test_a_verdict_held_by_hysteresis_is_reported_even_below_the_threshold() -> None:
    """`drifted` is the memory's verdict: a score back under the threshold does not clear it alone."""
    report = drift_report(SPEC, [(PETAL, DriftResult(0.15, 400, False, "psi 0.15 <= 0.2"))], True, [], set(), NOW)
    assert report.drifted is True
    assert report.status.score == 0.15


# ---- is a new round worth a status write? -----------------------------------------------------


def report(
    score: float | None,
    *,
    drifted: bool = False,
    insufficient: bool = False,
    age: float = 0,
    unscraped: frozenset[str] = frozenset(),
) -> DataDriftReport:
    status = DataDriftStatus(last_evaluated=NOW - timedelta(seconds=age), samples=1000, score=score)
    return DataDriftReport(status=status, drifted=drifted, message="", insufficient=insufficient, unscraped=unscraped)


def changed(previous: DataDriftReport, fresh: DataDriftReport) -> bool:
    return meaningfully_different(previous, fresh, NOW)


def test_a_small_wiggle_is_not_worth_a_write() -> None:
    assert not changed(report(0.10), report(0.105))


def test_a_score_moving_more_than_ten_percent_is() -> None:
    assert changed(report(0.10), report(0.12))


def test_a_changed_verdict_always_is() -> None:
    assert changed(report(0.19), report(0.21, drifted=True))
    assert changed(report(None, insufficient=True), report(0.05))


def test_a_replica_whose_metrics_cannot_be_read_is_news_and_so_is_its_recovery() -> None:
    """A hostile /metrics body was cut off every round, yet the status never said so."""
    broken = frozenset({"iris-0"})
    assert changed(report(0.10), report(0.10, unscraped=broken))
    assert not changed(report(0.10, unscraped=broken), report(0.10, unscraped=broken))
    assert changed(report(0.10, unscraped=broken), report(0.10))


def test_a_stale_statement_is_refreshed() -> None:
    assert changed(report(0.10, age=301), report(0.10))
    assert not changed(report(0.10, age=100), report(0.10))
