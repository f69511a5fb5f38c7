"""What tools and people see of a canary: kstatus, Argo CD's health check, `kubectl wait`, the
`kubectl modeldeploy rollout` plugin, and the apiserver's own write counters while a step pauses."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from modeldeploy_dev.sandbox import build
from modeldeploy_dev.sandbox.cluster import Sandbox
from modeldeploy_dev.sandbox.traffic import ServiceTraffic
from tests.conftest import Kubectl, condition, get_json, wait_for
from tests.faults.meters import apiserver_requests, write_delta
from tests.integration.test_canary import manifest, rolled_back, start_stable, status
from tests.integration.test_canary import traffic as traffic  # the fixture
from tests.integration.test_history import plugin
from tests.integration.test_kstatus import kstatus_of
from tests.unit.test_argocd_health import run_in_argocd

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator")]
OWNED = {"modeldeployments", "deployments", "services", "horizontalpodautoscalers"}


def verdicts(kubectl: Kubectl, tmp_path: Path) -> tuple[str, str, str]:
    """(kstatus, Argo CD health, Ready) of the object as a GitOps tool reads it now."""
    md: dict[str, Any] = get_json(kubectl, "md", "iris")  # type: ignore[assignment]
    flux = kstatus_of(build.binary(build.KSTATUS), md, tmp_path)["status"]
    argo = run_in_argocd([md])[0]["status"]
    return flux, argo, condition(md, "Ready")["status"]


def phase_step(kubectl: Kubectl) -> tuple[str | None, int | None]:
    rollout = status(kubectl).get("rollout") or {}
    return rollout.get("phase"), rollout.get("step")


def test_each_phase_tells_the_truth_and_a_pause_writes_nothing(
    kubectl: Kubectl, admin_kubectl: Kubectl, traffic: ServiceTraffic, tmp_path: Path
) -> None:
    start_stable(kubectl)
    assert verdicts(kubectl, tmp_path) == ("Current", "Healthy", "True")

    long_pause = [{"weight": 25, "pause": "40s"}, {"weight": 50, "pause": "1s"}]
    kubectl("apply", "-f", "-", input=json.dumps(manifest("2.0.0", steps=long_pause)))
    wait_for(lambda: phase_step(kubectl) == ("Progressing", 1), timeout=30, what="step 1")
    wait_for(
        lambda: condition(get_json(kubectl, "md", "iris"), "ModelHealthy").get("status") == "True",
        timeout=30,
        what="the canary replica probed healthy",
    )
    assert verdicts(kubectl, tmp_path) == ("InProgress", "Progressing", "False")
    waited = kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=2s", check=False)
    assert waited.returncode != 0, "kubectl wait does not call a running canary Ready"

    # mid-pause, under traffic: no write to anything the operator owns (after the status writes that
    # were on their way there: a progress-only write may be folded for up to 10 s, reconciler.COALESCE_SECONDS)
    time.sleep(11)
    before = apiserver_requests(admin_kubectl)
    time.sleep(10)
    after = apiserver_requests(admin_kubectl)
    assert phase_step(kubectl) == ("Progressing", 1), "still pausing"
    assert write_delta(before, after, OWNED) == {}

    wait_for(lambda: phase_step(kubectl)[0] == "Promoted", timeout=90, interval=0.5, what="promoted")
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=60s")
    assert verdicts(kubectl, tmp_path) == ("Current", "Healthy", "True")

    kubectl("apply", "-f", "-", input=json.dumps(manifest("3.0.0", fault="errors=0.6")))
    wait_for(lambda: rolled_back(kubectl), timeout=60, interval=0.5, what="rolled back")
    flux, argo, ready = verdicts(kubectl, tmp_path)
    assert (flux, argo, ready) == ("Failed", "Degraded", "False")
    md = get_json(kubectl, "md", "iris")
    assert run_in_argocd([md])[0]["message"].startswith(
        "RolledBack: version 3.0.0 rolled back, 2.0.0 serves: errorRate"
    )


def test_a_person_promotes_aborts_and_retries_with_the_kubectl_plugin(
    sandbox: Sandbox, kubectl: Kubectl, namespace: str, traffic: ServiceTraffic
) -> None:
    start_stable(kubectl)
    slow = [{"weight": 25, "pause": "10m"}]
    people_only = {"minRequests": 20}  # health and version only: the verdicts here are a person's
    doc = manifest("2.0.0", steps=slow, progressDeadlineSeconds=600, analysis=people_only)
    kubectl("apply", "-f", "-", input=json.dumps(doc))
    wait_for(lambda: phase_step(kubectl) == ("Progressing", 1), timeout=30, what="step 1")
    said = plugin(sandbox, "rollout", "status", "iris", "-n", namespace)
    assert said.returncode == 1
    assert "canary of version 2.0.0 at step 1/1" in said.stdout, said.stdout

    refused = plugin(sandbox, "rollout", "retry", "iris", "-n", namespace)
    assert refused.returncode == 1
    assert "retry needs a rollout that is RolledBack" in refused.stdout

    aborted = plugin(sandbox, "rollout", "abort", "iris", "-n", namespace)
    assert aborted.returncode == 0, aborted.stderr
    wait_for(lambda: rolled_back(kubectl), timeout=30, what="aborted")
    rollout = status(kubectl)["rollout"]
    assert "aborted by a person" in rollout["message"]
    assert rollout["action"].startswith("abort/")
    annotations = get_json(kubectl, "md", "iris")["metadata"]["annotations"]  # type: ignore[index]
    assert annotations["modeldeploy.io/rollout-action"] == rollout["action"]

    retried = plugin(sandbox, "rollout", "retry", "iris", "-n", namespace)
    assert retried.returncode == 0, retried.stderr
    wait_for(lambda: phase_step(kubectl) == ("Progressing", 1), timeout=30, what="the canary again")
    promoted = plugin(sandbox, "rollout", "promote", "iris", "-n", namespace)
    assert promoted.returncode == 0, promoted.stderr
    wait_for(lambda: phase_step(kubectl)[0] == "Promoted", timeout=30, what="promoted by hand")
    assert "promoted by a person" in status(kubectl)["rollout"]["message"]
    done = plugin(sandbox, "rollout", "status", "iris", "-n", namespace, "--wait", "--timeout", "60")
    assert done.returncode == 0, done.stdout
    history = [(e["revision"], e["outcome"]) for e in status(kubectl)["history"]]
    assert history == [(3, "Promoted"), (2, "RolledBack"), (1, "Superseded")], history


def test_a_rolling_update_with_auto_rollback_reverts_a_version_that_never_becomes_healthy(kubectl: Kubectl) -> None:
    def rolling(version: str, fault: str | None = None) -> dict[str, Any]:
        doc = manifest(version, fault=fault)
        doc["spec"]["rollout"] = {"autoRollback": True, "progressDeadlineSeconds": 10}
        doc["spec"].pop("drift")
        return doc

    kubectl("apply", "-f", "-", input=json.dumps(rolling("1.0.0")))
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=90s")
    kubectl("apply", "-f", "-", input=json.dumps(rolling("2.0.0", fault="unhealthy")))
    wait_for(lambda: rolled_back(kubectl), timeout=60, interval=0.5, what="reverted")
    md = get_json(kubectl, "md", "iris")
    stalled = condition(md, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "RolledBack")
    assert "not healthy within progressDeadlineSeconds (10s)" in stalled["message"], stalled
    deployment = get_json(kubectl, "deployment", "iris")

    def served_version() -> str:
        env = get_json(kubectl, "deployment", "iris")["spec"]["template"]["spec"]["containers"][0]["env"]  # type: ignore[index]
        return next(e["value"] for e in env if e["name"] == "MODEL_VERSION")

    wait_for(lambda: served_version() == "1.0.0", timeout=30, what="the template reverted to 1.0.0")
    annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}  # type: ignore[index]
    del annotations
    wait_for(
        lambda: condition(get_json(kubectl, "md", "iris"), "ModelHealthy").get("status") == "True",
        timeout=60,
        what="the reverted replicas healthy",
    )
    history = [(e["revision"], e["version"], e["outcome"]) for e in status(kubectl)["history"]]
    assert history[:2] == [(2, "2.0.0", "RolledBack"), (1, "1.0.0", "Promoted")], history
    before = get_json(kubectl, "deployment", "iris")["metadata"]["resourceVersion"]  # type: ignore[index]
    time.sleep(4)
    assert get_json(kubectl, "deployment", "iris")["metadata"]["resourceVersion"] == before, "held, not re-rolled"
