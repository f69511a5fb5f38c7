"""The KEDA ScaledObject that replaces the HPA when `autoscaling.engine` is keda (pure).

KEDA makes and owns an HPA of its own for the ScaledObject (keda-hpa-<name>) and scales the
Deployment between zero and one itself; ours is never rendered beside it, since two
autoscalers on one Deployment fight over its replicas.
"""

from __future__ import annotations

import hashlib
from typing import Any

from modeldeploy.api.request_metrics import KNOWN_REQUEST_METRICS
from modeldeploy.api.v1alpha1 import ModelDeploymentSpec
from modeldeploy.render import labels as lbl
from modeldeploy.render.children import Owner, child_metadata, dump, prune, with_hash
from modeldeploy.render.names import child_name

Obj = dict[str, Any]
KEDA_API_VERSION = "keda.sh/v1alpha1"
KEDA_HPA_PREFIX = "keda-hpa-"  # KEDA names the HPA it makes so, unless told another name
MAX_NAME = 63
RATE_WINDOW = "2m"


def default_request_query(namespace: str, name: str) -> str:
    """Requests per second over this model's stable pods, from whichever runtime's counter exists.

    Pods are matched by name (<name>-<replicaset hash>-<pod hash>, which a canary's three-part
    suffix never matches) and namespace: the labels every Kubernetes scrape configuration keeps.
    """
    selector = f'namespace="{namespace}",pod=~"{name}-[a-z0-9]+-[a-z0-9]+"'
    parts = []
    for metric in KNOWN_REQUEST_METRICS:
        only = "".join(f',{label}=~".*{suffix}"' for label, suffix in metric.only)
        parts.append(f"sum(rate({metric.name}_count{{{selector}{only}}}[{RATE_WINDOW}]))")
    return " or ".join(parts)


def render_scaled_object(owner: Owner, spec: ModelDeploymentSpec) -> Obj | None:
    scaling = spec.autoscaling
    if scaling is None or scaling.engine != "keda":
        return None
    name = child_name(owner.name)
    triggers: list[Obj] = []
    for kind, target in (
        ("cpu", scaling.target_cpu_utilization_percentage),
        ("memory", scaling.target_memory_utilization_percentage),
    ):
        if target is not None:
            triggers.append({"type": kind, "metricType": "Utilization", "metadata": {"value": str(target)}})
    rate = scaling.request_rate
    if rate is not None:
        triggers.append(
            {
                "type": "prometheus",
                "name": "requests",
                "metadata": {
                    "serverAddress": rate.prometheus_address,
                    "query": rate.query or default_request_query(owner.namespace, name),
                    "threshold": _number(rate.target_per_replica),
                    "activationThreshold": _number(rate.activation),
                },
            }
        )
    behavior = dump(scaling.behavior)
    hpa: Obj = {"behavior": behavior}
    if len(KEDA_HPA_PREFIX + name) > MAX_NAME:  # KEDA refuses a derived HPA name it cannot create
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        hpa["name"] = f"{name[: MAX_NAME - len(digest) - 6]}-keda-{digest}"
    scaled = {
        "apiVersion": KEDA_API_VERSION,
        "kind": "ScaledObject",
        "metadata": child_metadata(owner, name, lbl.common_labels(name, spec.model.name, spec.model.version)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "cooldownPeriod": scaling.cooldown_seconds,
            "advanced": {"horizontalPodAutoscalerConfig": hpa},
            "triggers": triggers,
        },
    }
    return with_hash(prune(scaled))


def _number(value: float) -> str:
    """KEDA reads trigger metadata as strings: 10, not 10.0."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
