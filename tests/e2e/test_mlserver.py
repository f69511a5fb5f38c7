"""The prober against a real third-party runtime: MLServer 1.7.1 serving a scikit-learn model.

Two levels. First the prober alone, against MLServer on a loopback address: what it
concludes from MLServer's real answers (docs/mlserver.md records them). Then end to end:
the operator runs against the sandbox, the replica farm lets go of a pod's address, and
MLServer takes the pod's IP and ports, so the ModelDeployment's status is what the
operator made of MLServer's answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from modeldeploy.probing.metrics import MetricQuery
from modeldeploy.probing.prober import Prober, ReplicaProbe
from modeldeploy.probing.targets import ProbeTarget
from tests.conftest import Kubectl, condition, get_json, wait_for
from tests.e2e.conftest import (
    MLServerProcess,
    MLServers,
    ModelFolder,
    free_port_on,
    wait_until_free,
)

# Installing MLServer cold takes about a minute; a slow mirror can take several.
pytestmark = pytest.mark.timeout(900)

# Outside the sandbox's pod ranges (127.0.2-4.0/24), so no pod's address is ever taken.
HOST = "127.0.77.1"
TIMEOUT = 2.0
INF = float("inf")


def target(server: MLServerProcess, expected: str | None, model_name: str = "iris") -> ProbeTarget:
    return ProbeTarget(
        pod="mlserver-0",
        ip=server.host,
        port=server.http_port,
        model_name=model_name,
        protocol="v2",
        expected_version=expected,
        metrics_port=server.metrics_port,
    )


async def probe_one(
    probe_target: ProbeTarget, *, request_timeout: float = TIMEOUT, metrics: Sequence[MetricQuery] = ()
) -> ReplicaProbe:
    async with Prober(timeout=request_timeout) as prober:
        [result] = await prober.probe_replicas([probe_target], metrics=metrics)
    return result


def access_log(server: MLServerProcess, path: str, status: int) -> bool:
    """Whether uvicorn's access log in MLServer's output shows `GET path` answered with `status`."""
    return f'"GET {path} HTTP/1.1" {status}' in server.log()


@pytest.fixture(scope="module")
def iris(module_mlservers: MLServers) -> MLServerProcess:
    """MLServer serving iris 1.0.0 for the prober-level tests of this module."""
    folder = module_mlservers.model("iris-1.0.0", version="1.0.0")
    return module_mlservers.start(folder, host=HOST, http_port=free_port_on(HOST), metrics_port=free_port_on(HOST))


# ---- the prober alone --------------------------------------------------------------------------


async def test_the_loaded_version_is_served_and_healthy(iris: MLServerProcess) -> None:
    result = await probe_one(target(iris, "1.0.0"))

    assert result.findings.error is None
    assert (result.findings.live, result.findings.ready, result.findings.model_ready) == (True, True, True)
    assert result.findings.served_version == "1.0.0"
    assert result.findings.version_matches is True
    assert result.healthy
    assert result.latency_ms < 2 * TIMEOUT * 1000
    # The version came from MLServer's versioned readiness endpoint, and it was MLServer answering.
    assert access_log(iris, "/v2/models/iris/versions/1.0.0/ready", 200)
    assert access_log(iris, "/v2/models/iris", 200)


async def test_another_expected_version_is_a_mismatch_without_a_served_version(iris: MLServerProcess) -> None:
    """MLServer answers 404 for a version it has not loaded, and its metadata lists no versions.

    So the prober knows the replica does not serve 2.0.0 but not which version it does:
    served_version None, version_matches False (the operator shows it as "not 2.0.0").
    The replica itself is healthy: a wrong version is drift, not ill health.
    """
    result = await probe_one(target(iris, "2.0.0"))

    assert result.findings.error is None
    assert (result.findings.live, result.findings.ready, result.findings.model_ready) == (True, True, True)
    assert result.findings.served_version is None
    assert result.findings.version_matches is False
    assert result.healthy
    assert access_log(iris, "/v2/models/iris/versions/2.0.0/ready", 404)


async def test_without_an_expected_version_mlserver_gives_no_version_evidence(iris: MLServerProcess) -> None:
    result = await probe_one(target(iris, None))

    assert result.findings.error is None
    assert result.healthy
    # `versions: []` and no model_version field: absent evidence, not a version.
    assert result.findings.served_version is None
    assert result.findings.version_matches is None


async def test_a_model_mlserver_does_not_serve_is_not_model_ready(iris: MLServerProcess) -> None:
    result = await probe_one(target(iris, "1.0.0", model_name="wine"))

    assert (result.findings.live, result.findings.ready, result.findings.model_ready) == (True, True, False)
    assert result.findings.error == "HTTP 404 on /v2/models/wine/ready"
    assert result.findings.served_version is None
    # 404 on the versioned endpoint says nothing when the model itself is not there.
    assert result.findings.version_matches is None
    assert not result.healthy


async def test_histograms_are_scraped_from_the_separate_metrics_port(iris: MLServerProcess) -> None:
    """MLServer 1.7 serves /metrics on its own port, as `text/plain; version=1.0.0`.

    Its REST histogram skips /v2/health/*, so real inference traffic is what it counts here.
    """
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
    request = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": []}]}
    predictions = []
    async with httpx.AsyncClient(trust_env=False, timeout=10.0) as client:
        for row in rows:
            request["inputs"][0]["data"] = row
            response = await client.post(f"{iris.url}/v2/models/iris/infer", json=request)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["model_name"] == "iris"
            assert body["model_version"] == "1.0.0"
            predictions.append(body["outputs"][0]["data"][0])
    assert predictions == [0, 2, 1]  # setosa, virginica, versicolor

    query = MetricQuery.of(
        "rest_server_request_duration_seconds",
        {"method": "POST", "path": "/v2/models/{model_name}/infer", "status_code": "200"},
    )
    result = await probe_one(target(iris, "1.0.0"), metrics=[query])

    assert result.healthy
    assert result.metrics_error is None
    buckets = result.histograms[query]
    assert isinstance(buckets, dict), buckets
    assert buckets[INF] == len(rows)  # only this test sends inference requests to this server
    # starlette_exporter's default layout, which MLServer's REST metrics use.
    assert list(buckets) == [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, INF]


async def test_an_unversioned_model_is_not_the_expected_version(mlservers: MLServers) -> None:
    """A model-settings.json without parameters.version: MLServer 404s every versioned check.

    The prober reads that as evidence that the expected version is not served, so a
    ModelDeployment on MLServer must set parameters.version to spec.model.version.
    """
    folder = mlservers.model("unversioned", version=None)
    server = mlservers.start(folder, host=HOST, http_port=free_port_on(HOST), metrics_port=free_port_on(HOST))
    result = await probe_one(target(server, "1.0.0"))

    assert result.findings.error is None
    assert result.healthy
    assert result.findings.served_version is None
    assert result.findings.version_matches is False
    assert access_log(server, "/v2/models/iris/versions/1.0.0/ready", 404)


async def test_mlserver_dependency_versions_are_not_a_served_version(mlservers: MLServers) -> None:
    folder = mlservers.model("with-deps", version="1.0.0", dependency_versions=["sklearn/1.9.1"])
    server = mlservers.start(folder, host=HOST, http_port=free_port_on(HOST), metrics_port=free_port_on(HOST))

    serving = await probe_one(target(server, "1.0.0"))
    assert serving.findings.served_version == "1.0.0"  # settled by the versioned endpoint; metadata unused
    assert serving.findings.version_matches is True

    other = await probe_one(target(server, "2.0.0"))
    assert other.findings.version_matches is False
    # Today: "sklearn/1.9.1", which the operator would report as the version this pod serves.
    assert other.findings.served_version is None


async def test_a_stopped_mlserver_is_connection_refused_within_the_timeout(mlservers: MLServers) -> None:
    folder = mlservers.model("stopping")
    server = mlservers.start(folder, host=HOST, http_port=free_port_on(HOST), metrics_port=free_port_on(HOST))
    probe_target = target(server, "1.0.0")
    assert (await probe_one(probe_target, request_timeout=1.0)).healthy

    server.stop()
    assert server.process.returncode is not None
    started = time.monotonic()
    result = await probe_one(probe_target, request_timeout=1.0)
    took = time.monotonic() - started

    assert result.findings.error == f"cannot connect to {HOST}:{server.http_port}: connection refused"
    assert (result.findings.live, result.findings.ready, result.findings.model_ready) == (None, None, None)
    assert result.findings.served_version is None
    assert not result.healthy
    assert took < 1.0, f"a refused connection took {took:.2f}s to report"


# ---- end to end: the operator on the sandbox, MLServer in a pod's place ---------------------------

RUNTIME_PORT = 8080  # MLServer's default ports; every pod has an address of its own
METRICS_PORT = 8082
GRPC_PORT = 8081
INTERVAL = 2
SERVE = "farm.modeldeploy.io/serve"
FARM_HINT = (
    f": the replica farm kept the pod's address despite {SERVE}=false. A farm process started"
    " before it knew that annotation (modeldeploy_dev.sandbox.farm, commit 79a195e) ignores it: stop the"
    " replica-farm pid in .sandbox/state.json and run `modeldeploy-dev sandbox up` to start a current one"
)


def manifest() -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris"},
        "spec": {
            "model": {"name": "iris", "version": "1.0.0"},
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


def conditions_of(kubectl: Kubectl) -> dict[str, dict[str, str]]:
    md = get_json(kubectl, "md", "iris")
    return {c["type"]: c for c in md.get("status", {}).get("conditions", [])}  # type: ignore[attr-defined]


def the_pod(kubectl: Kubectl) -> tuple[str, str]:
    items: list[dict[str, Any]] = get_json(kubectl, "pods", "-l", "modeldeploy.io/name=iris")["items"]  # type: ignore[assignment]
    running = [p for p in items if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
    assert len(running) == 1, f"expected one running pod, got {[p['metadata']['name'] for p in items]}"
    return running[0]["metadata"]["name"], running[0]["status"]["podIP"]


def mlserver_in_the_pods_place(
    kubectl: Kubectl, mlservers: MLServers, folder: ModelFolder
) -> tuple[str, MLServerProcess]:
    """Deploy, take the one pod's address away from the farm, and serve it with MLServer."""
    kubectl("apply", "-f", "-", input=json.dumps(manifest()))
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=120s")
    pod, ip = the_pod(kubectl)
    assert ip.startswith("127."), ip

    kubectl("annotate", "pod", pod, f"{SERVE}=false")
    wait_until_free(ip, [RUNTIME_PORT, METRICS_PORT, GRPC_PORT], hint=FARM_HINT)
    # Nothing answers at the pod's address now, and the operator says so.
    wait_for(
        lambda: (
            (c := conditions_of(kubectl)["ModelHealthy"])["status"] == "False" and "connection refused" in c["message"]
        ),
        timeout=3 * INTERVAL + 5,
        what="ModelHealthy False: connection refused once the farm let go",
    )
    server = mlservers.start(folder, host=ip, http_port=RUNTIME_PORT, metrics_port=METRICS_PORT, grpc_port=GRPC_PORT)
    print(f"\nMLServer ready on {ip}:{RUNTIME_PORT} in {server.started_in:.1f}s")
    return pod, server


@pytest.mark.integration
@pytest.mark.usefixtures("operator")
def test_operator_reports_mlserver_healthy_serving_the_expected_version(kubectl: Kubectl, mlservers: MLServers) -> None:
    folder = mlservers.model("pod-1.0.0", version="1.0.0")
    pod, server = mlserver_in_the_pods_place(kubectl, mlservers, folder)

    wait_for(
        lambda: conditions_of(kubectl)["Ready"]["status"] == "True",
        timeout=3 * INTERVAL + 10,
        what="Ready True with MLServer answering",
    )
    md = get_json(kubectl, "md", "iris")
    assert condition(md, "ModelHealthy")["status"] == "True"
    assert condition(md, "ModelHealthy")["reason"] == "AllReplicasHealthy"
    assert condition(md, "Drifted")["status"] == "False"
    [replica] = md["status"]["health"]["replicas"]  # type: ignore[index]
    assert replica["pod"] == pod
    assert replica["ip"] == server.host
    assert replica["servedVersion"] == "1.0.0"
    assert (replica["live"], replica["ready"], replica["modelReady"]) == (True, True, True)
    assert "error" not in replica
    # The operator's probes reached MLServer itself: its access log shows each step of the v2 flow
    # for a healthy replica (a ready server is live, a ready version is a ready model).
    for path in ("/v2/health/ready", "/v2/models/iris/versions/1.0.0/ready", "/v2/models/iris"):
        assert access_log(server, path, 200), f"MLServer never answered GET {path}"

    server.stop()
    wait_for(
        lambda: (
            (c := conditions_of(kubectl)["ModelHealthy"])["status"] == "False"
            and pod in c["message"]
            and "connection refused" in c["message"]
        ),
        timeout=3 * INTERVAL + 5,
        what="ModelHealthy False naming the pod once MLServer stopped",
    )
    assert conditions_of(kubectl)["Ready"]["status"] == "False"


@pytest.mark.integration
@pytest.mark.usefixtures("operator")
def test_operator_reports_version_drift_when_mlserver_serves_another_version(
    kubectl: Kubectl, mlservers: MLServers
) -> None:
    folder = mlservers.model("pod-0.9.0", version="0.9.0")
    pod, server = mlserver_in_the_pods_place(kubectl, mlservers, folder)

    wait_for(
        lambda: conditions_of(kubectl)["Drifted"]["status"] == "True",
        timeout=3 * INTERVAL + 10,
        what="Drifted True with MLServer serving 0.9.0",
    )
    state = conditions_of(kubectl)
    assert state["Drifted"]["reason"] == "VersionDrift"
    # MLServer only says "not 1.0.0" (404 on the versioned endpoint, `versions: []`).
    assert state["Drifted"]["message"] == f"expected version 1.0.0, but {pod} serves not 1.0.0"
    assert state["ModelHealthy"]["status"] == "True", "a replica serving another version is still healthy"
    assert state["Ready"]["status"] == "False"
    assert state["Ready"]["reason"] == "VersionDrift"
    md = get_json(kubectl, "md", "iris")
    assert md["status"]["drift"]["version"] == {  # type: ignore[index]
        "expected": "1.0.0",
        "mismatched": [{"pod": pod, "servedVersion": "not 1.0.0"}],
    }
    assert access_log(server, "/v2/models/iris/versions/1.0.0/ready", 404)
    server.stop()
