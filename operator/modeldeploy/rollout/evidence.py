"""Canary evidence from the runtimes' own metrics, judged against the analysis thresholds (pure).

Error rate and latency come from the runtime's request-duration histogram: its `_count`
per status code gives requests and errors, its buckets the latency quantile, interpolated
within a bucket as Prometheus' `histogram_quantile` does. Drift compares the canary's
histogram with the stable's over the same time (both windows start when the canary does),
not with the fixed baseline: a new version is judged against what the old one sees on the
same live traffic, so a drift both share (the world changed) does not fail the canary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from modeldeploy.api.request_metrics import KNOWN_REQUEST_METRICS
from modeldeploy.api.v1alpha1 import RolloutCheck
from modeldeploy.api.v1alpha1.scaling import CanaryAnalysis
from modeldeploy.drift.stats import Method, score


@dataclass(frozen=True)
class RequestTally:
    """The canary's requests since it started: how many, how many failed, their latency buckets."""

    requests: float
    errors: float | None  # None: the runtime does not label requests by status
    bounds: tuple[float, ...]  # finite upper bounds of the latency buckets
    counts: tuple[float, ...]  # per bucket (not cumulative), len(bounds) + 1


def quantile(bounds: Sequence[float], counts: Sequence[float], q: float) -> float | None:
    """The q-quantile of a bucketed distribution, linear within its bucket; None without observations.

    Like `histogram_quantile`, the first bucket starts at 0; unlike it, a quantile in the +Inf
    bucket is infinite, not the highest finite bound: all the histogram says is "above it", and a
    limit at or above that bound must not pass requests that took a minute.
    """
    total = math.fsum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    lower = 0.0
    for index, count in enumerate(counts):
        if index == len(bounds):
            return math.inf
        upper = bounds[index]
        if count > 0 and seen + count >= rank:
            return lower + (upper - lower) * ((rank - seen) / count)
        seen += count
        lower = upper
    return math.inf


def request_checks(analysis: CanaryAnalysis, tally: RequestTally | None, metric: str | None) -> list[RolloutCheck]:
    """The error-rate and latency checks the analysis asks for, from the canary's tally."""
    wanted = [
        (name, limit)
        for name, limit in (("errorRate", analysis.max_error_rate), ("latency", analysis.max_latency_seconds))
        if limit is not None
    ]
    if not wanted:
        return []
    if tally is None:
        message = (
            "no request metric found on the canary's replicas ("
            + ", ".join(m.name for m in KNOWN_REQUEST_METRICS)
            + "); set rollout.analysis.requestMetric"
        )
        return [RolloutCheck(name=name, state="Pending", message=message) for name, _ in wanted]
    checks = []
    few = tally.requests < analysis.min_requests
    for name, limit in wanted:
        if few:
            message = f"{tally.requests:g} of {analysis.min_requests} requests needed to judge"
            checks.append(RolloutCheck(name=name, state="Pending", message=message))
        elif name == "errorRate":
            checks.append(_error_rate_check(tally, limit, metric))
        else:
            checks.append(_latency_check(tally, limit, analysis.latency_quantile))
    return checks


def _error_rate_check(tally: RequestTally, limit: float, metric: str | None) -> RolloutCheck:
    if tally.errors is None:
        return RolloutCheck(
            name="errorRate", state="Pending", message=f"{metric} has no status label to count errors by"
        )
    rate = tally.errors / tally.requests
    figures = f"{rate:.1%} of {tally.requests:g} requests answered 5xx"
    if rate > limit:
        return RolloutCheck(name="errorRate", state="Failed", message=f"{figures}, above the {limit:.1%} allowed")
    return RolloutCheck(name="errorRate", state="Passed", message=f"{figures}, within {limit:.1%}")


def _latency_check(tally: RequestTally, limit: float, q: float) -> RolloutCheck:
    value = quantile(tally.bounds, tally.counts, q)
    label = f"p{q * 100:g}"
    if value is None:
        return RolloutCheck(name="latency", state="Pending", message="no latency observed yet")
    if math.isinf(value):
        top = f"{tally.bounds[-1] * 1000:.0f}ms" if tally.bounds else "its only bucket"
        message = f"{label} above {top}, the request histogram's largest bucket, over {tally.requests:g} requests"
        return RolloutCheck(name="latency", state="Failed", message=message)
    figures = f"{label} {value * 1000:.0f}ms over {tally.requests:g} requests"
    if value > limit:
        return RolloutCheck(name="latency", state="Failed", message=f"{figures}, above {limit * 1000:.0f}ms")
    return RolloutCheck(name="latency", state="Passed", message=f"{figures}, within {limit * 1000:.0f}ms")


def drift_check(
    metric: str,
    method: Method,
    limit: float,
    min_samples: int,
    canary: Sequence[float] | None,
    stable: Sequence[float] | None,
) -> RolloutCheck:
    """The canary's distribution of `metric` against the stable's, over the same time."""
    name = f"drift:{metric}"
    canary_n = math.fsum(canary) if canary else 0.0
    stable_n = math.fsum(stable) if stable else 0.0
    if canary is None or stable is None or canary_n < min_samples or stable_n < min_samples:
        message = f"{canary_n:g} canary and {stable_n:g} stable samples; {min_samples} of each needed to judge"
        return RolloutCheck(name=name, state="Pending", message=message)
    value = score(method, stable, canary)
    figures = f"{method} {value:.3g} of the canary against the stable ({canary_n:g}/{stable_n:g} samples)"
    if value > limit:
        return RolloutCheck(name=name, state="Failed", message=f"{figures}, above {limit:g}")
    return RolloutCheck(name=name, state="Passed", message=f"{figures}, within {limit:g}")
