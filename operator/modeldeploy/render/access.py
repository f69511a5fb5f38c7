"""The NetworkPolicy and the PodDisruptionBudget of a ModelDeployment (pure).

The NetworkPolicy exists when `spec.access.networkPolicy` asks for it, and also when
`spec.access.authorization` is on: the authorizing proxy is only a boundary if nothing reaches
the model's own port past it, so then that port admits the operator and the scrapers alone.
Ports are named, not numbered, so the rules follow the containers' ports wherever a runtime
puts them.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.api.v1alpha1 import ModelDeploymentSpec, ServerSpec
from modeldeploy.render import labels as lbl
from modeldeploy.render.authz import PROXY_PORT, authorized
from modeldeploy.render.children import Owner, child_metadata, dump, metrics_port, prune, with_hash
from modeldeploy.render.model import Platform
from modeldeploy.render.names import child_name

Obj = dict[str, Any]
HTTP_PORT = "http"  # the model server's port
METRICS_PORT = "metrics"  # its metrics port, when it has one of its own


def render_network_policy(
    owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, platform: Platform, proxied: bool | None = None
) -> Obj | None:
    """`proxied`: whether the serving pods have the proxy yet (see render.authz.proxying); None: as the spec says."""
    access = spec.access
    behind_proxy = authorized(spec) if proxied is None else proxied and authorized(spec)
    if access is None or (access.network_policy is None and not behind_proxy):
        return None
    name = child_name(owner.name)
    rules: list[Obj] = []
    if access.network_policy is None:  # authorization alone: anyone may ask the proxy
        rules.append({"ports": ports(PROXY_PORT)})
    elif access.network_policy.from_:
        client = PROXY_PORT if behind_proxy else HTTP_PORT
        rules.append({"from": dump(access.network_policy.from_), "ports": ports(client)})
    if platform.operator_peers:  # the probes: health, readiness, version and metrics, on every port
        rules.append({"from": list(platform.operator_peers)})
    if platform.scraper_peers:
        scraped = METRICS_PORT if metrics_port(server) != server.port else HTTP_PORT
        rules.append({"from": list(platform.scraper_peers), "ports": ports(scraped)})
    policy: Obj = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": child_metadata(owner, name, lbl.common_labels(name, spec.model.name, spec.model.version)),
        "spec": {
            "podSelector": {"matchLabels": lbl.selector_labels(name)},
            "policyTypes": ["Ingress"],  # with no rule, that alone denies every caller
        },
    }
    if rules:  # not pruned: `namespaceSelector: {}` (every namespace) is a peer, not an empty map
        policy["spec"]["ingress"] = rules
    return with_hash(policy)


def ports(*names: str) -> list[Obj]:
    return [{"port": port, "protocol": "TCP"} for port in names]


def may_run_several(spec: ModelDeploymentSpec) -> bool:
    """Whether more than one replica can be asked for: with one, a budget would block every drain."""
    if spec.autoscaling is not None:
        return spec.autoscaling.max_replicas > 1
    return spec.replicas > 1


def render_pdb(owner: Owner, spec: ModelDeploymentSpec) -> Obj | None:
    """maxUnavailable 1 by default: a drain takes one ready replica at a time, never the last of two or more.

    unhealthyPodEvictionPolicy AlwaysAllow: a pod that is not ready serves nothing, and a budget
    that counted it would block the drain that might cure it.
    """
    budget = spec.disruption_budget
    if budget is not None and not budget.enabled:
        return None
    if (budget is None or (budget.max_unavailable is None and budget.min_available is None)) and not may_run_several(
        spec
    ):
        return None
    name = child_name(owner.name)
    bounds: Obj
    if budget is not None and budget.min_available is not None:
        bounds = {"minAvailable": budget.min_available}
    else:
        chosen = budget.max_unavailable if budget is not None else None
        bounds = {"maxUnavailable": 1 if chosen is None else chosen}
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": child_metadata(owner, name, lbl.common_labels(name, spec.model.name, spec.model.version)),
        "spec": {
            "selector": {"matchLabels": lbl.selector_labels(name)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
            **bounds,
        },
    }
    return with_hash(prune(pdb))
