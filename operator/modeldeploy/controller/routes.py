"""A canary's weights on the user's Gateway API HTTPRoute.

The route is the user's (or their GitOps tool's), not the operator's: only the backendRefs that
name this ModelDeployment's Services are touched, with a read-modify-write under the route's
resourceVersion (a conflict is retried by the next reconcile), and nothing is written when the
route already says what it should. A GitOps tool syncing the route mid-canary puts its own
backendRefs back; the next reconcile weighs them again.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from modeldeploy import kubeapi
from modeldeploy.render import labels as lbl

HTTP_ROUTE = kubeapi.HTTP_ROUTE
Obj = dict[str, Any]


class RouteProblem(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _ours(ref: Mapping[str, Any], names: set[str]) -> bool:
    return (
        ref.get("name") in names
        and ref.get("kind", "Service") == "Service"
        and ref.get("group", "") in ("", "core")
        and not ref.get("namespace")
    )


def weighted_rules(rules: Sequence[Mapping[str, Any]], child: str, weight: int | None) -> list[Obj]:
    """The route's rules with this ModelDeployment's backendRefs weighted (pure).

    `weight` None: one ref to the Service `child`, as its owner wrote it; a number: `child-stable`
    at 100 - weight and `child-canary` at weight. Other backends of a rule are left as they are.
    """
    names = {child, f"{child}-{lbl.STABLE}", f"{child}-{lbl.CANARY}"}
    result: list[Obj] = []
    for rule in rules:
        refs = list(rule.get("backendRefs") or [])
        mine = [r for r in refs if _ours(r, names)]
        if not mine:
            result.append(copy.deepcopy(dict(rule)))
            continue
        port = mine[0].get("port")
        others = [copy.deepcopy(dict(r)) for r in refs if not _ours(r, names)]
        if weight is None:
            replacement: list[Obj] = [{"name": child, "port": port}]
        else:
            replacement = [
                {"name": f"{child}-{lbl.STABLE}", "port": port, "weight": 100 - weight},
                {"name": f"{child}-{lbl.CANARY}", "port": port, "weight": weight},
            ]
        for entry in replacement:
            if entry["port"] is None:
                del entry["port"]
        result.append({**copy.deepcopy(dict(rule)), "backendRefs": others + replacement})
    return result


def _same_refs(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> bool:
    def key(rules: Sequence[Mapping[str, Any]]) -> list[list[tuple[Any, ...]]]:
        return [
            [(r.get("name"), r.get("port"), r.get("weight", 1)) for r in rule.get("backendRefs") or []]
            for rule in rules
        ]

    return key(old) == key(new)


async def sync_route(api: kubeapi.KubeApi, namespace: str, route: str, child: str, weight: int | None) -> bool:
    """Put the canary's weight on the route; True when it was written."""
    live = await api.get(HTTP_ROUTE, namespace, route)
    if live is None:
        try:
            await api.list(HTTP_ROUTE, namespace, page_size=1)
        except kubeapi.ApiError as error:
            if error.status == 404:
                raise RouteProblem(
                    "GatewayAPINotInstalled",
                    f"spec.rollout.httpRoute names HTTPRoute {route!r}, but the Gateway API "
                    "(gateway.networking.k8s.io/v1 HTTPRoute) is not served by this cluster",
                ) from None
            raise
        raise RouteProblem(
            "HTTPRouteNotFound",
            f"spec.rollout.httpRoute: HTTPRoute {route!r} does not exist in namespace {namespace!r}",
        )
    rules = (live.get("spec") or {}).get("rules") or []
    names = {child, f"{child}-{lbl.STABLE}", f"{child}-{lbl.CANARY}"}
    if not any(_ours(ref, names) for rule in rules for ref in rule.get("backendRefs") or []):
        raise RouteProblem(
            "HTTPRouteNotPointingHere",
            f"spec.rollout.httpRoute: HTTPRoute {route!r} has no backendRef to Service {child!r}; "
            "point a rule at it so the canary's weights have somewhere to go",
        )
    wanted = weighted_rules(rules, child, weight)
    if _same_refs(rules, wanted):
        return False
    updated = copy.deepcopy(live)
    updated["spec"]["rules"] = wanted
    await api.replace(HTTP_ROUTE, namespace, route, updated)
    return True
