"""An operator killed mid-canary: its successor carries on the same step with the same clock, writing nothing.

Without spec.drift: the drift windows themselves do not survive a restart yet (the verdict is kept,
but the window refills, and `Drifted` reads InsufficientSamples meanwhile), which is issue 16's.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from modeldeploy_dev.sandbox.cluster import Sandbox
from modeldeploy_dev.sandbox.traffic import ServiceTraffic
from tests.conftest import Kubectl, start_operator, stop_operator, wait_for
from tests.faults.meters import apiserver_requests, kill_9, write_delta
from tests.integration.test_canary import manifest, status
from tests.integration.test_canary import traffic as traffic  # the fixture

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("crd")]
OWNED = {"modeldeployments", "deployments", "services", "horizontalpodautoscalers"}


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path


def without_drift(doc: dict[str, Any]) -> dict[str, Any]:
    doc["spec"].pop("drift")
    doc["spec"]["rollout"]["analysis"].pop("maxDriftScore", None)
    return doc


def since(kubectl: Kubectl) -> datetime:
    return datetime.fromisoformat(status(kubectl)["rollout"]["since"].replace("Z", "+00:00"))


def test_a_restart_mid_step_keeps_the_step_and_its_clock(
    sandbox: Sandbox, kubectl: Kubectl, admin_kubectl: Kubectl, traffic: ServiceTraffic, log_dir: Path
) -> None:
    first = start_operator(sandbox.kubeconfig, log_dir / "first.log")
    try:
        kubectl("apply", "-f", "-", input=json.dumps(without_drift(manifest())))
        kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=90s")
        steps = [{"weight": 25, "pause": "40s"}, {"weight": 50, "pause": "2s"}]
        kubectl("apply", "-f", "-", input=json.dumps(without_drift(manifest("2.0.0", steps=steps))))
        wait_for(lambda: (status(kubectl).get("rollout") or {}).get("step") == 1, timeout=30, what="step 1")
        step_one = since(kubectl)
        time.sleep(12)  # well into the pause, past the writes on the way there (folded for up to 10 s)
    finally:
        kill_9(first)
    assert (status(kubectl)["rollout"]["phase"], status(kubectl)["rollout"]["step"]) == ("Progressing", 1)

    before = apiserver_requests(admin_kubectl)
    second = start_operator(sandbox.kubeconfig, log_dir / "second.log")
    try:
        time.sleep(4)
        assert write_delta(before, apiserver_requests(admin_kubectl), OWNED) == {}, "the successor's start wrote"
        assert status(kubectl)["rollout"]["step"] == 1
        assert since(kubectl) == step_one, "the step's clock is the status's, not the process's"
        wait_for(lambda: (status(kubectl).get("rollout") or {}).get("step") == 2, timeout=60, what="step 2")
        step_two = since(kubectl)
        waited = (step_two - step_one).total_seconds()
        assert 40 <= waited <= 50, f"step 1 lasted {waited:.0f}s across the restart (pause 40s)"
        wait_for(lambda: status(kubectl)["rollout"]["phase"] == "Promoted", timeout=60, what="promoted")
        kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=60s")
        assert "Traceback" not in second.log()
    finally:
        stop_operator(second)
