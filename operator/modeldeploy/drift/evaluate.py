"""Decide whether a deployment has drifted, with hysteresis so the verdict does not flap.

A score that hovers around the threshold would otherwise switch the Drifted
condition on and off every cycle, each time emitting events and waking
whoever watches them. The condition is entered when the score exceeds the
threshold and left only when it falls below EXIT_FACTOR * threshold; in
between, the previous verdict stands. 0.8 leaves a band of 20% of the
threshold, wider than the cycle-to-cycle noise of a score computed from a few
thousand samples, and narrow enough that a real recovery is seen promptly.

With fewer than `min_samples` observations in the window the score is too noisy
to act on in either direction, so the previous verdict stands as well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from modeldeploy.drift.histograms import Counts, check_bounds
from modeldeploy.drift.stats import Method, score
from modeldeploy.drift.window import SlidingWindow

EXIT_FACTOR = 0.8


@dataclass(frozen=True)
class Baseline:
    """Expected distribution: proportions (or counts) for each of len(bounds) + 1 buckets."""

    bounds: tuple[float, ...]
    proportions: tuple[float, ...]

    def __post_init__(self) -> None:
        bad = check_bounds(self.bounds)
        if bad is not None:
            raise ValueError(bad.message)
        if len(self.proportions) != len(self.bounds) + 1:
            raise ValueError(
                f"baseline needs {len(self.bounds) + 1} proportions (one per bound plus +Inf), "
                f"got {len(self.proportions)}"
            )
        if any(not math.isfinite(p) or p < 0 for p in self.proportions) or math.fsum(self.proportions) <= 0:
            raise ValueError("baseline proportions must be non-negative and not all zero")

    @classmethod
    def of(cls, bounds: Sequence[float], proportions: Sequence[float]) -> Baseline:
        return cls(tuple(float(b) for b in bounds), tuple(float(p) for p in proportions))


@dataclass(frozen=True)
class DriftResult:
    score: float | None
    samples: float
    drifted: bool
    reason: str
    insufficient_samples: bool = False


def evaluate_counts(
    baseline: Baseline,
    counts: Sequence[float],
    method: Method,
    threshold: float,
    min_samples: float,
    previously_drifted: bool,
) -> DriftResult:
    if len(counts) != len(baseline.proportions):
        raise ValueError(f"counts have {len(counts)} buckets, the baseline {len(baseline.proportions)}")
    if not threshold > 0:
        raise ValueError("threshold must be positive")
    samples = math.fsum(counts)
    value = score(method, baseline.proportions, counts) if samples > 0 else None
    shown = f"{value:.4g}" if value is not None else "n/a"

    if samples < min_samples or value is None:
        state = "drifted" if previously_drifted else "not drifted"
        return DriftResult(
            score=value,
            samples=samples,
            drifted=previously_drifted,
            reason=f"insufficient samples ({samples:g} < {max(min_samples, 1):g}); still {state}",
            insufficient_samples=True,
        )
    exit_below = EXIT_FACTOR * threshold
    if value > threshold:
        return DriftResult(value, samples, True, f"{method} {shown} > threshold {threshold:g}")
    if previously_drifted and value >= exit_below:
        return DriftResult(
            value, samples, True, f"{method} {shown} not yet below {exit_below:g} (0.8 x threshold); still drifted"
        )
    return DriftResult(value, samples, False, f"{method} {shown} within threshold {threshold:g}")


def evaluate(
    baseline: Baseline,
    window: SlidingWindow | Counts,
    method: Method,
    threshold: float,
    min_samples: float,
    previously_drifted: bool,
) -> DriftResult:
    """Score the window against the baseline and apply hysteresis and the sample minimum."""
    counts = window.totals() if isinstance(window, SlidingWindow) else window
    return evaluate_counts(baseline, counts, method, threshold, min_samples, previously_drifted)
