"""Who a model's NetworkPolicy admits, and what its PodDisruptionBudget allows (pure).

The NetworkPolicy table is judged by `admits` below, a reading of networking.k8s.io/v1's
semantics written from the API reference: a policy selecting a pod with policyType Ingress
admits a connection when some rule's `from` matches the caller (no `from`: anyone) and its
`ports` name the port (no `ports`: every port). The real apiserver checks the rendered objects
themselves (dry-run=server) in tests/integration/test_access.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from modeldeploy.api.v1alpha1 import ModelDeploymentSpec
from modeldeploy.render.access import render_network_policy, render_pdb
from modeldeploy.render.children import Owner, render_deployment, render_service, service_url
from modeldeploy.render.model import Platform
from modeldeploy.render.runtime import explicit_server

Obj = dict[str, Any]
OWNER = Owner("iris", "models", "6f1c2a4e-0000-4000-8000-000000000001")
MODEL_POD = {"modeldeploy.io/name": "iris", "modeldeploy.io/track": "canary"}
OPERATOR = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "modeldeploy-system"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "modeldeploy"}}}  # fmt: skip
SCRAPER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
PLATFORM = Platform(operator_peers=(OPERATOR,), scraper_peers=(SCRAPER,))


@dataclass(frozen=True)
class Caller:
    namespace: str
    pod_labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)

    def ns_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


def _selects(selector: Obj, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression["key"], expression["operator"], expression.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _peer_matches(peer: Obj, caller: Caller, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        return False  # pods are matched by selectors here
    namespaces = peer.get("namespaceSelector")
    if namespaces is None:
        in_namespace = caller.namespace == policy_namespace
    else:
        in_namespace = _selects(namespaces, caller.ns_labels())
    pods = peer.get("podSelector")
    return in_namespace and (pods is None or _selects(pods, caller.pod_labels))


def admits(policy: Obj | None, caller: Caller, port: str, pod_labels: dict[str, str] = MODEL_POD) -> bool:
    if policy is None or not _selects(policy["spec"]["podSelector"], pod_labels):
        return True
    assert "Ingress" in policy["spec"]["policyTypes"]
    for rule in policy["spec"].get("ingress", []):
        peers = rule.get("from")
        if peers and not any(_peer_matches(p, caller, policy["metadata"]["namespace"]) for p in peers):
            continue
        ports = rule.get("ports")
        if ports and not any(p["port"] == port for p in ports):
            continue
        return True
    return False


def _spec(**sections: Any) -> ModelDeploymentSpec:
    base: Obj = {"model": {"name": "iris", "version": "1.0.0"}, "runtime": {"image": "example/iris:1"}}
    return ModelDeploymentSpec.model_validate({**base, **sections})


def _policy(spec: ModelDeploymentSpec, platform: Platform = PLATFORM) -> Obj | None:
    return render_network_policy(OWNER, spec, explicit_server(spec), platform)


CLIENTS = {
    "from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}},
        {"podSelector": {"matchLabels": {"role": "model-client"}}},
        {
            "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["ml"]}]},
            "podSelector": {"matchLabels": {"role": "trainer"}},
        },
    ]
}
SEPARATE_METRICS = {"image": "example/iris:1", "metrics": {"port": 8082}}
APP = Caller("apps", {"app": "web"})
NEIGHBOUR = Caller("models", {"role": "model-client"})
STRANGER_IN_MODELS = Caller("models", {"role": "other"})
LABEL_ELSEWHERE = Caller("shop", {"role": "model-client"})
TRAINER = Caller("lab", {"role": "trainer"}, {"team": "ml"})
TRAINER_OTHER_TEAM = Caller("lab2", {"role": "trainer"}, {"team": "web"})
OPERATOR_POD = Caller("modeldeploy-system", {"app.kubernetes.io/name": "modeldeploy"})
OTHER_IN_OPERATOR_NS = Caller("modeldeploy-system", {"app.kubernetes.io/name": "something-else"})
PROMETHEUS = Caller("monitoring", {"app": "prometheus"})
AUTHORIZED: Obj = {"access": {"authorization": "kubernetes"}}
SCALING: Obj = {"targetCPUUtilizationPercentage": 70}

# (case, spec sections, caller, port, admitted)
TABLE: list[tuple[str, Obj, Caller, str, bool]] = [
    ("listed namespace, model port", {"access": {"networkPolicy": CLIENTS}}, APP, "http", True),
    ("labelled pod of this namespace", {"access": {"networkPolicy": CLIENTS}}, NEIGHBOUR, "http", True),
    ("unlabelled pod of this namespace", {"access": {"networkPolicy": CLIENTS}}, STRANGER_IN_MODELS, "http", False),
    ("the label in another namespace", {"access": {"networkPolicy": CLIENTS}}, LABEL_ELSEWHERE, "http", False),
    ("both selectors match", {"access": {"networkPolicy": CLIENTS}}, TRAINER, "http", True),
    ("pod matches, namespace does not", {"access": {"networkPolicy": CLIENTS}}, TRAINER_OTHER_TEAM, "http", False),
    ("the operator probes", {"access": {"networkPolicy": CLIENTS}}, OPERATOR_POD, "http", True),
    ("not the operator's pod", {"access": {"networkPolicy": CLIENTS}}, OTHER_IN_OPERATOR_NS, "http", False),
    ("the scraper on a shared port", {"access": {"networkPolicy": CLIENTS}}, PROMETHEUS, "http", True),
    (
        "the scraper on a metrics port of its own",
        {"access": {"networkPolicy": CLIENTS}, "runtime": SEPARATE_METRICS},
        PROMETHEUS,
        "metrics",
        True,
    ),
    (
        "the scraper is not a client",
        {"access": {"networkPolicy": CLIENTS}, "runtime": SEPARATE_METRICS},
        PROMETHEUS,
        "http",
        False,
    ),
    (
        "a client does not read the metrics port",
        {"access": {"networkPolicy": CLIENTS}, "runtime": SEPARATE_METRICS},
        APP,
        "metrics",
        False,
    ),
    (
        "the operator reads the metrics port",
        {"access": {"networkPolicy": CLIENTS}, "runtime": SEPARATE_METRICS},
        OPERATOR_POD,
        "metrics",
        True,
    ),
    ("no clients listed: nobody else", {"access": {"networkPolicy": {}}}, APP, "http", False),
    ("no clients listed: the operator still", {"access": {"networkPolicy": {}}}, OPERATOR_POD, "http", True),
    (
        "authorized: a listed client goes through the proxy",
        {"access": {"networkPolicy": CLIENTS, "authorization": "kubernetes"}},
        APP,
        "authz",
        True,
    ),
    (
        "authorized: a listed client cannot go around it",
        {"access": {"networkPolicy": CLIENTS, "authorization": "kubernetes"}},
        APP,
        "http",
        False,
    ),
    (
        "authorized: an unlisted caller cannot reach the proxy",
        {"access": {"networkPolicy": CLIENTS, "authorization": "kubernetes"}},
        LABEL_ELSEWHERE,
        "authz",
        False,
    ),
    (
        "authorized: the operator reaches the model's own port",
        {"access": {"networkPolicy": CLIENTS, "authorization": "kubernetes"}},
        OPERATOR_POD,
        "http",
        True,
    ),
    ("authorization alone: anyone may ask the proxy", AUTHORIZED, LABEL_ELSEWHERE, "authz", True),
    ("authorization alone: nobody goes around it", AUTHORIZED, APP, "http", False),
    ("authorization alone: but the operator", AUTHORIZED, OPERATOR_POD, "http", True),
    ("no access section: no policy, anyone", {}, LABEL_ELSEWHERE, "http", True),
    ("authorization none: no policy", {"access": {"authorization": "none"}}, LABEL_ELSEWHERE, "http", True),
]  # fmt: skip


@pytest.mark.parametrize(("sections", "caller", "port", "admitted"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE])
def test_who_is_admitted(sections: Obj, caller: Caller, port: str, admitted: bool) -> None:
    assert admits(_policy(_spec(**sections)), caller, port) is admitted


def test_the_policy_selects_the_models_pods_and_no_others() -> None:
    policy = _policy(_spec(access={"networkPolicy": {}}))
    assert policy is not None
    assert admits(policy, APP, "http", pod_labels={"modeldeploy.io/name": "iris"}) is False
    assert admits(policy, APP, "http", pod_labels={"modeldeploy.io/name": "iris-2"}) is True  # another model's


def test_without_the_operators_identity_its_probes_are_not_admitted() -> None:
    """Out of a cluster the operator knows no namespace of its own: no rule pretends to admit it."""
    policy = _policy(_spec(access={"networkPolicy": {}}), Platform())
    assert policy is not None
    assert "ingress" not in policy["spec"]
    assert admits(policy, OPERATOR_POD, "http") is False


def test_an_empty_namespace_selector_stays_a_selector_of_every_namespace() -> None:
    policy = _policy(_spec(access={"networkPolicy": {"from": [{"namespaceSelector": {}}]}}))
    assert policy is not None
    assert policy["spec"]["ingress"][0]["from"] == [{"namespaceSelector": {}}]
    assert admits(policy, LABEL_ELSEWHERE, "http") is True


# (case, spec sections, expected budget spec bounds or None)
BUDGETS: list[tuple[str, Obj, Obj | None]] = [
    ("one replica: a budget would block every drain", {}, None),
    ("two replicas: one at a time", {"replicas": 2}, {"maxUnavailable": 1}),
    ("autoscaling up to five", {"autoscaling": {"maxReplicas": 5, **SCALING}}, {"maxUnavailable": 1}),
    ("autoscaling pinned at one", {"autoscaling": {"maxReplicas": 1, **SCALING}}, None),
    ("turned off", {"replicas": 3, "disruptionBudget": {"enabled": False}}, None),
    ("a percentage kept", {"replicas": 4, "disruptionBudget": {"minAvailable": "50%"}}, {"minAvailable": "50%"}),
    ("zero is a value", {"replicas": 4, "disruptionBudget": {"maxUnavailable": 0}}, {"maxUnavailable": 0}),
    ("asked for with one replica", {"disruptionBudget": {"maxUnavailable": 1}}, {"maxUnavailable": 1}),
]  # fmt: skip


@pytest.mark.parametrize(("sections", "bounds"), [b[1:] for b in BUDGETS], ids=[b[0] for b in BUDGETS])
def test_disruption_budget(sections: Obj, bounds: Obj | None) -> None:
    pdb = render_pdb(OWNER, _spec(**sections))
    if bounds is None:
        assert pdb is None
        return
    assert pdb is not None
    spec = pdb["spec"]
    assert spec["selector"] == {"matchLabels": {"modeldeploy.io/name": "iris"}}  # the canary's pods count too
    assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert {k: v for k, v in spec.items() if k in ("maxUnavailable", "minAvailable")} == bounds
    assert pdb["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid


def test_authorization_puts_the_proxy_before_the_model_and_the_service_on_it() -> None:
    spec = _spec(access={"authorization": "kubernetes"})
    server = explicit_server(spec)
    deployment = render_deployment(OWNER, spec, Platform(auth_proxy_image="example/proxy:1"), server)
    pod = deployment["spec"]["template"]
    model, proxy = pod["spec"]["containers"]
    assert model["name"] == "model-server"
    assert "envFrom" not in model
    assert proxy["image"] == "example/proxy:1"
    assert proxy["args"][:2] == ["--secure-listen-address=0.0.0.0:8443", "--upstream=http://127.0.0.1:8080/"]
    assert proxy["ports"] == [{"name": "authz", "containerPort": 8443, "protocol": "TCP"}]
    assert proxy["securityContext"]["runAsNonRoot"] is True
    # credentials for the proxy alone: the model server still runs without a token
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert {m["name"] for m in proxy["volumeMounts"]} == {"modeldeploy-authz-config", "modeldeploy-authz-token"}
    assert "volumeMounts" not in model
    config = json.loads(pod["metadata"]["annotations"]["modeldeploy.io/authz-config"])
    assert config == {
        "authorization": {
            "resourceAttributes": {
                "namespace": "models",
                "apiGroup": "modeldeploy.io",
                "apiVersion": "v1alpha1",
                "resource": "modeldeployments",
                "subresource": "predict",
                "name": "iris",
            }
        }
    }
    service = render_service(OWNER, spec, server)
    assert service["spec"]["ports"][0] == {
        "name": "http",
        "port": 8080,
        "targetPort": "authz",
        "protocol": "TCP",
        "appProtocol": "https",
    }
    assert render_service(OWNER, spec, server, proxied=False)["spec"]["ports"][0]["targetPort"] == "http"
    assert service_url(OWNER, server, spec) == "https://iris.models.svc:8080"


def test_the_proxy_port_avoids_the_models() -> None:
    spec = _spec(access={"authorization": "kubernetes"}, runtime={"image": "example/iris:1", "port": 8443})
    proxy = render_deployment(OWNER, spec, Platform(), explicit_server(spec))["spec"]["template"]["spec"]["containers"][
        1
    ]
    assert proxy["ports"][0]["containerPort"] == 9443
    assert "--upstream=http://127.0.0.1:8443/" in proxy["args"]


def test_without_authorization_nothing_of_it_is_rendered() -> None:
    spec = _spec()
    deployment = render_deployment(OWNER, spec, Platform(), explicit_server(spec))
    assert [c["name"] for c in deployment["spec"]["template"]["spec"]["containers"]] == ["model-server"]
    assert "annotations" not in deployment["spec"]["template"]["metadata"]
    assert render_service(OWNER, spec, explicit_server(spec))["spec"]["ports"][0]["targetPort"] == "http"
