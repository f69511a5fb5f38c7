"""Pod Security "restricted": the pods modeldeploy makes, and the operator's own, are admitted.

The namespace enforces the restricted profile. The examples' ModelDeployments are applied there
and reconciled by an operator (admin credentials, serving only that namespace); the ReplicaSets
must create every pod without a FailedCreate. A pod that breaks the profile is refused in the
same namespace, so the check cannot pass because enforcement is off.

Like test_rbac, this module does not request the admin `operator` fixture and checks that no
other operator serves its namespace before starting its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy_dev.sandbox.cluster import Sandbox
from tests.chart import CHART_DIR, ROOT, assert_no_other_operator, get, helm, unique
from tests.conftest import Kubectl, OperatorProcess, start_operator, stop_operator, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("crd")]

EXAMPLES = ("minimal.yaml", "full.yaml")
PROFILE = "restricted"


@pytest.fixture
def restricted(namespace: str, kubectl: Kubectl, admin_kubectl: Kubectl) -> str:
    admin_kubectl(
        "label", "namespace", namespace,
        f"pod-security.kubernetes.io/enforce={PROFILE}",
        "pod-security.kubernetes.io/enforce-version=latest",
        f"pod-security.kubernetes.io/warn={PROFILE}",
    )  # fmt: skip
    # pods of a namespace younger than its default ServiceAccount fail for that reason, not ours
    wait_for(
        lambda: kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
        timeout=30,
        what="the default ServiceAccount",
    )
    return namespace


@pytest.fixture
def scoped_operator(sandbox: Sandbox, restricted: str, kubectl: Kubectl, tmp_path: Path) -> Iterator[OperatorProcess]:
    assert_no_other_operator(kubectl, restricted)
    running = start_operator(sandbox.kubeconfig, tmp_path / "operator.log", {"MODELDEPLOY_NAMESPACES": restricted})
    yield running
    stop_operator(running)


def failed_creates(kubectl: Kubectl) -> list[str]:
    items: list[dict[str, Any]] = get(kubectl, "events", "--field-selector=reason=FailedCreate")["items"]
    return [f"{e['involvedObject']['kind']}/{e['involvedObject']['name']}: {e['message']}" for e in items]


def test_enforcement_is_on(restricted: str, kubectl: Kubectl) -> None:
    refused = kubectl("run", "root-pod", "--image=registry.invalid/anything:1", "--restart=Never", check=False)
    assert refused.returncode != 0
    assert f'violates PodSecurity "{PROFILE}:latest"' in refused.stderr, refused.stderr


def test_example_model_deployments_get_their_pods_admitted(
    scoped_operator: OperatorProcess, restricted: str, kubectl: Kubectl
) -> None:
    names = []
    for example in EXAMPLES:
        md = yaml.safe_load((ROOT / "examples" / example).read_text())
        md["spec"].pop("imagePullSecrets", None)
        kubectl("apply", "-f", "-", input=json.dumps(md))
        names.append(md["metadata"]["name"])

    for name in names:

        def pods_created(name: str = name) -> bool:
            deployment = kubectl("get", "deployment", name, "-o", "json", check=False)
            if deployment.returncode != 0:
                return False
            desired = json.loads(deployment.stdout)["spec"]["replicas"]
            pods = get(kubectl, "pods", "-l", f"modeldeploy.io/name={name}")["items"]
            return bool(desired >= 1 and len(pods) == desired)

        wait_for(pods_created, timeout=60, what=f"the pods of {name}")
        template = get(kubectl, "deployment", name)["spec"]["template"]["spec"]
        assert template["securityContext"]["runAsNonRoot"] is True
    assert failed_creates(kubectl) == []


def test_the_charts_operator_pod_is_admitted(sandbox: Sandbox, restricted: str, kubectl: Kubectl) -> None:
    release = unique("rel")
    try:
        helm(
            "install", release, str(CHART_DIR), f"--namespace={restricted}", "--set", "crd.install=false",
            "--wait", "--timeout=90s", kubeconfig=sandbox.kubeconfig,
        )  # fmt: skip
        pods = get(kubectl, "pods", "-l", f"app.kubernetes.io/instance={release}")["items"]
        assert len(pods) == 1
        assert failed_creates(kubectl) == []
    finally:
        helm("uninstall", release, f"--namespace={restricted}", "--wait", kubeconfig=sandbox.kubeconfig, check=False)
