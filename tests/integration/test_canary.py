"""Canary rollouts on the sandbox, judged on the farm replicas' own evidence under real traffic.

The stable runs version 1.0.0 on three replicas; version 2.0.0 is the canary. Faults are set
on the new pod template (`podAnnotations`), so only the canary's pods show them, and traffic
goes to the Service's ready pods the way kube-proxy would send it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy_dev.sandbox.traffic import ServiceTraffic, service_endpoints
from tests.conftest import Kubectl, condition, get_json, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator")]

FAULT = "farm.modeldeploy.io/fault"
STABLE = 3
PREDICTION_CLASS = {
    "method": "psi",
    "threshold": 5.0,  # the fixed baseline is not what this test judges: the canary against the stable is
    "minSamples": 60,
    "windowSeconds": 600,
    "metrics": [
        {"name": "modelserver_prediction_class", "baseline": {"bounds": [0.5, 1.5], "proportions": [0.34, 0.33, 0.33]}}
    ],
}
# Latency at p95 well above what a loaded 2-core machine adds to the farm's answers (tens of ms), and
# well below the fault's 1 s.
ANALYSIS = {"maxErrorRate": 0.05, "maxLatencySeconds": 0.5, "maxDriftScore": 0.25, "minRequests": 20}


def manifest(version: str = "1.0.0", fault: str | None = None, **rollout: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"name": "iris", "version": version},
        "runtime": {"image": "ghcr.io/modeldeploy/modeldeploy:0.1.0"},
        "replicas": STABLE,
        "probing": {"intervalSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 1},
        "drift": PREDICTION_CLASS,
        "rollout": {
            "strategy": "Canary",
            "steps": [{"weight": 25, "pause": "5s"}, {"weight": 50, "pause": "5s"}],
            "analysis": dict(ANALYSIS),
            "progressDeadlineSeconds": 40,
            **rollout,
        },
    }
    if fault is not None:
        spec["podAnnotations"] = {FAULT: fault}
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris"},
        "spec": spec,
    }


def status(kubectl: Kubectl) -> dict[str, Any]:
    return dict(get_json(kubectl, "md", "iris").get("status") or {})  # type: ignore[arg-type]


def history(kubectl: Kubectl) -> list[tuple[int, str, str]]:
    return [(e["revision"], e["version"], e["outcome"]) for e in status(kubectl).get("history") or []]


def stable_template_version(kubectl: Kubectl) -> str:
    deployment = get_json(kubectl, "deployment", "iris")
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]  # type: ignore[index]
    return next(e["value"] for e in env if e["name"] == "MODEL_VERSION")


class StableWatch:
    """Polls the stable Deployment while a test runs: the fewest ready replicas it ever had."""

    def __init__(self, kubectl: Kubectl) -> None:
        self.kubectl = kubectl
        self.lowest = STABLE
        self.readings = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            ready = get_json(self.kubectl, "deployment", "iris").get("status", {}).get("readyReplicas", 0)  # type: ignore[union-attr]
            self.lowest = min(self.lowest, int(ready or 0))
            self.readings += 1

    def __enter__(self) -> StableWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def traffic(kubectl: Kubectl) -> Iterator[ServiceTraffic]:
    def endpoints() -> list[tuple[str, int]]:
        service = get_json(kubectl, "service", "iris")
        pods = get_json(kubectl, "pods", "-l", "modeldeploy.io/name=iris")["items"]
        return service_endpoints(service, pods)  # type: ignore[arg-type]

    with ServiceTraffic(endpoints, "iris", per_second=40) as running:
        yield running


def start_stable(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(manifest()))
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=90s")


def rolled_back(kubectl: Kubectl) -> bool:
    return (status(kubectl).get("rollout") or {}).get("phase") == "RolledBack"


def test_a_healthy_canary_is_promoted_through_every_step(kubectl: Kubectl, traffic: ServiceTraffic) -> None:
    start_stable(kubectl)
    with StableWatch(kubectl) as stable:
        kubectl("apply", "-f", "-", input=json.dumps(manifest("2.0.0")))
        seen: list[tuple[str, int | None, int | None]] = []

        def promoted() -> bool:
            rollout = status(kubectl).get("rollout") or {}
            seen.append((rollout.get("phase"), rollout.get("step"), rollout.get("canaryReplicas")))
            return rollout.get("phase") == "Promoted"

        wait_for(promoted, timeout=90, interval=0.5, what="the canary promoted")
        kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=60s")
    assert ("Progressing", 1, 1) in seen, seen  # 25%: one canary beside three stable replicas
    assert ("Progressing", 2, 3) in seen, seen  # 50%: three beside three
    final = status(kubectl)["rollout"]
    assert {c["name"]: c["state"] for c in final["checks"]} == {
        "health": "Passed",
        "version": "Passed",
        "errorRate": "Passed",
        "latency": "Passed",
        "drift:modelserver_prediction_class": "Passed",
    }, final
    assert stable_template_version(kubectl) == "2.0.0"
    wait_for(
        lambda: kubectl("get", "deployment", "iris-canary", check=False).returncode != 0,
        timeout=30,
        what="the canary Deployment gone",
    )
    assert history(kubectl)[:2] == [(2, "2.0.0", "Promoted"), (1, "1.0.0", "Superseded")]
    assert stable.readings > 10
    assert stable.lowest >= STABLE, f"the stable dropped to {stable.lowest} ready"
    events = kubectl("get", "events", "--field-selector", "involvedObject.name=iris", "-o", "json").stdout
    reasons = [e["reason"] for e in json.loads(events)["items"]]
    assert {"CanaryStarted", "CanaryStep", "CanaryPromoted"} <= set(reasons), reasons
    assert traffic.answered.get(200, 0) > 100, traffic.answered


@pytest.mark.parametrize(
    ("fault", "check", "figures"),
    [
        pytest.param("errors=0.5", "errorRate", "answered 5xx", id="5xx"),
        pytest.param("latency=1", "latency", "p95", id="slow"),
        pytest.param("version=1.9.0", "version", "serves 1.9.0", id="wrong-version"),
        pytest.param("shift=2.5", "drift:modelserver_prediction_class", "psi", id="shifted-predictions"),
    ],
)
def test_a_failing_canary_is_rolled_back_with_its_reason(
    kubectl: Kubectl, traffic: ServiceTraffic, fault: str, check: str, figures: str
) -> None:
    start_stable(kubectl)
    with StableWatch(kubectl) as stable:
        kubectl("apply", "-f", "-", input=json.dumps(manifest("2.0.0", fault=fault)))
        wait_for(lambda: rolled_back(kubectl), timeout=60, interval=0.5, what=f"the {fault} canary rolled back")
        wait_for(
            lambda: kubectl("get", "deployment", "iris-canary", check=False).returncode != 0,
            timeout=30,
            what="the canary Deployment gone",
        )
    md = get_json(kubectl, "md", "iris")
    rollout = md["status"]["rollout"]  # type: ignore[index]
    failed = [c for c in rollout["checks"] if c["state"] == "Failed"]
    assert [c["name"] for c in failed] == [check], rollout
    assert figures in failed[0]["message"], failed
    stalled = condition(md, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "RolledBack")
    assert check in stalled["message"], stalled
    assert "1.0.0 serves" in stalled["message"], stalled
    assert condition(md, "Ready")["status"] == "False"
    assert stable_template_version(kubectl) == "1.0.0", "the stable is untouched"
    assert stable.lowest >= STABLE, f"the stable dropped to {stable.lowest} ready"
    assert history(kubectl)[:2] == [(2, "2.0.0", "RolledBack"), (1, "1.0.0", "Promoted")]
    assert md["status"]["history"][0]["reason"] == stalled["message"]  # type: ignore[index]
    # it stays rolled back while the spec stays: no new canary, and nothing written while it holds
    before = get_json(kubectl, "md", "iris")["metadata"]["resourceVersion"]  # type: ignore[index]
    time.sleep(4)
    assert kubectl("get", "deployment", "iris-canary", check=False).returncode != 0
    assert get_json(kubectl, "md", "iris")["metadata"]["resourceVersion"] == before  # type: ignore[index]
