"""A canary weighted on a Gateway API HTTPRoute, with the Gateway API's own CRDs installed on the sandbox.

The sandbox has no gateway controller: the route is an object the test reads, and the weights on
it are what a gateway would follow. Traffic for the analysis still goes to the Service's pods.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from modeldeploy_dev.sandbox import build
from modeldeploy_dev.sandbox.traffic import ServiceTraffic
from tests.conftest import Kubectl, condition, get_json, wait_for
from tests.integration.test_canary import manifest, rolled_back, status
from tests.integration.test_canary import traffic as traffic  # the fixture

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator")]


@pytest.fixture(scope="module")
def gateway_api(admin_kubectl: Kubectl) -> None:
    for crd in build.gateway_api_crds():
        admin_kubectl("apply", "--server-side", "-f", str(crd))
    admin_kubectl("wait", "--for=condition=Established", "crd/httproutes.gateway.networking.k8s.io", "--timeout=60s")


def route(name: str = "iris") -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "public"}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
                    "backendRefs": [{"name": "iris", "port": 8080}],
                }
            ],
        },
    }


def backends(kubectl: Kubectl) -> list[tuple[str, int]]:
    refs = get_json(kubectl, "httproute", "iris")["spec"]["rules"][0]["backendRefs"]  # type: ignore[index]
    return [(r["name"], r.get("weight", 1)) for r in refs]


def routed(version: str, fault: str | None = None) -> dict[str, Any]:
    doc = manifest(version, fault=fault, steps=[{"weight": 10, "pause": "4s"}, {"weight": 50, "pause": "4s"}])
    doc["spec"]["rollout"]["httpRoute"] = {"name": "iris"}
    return doc


@pytest.mark.usefixtures("gateway_api")
def test_the_weights_go_on_the_route_step_by_step_and_back(kubectl: Kubectl, traffic: ServiceTraffic) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(route()))
    kubectl("apply", "-f", "-", input=json.dumps(routed("1.0.0")))
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=90s")
    assert backends(kubectl) == [("iris", 1)], "nothing to weigh: the route as its owner wrote it"
    selectors = {
        name: get_json(kubectl, "service", name)["spec"]["selector"]["modeldeploy.io/track"]  # type: ignore[index]
        for name in ("iris-stable", "iris-canary")
    }
    assert selectors == {"iris-stable": "stable", "iris-canary": "canary"}

    kubectl("apply", "-f", "-", input=json.dumps(routed("2.0.0")))
    seen: list[tuple[Any, ...]] = []

    def promoted() -> bool:
        rollout = status(kubectl).get("rollout") or {}
        seen.append((rollout.get("step"), rollout.get("canaryReplicas"), tuple(backends(kubectl))))
        return rollout.get("phase") == "Promoted"

    wait_for(promoted, timeout=90, interval=0.3, what="promoted")
    assert (1, 1, (("iris-stable", 90), ("iris-canary", 10))) in seen, seen  # 10% of 3 replicas: 1 canary
    assert (2, 2, (("iris-stable", 50), ("iris-canary", 50))) in seen, seen
    wait_for(lambda: backends(kubectl) == [("iris", 1)], timeout=30, what="the route restored")
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=60s")
    assert status(kubectl)["rollout"]["httpRoute"] == "iris"

    kubectl("apply", "-f", "-", input=json.dumps(routed("3.0.0", fault="errors=0.6")))
    wait_for(lambda: rolled_back(kubectl), timeout=60, interval=0.5, what="rolled back")
    wait_for(lambda: backends(kubectl) == [("iris", 1)], timeout=30, what="the route restored after the rollback")
    assert "errorRate" in condition(get_json(kubectl, "md", "iris"), "Stalled")["message"]


@pytest.mark.usefixtures("gateway_api")
def test_a_route_that_is_missing_or_points_elsewhere_is_stalled_with_its_reason(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(routed("1.0.0")))
    wait_for(
        lambda: condition(get_json(kubectl, "md", "iris"), "Stalled").get("reason") == "HTTPRouteNotFound",
        timeout=30,
        what="HTTPRouteNotFound",
    )
    elsewhere = route()
    elsewhere["spec"]["rules"][0]["backendRefs"] = [{"name": "other", "port": 80}]
    kubectl("apply", "-f", "-", input=json.dumps(elsewhere))
    wait_for(
        lambda: condition(get_json(kubectl, "md", "iris"), "Stalled").get("reason") == "HTTPRouteNotPointingHere",
        timeout=30,
        what="HTTPRouteNotPointingHere",
    )
    kubectl("apply", "-f", "-", input=json.dumps(route()))
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=60s")
