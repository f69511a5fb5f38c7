"""The operator's metrics follow Prometheus conventions, and a deleted model leaves no series."""

from __future__ import annotations

import subprocess

from prometheus_client import generate_latest

from modeldeploy import metrics
from modeldeploy_dev.sandbox import build


def _exercise() -> None:
    metrics.RECONCILES.labels(result="applied").inc()
    metrics.RECONCILE_SECONDS.observe(0.01)
    metrics.PROBES.labels(outcome="healthy").inc()
    metrics.PROBE_SECONDS.observe(0.002)
    metrics.PROBE_CYCLE_SECONDS.observe(0.2)
    metrics.HEALTHY_REPLICAS.labels(namespace="ns", name="iris").set(3)
    metrics.PROBED_REPLICAS.labels(namespace="ns", name="iris").set(3)
    metrics.DRIFT_SCORE.labels(namespace="ns", name="iris", metric="feature").set(0.1)
    metrics.CONFIG_DRIFT_CORRECTIONS.labels(namespace="ns", name="iris").inc()
    metrics.WATCH_EVENTS.labels(kind="Pod", type="ADDED").inc()


def test_promtool_accepts_every_metric() -> None:
    promtool = str(build.binary(build.PROMTOOL))  # built from Go modules, cached like helm
    _exercise()
    exposition = generate_latest(metrics.REGISTRY)
    result = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=30)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    assert b"modeldeploy_reconciles_total" in exposition


def test_forgetting_a_model_removes_its_series() -> None:
    _exercise()
    metrics.HEALTHY_REPLICAS.labels(namespace="ns", name="other").set(1)
    metrics.forget_model("ns", "iris")
    text = generate_latest(metrics.REGISTRY).decode()
    assert 'name="iris"' not in text
    assert 'name="other"' in text
