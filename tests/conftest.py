"""Fixtures shared by the integration and e2e suites: a real sandbox control plane.

The sandbox is started once per session (or reused when one already runs, which keeps the
edit-test loop fast), and each test gets a namespace of its own, deleted afterwards.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy_dev.sandbox.cluster import Sandbox, kubectl_binary

ROOT = Path(__file__).resolve().parents[1]


class Kubectl(Protocol):
    def __call__(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    instance = Sandbox()
    started_here = not instance.healthy()
    instance.up()
    yield instance
    if started_here and not os.environ.get("MODELDEPLOY_KEEP_SANDBOX"):
        instance.down()


def make_kubectl(kubeconfig: Path, namespace: str | None) -> Kubectl:
    def kubectl(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [kubectl_binary(), f"--kubeconfig={kubeconfig}"]
        if namespace is not None:
            command.append(f"--namespace={namespace}")
        result = subprocess.run([*command, *args], input=input, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}{result.stdout}"
            )
        return result

    return kubectl


@pytest.fixture
def namespace(sandbox: Sandbox, request: pytest.FixtureRequest) -> Iterator[str]:
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:5]}"
    admin = make_kubectl(sandbox.kubeconfig, None)
    admin("create", "namespace", name)
    yield name
    admin("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def kubectl(sandbox: Sandbox, namespace: str) -> Kubectl:
    return make_kubectl(sandbox.kubeconfig, namespace)


@pytest.fixture(scope="session")
def admin_kubectl(sandbox: Sandbox) -> Kubectl:
    return make_kubectl(sandbox.kubeconfig, None)


# ---- the operator, running for real against the sandbox -----------------------------------------

CRD_FILE = ROOT / "crds" / "modeldeploy.io_modeldeployments.yaml"
CRD_FILES = sorted((ROOT / "crds").glob("*.yaml"))
RESYNC_SECONDS = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], object], *, timeout: float, interval: float = 0.25, what: str = "condition") -> object:
    """Poll until `check()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def crd(admin_kubectl: Kubectl) -> Path:
    """Every CRD of the API (ModelDeployment, ModelRuntime, ClusterModelRuntime); returns the ModelDeployment's."""
    for path in CRD_FILES:
        admin_kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    names = [f"crd/{yaml.safe_load(path.read_text())['metadata']['name']}" for path in CRD_FILES]
    admin_kubectl("wait", "--for=condition=Established", *names, "--timeout=30s")
    _wait_until_the_garbage_collector_knows_model_deployments(admin_kubectl)
    return CRD_FILE


def _wait_until_the_garbage_collector_knows_model_deployments(admin_kubectl: Kubectl) -> None:
    """kube-controller-manager learns new resource types on a 30 s discovery resync.

    Until then, objects owned by a deleted ModelDeployment are not collected. Prove the GC is
    ready with a throwaway owner and dependent, once per session, so no test depends on how
    long after the CRD's installation it happens to run.
    """
    namespace = f"gc-probe-{uuid.uuid4().hex[:6]}"
    admin_kubectl("create", "namespace", namespace)
    try:
        owner = model_deployment("gc-probe", replicas=0)
        created = json.loads(
            admin_kubectl("-n", namespace, "create", "-o", "json", "-f", "-", input=json.dumps(owner)).stdout
        )
        dependent = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "gc-probe",
                "ownerReferences": [
                    {
                        "apiVersion": "modeldeploy.io/v1alpha1",
                        "kind": "ModelDeployment",
                        "name": "gc-probe",
                        "uid": created["metadata"]["uid"],
                    }
                ],
            },
        }
        admin_kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(dependent))
        admin_kubectl("-n", namespace, "delete", "md", "gc-probe")
        wait_for(
            lambda: admin_kubectl("-n", namespace, "get", "configmap", "gc-probe", check=False).returncode != 0,
            timeout=90,
            interval=1,
            what="the garbage collector to know ModelDeployments",
        )
    finally:
        admin_kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@dataclass
class OperatorProcess:
    process: subprocess.Popen[bytes]
    metrics_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_operator(kubeconfig: Path, log_path: Path, extra_env: dict[str, str] | None = None) -> OperatorProcess:
    metrics_port, health_port = free_port(), free_port()
    env = {
        **os.environ,
        "MODELDEPLOY_RESYNC_SECONDS": str(RESYNC_SECONDS),
        "MODELDEPLOY_METRICS_HOST": "127.0.0.1",
        "MODELDEPLOY_HEALTH_HOST": "127.0.0.1",
        **(extra_env or {}),
    }
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modeldeploy",
            "run",
            f"--kubeconfig={kubeconfig}",
            f"--metrics-port={metrics_port}",
            f"--health-port={health_port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    log.close()

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"operator exited: {log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_for(healthy, timeout=30, what="operator liveness endpoint")
    return OperatorProcess(process, f"http://127.0.0.1:{metrics_port}/metrics", log_path)


def stop_operator(operator: OperatorProcess) -> None:
    operator.process.terminate()
    try:
        operator.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        operator.process.kill()


@pytest.fixture(scope="module")
def operator(sandbox: Sandbox, crd: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The operator with admin credentials over all namespaces, for one test module.

    Module scope, not session: a module that runs its own operator (other credentials, other
    namespaces) simply does not request this one, and no admin operator is alive to fight it.
    """
    running = start_operator(sandbox.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log")
    yield running
    stop_operator(running)


def model_deployment(name: str = "iris", **spec: Any) -> dict[str, Any]:
    """A small ModelDeployment the sandbox makes Ready without model probes; `spec` overrides."""
    body: dict[str, Any] = {
        "model": {"name": "iris", "version": "1.0.0"},
        "runtime": {"image": "registry.invalid/modelserver:1"},
        "replicas": 2,
        "probing": {"enabled": False},
    }
    body.update(spec)
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": body,
    }


def operator_samples(operator: OperatorProcess, family: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of one metric family of one operator process (a counter's `_total` samples)."""
    with urllib.request.urlopen(operator.metrics_url, timeout=5) as response:
        text = response.read().decode()
    for found in text_string_to_metric_families(text):
        if found.name == family:
            return [
                (dict(s.labels), s.value) for s in found.samples if found.type != "counter" or s.name.endswith("_total")
            ]
    return []


def reconciles_by_result(operator: OperatorProcess) -> dict[str, float]:
    """`modeldeploy_reconciles_total` of one operator process, per `result` label."""
    counts: dict[str, float] = {}
    for labels, value in operator_samples(operator, "modeldeploy_reconciles"):
        counts[labels["result"]] = counts.get(labels["result"], 0.0) + value
    return counts


def petal_length_drift(min_samples: int = 300) -> dict[str, Any]:
    """A drift spec on the reference model server's petal length, with the iris baseline."""
    return {
        "method": "psi",
        "threshold": 0.2,
        "minSamples": min_samples,
        "windowSeconds": 600,
        "metrics": [
            {
                "name": "modelserver_feature_value",
                "labels": {"feature": "petal_length"},
                "baseline": {
                    "bounds": [1, 2, 3, 4, 5, 6, 7],
                    "proportions": [0.007, 0.326, 0.007, 0.087, 0.287, 0.22, 0.066, 0.0],
                },
            }
        ],
    }


def get_json(kubectl: Kubectl, *args: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(kubectl("get", *args, "-o", "json").stdout)
    return result


def condition(obj: dict[str, object], type_: str) -> dict[str, str]:
    for item in (obj.get("status") or {}).get("conditions", []):  # type: ignore[attr-defined]
        if item["type"] == type_:
            return dict(item)
    return {}
