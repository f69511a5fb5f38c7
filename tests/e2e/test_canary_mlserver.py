"""End to end: a canary judged on real MLServer's own request metrics.

Two versions of the same scikit-learn model in a real S3 server, served by the chart's
mlserver-sklearn runtime, run by the sandbox's farm as a kubelet would. Traffic goes to the
Service's ready pods; the canary's error rate and latency come from MLServer 1.7.1's
`rest_server_request_duration_seconds` (its REST server's histogram, labelled by status code and
routed path), which counts the operator's probes too: only the inference paths may count.
"""

from __future__ import annotations

import json
from typing import Any

import obstore
import pytest

from modeldeploy_dev.s3 import S3Server
from modeldeploy_dev.sandbox.traffic import ServiceTraffic, service_endpoints
from tests.conftest import Kubectl, get_json, wait_for
from tests.e2e.conftest import MLServers
from tests.e2e.test_mlserver import INTERVAL
from tests.e2e.test_runtimes_mlserver import BUCKET, healthy
from tests.e2e.test_runtimes_mlserver import farm_runs as farm_runs  # the fixtures
from tests.e2e.test_runtimes_mlserver import s3 as s3

pytestmark = [pytest.mark.timeout(900), pytest.mark.integration, pytest.mark.usefixtures("operator")]
Obj = dict[str, Any]


def manifest(version: str) -> Obj:
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris"},
        "spec": {
            "model": {
                "name": "iris",
                "version": version,
                "format": "sklearn",
                "uri": f"s3://{BUCKET}/iris/{version}/",
                "credentials": {"name": "s3"},
            },
            "replicas": 1,
            "probing": {"intervalSeconds": INTERVAL, "timeoutSeconds": 1, "failureThreshold": 1},
            "rollout": {
                "strategy": "Canary",
                "steps": [{"weight": 50, "pause": "4s"}],
                "progressDeadlineSeconds": 120,
                "analysis": {"maxErrorRate": 0.05, "maxLatencySeconds": 2.0, "minRequests": 20},
            },
        },
    }


def test_a_canary_is_judged_on_mlservers_own_request_metrics(
    kubectl: Kubectl, admin_kubectl: Kubectl, mlservers: MLServers, s3: S3Server, farm_runs: Obj
) -> None:
    admin_kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(farm_runs))
    trained = mlservers.model("trained", version="1.0.0")
    joblib = (trained.root / trained.name / "model.joblib").read_bytes()
    for version in ("1.0.0", "2.0.0"):
        obstore.put(s3.store(BUCKET), f"iris/{version}/model.joblib", joblib)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3"}, "stringData": s3.env()}
    kubectl("apply", "-f", "-", input=json.dumps(secret))
    kubectl("apply", "-f", "-", input=json.dumps(manifest("1.0.0")))
    wait_for(lambda: healthy(kubectl), timeout=180, what="version 1.0.0 Ready on MLServer")

    def endpoints() -> list[tuple[str, int]]:
        service = get_json(kubectl, "service", "iris")
        pods = get_json(kubectl, "pods", "-l", "modeldeploy.io/name=iris")["items"]
        return service_endpoints(service, pods)  # type: ignore[arg-type]

    with ServiceTraffic(endpoints, "iris", per_second=20) as traffic:
        kubectl("apply", "-f", "-", input=json.dumps(manifest("2.0.0")))

        def phase() -> str | None:
            return (get_json(kubectl, "md", "iris").get("status", {}).get("rollout") or {}).get("phase")  # type: ignore[union-attr]

        wait_for(lambda: phase() in ("Promoted", "RolledBack"), timeout=240, interval=1, what="a verdict")
    rollout = get_json(kubectl, "md", "iris")["status"]["rollout"]  # type: ignore[index]
    assert rollout["phase"] == "Promoted", rollout
    checks = {c["name"]: (c["state"], c["message"]) for c in rollout["checks"]}
    assert checks["errorRate"][0] == "Passed", checks
    assert "0.0% of " in checks["errorRate"][1], checks  # MLServer's probe answers (some 503s) are not counted
    assert checks["latency"][0] == "Passed", checks
    assert checks["latency"][1].startswith("p95 "), checks
    assert traffic.answered.get(200, 0) > 40, traffic.answered
    wait_for(lambda: healthy(kubectl), timeout=180, what="2.0.0 Ready on the stable")
