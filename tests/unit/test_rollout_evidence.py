"""Canary checks from the runtimes' request histograms and the canary-vs-stable drift (rollout/evidence.py)."""

from __future__ import annotations

import math

import pytest

from modeldeploy.api.v1alpha1 import CanaryAnalysis
from modeldeploy.rollout.evidence import RequestTally, drift_check, quantile, request_checks

BOUNDS = (0.01, 0.1, 1.0)


@pytest.mark.parametrize(
    ("counts", "q", "expected"),
    [
        ((10, 0, 0, 0), 0.5, 0.005),  # all in the first bucket, which starts at 0
        ((0, 10, 0, 0), 0.95, 0.01 + 0.09 * 0.95),
        ((50, 40, 10, 0), 0.95, 0.1 + 0.9 * 0.5),
        ((0, 0, 0, 10), 0.95, math.inf),  # in +Inf: above every bound, however high the limit
        ((0, 0, 0, 0), 0.95, None),
    ],
)
def test_quantiles_interpolate_within_their_bucket(counts: tuple[int, ...], q: float, expected: float | None) -> None:
    found = quantile(BOUNDS, counts, q)
    assert found == pytest.approx(expected) if expected is not None else found is None


ANALYSIS = CanaryAnalysis(max_error_rate=0.05, max_latency_seconds=0.2, min_requests=20)


def tally(requests: float, errors: float | None, counts: tuple[float, ...]) -> RequestTally:
    return RequestTally(requests=requests, errors=errors, bounds=BOUNDS, counts=counts)


@pytest.mark.parametrize(
    ("measured", "states", "words"),
    [
        (tally(100, 0, (90, 10, 0, 0)), ("Passed", "Passed"), "0.0% of 100 requests answered 5xx, within 5.0%"),
        (tally(100, 6, (90, 10, 0, 0)), ("Failed", "Passed"), "6.0% of 100 requests answered 5xx, above the 5.0%"),
        (tally(100, 0, (0, 50, 50, 0)), ("Passed", "Failed"), "p95 910ms over 100 requests, above 200ms"),
        (tally(100, 0, (0, 0, 90, 10)), ("Passed", "Failed"), "p95 above 1000ms, the request histogram's largest"),
        (tally(19, 19, (19, 0, 0, 0)), ("Pending", "Pending"), "19 of 20 requests needed to judge"),
        (tally(100, None, (100, 0, 0, 0)), ("Pending", "Passed"), "has no status label to count errors by"),
        (None, ("Pending", "Pending"), "no request metric found"),
    ],
    ids=["good", "errors", "slow", "beyond-the-buckets", "too-few", "no-status-label", "no-metric"],
)
def test_error_rate_and_latency_are_judged_with_figures(
    measured: RequestTally | None, states: tuple[str, str], words: str
) -> None:
    checks = request_checks(ANALYSIS, measured, "vllm:e2e_request_latency_seconds")
    assert [c.name for c in checks] == ["errorRate", "latency"]
    assert tuple(c.state for c in checks) == states
    assert any(words in c.message for c in checks), [c.message for c in checks]


def test_only_the_asked_checks_are_made() -> None:
    assert request_checks(CanaryAnalysis(), tally(100, 50, (0, 0, 0, 100)), "m") == []
    only = request_checks(CanaryAnalysis(max_latency_seconds=1.0, min_requests=1), tally(5, 5, (5, 0, 0, 0)), "m")
    assert [c.name for c in only] == ["latency"]


def test_drift_compares_the_canary_with_the_stable_not_with_a_baseline() -> None:
    stable = (340.0, 330.0, 330.0)
    same = drift_check("cls", "psi", 0.2, 20, (34.0, 33.0, 33.0), stable)
    assert same.state == "Passed"
    assert "psi 0 of the canary against the stable (100/1000 samples), within 0.2" in same.message
    shifted = drift_check("cls", "psi", 0.2, 20, (5.0, 15.0, 80.0), stable)
    assert shifted.state == "Failed"
    assert shifted.name == "drift:cls"
    few = drift_check("cls", "psi", 0.2, 20, (5.0, 5.0, 5.0), stable)
    assert few.state == "Pending"
    assert "15 canary and 1000 stable samples; 20 of each needed" in few.message
    assert drift_check("cls", "psi", 0.2, 20, None, stable).state == "Pending"
