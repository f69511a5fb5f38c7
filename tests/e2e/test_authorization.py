"""Who may call a model is RBAC: through the real kube-rbac-proxy, against the real apiserver.

The proxy is built from its Go module (github.com/brancz/kube-rbac-proxy) and run by the farm as
the pod's sidecar, beside the simulated model server; it asks the sandbox's apiserver a
TokenReview and a SubjectAccessReview for every caller. What the farm cannot be faithful to: the
proxy's own identity is the sandbox's admin kubeconfig (in a cluster, the pod's ServiceAccount
bound to system:auth-delegator), and "127.0.0.1" inside the pod is the pod's 127.x address.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy.render.model import DEFAULT_AUTH_PROXY_IMAGE
from modeldeploy_dev.sandbox import build
from modeldeploy_dev.sandbox.cluster import Sandbox
from modeldeploy_dev.sandbox.kubelet import FARM_DIR, IMAGES_FILE
from tests.conftest import Kubectl, condition, get_json, model_deployment, wait_for

pytestmark = [pytest.mark.timeout(900), pytest.mark.integration, pytest.mark.usefixtures("operator")]
Obj = dict[str, Any]
ROW = [5.1, 3.5, 1.4, 0.2]
UNVERIFIED = ssl.create_default_context()
UNVERIFIED.check_hostname = False
UNVERIFIED.verify_mode = ssl.CERT_NONE  # the proxy's certificate is self-signed, as in a default install


@pytest.fixture
def proxy_image(sandbox: Sandbox) -> Iterator[None]:
    """The farm runs the proxy image with the binary built here; taken back afterwards."""
    build.build_all((build.KUBE_RBAC_PROXY,))
    binary = build.KUBE_RBAC_PROXY.path()
    path = sandbox.directory / FARM_DIR / IMAGES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    images = {DEFAULT_AUTH_PROXY_IMAGE: {"entrypoint": [str(binary), f"--kubeconfig={sandbox.kubeconfig}"]}}
    path.write_text(json.dumps(images, indent=2))
    yield
    path.unlink(missing_ok=True)


def manifest() -> Obj:
    return model_deployment(
        replicas=1,
        probing={"intervalSeconds": 2, "timeoutSeconds": 1, "failureThreshold": 1},
        access={"authorization": "kubernetes"},
    )


def callers(kubectl: Kubectl, namespace: str) -> dict[str, str]:
    """Tokens of two ServiceAccounts, one of them bound to a Role that may call `iris` (and only it)."""
    for name in ("allowed", "other"):
        kubectl("create", "serviceaccount", name)
    kubectl(
        "create", "role", "predict-iris",
        "--verb=create,get", "--resource=modeldeployments.modeldeploy.io/predict", "--resource-name=iris",
    )  # fmt: skip
    kubectl("create", "rolebinding", "predict-iris", "--role=predict-iris", f"--serviceaccount={namespace}:allowed")
    return {name: kubectl("create", "token", name).stdout.strip() for name in ("allowed", "other")}


def infer(url: str, token: str | None) -> tuple[int, str]:
    body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW}]}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5, context=UNVERIFIED) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


@pytest.mark.usefixtures("proxy_image")
def test_allowed_caller_200_other_403_no_token_401(kubectl: Kubectl, namespace: str) -> None:
    tokens = callers(kubectl, namespace)
    kubectl("apply", "-f", "-", input=json.dumps(manifest()))
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=90s")  # the operator probes past the proxy
    pod = json.loads(kubectl("get", "pods", "-l", "modeldeploy.io/name=iris", "-o", "json").stdout)["items"][0]
    proxy = next(c for c in pod["spec"]["containers"] if c["name"] == "authz")
    port = proxy["ports"][0]["containerPort"]
    url = f"https://{pod['status']['podIP']}:{port}/v2/models/iris/infer"

    def answering() -> bool:
        try:
            return infer(url, None)[0] == 401
        except OSError:
            return False

    wait_for(answering, timeout=60, what="the proxy listening")
    status, body = infer(url, tokens["allowed"])
    assert status == 200, body
    assert json.loads(body)["outputs"], body
    status, body = infer(url, tokens["other"])
    assert status == 403, body
    assert f"system:serviceaccount:{namespace}:other" in body
    assert infer(url, None)[0] == 401
    assert infer(url, "not-a-token")[0] == 401

    # the Service leads to the proxy, not around it: its target is the port the proxy's container names
    # (EndpointSlices refuse the farm's 127.x addresses, so the resolution is read, not routed)
    def service_targets() -> list[str]:
        service = get_json(kubectl, "service", "iris")
        return [p["targetPort"] for p in service["spec"]["ports"]]  # type: ignore[index]

    # switched once every pod has the proxy (the rollout complete), never before
    assert wait_for(lambda: service_targets() == ["authz"], timeout=30, what="the Service on the proxy")
    named = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert named["authz"] == port
    url = f"https://iris.{namespace}.svc:8080"
    wait_for(lambda: get_json(kubectl, "md", "iris")["status"].get("url") == url, timeout=30, what=url)  # type: ignore[union-attr]
    assert condition(get_json(kubectl, "md", "iris"), "Ready")["status"] == "True"
