"""End to end: a scikit-learn model in S3, fetched by the pod's init container, served by MLServer, judged Ready.

The sandbox's pods are simulated, so the test does the kubelet's part, from what the operator
rendered: it reads the Deployment's `fetch-model` init container, gives it the Secret's keys
as its environment (envFrom) and a folder standing for the emptyDir, runs its command, and
copies its termination message onto the pod's status. MLServer then takes the pod's address
and serves the fetched folder, so the ModelDeployment's conditions are the operator's verdict
on a model that really went S3 -> fetch -> MLServer.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import obstore
import pytest

from modeldeploy_dev.s3 import S3Server, moto_venv, s3_server
from tests.conftest import Kubectl, get_json, wait_for
from tests.e2e.conftest import MLServers, ModelFolder, wait_until_free
from tests.e2e.test_mlserver import (
    FARM_HINT,
    GRPC_PORT,
    INTERVAL,
    METRICS_PORT,
    RUNTIME_PORT,
    SERVE,
    conditions_of,
    the_pod,
)

pytestmark = [pytest.mark.timeout(900), pytest.mark.integration, pytest.mark.usefixtures("operator")]

BUCKET = "models"
URI = f"s3://{BUCKET}/iris/1.0.0/"
MOUNT = "/mnt/models"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(moto_venv(), tmp_path_factory.mktemp("moto") / "moto.log") as server:
        server.create_bucket(BUCKET)
        yield server


def upload(server: S3Server, folder: Path, prefix: str) -> None:
    for path in sorted(folder.iterdir()):
        upload_bytes(server, f"{prefix}{path.name}", path.read_bytes())


def upload_bytes(server: S3Server, key: str, data: bytes) -> None:
    obstore.put(server.store(BUCKET), key, data)


def manifest(uri: str, sha256: str | None = None) -> dict[str, Any]:
    checked = {"sha256": sha256} if sha256 else {}
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris"},
        "spec": {
            "model": {
                "name": "iris",
                "version": "1.0.0",
                "format": "sklearn",
                "uri": uri,
                "credentials": {"name": "s3-creds"},
                **checked,
            },
            "runtime": {
                "image": "seldonio/mlserver:1.7.1",
                "port": RUNTIME_PORT,
                "protocol": "v2",
                "metrics": {"port": METRICS_PORT},
            },
            "replicas": 1,
            "probing": {"intervalSeconds": INTERVAL, "timeoutSeconds": 1, "failureThreshold": 1},
        },
    }


def run_the_init_container(kubectl: Kubectl, volume: Path, log: Path) -> subprocess.CompletedProcess[str]:
    """What the kubelet would do with the Deployment's fetch-model container."""
    pod_spec = get_json(kubectl, "deployment", "iris")["spec"]["template"]["spec"]  # type: ignore[index]
    [init] = pod_spec["initContainers"]  # type: ignore[index]
    env: dict[str, str] = {}
    for source in init.get("envFrom", []):
        secret = get_json(kubectl, "secret", source["secretRef"]["name"])
        env.update({k: base64.b64decode(v).decode() for k, v in secret["data"].items()})  # type: ignore[union-attr]
    assert init["command"] == ["modeldeploy"]
    args = [str(volume) if arg == MOUNT else arg for arg in init["args"]]
    return subprocess.run(
        [sys.executable, "-m", "modeldeploy.cli", *args, "--termination-log", str(log)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", **env},  # the container's environment: the Secret's keys, nothing of ours
    )


def report_init_container(kubectl: Kubectl, pod: str, exit_code: int, message: str) -> None:
    """The kubelet copies the termination log onto the pod's status."""
    terminated = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error", "message": message}
    state = (
        {"state": {"terminated": terminated}}
        if exit_code == 0
        else {
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": terminated},
        }
    )
    status = {"name": "fetch-model", "image": "x", "imageID": "", "ready": exit_code == 0, "restartCount": 0, **state}
    patch = {"status": {"initContainerStatuses": [status]}}
    kubectl("patch", "pod", pod, "--subresource=status", "--type=merge", "-p", json.dumps(patch))


def test_a_model_in_s3_is_fetched_served_by_mlserver_and_ready(
    kubectl: Kubectl, mlservers: MLServers, s3: S3Server, tmp_path: Path
) -> None:
    trained = mlservers.model("trained", version="1.0.0")
    upload(s3, trained.root / trained.name, "iris/1.0.0/")
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-creds"}, "stringData": s3.env()}
    kubectl("apply", "-f", "-", input=json.dumps(secret))
    kubectl("apply", "-f", "-", input=json.dumps(manifest(URI)))
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=120s")  # the farm answers for the pod meanwhile
    pod, ip = the_pod(kubectl)

    volume, log = tmp_path / "volume", tmp_path / "termination-log"
    fetched = run_the_init_container(kubectl, volume, log)
    assert fetched.returncode == 0, fetched.stderr
    assert sorted(p.name for p in (volume / "model").iterdir()) == [
        ".fetched.json",
        "model-settings.json",
        "model.joblib",
    ]
    report_init_container(kubectl, pod, 0, log.read_text())

    kubectl("annotate", "pod", pod, f"{SERVE}=false")
    wait_until_free(ip, [RUNTIME_PORT, METRICS_PORT, GRPC_PORT], hint=FARM_HINT)
    server = mlservers.start(
        ModelFolder(volume, "model", "1.0.0"),
        host=ip,
        http_port=RUNTIME_PORT,
        metrics_port=METRICS_PORT,
        grpc_port=GRPC_PORT,
    )
    wait_for(
        lambda: (
            conditions_of(kubectl)["Ready"]["status"] == "True"
            and conditions_of(kubectl)["ModelHealthy"]["status"] == "True"
        ),
        timeout=3 * INTERVAL + 15,
        what="Ready with MLServer serving the fetched model",
    )
    status = get_json(kubectl, "md", "iris")["status"]
    [replica] = status["health"]["replicas"]  # type: ignore[index]
    assert (replica["pod"], replica["ip"], replica["servedVersion"]) == (pod, server.host, "1.0.0")
    assert status["model"] == {"uri": URI, "files": 2, "fetchedReplicas": 1}  # type: ignore[index]
    server.stop()


ZEROS = "0" * 64


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        (
            manifest(f"s3://{BUCKET}/iris/9.9.9/"),
            "s3://models/iris/9.9.9/: NoSuchKey (no object there, and none under it",
        ),
        (
            manifest(f"s3://{BUCKET}/checked/model.joblib", sha256=ZEROS),
            f"s3://models/checked/model.joblib: sha256 mismatch: expected {ZEROS}, got ",
        ),
    ],
    ids=["missing-key", "wrong-checksum"],
)
def test_a_failing_fetch_is_stalled_with_the_fetchers_reason_and_a_fixed_spec_recovers(
    kubectl: Kubectl, s3: S3Server, tmp_path: Path, broken: dict[str, Any], reason: str
) -> None:
    upload_bytes(s3, "checked/model.joblib", b"a model")
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-creds"}, "stringData": s3.env()}
    kubectl("apply", "-f", "-", input=json.dumps(secret))
    kubectl("apply", "-f", "-", input=json.dumps(broken))
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=120s")
    pod, _ = the_pod(kubectl)
    failed = run_the_init_container(kubectl, tmp_path / "volume", tmp_path / "termination-log")
    assert failed.returncode == 1
    said = (tmp_path / "termination-log").read_text()
    assert said.startswith(reason)
    reason = said
    report_init_container(kubectl, pod, 1, reason)
    wait_for(
        lambda: conditions_of(kubectl)["Stalled"].get("reason") == "ModelFetchFailed",
        timeout=30,
        what="Stalled ModelFetchFailed",
    )
    assert conditions_of(kubectl)["Stalled"]["message"] == f"{reason} (pod {pod})"
    assert conditions_of(kubectl)["Ready"]["status"] == "False"

    # Fixing the spec rolls out pods that fetch; the failing one goes with its ReplicaSet.
    kubectl("apply", "-f", "-", input=json.dumps(manifest(URI)))
    wait_for(
        lambda: (
            conditions_of(kubectl)["Stalled"]["status"] == "False"
            and conditions_of(kubectl)["Ready"]["status"] == "True"
        ),
        timeout=120,
        what="recovered: not Stalled, Ready",
    )
