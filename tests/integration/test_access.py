"""The children of spec.access, spec.exposure, spec.disruptionBudget and autoscaling.engine keda,
against the real apiserver with the Gateway API's and KEDA's own CRDs installed.

Each child: created owned by its ModelDeployment, written by server-side apply under our field
manager, put back when edited by hand, deleted when its section is removed. The sandbox runs no
CNI, gateway, ingress controller or KEDA: these are objects whose content the tests read; what a
NetworkPolicy admits is judged by tests/unit/test_render_access.py, and the apiserver validates
every rendered policy here (dry-run=server).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.api.v1alpha1 import ModelDeploymentSpec
from modeldeploy.render.access import render_network_policy
from modeldeploy.render.children import Owner
from modeldeploy.render.model import Platform
from modeldeploy.render.runtime import explicit_server
from modeldeploy_dev.sandbox import build
from tests.conftest import Kubectl, condition, get_json, model_deployment, wait_for
from tests.integration.test_kstatus import kstatus_of
from tests.unit.test_argocd_health import run_in_argocd
from tests.unit.test_render_access import OPERATOR, SCRAPER, TABLE

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("gateway_api", "keda", "operator")]
Obj = dict[str, Any]
PROMETHEUS = "http://prometheus.monitoring:9090"


@pytest.fixture(scope="module")
def gateway_api(admin_kubectl: Kubectl) -> None:
    for crd in build.gateway_api_crds():
        admin_kubectl("apply", "--server-side", "-f", str(crd))
    admin_kubectl("wait", "--for=condition=Established", "crd/httproutes.gateway.networking.k8s.io", "--timeout=60s")


@pytest.fixture(scope="module")
def keda(admin_kubectl: Kubectl) -> None:
    for crd in build.keda_crds():
        admin_kubectl("apply", "--server-side", "-f", str(crd))
    admin_kubectl("wait", "--for=condition=Established", "crd/scaledobjects.keda.sh", "--timeout=60s")


@dataclass(frozen=True)
class ChildCase:
    resource: str  # what kubectl calls it
    section: Obj  # spec sections that ask for it
    removed: Obj  # a merge patch of the spec that stops asking
    edit: Obj  # a merge patch a person might make to the child
    restored: Callable[[Obj], bool]  # the edit is gone


BACKEND = {"service": {"name": "iris", "port": {"number": 8080}}}
HIJACKED = [{"host": "evil.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": BACKEND}]}}]
KEDA_SCALING = {"engine": "keda", "minReplicas": 1, "maxReplicas": 4, "targetCPUUtilizationPercentage": 70}
CASES = {
    "networkpolicy": ChildCase(
        "networkpolicy",
        {"access": {"networkPolicy": {"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}}},
        {"access": None},
        {"spec": {"ingress": None}},
        lambda live: live["spec"].get("ingress", [{}])[0].get("from") == [
            {"podSelector": {"matchLabels": {"role": "client"}}}
        ],
    ),
    "poddisruptionbudget": ChildCase(
        "poddisruptionbudget",
        {"replicas": 2},
        {"replicas": 1},
        {"spec": {"maxUnavailable": 2}},
        lambda live: live["spec"].get("maxUnavailable") == 1,
    ),
    "ingress": ChildCase(
        "ingress",
        {"exposure": {"ingress": {"host": "iris.example.com", "path": "/iris"}}},
        {"exposure": None},
        {"spec": {"rules": HIJACKED}},
        lambda live: live["spec"]["rules"][0]["host"] == "iris.example.com",
    ),
    "httproute": ChildCase(
        "httproute",
        {"exposure": {"httpRoute": {"parentRefs": [{"name": "public"}], "hostnames": ["iris.example.com"]}}},
        {"exposure": None},
        {"spec": {"hostnames": ["evil.example.com"]}},
        lambda live: live["spec"]["hostnames"] == ["iris.example.com"],
    ),
    "scaledobject": ChildCase(
        "scaledobject",
        {"autoscaling": KEDA_SCALING},
        {"autoscaling": None, "replicas": 1},
        {"spec": {"maxReplicaCount": 40}},
        lambda live: live["spec"]["maxReplicaCount"] == 4,
    ),
}  # fmt: skip


def apply(kubectl: Kubectl, doc: Obj) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(doc))


def live_or_none(kubectl: Kubectl, resource: str, name: str = "iris") -> Obj | None:
    result = kubectl("get", resource, name, "-o", "json", "--show-managed-fields", check=False)
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    found: Obj = json.loads(result.stdout)
    return found


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_the_child_is_owned_applied_restored_and_removed(kubectl: Kubectl, case: ChildCase) -> None:
    apply(kubectl, model_deployment(**case.section))
    uid = get_json(kubectl, "md", "iris")["metadata"]["uid"]  # type: ignore[index]
    live = wait_for(lambda: live_or_none(kubectl, case.resource), timeout=30, what=f"the {case.resource}")
    assert isinstance(live, dict)
    owners = live["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"], o["uid"], o.get("controller")) for o in owners] == [
        ("ModelDeployment", "iris", uid, True)
    ]
    applied = [m for m in live["metadata"]["managedFields"] if m["manager"] == "modeldeploy"]
    assert [m["operation"] for m in applied] == ["Apply"], live["metadata"]["managedFields"]
    assert case.restored(live)

    kubectl("patch", case.resource, "iris", "--type=merge", "-p", json.dumps(case.edit))

    def restored() -> bool:
        now = live_or_none(kubectl, case.resource)
        return now is not None and case.restored(now)

    wait_for(restored, timeout=30, what=f"the hand edit of the {case.resource} reverted")
    events = json.loads(kubectl("get", "events", "--field-selector=involvedObject.name=iris", "-o", "json").stdout)
    messages = " | ".join(e["message"] for e in events["items"])
    assert "was edited" in messages, messages

    kubectl("patch", "md", "iris", "--type=merge", "-p", json.dumps({"spec": case.removed}))
    wait_for(lambda: live_or_none(kubectl, case.resource) is None, timeout=30, what=f"the {case.resource} deleted")
    assert live_or_none(kubectl, "deployment") is not None, "only the child went"


def test_a_foreign_object_of_the_name_is_left_alone(kubectl: Kubectl) -> None:
    """Removing the section deletes only what we control: a NetworkPolicy of the same name that is not ours stays."""
    apply(
        kubectl,
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "iris"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
    )
    apply(kubectl, model_deployment())
    wait_for(lambda: condition(get_json(kubectl, "md", "iris"), "Ready").get("status") == "True", timeout=30)
    assert live_or_none(kubectl, "networkpolicy") is not None
    apply(kubectl, model_deployment(access={"networkPolicy": {}}))
    stalled = wait_for(
        lambda: condition(get_json(kubectl, "md", "iris"), "Stalled").get("reason") == "ChildNameConflict",
        timeout=30,
        what="ChildNameConflict",
    )
    assert stalled
    apply(kubectl, model_deployment())
    time.sleep(2)
    policy = live_or_none(kubectl, "networkpolicy")
    assert policy is not None
    assert "ownerReferences" not in policy["metadata"]


def test_status_url_is_the_exposed_one(kubectl: Kubectl) -> None:
    apply(kubectl, model_deployment())
    wait_for(lambda: (get_json(kubectl, "md", "iris").get("status") or {}).get("url"), timeout=30, what="a url")
    assert get_json(kubectl, "md", "iris")["status"]["url"] == "http://iris.{}.svc:8080".format(  # type: ignore[index]
        get_json(kubectl, "md", "iris")["metadata"]["namespace"]  # type: ignore[index]
    )
    apply(kubectl, model_deployment(exposure={"ingress": {"host": "iris.example.com", "tlsSecretName": "t"}}))
    wait_for(
        lambda: get_json(kubectl, "md", "iris")["status"].get("url") == "https://iris.example.com",  # type: ignore[union-attr]
        timeout=30,
        what="the Ingress URL on the status",
    )


@pytest.mark.parametrize("row", TABLE, ids=[row[0] for row in TABLE])
def test_every_rendered_policy_passes_the_apiservers_validation(
    kubectl: Kubectl, namespace: str, row: tuple[Any, ...]
) -> None:
    _, sections, *_ = row
    base: Obj = {"model": {"name": "iris", "version": "1.0.0"}, "runtime": {"image": "example/iris:1"}}
    spec = ModelDeploymentSpec.model_validate({**base, **sections})
    platform = Platform(operator_peers=(OPERATOR,), scraper_peers=(SCRAPER,))
    owner = Owner("iris", namespace, "6f1c2a4e-0000-4000-8000-000000000001")
    policy = render_network_policy(owner, spec, explicit_server(spec), platform)
    if policy is None:
        pytest.skip("no policy for this spec")
    result = kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(policy), check=False)
    assert result.returncode == 0, result.stderr
    stored = json.loads(result.stdout)
    assert stored["spec"].get("ingress", []) == policy["spec"].get("ingress", []), (
        "the apiserver kept the rules as rendered"
    )


class Watcher:
    """Polls which autoscalers exist for one model, every 0.1 s, and keeps every distinct sighting."""

    def __init__(self, kubectl: Kubectl) -> None:
        self.kubectl = kubectl
        self.seen: list[tuple[bool, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            found = self.kubectl("get", "hpa,scaledobject", "-o", "name", check=False).stdout.split()
            sighting = ("horizontalpodautoscaler.autoscaling/iris" in found, "scaledobject.keda.sh/iris" in found)
            if not self.seen or self.seen[-1] != sighting:
                self.seen.append(sighting)
            time.sleep(0.1)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def watcher(kubectl: Kubectl) -> Iterator[Watcher]:
    with Watcher(kubectl) as watching:
        yield watching


def test_hpa_and_scaled_object_never_coexist(kubectl: Kubectl, watcher: Watcher) -> None:
    hpa = {"minReplicas": 1, "maxReplicas": 4, "targetCPUUtilizationPercentage": 70}
    for scaling, expected in ((hpa, (True, False)), (KEDA_SCALING, (False, True)), (hpa, (True, False))):
        apply(kubectl, model_deployment(autoscaling=scaling))
        wait_for(lambda e=expected: watcher.seen[-1:] == [e], timeout=30, what=f"autoscalers {expected}")
    time.sleep(0.5)
    assert (True, True) not in watcher.seen, watcher.seen


def test_scaled_to_zero_by_its_scaled_object_and_back(kubectl: Kubectl, tmp_path: Path) -> None:
    """KEDA scales through the Deployment's scale subresource, as `kubectl scale` does (the sandbox runs no KEDA).

    Ready at zero is policy: the model is where its autoscaler was asked to put it, so kstatus says
    Current and Argo CD Healthy, `kubectl wait --for=condition=Ready` returns, and nothing is probed.
    """
    scaling = {
        "engine": "keda",
        "minReplicas": 0,
        "maxReplicas": 3,
        "requestRate": {
            "prometheusAddress": PROMETHEUS,
            "targetPerReplica": 5,
            "query": "sum(rate(gateway_requests[1m]))",
        },
    }
    apply(kubectl, model_deployment(autoscaling=scaling, replicas=1, probing={"intervalSeconds": 2}))
    wait_for(lambda: live_or_none(kubectl, "scaledobject") is not None, timeout=30, what="the ScaledObject")
    assert live_or_none(kubectl, "hpa") is None
    kubectl("scale", "deployment", "iris", "--replicas=0")

    def reason(type_: str) -> str:
        return condition(get_json(kubectl, "md", "iris"), type_).get("reason", "")

    wait_for(lambda: reason("Ready") == "ScaledToZero", timeout=30, what="Ready, ScaledToZero")
    md = get_json(kubectl, "md", "iris")
    assert condition(md, "Ready")["status"] == "True"
    assert condition(md, "ModelHealthy")["reason"] == "ScaledToZero"
    assert md["status"]["replicas"] == 0  # type: ignore[index]
    assert kstatus_of(build.binary(build.KSTATUS), md, tmp_path)["status"] == "Current"
    assert run_in_argocd([md])[0]["status"] == "Healthy"
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=5s")
    time.sleep(3)
    assert get_json(kubectl, "deployment", "iris")["spec"]["replicas"] == 0, "the operator leaves KEDA's count"  # type: ignore[index]
    kubectl("scale", "deployment", "iris", "--replicas=2")
    wait_for(lambda: reason("Ready") == "Ready", timeout=60, what="Ready at two replicas")
    assert get_json(kubectl, "md", "iris")["status"]["readyReplicas"] == 2  # type: ignore[index]
