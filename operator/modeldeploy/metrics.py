"""The operator's own Prometheus metrics: names and labels in one place.

Per-ModelDeployment series carry (namespace, name) and are removed when the resource goes,
so a cluster that churns models does not grow the scrape forever.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "modeldeploy_reconciles", "Reconciles of ModelDeployments, by result.", ["result"], registry=REGISTRY
)
LEADER = Gauge(
    "modeldeploy_leader",
    "1 while this replica holds the leader Lease (or runs without leader election), else 0.",
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "modeldeploy_api_requests",
    "Requests the operator sent to the Kubernetes API, by verb, resource and response code.",
    ["verb", "resource", "code"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "modeldeploy_reconcile_duration_seconds",
    "Time one reconcile took.",
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PROBES = Counter(
    "modeldeploy_probe_requests",
    "Replica probes, by outcome (healthy, unhealthy, error).",
    ["outcome"],
    registry=REGISTRY,
)
PROBE_SECONDS = Histogram(
    "modeldeploy_probe_duration_seconds",
    "Time one replica probe took.",
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PROBE_CYCLE_SECONDS = Histogram(
    "modeldeploy_probe_cycle_duration_seconds",
    "Time one probe round of a ModelDeployment took.",
    registry=REGISTRY,
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
HEALTHY_REPLICAS = Gauge(
    "modeldeploy_model_healthy_replicas",
    "Replicas that passed the last probe round.",
    ["namespace", "name"],
    registry=REGISTRY,
)
PROBED_REPLICAS = Gauge(
    "modeldeploy_model_probed_replicas", "Replicas in the last probe round.", ["namespace", "name"], registry=REGISTRY
)
DRIFT_SCORE = Gauge(
    "modeldeploy_model_drift_score",
    "Latest data drift score per watched metric.",
    ["namespace", "name", "metric"],
    registry=REGISTRY,
)
CONFIG_DRIFT_CORRECTIONS = Counter(
    "modeldeploy_config_drift_corrections",
    "Hand edits of children that were reverted.",
    ["namespace", "name"],
    registry=REGISTRY,
)
WATCH_EVENTS = Counter(
    "modeldeploy_watch_events", "Watch events received, by kind and type.", ["kind", "type"], registry=REGISTRY
)
MANAGED_MODELS = Gauge("modeldeploy_managed_models", "ModelDeployments known to the operator.", registry=REGISTRY)
QUEUE_DEPTH = Gauge("modeldeploy_workqueue_depth", "Keys waiting to be reconciled.", registry=REGISTRY)
QUEUE_IN_FLIGHT = Gauge("modeldeploy_workqueue_in_flight", "Keys being reconciled now.", registry=REGISTRY)

_PER_MODEL = (HEALTHY_REPLICAS, PROBED_REPLICAS, CONFIG_DRIFT_CORRECTIONS)


def bind_queue(depth: Callable[[], float], in_flight: Callable[[], float]) -> None:
    QUEUE_DEPTH.set_function(depth)
    QUEUE_IN_FLIGHT.set_function(in_flight)


def forget_model(namespace: str, name: str) -> None:
    """Remove every series of a deleted ModelDeployment."""
    for family in _PER_MODEL:
        with contextlib.suppress(KeyError):
            family.remove(namespace, name)
    for labels in list(DRIFT_SCORE._metrics):  # labelled children are keyed by their label values
        if labels[:2] == (namespace, name):
            DRIFT_SCORE.remove(*labels)
