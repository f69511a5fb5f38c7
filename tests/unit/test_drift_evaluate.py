"""Drift verdicts: threshold, hysteresis and the sample minimum."""

from __future__ import annotations

import pytest

from modeldeploy.drift.evaluate import EXIT_FACTOR, Baseline, evaluate
from modeldeploy.drift.window import SlidingWindow

BASE = Baseline.of([1.0], [0.5, 0.5])
# PSI against 50/50, each (a-e)*ln(a/e) summed over two buckets:
# 25/75: 0.25*ln(2) + 0.25*ln(1.5) = 0.173287 + 0.101366 = 0.274653  (above 0.2)
# 30/70: 0.2*ln(5/3) + 0.2*ln(1.4) = 0.102165 + 0.067294 = 0.169460  (between 0.16 and 0.2)
# 35/65: 0.15*ln(1/0.7) + 0.15*ln(1.3) = 0.053501 + 0.039355 = 0.092856  (below 0.16)
HIGH, MIDDLE, LOW = (25.0, 75.0), (30.0, 70.0), (35.0, 65.0)


def test_exit_factor_is_documented_value() -> None:
    assert EXIT_FACTOR == 0.8


def test_enters_drift_above_threshold() -> None:
    result = evaluate(BASE, HIGH, "psi", 0.2, 100, previously_drifted=False)
    assert result.drifted is True
    assert result.score == pytest.approx(0.274653, abs=1e-6)
    assert result.samples == 100
    assert "> threshold 0.2" in result.reason


def test_hysteresis_band_keeps_previous_state() -> None:
    entered = evaluate(BASE, MIDDLE, "psi", 0.2, 100, previously_drifted=False)
    assert entered.drifted is False
    assert entered.score == pytest.approx(0.169460, abs=1e-6)
    stays = evaluate(BASE, MIDDLE, "psi", 0.2, 100, previously_drifted=True)
    assert stays.drifted is True
    assert "still drifted" in stays.reason


def test_leaves_drift_below_exit_threshold() -> None:
    result = evaluate(BASE, LOW, "psi", 0.2, 100, previously_drifted=True)
    assert result.drifted is False
    assert result.score == pytest.approx(0.092856, abs=1e-6)


@pytest.mark.parametrize("previous", [True, False])
def test_insufficient_samples_keep_previous_state(previous: bool) -> None:
    # HIGH would drift, but 100 samples < 1000
    result = evaluate(BASE, HIGH, "psi", 0.2, 1000, previously_drifted=previous)
    assert result.drifted is previous
    assert result.insufficient_samples
    assert "insufficient samples (100 < 1000)" in result.reason


def test_empty_window_is_insufficient_even_without_minimum() -> None:
    result = evaluate(BASE, SlidingWindow(60, 2), "ks", 0.1, 0, previously_drifted=False)
    assert result.score is None
    assert result.insufficient_samples
    assert result.drifted is False


def test_evaluates_a_window() -> None:
    w = SlidingWindow(60, 2)
    w.observe("a", 0, (0, 0))
    w.observe("a", 10, (10, 90))
    # KS: CDF gap at bound 1: |0.5 - 0.1| = 0.4
    result = evaluate(BASE, w, "ks", 0.3, 50, previously_drifted=False)
    assert result.score == pytest.approx(0.4)
    assert result.drifted is True


def test_baseline_validation() -> None:
    with pytest.raises(ValueError, match="needs 3 proportions"):
        Baseline.of([1.0, 2.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="must increase"):
        Baseline.of([2.0, 1.0], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="buckets"):
        evaluate(BASE, (1.0, 2.0, 3.0), "psi", 0.2, 0, previously_drifted=False)
