"""End to end: a bare model.joblib in S3, served by the chart's mlserver-sklearn runtime, with nobody's help.

The ModelDeployment names no image: `model.format: sklearn` (or `runtime.name`) gives it the
chart's ClusterModelRuntime, as `helm template` renders it. The sandbox's replica farm then runs
the pod for real, as a kubelet would (modeldeploy_dev.sandbox.kubelet): the operator's
`fetch-model` init container downloads the artifact from a real S3 server into the pod's
emptyDir, its termination message goes onto the pod's status, and the runtime's container
starts MLServer 1.7.1 (from PyPI) with the environment the runtime and the operator rendered,
`$(VAR)` references expanded. The folder holds no model-settings.json: MLServer serves the model
from the MLSERVER_MODEL_* variables the runtime sets. Nothing in this test starts a server or
patches a status; it only writes what a user writes, and reads what the operator reports.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import obstore
import pytest
import yaml

from modeldeploy.render.model import DEFAULT_FETCHER_IMAGE
from modeldeploy_dev.mlserver import image_stand_in
from modeldeploy_dev.s3 import S3Server, moto_venv, s3_server
from modeldeploy_dev.sandbox.cluster import Sandbox
from modeldeploy_dev.sandbox.kubelet import FARM_DIR, IMAGES_FILE
from tests.chart import CHART_DIR, helm
from tests.conftest import ROOT, Kubectl, get_json, wait_for
from tests.e2e.conftest import MLServers
from tests.e2e.test_mlserver import INTERVAL, conditions_of, the_pod

pytestmark = [pytest.mark.timeout(900), pytest.mark.integration, pytest.mark.usefixtures("operator")]

Obj = dict[str, Any]
BUCKET = "runtimes"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(moto_venv(), tmp_path_factory.mktemp("moto") / "moto.log") as server:
        server.create_bucket(BUCKET)
        yield server


def chart_runtime(name: str) -> Obj:
    rendered = helm("template", "rel", str(CHART_DIR), "--namespace=ops", "--show-only=templates/runtimes.yaml").stdout
    [runtime] = [doc for doc in yaml.safe_load_all(rendered) if doc and doc["metadata"]["name"] == name]
    return runtime  # type: ignore[no-any-return]


@pytest.fixture
def farm_runs(sandbox: Sandbox, mlservers: MLServers) -> Iterator[Obj]:
    """Tell the farm how to run the two images here; taken back afterwards, so no other test's pod runs."""
    runtime = chart_runtime("mlserver-sklearn")
    images = {
        runtime["spec"]["image"]: image_stand_in(mlservers.venv),
        DEFAULT_FETCHER_IMAGE: {
            "executables": {"modeldeploy": str(ROOT / ".venv" / "bin" / "modeldeploy")},
            "terminationLogArg": "--termination-log",
        },
    }
    path = sandbox.directory / FARM_DIR / IMAGES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(images, indent=2))
    yield runtime
    path.unlink(missing_ok=True)


def manifest(uri: str, *, named: bool) -> Obj:
    spec: Obj = {
        "model": {"name": "iris", "version": "1.0.0", "format": "sklearn", "uri": uri, "credentials": {"name": "s3"}},
        "replicas": 1,
        "probing": {"intervalSeconds": INTERVAL, "timeoutSeconds": 1, "failureThreshold": 1},
    }
    if named:
        spec["runtime"] = {"name": "mlserver-sklearn"}
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris"},
        "spec": spec,
    }


def healthy(kubectl: Kubectl) -> bool:
    conditions = conditions_of(kubectl)
    return (
        conditions.get("Ready", {}).get("status") == "True"
        and conditions.get("ModelHealthy", {}).get("status") == "True"
    )


@pytest.mark.parametrize("named", [False, True], ids=["selected-by-format", "named"])
def test_a_bare_sklearn_model_in_s3_is_served_by_the_charts_mlserver_runtime(
    kubectl: Kubectl, admin_kubectl: Kubectl, mlservers: MLServers, s3: S3Server, farm_runs: Obj, named: bool
) -> None:
    admin_kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(farm_runs))
    trained = mlservers.model("trained", version="1.0.0")
    joblib = (trained.root / trained.name / "model.joblib").read_bytes()
    obstore.put(s3.store(BUCKET), "iris/1.0.0/model.joblib", joblib)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3"}, "stringData": s3.env()}
    kubectl("apply", "-f", "-", input=json.dumps(secret))

    kubectl("apply", "-f", "-", input=json.dumps(manifest(f"s3://{BUCKET}/iris/1.0.0/", named=named)))
    wait_for(lambda: healthy(kubectl), timeout=180, what="Ready and ModelHealthy, MLServer serving the fetched model")

    status = get_json(kubectl, "md", "iris")["status"]
    pod, ip = the_pod(kubectl)
    [replica] = status["health"]["replicas"]  # type: ignore[index]
    assert (replica["pod"], replica["ip"], replica["servedVersion"]) == (pod, ip, "1.0.0")
    assert status["model"] == {  # type: ignore[index]
        "runtime": {"kind": "ClusterModelRuntime", "name": "mlserver-sklearn"},
        "uri": f"s3://{BUCKET}/iris/1.0.0/",
        "sha256": hashlib.sha256(joblib).hexdigest(),  # what the fetcher computed, on the pod's status
        "files": 1,
        "fetchedReplicas": 1,
    }
    prediction = httpx.post(
        f"http://{ip}:8080/v2/models/iris/infer",
        json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]},
        timeout=10,
    )
    assert prediction.status_code == 200, prediction.text
    assert prediction.json()["model_version"] == "1.0.0"


def test_a_missing_artifact_is_stalled_with_the_fetchers_reason_and_a_fixed_uri_is_served(
    kubectl: Kubectl, admin_kubectl: Kubectl, mlservers: MLServers, s3: S3Server, farm_runs: Obj
) -> None:
    admin_kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(farm_runs))
    trained = mlservers.model("trained", version="1.0.0")
    obstore.put(
        s3.store(BUCKET), "iris/2.0.0/model.joblib", (trained.root / trained.name / "model.joblib").read_bytes()
    )
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3"}, "stringData": s3.env()}
    kubectl("apply", "-f", "-", input=json.dumps(secret))

    kubectl("apply", "-f", "-", input=json.dumps(manifest(f"s3://{BUCKET}/iris/9.9.9/", named=False)))
    wait_for(
        lambda: conditions_of(kubectl).get("Stalled", {}).get("reason") == "ModelFetchFailed",
        timeout=120,
        what="Stalled ModelFetchFailed, from the fetcher the farm ran",
    )
    message = conditions_of(kubectl)["Stalled"]["message"]
    assert message.startswith(f"s3://{BUCKET}/iris/9.9.9/: NoSuchKey"), message
    assert conditions_of(kubectl)["Ready"]["status"] == "False"

    fixed = manifest(f"s3://{BUCKET}/iris/2.0.0/", named=False)
    kubectl("apply", "-f", "-", input=json.dumps(fixed))
    wait_for(lambda: healthy(kubectl), timeout=180, what="the fixed URI served, Ready and ModelHealthy")
    assert conditions_of(kubectl)["Stalled"]["status"] == "False"


def test_the_pods_folder_is_the_farms_and_goes_with_the_pod(sandbox: Sandbox) -> None:
    """What the runs above left: nothing, once their namespaces' pods are gone."""
    folder = sandbox.directory / FARM_DIR / "pods"
    wait_for(
        lambda: not folder.exists() or not any(folder.iterdir()),
        timeout=120,
        what=f"the farm's pod folders removed ({folder})",
    )
