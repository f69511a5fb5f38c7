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
        ("get", "list", "update"),
        "rollout.httpRoute: weigh a canary on the route's backendRefs to the model's Services",
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
