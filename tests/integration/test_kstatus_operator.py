"""Flux's verdict (kstatus, the real library) on ModelDeployments the real operator manages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modeldeploy_dev.sandbox import build
from modeldeploy_dev.sandbox.cluster import Sandbox
from tests.conftest import Kubectl, model_deployment, wait_for
from tests.integration.test_kstatus import kstatus_of, run_kstatus

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator")]


@pytest.fixture(scope="module")
def kstatus() -> Path:
    return build.binary(build.KSTATUS)


def live(kstatus: Path, sandbox: Sandbox, namespace: str, name: str = "iris") -> dict[str, str]:
    return run_kstatus(kstatus, "--kubeconfig", str(sandbox.kubeconfig), "--namespace", namespace, "--name", name)


def test_current_when_ready_in_progress_right_after_a_change_failed_when_stalled(
    kstatus: Path, sandbox: Sandbox, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(model_deployment()))
    wait_for(lambda: live(kstatus, sandbox, namespace)["status"] == "Current", timeout=60, what="kstatus Current")
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=5s")

    # the object exactly as the apiserver returns it to the client that changed it
    patch = {"spec": {"model": {"name": "iris", "version": "2.0.0"}}}
    changed = json.loads(kubectl("patch", "md", "iris", "--type=merge", "-p", json.dumps(patch), "-o", "json").stdout)
    assert changed["metadata"]["generation"] == 2
    assert kstatus_of(kstatus, changed, tmp_path)["status"] == "InProgress"
    wait_for(lambda: live(kstatus, sandbox, namespace)["status"] == "Current", timeout=60, what="Current again")

    stalled = model_deployment("locked", imagePullSecrets=[{"name": "absent"}])
    kubectl("apply", "-f", "-", input=json.dumps(stalled))
    wait_for(lambda: live(kstatus, sandbox, namespace, "locked")["status"] == "Failed", timeout=30, what="Failed")
    assert "absent" in live(kstatus, sandbox, namespace, "locked")["message"]
