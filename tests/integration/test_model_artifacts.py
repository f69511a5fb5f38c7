"""A model artifact on the real apiserver: the fetch init container and volumes are accepted, converge, stay put.

The sandbox's pods are simulated (kwok), so the fetcher does not run here: it runs for real
against an S3 server in tests/e2e/test_fetch.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modeldeploy_dev.sandbox.cluster import Sandbox
from tests.conftest import (
    Kubectl,
    OperatorProcess,
    get_json,
    model_deployment,
    operator_samples,
    start_operator,
    stop_operator,
    wait_for,
)

pytestmark = [pytest.mark.integration]

FETCHER = "registry.example/modeldeploy:7.7.7"
DIGEST = "ab" * 32


@pytest.fixture(scope="module")
def fetching_operator(
    sandbox: Sandbox, crd: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    running = start_operator(
        sandbox.kubeconfig,
        tmp_path_factory.mktemp("operator") / "operator.log",
        extra_env={"MODELDEPLOY_FETCHER_IMAGE": FETCHER},
    )
    yield running
    stop_operator(running)


def _ready(kubectl: Kubectl) -> bool:
    md = get_json(kubectl, "md", "iris")
    conditions = {c["type"]: c["status"] for c in (md.get("status") or {}).get("conditions", [])}  # type: ignore[union-attr, attr-defined]
    return conditions.get("Ready") == "True"


def _deployment_applies(operator: OperatorProcess) -> float:
    """Deployment applies the apiserver took. Not the 403s for namespaces being deleted: earlier
    tests' namespaces go away while this operator, which serves all of them, starts."""
    return sum(
        v
        for labels, v in operator_samples(operator, "modeldeploy_api_requests")
        if labels["verb"] == "APPLY" and labels["resource"] == "deployments" and labels["code"].startswith("2")
    )


def test_an_s3_model_gets_its_fetcher_and_converges_without_reapplying(
    kubectl: Kubectl, fetching_operator: OperatorProcess
) -> None:
    model = {
        "name": "iris",
        "version": "1.0.0",
        "uri": "s3://models/iris/1.0.0/model.joblib",
        "sha256": DIGEST,
        "credentials": {"name": "s3-creds"},
    }
    kubectl("apply", "-f", "-", input=json.dumps(model_deployment(model=model)))
    wait_for(lambda: _ready(kubectl), timeout=90, what="Ready")
    pod = get_json(kubectl, "deployment", "iris")["spec"]["template"]["spec"]  # type: ignore[index]
    [fetcher] = pod["initContainers"]  # type: ignore[index]
    assert fetcher["image"] == FETCHER
    assert fetcher["args"] == ["fetch", "s3://models/iris/1.0.0/model.joblib", "/mnt/models", "--sha256", DIGEST]
    assert fetcher["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert pod["volumes"] == [{"name": "model", "emptyDir": {}}]  # type: ignore[index]
    # what the apiserver defaulted in (an emptyDir's {}, the init container's defaults) is no drift
    applied = _deployment_applies(fetching_operator)
    time.sleep(6)  # more than one resync of the integration operator
    assert _deployment_applies(fetching_operator) == applied


def test_the_apiserver_refuses_a_scheme_no_fetcher_reads(kubectl: Kubectl) -> None:
    bad = model_deployment(model={"name": "iris", "version": "1.0.0", "uri": "s4://models/iris"})
    result = kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0
    assert "spec.model.uri in body should match" in result.stderr


def _condition(kubectl: Kubectl, type_: str) -> dict[str, str]:
    md = get_json(kubectl, "md", "iris")
    found: dict[str, str] = next(
        (c for c in (md.get("status") or {}).get("conditions", []) if c["type"] == type_),  # type: ignore[union-attr, attr-defined]
        {},
    )
    return found


def test_a_failing_fetch_shows_on_the_model_with_the_fetchers_reason(
    kubectl: Kubectl, fetching_operator: OperatorProcess
) -> None:
    """The kubelet's word is simulated (kwok runs no containers): the pod status a failed init container leaves."""
    model = {"name": "iris", "version": "1.0.0", "uri": "s3://models/iris/9.9.9"}
    kubectl("apply", "-f", "-", input=json.dumps(model_deployment(model=model, replicas=1)))
    wait_for(lambda: _ready(kubectl), timeout=90, what="Ready")
    [pod] = get_json(kubectl, "pods", "-l", "modeldeploy.io/name=iris")["items"]  # type: ignore[misc]
    reason = "s3://models/iris/9.9.9: NoSuchKey (no object there, and none under it as a prefix)"
    failed = {
        "name": "fetch-model",
        "image": FETCHER,
        "imageID": "",
        "ready": False,
        "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": reason}},
    }
    patch = {"status": {"initContainerStatuses": [failed]}}
    kubectl("patch", "pod", pod["metadata"]["name"], "--subresource=status", "--type=merge", "-p", json.dumps(patch))
    stalled = wait_for(
        lambda: _condition(kubectl, "Stalled").get("reason") == "ModelFetchFailed" and _condition(kubectl, "Stalled"),
        timeout=30,
        what="Stalled ModelFetchFailed",
    )
    assert stalled["message"] == f"{reason} (pod {pod['metadata']['name']})"  # type: ignore[index]
    assert _condition(kubectl, "Ready")["status"] == "False"
    events = get_json(kubectl, "events", "--field-selector=reason=ModelFetchFailed")["items"]
    assert len(events) == 1  # type: ignore[arg-type]
    # the fetch succeeds at last (the object was uploaded): the model recovers without being deleted
    report = json.dumps({"uri": model["uri"], "sha256": DIGEST, "files": 1})
    fixed = {
        **failed,
        "ready": True,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": report}},
    }
    kubectl(
        "patch",
        "pod",
        pod["metadata"]["name"],
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"initContainerStatuses": [fixed]}}),
    )
    wait_for(lambda: _condition(kubectl, "Stalled").get("status") == "False", timeout=30, what="Stalled cleared")
    wait_for(lambda: _ready(kubectl), timeout=30, what="Ready again")
    status = get_json(kubectl, "md", "iris")["status"]
    # what the fetcher reported on the init container's status (its termination message)
    assert status["model"] == {"uri": model["uri"], "sha256": DIGEST, "files": 1, "fetchedReplicas": 1}  # type: ignore[index]


MODELCAR = "registry.example/team/iris-modelcar:2.0.0"


def _pod_spec(kubectl: Kubectl) -> dict[str, object]:
    return get_json(kubectl, "deployment", "iris")["spec"]["template"]["spec"]  # type: ignore[index, no-any-return]


def test_a_modelcar_is_an_image_volume_on_a_cluster_that_has_them(
    kubectl: Kubectl, fetching_operator: OperatorProcess
) -> None:
    """The sandbox's apiserver is 1.37: `auto` reads /version and mounts; the apiserver accepts the volume."""
    model = {"name": "iris", "version": "2.0.0", "uri": f"oci://{MODELCAR}"}
    kubectl("apply", "-f", "-", input=json.dumps(model_deployment(model=model)))
    wait_for(lambda: _ready(kubectl), timeout=90, what="Ready")
    pod = _pod_spec(kubectl)
    assert pod["volumes"] == [{"name": "model", "image": {"reference": MODELCAR, "pullPolicy": "IfNotPresent"}}]
    assert "initContainers" not in pod
    [container] = pod["containers"]  # type: ignore[misc]
    assert {"name": "MODEL_DIR", "value": "/mnt/models/models"} in container["env"]
    assert "oci:// models mounted as image volumes" in fetching_operator.log_path.read_text()
