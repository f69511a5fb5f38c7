"""Every API permission the operator uses, declared next to the code that uses it.

The Helm chart's RBAC is generated from this list, and a test fails when the chart grants
a verb not listed here (or lacks one that is), so least privilege is kept by construction.
Secrets are absent on purpose: the imagePullSecrets check is opt-in (`get` only, by name).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Permission:
    api_group: str
    resource: str
    verbs: tuple[str, ...]
    why: str


PERMISSIONS: tuple[Permission, ...] = (
    Permission("modeldeploy.io", "modeldeployments", ("get", "list", "watch"), "watch the resources we serve"),
    Permission("modeldeploy.io", "modeldeployments/status", ("patch",), "write status through the subresource"),
    Permission(
        "apps",
        "deployments",
        ("get", "list", "watch", "create", "patch", "delete"),
        "own the model Deployment (SSA), and a canary's, deleted when the canary ends",
    ),
    Permission(
        "apps",
        "replicasets",
        ("list",),
        "rollout.autoRollback: read the pod template that last served from the Deployment's previous ReplicaSet",
    ),
    Permission(
        "",
        "services",
        ("get", "list", "watch", "create", "patch", "delete"),
        "own the model Service (SSA), and <name>-stable/-canary while rollout.httpRoute is set",
    ),
    Permission(
        "gateway.networking.k8s.io",
        "httproutes",
        ("get", "list", "watch", "create", "patch", "update", "delete"),
        "own the HTTPRoute of exposure.httpRoute (SSA); rollout.httpRoute: weigh a canary on a route's backendRefs",
    ),
    Permission(
        "networking.k8s.io",
        "ingresses",
        ("get", "list", "watch", "create", "patch", "delete"),
        "own the Ingress of exposure.ingress, delete it when exposure goes",
    ),
    Permission(
        "networking.k8s.io",
        "networkpolicies",
        ("get", "list", "watch", "create", "patch", "delete"),
        "own the NetworkPolicy of spec.access, delete it when access goes",
    ),
    Permission(
        "policy",
        "poddisruptionbudgets",
        ("get", "list", "watch", "create", "patch", "delete"),
        "own the PodDisruptionBudget, delete it when one replica is all there may be",
    ),
    Permission(
        "keda.sh",
        "scaledobjects",
        ("get", "list", "watch", "create", "patch", "delete"),
        "own the ScaledObject of autoscaling.engine keda, delete it when the engine changes",
    ),
    Permission(
        "autoscaling",
        "horizontalpodautoscalers",
        ("get", "list", "watch", "create", "patch", "delete"),
        "own the HPA, delete it when autoscaling is removed",
    ),
    Permission("", "pods", ("list", "watch"), "find the replicas to probe"),
    Permission("modeldeploy.io", "modelruntimes", ("list", "watch"), "resolve the runtime serving each model"),
    Permission("", "events", ("create", "patch"), "report transitions with core/v1 Events, counting repeats on one"),
)

LEADER_ELECTION = Permission(
    "coordination.k8s.io",
    "leases",
    ("get", "create", "update"),
    "optional: hold the leader Lease (a Role in the operator's own namespace only)",
)

CLUSTER_RUNTIMES = Permission(
    "modeldeploy.io",
    "clustermodelruntimes",
    ("list", "watch"),
    "optional (on by default): resolve runtimes shared by every namespace; cluster-scoped, so a ClusterRole "
    "even when the rest is namespaced",
)

PULL_SECRET_CHECK = Permission("", "secrets", ("get",), "optional: verify imagePullSecrets exist before rolling out")
