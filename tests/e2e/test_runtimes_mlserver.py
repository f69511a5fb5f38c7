"""End to end: the chart's mlserver-sklearn runtime serves a bare model.joblib from S3, selected by format.

The ModelDeployment names no runtime and no image: `model.format: sklearn` selects the chart's
ClusterModelRuntime, as `helm template` renders it. The sandbox's pods are simulated, so the test
does the kubelet's part from what the operator rendered: the fetch init container runs (as in
test_fetch_mlserver.py), then the model server container's environment is built the way the
kubelet builds it (`$(VAR)` references expanded in order, MODEL_DIR pointing at the folder that
stands for the volume) and the image's own command, `mlserver start $MLSERVER_MODELS_DIR`, runs
with MLServer 1.7.1 from PyPI. The folder holds no model-settings.json: MLServer serves the model
from the MLSERVER_MODEL_* variables the runtime sets, so the version the operator probes is the
one the ModelDeployment asked for, passed through the runtime.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.chart import CHART_DIR, helm
from tests.conftest import Kubectl, get_json, wait_for
from tests.e2e.conftest import MLServers, wait_until_free
from tests.e2e.test_fetch_mlserver import BUCKET, report_init_container, run_the_init_container, upload_bytes
from tests.e2e.test_mlserver import FARM_HINT, INTERVAL, SERVE, conditions_of, the_pod
from tests.s3server import S3Server, moto_venv, s3_server

pytestmark = [pytest.mark.timeout(900), pytest.mark.integration, pytest.mark.usefixtures("operator")]

Obj = dict[str, Any]
URI = f"s3://{BUCKET}/bare/1.0.0/"
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(moto_venv(), tmp_path_factory.mktemp("moto") / "moto.log") as server:
        server.create_bucket(BUCKET)
        yield server


def chart_runtime(name: str) -> Obj:
    rendered = helm("template", "rel", str(CHART_DIR), "--namespace=ops", "--show-only=templates/runtimes.yaml").stdout
    [runtime] = [doc for doc in yaml.safe_load_all(rendered) if doc and doc["metadata"]["name"] == name]
    return runtime  # type: ignore[no-any-return]


def expand(value: str, defined: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: a variable defined earlier is replaced, $$ is a literal $, else as written."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return defined.get(match.group(1), match.group(0))

    return _REFERENCE.sub(one, value)


def kubelet_env(container: Obj, replace: dict[str, str]) -> dict[str, str]:
    """The container's environment as the kubelet makes it, with `replace` standing for what the node decides."""
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        assert "valueFrom" not in entry, entry
        env[entry["name"]] = replace.get(entry["name"]) or expand(entry.get("value", ""), env)
    return env


@pytest.mark.parametrize("named", [False, True], ids=["selected-by-format", "named"])
def test_the_charts_mlserver_runtime_serves_a_bare_sklearn_model_from_s3(
    kubectl: Kubectl, admin_kubectl: Kubectl, mlservers: MLServers, s3: S3Server, tmp_path: Path, named: bool
) -> None:
    runtime = chart_runtime("mlserver-sklearn")
    admin_kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(runtime))
    trained = mlservers.model("trained", version="1.0.0")
    upload_bytes(s3, "bare/1.0.0/model.joblib", (trained.root / trained.name / "model.joblib").read_bytes())
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-creds"}, "stringData": s3.env()}
    kubectl("apply", "-f", "-", input=json.dumps(secret))
    model = {"name": "iris", "version": "1.0.0", "format": "sklearn", "uri": URI, "credentials": {"name": "s3-creds"}}
    spec: Obj = {
        "model": model,
        "replicas": 1,
        "probing": {"intervalSeconds": INTERVAL, "timeoutSeconds": 1, "failureThreshold": 1},
    }
    if named:
        spec["runtime"] = {"name": "mlserver-sklearn"}
    manifest = {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "iris"}}
    kubectl("apply", "-f", "-", input=json.dumps({**manifest, "spec": spec}))
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=120s")  # the farm answers for the pod meanwhile
    status = get_json(kubectl, "md", "iris")["status"]
    assert status["model"]["runtime"] == {"kind": "ClusterModelRuntime", "name": "mlserver-sklearn"}  # type: ignore[index]
    pod, ip = the_pod(kubectl)

    volume, log = tmp_path / "volume", tmp_path / "termination-log"
    fetched = run_the_init_container(kubectl, volume, log)
    assert fetched.returncode == 0, fetched.stderr
    assert sorted(p.name for p in (volume / "model").iterdir()) == [".fetched.json", "model.joblib"]
    report_init_container(kubectl, pod, 0, log.read_text())

    [container] = get_json(kubectl, "deployment", "iris")["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    assert container["image"] == runtime["spec"]["image"]
    assert "command" not in container, "the image's own command runs"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080, "metrics": 8082}
    # What the node decides: the volume's path, and the pod's address (its own network namespace).
    env = kubelet_env(container, {"MODEL_DIR": str(volume / "model")})
    env["MLSERVER_HOST"] = ip
    # Not the node's: MLServer 1.7.1 from PyPI resolves uvloop 0.23, whose get_event_loop() kills
    # MLServer's inference worker processes at start ("There is no current event loop"); the
    # image pins its own. In-process inference sidesteps it (tests/e2e/conftest.py does the same).
    env["MLSERVER_PARALLEL_WORKERS"] = "0"
    assert env["MLSERVER_MODELS_DIR"] == env["MLSERVER_MODEL_URI"] == str(volume / "model")
    assert (env["MLSERVER_MODEL_NAME"], env["MLSERVER_MODEL_VERSION"]) == ("iris", "1.0.0")

    kubectl("annotate", "pod", pod, f"{SERVE}=false")
    wait_until_free(ip, [8080, 8081, 8082], hint=FARM_HINT)
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    server_log = tmp_path / "mlserver.log"
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    with open(server_log, "wb") as out:
        process = subprocess.Popen(
            # the image's CMD: `mlserver start $MLSERVER_MODELS_DIR`
            [str(mlservers.venv.bin("mlserver")), "start", env["MLSERVER_MODELS_DIR"]],
            cwd=workdir,
            env={**base, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: _ready(ip), timeout=120, what=f"MLServer ready on {ip}:8080 ({server_log})")
        wait_for(
            lambda: (
                conditions_of(kubectl)["Ready"]["status"] == "True"
                and conditions_of(kubectl)["ModelHealthy"]["status"] == "True"
            ),
            timeout=3 * INTERVAL + 30,
            what="Ready with MLServer serving the model through the runtime",
        )
        status = get_json(kubectl, "md", "iris")["status"]
        [replica] = status["health"]["replicas"]  # type: ignore[index]
        assert (replica["pod"], replica["ip"], replica["servedVersion"]) == (pod, ip, "1.0.0")
        prediction = httpx.post(
            f"http://{ip}:8080/v2/models/iris/infer",
            json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]},
            timeout=10,
        )
        assert prediction.status_code == 200, prediction.text
        assert prediction.json()["model_version"] == "1.0.0"
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
        time.sleep(0.2)


def _ready(ip: str) -> bool:
    try:
        return httpx.get(f"http://{ip}:8080/v2/models/iris/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
