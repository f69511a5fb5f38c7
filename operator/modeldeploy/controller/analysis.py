"""A running canary's evidence, gathered in each probe round from the scrapes already made.

Both tracks are counted from the canary's start, per replica, from cumulative histograms:
the first scrape of a replica only sets its reference point (`drift.window`), so what the
stable served before the canary does not weigh against it. The verdicts are pure
(rollout/evidence.py); this keeps the windows, keyed by the canary's template revision, so a
new canary, or a retry of the same template, starts counting afresh.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modeldeploy.api.request_metrics import KNOWN_REQUEST_METRICS, RequestMetricName
from modeldeploy.api.v1alpha1 import ModelDeploymentSpec, RolloutCheck
from modeldeploy.drift.histograms import HistogramError
from modeldeploy.drift.window import SlidingWindow, observe_scrape
from modeldeploy.probing.metrics import Buckets, MetricQuery, MetricsError
from modeldeploy.probing.prober import ReplicaProbe
from modeldeploy.render import labels as lbl
from modeldeploy.rollout.evidence import RequestTally, drift_check, request_checks

# A canary lasts at most its steps' pauses plus deadlines: the windows keep everything since it began.
_FOREVER = 10 * 365 * 86400.0
Track = str  # "canary" or "stable"


def request_metrics(spec: ModelDeploymentSpec) -> tuple[RequestMetricName, ...]:
    analysis = spec.rollout.analysis if spec.rollout is not None else None
    if analysis is None or (analysis.max_error_rate is None and analysis.max_latency_seconds is None):
        return ()
    if analysis.request_metric is not None:
        return (RequestMetricName(analysis.request_metric.name, analysis.request_metric.status_label),)
    return KNOWN_REQUEST_METRICS


def latency_query(metric: RequestMetricName) -> MetricQuery:
    return MetricQuery.of(metric.name, suffixes=dict(metric.only))


def error_query(metric: RequestMetricName) -> MetricQuery | None:
    if metric.status_label is None:
        return None
    return MetricQuery.of(metric.name, prefixes={metric.status_label: "5"}, suffixes=dict(metric.only))


def canary_queries(spec: ModelDeploymentSpec) -> list[MetricQuery]:
    queries: list[MetricQuery] = []
    for metric in request_metrics(spec):
        queries.append(latency_query(metric))
        errors = error_query(metric)
        if errors is not None:
            queries.append(errors)
    return queries


@dataclass
class CanaryMemory:
    revision: str
    bounds: dict[str, tuple[float, ...]] = field(default_factory=dict)  # per request metric, from its first scrape
    latency: dict[tuple[Track, str], SlidingWindow] = field(default_factory=dict)
    errors: dict[tuple[Track, str], SlidingWindow] = field(default_factory=dict)
    drift: dict[tuple[Track, MetricQuery], SlidingWindow] = field(default_factory=dict)


def gather(
    memory: CanaryMemory,
    spec: ModelDeploymentSpec,
    probes: Sequence[ReplicaProbe],
    canary_pods: set[str],
    drift: Sequence[tuple[MetricQuery, tuple[float, ...]]],
) -> tuple[RolloutCheck, ...]:
    """Feed this round's scrapes into the canary's windows; the analysis checks as they stand now."""
    now = time.time()
    live = {p.pod for p in probes}
    for windows in (memory.latency, memory.errors, memory.drift):
        for window in windows.values():
            for pod in set(window.replicas()) - live:
                window.forget(pod)
    metrics = request_metrics(spec)
    for probe in probes:
        track = "canary" if probe.pod in canary_pods else "stable"
        for metric in metrics:
            _feed_requests(memory, track, probe, metric, now)
        for query, bounds in drift:
            buckets = probe.histograms.get(query)
            if isinstance(buckets, dict):
                window = memory.drift.setdefault((track, query), SlidingWindow(_FOREVER, len(bounds) + 1))
                observe_scrape(window, probe.pod, now, buckets, bounds)
    return tuple(_checks(memory, spec, metrics, drift))


def _feed_requests(
    memory: CanaryMemory, track: Track, probe: ReplicaProbe, metric: RequestMetricName, now: float
) -> None:
    buckets = probe.histograms.get(latency_query(metric))
    if not isinstance(buckets, dict):
        return
    bounds = memory.bounds.setdefault(metric.name, tuple(sorted(le for le in buckets if math.isfinite(le))))
    window = memory.latency.setdefault((track, metric.name), SlidingWindow(_FOREVER, len(bounds) + 1))
    if isinstance(observe_scrape(window, probe.pod, now, buckets, bounds), HistogramError):
        return
    query = error_query(metric)
    if query is None:
        return
    errors = probe.histograms.get(query)
    # no 5xx series yet is zero errors: runtimes create a status series at its first request
    counted: Buckets = errors if isinstance(errors, dict) else {math.inf: 0.0}
    if isinstance(errors, MetricsError) and "no series" not in errors.message:
        return
    window = memory.errors.setdefault((track, metric.name), SlidingWindow(_FOREVER, 1))
    observe_scrape(window, probe.pod, now, counted, ())


def _checks(
    memory: CanaryMemory,
    spec: ModelDeploymentSpec,
    metrics: Sequence[RequestMetricName],
    drift: Sequence[tuple[MetricQuery, tuple[float, ...]]],
) -> list[RolloutCheck]:
    analysis = spec.rollout.analysis if spec.rollout is not None else None
    if analysis is None:
        return []
    checks: list[RolloutCheck] = []
    if metrics:
        found = next((m for m in metrics if ("canary", m.name) in memory.latency), None)
        tally = _tally(memory, found) if found is not None else None
        checks += request_checks(analysis, tally, found.name if found is not None else None)
    if analysis.max_drift_score is not None and spec.drift is not None:
        for query, _ in drift:
            canary = memory.drift.get(("canary", query))
            stable = memory.drift.get(("stable", query))
            checks.append(
                drift_check(
                    str(query),
                    spec.drift.method,
                    analysis.max_drift_score,
                    # a drift score needs the samples spec.drift asks for: PSI over 20 samples is noise
                    max(analysis.min_requests, spec.drift.min_samples),
                    canary.totals() if canary is not None else None,
                    stable.totals() if stable is not None else None,
                )
            )
    return checks


def _tally(memory: CanaryMemory, metric: RequestMetricName) -> RequestTally:
    latency = memory.latency[("canary", metric.name)].totals()
    errors = memory.errors.get(("canary", metric.name))
    return RequestTally(
        requests=math.fsum(latency),
        errors=math.fsum(errors.totals()) if errors is not None else (0.0 if metric.status_label else None),
        bounds=memory.bounds[metric.name],
        counts=tuple(latency),
    )


def canary_pod_names(pods: Sequence[Mapping[str, Any]]) -> set[str]:
    return {str((pod.get("metadata") or {}).get("name")) for pod in pods if lbl.is_canary(pod)}
