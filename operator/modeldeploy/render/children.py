"""Desired children of a ModelDeployment: its Deployment, Service and (optionally) HPA.

Pure: the same validated spec always renders the same objects, byte for byte, which is
what lets the operator compare instead of writing, and what the golden-file tests pin.
Rendered objects never carry empty maps or lists, which the API server would drop and
which would then look like a difference forever.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from modeldeploy.api.v1alpha1 import ModelDeploymentSpec, ServerSpec
from modeldeploy.render import labels as lbl
from modeldeploy.render.authz import (
    CONFIG_ANNOTATION,
    PROXY_PORT,
    authorized,
    proxy_config,
    proxy_container,
    proxy_volumes,
)
from modeldeploy.render.compare import fingerprint
from modeldeploy.render.model import ModelMount, Platform, model_mount
from modeldeploy.render.names import child_name
from modeldeploy.render.probes import container_probes
from modeldeploy.render.runtime import explicit_server

API_VERSION = "modeldeploy.io/v1alpha1"
KIND = "ModelDeployment"
CONTAINER_NAME = "model-server"
Obj = dict[str, Any]


@dataclass(frozen=True)
class Owner:
    """The ModelDeployment the children belong to (owner references need its uid)."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class DesiredChildren:
    deployment: Obj
    service: Obj
    hpa: Obj | None

    def all(self) -> list[Obj]:
        return [c for c in (self.deployment, self.service, self.hpa) if c is not None]


# Empty maps that mean something: `emptyDir: {}` is how a volume says what it is.
_PRESENCE_KEYS = frozenset({"emptyDir"})


def prune(value: Any) -> Any:
    """Drop None, empty maps and empty lists, recursively (but an empty map that says what a thing is)."""
    if isinstance(value, dict):
        pruned = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None and (k in _PRESENCE_KEYS or (v != {} and v != []))}
    if isinstance(value, list):
        return [prune(v) for v in value]
    return value


def owner_reference(owner: Owner) -> Obj:
    return {"apiVersion": API_VERSION, "kind": KIND, "name": owner.name, "uid": owner.uid, "controller": True}


def child_metadata(owner: Owner, name: str, labels: dict[str, str]) -> Obj:
    return {"name": name, "namespace": owner.namespace, "labels": labels, "ownerReferences": [owner_reference(owner)]}


def dump(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return [dump(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(by_alias=True, exclude_none=True, mode="json")
    return value


def metrics_port(server: ServerSpec) -> int:
    return server.metrics.port or server.port


def metrics_path(server: ServerSpec) -> str:
    return server.metrics.path


def _container(spec: ModelDeploymentSpec, runtime: ServerSpec, mount: ModelMount) -> Obj:
    model = spec.model
    env: list[Obj] = [
        {"name": "MODEL_NAME", "value": model.name},
        {"name": "MODEL_VERSION", "value": model.version},
    ]
    if model.uri:
        env.append({"name": "MODEL_URI", "value": model.uri})
    if mount.model_dir:
        env.append({"name": "MODEL_DIR", "value": mount.model_dir})
    if model.format:
        env.append({"name": "MODEL_FORMAT", "value": model.format})
    reserved = {e["name"] for e in env}
    env += [e for e in dump(runtime.env) or [] if e["name"] not in reserved]
    ports = [{"name": "http", "containerPort": runtime.port, "protocol": "TCP"}]
    if metrics_port(runtime) != runtime.port:
        ports.append({"name": "metrics", "containerPort": metrics_port(runtime), "protocol": "TCP"})
    return {
        "name": CONTAINER_NAME,
        "image": runtime.image,
        "command": list(runtime.command or []),
        "args": list(runtime.args or []),
        "ports": ports,
        "env": env,
        "volumeMounts": mount.mounts,
        "resources": dump(runtime.resources),
        **container_probes(spec.model.name, runtime),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def with_hash(obj: Obj) -> Obj:
    """Stamp the fingerprint of what we apply, so a field we stop setting is noticed."""
    obj["metadata"].setdefault("annotations", {})[lbl.APPLIED_HASH] = fingerprint(obj)
    return obj


def render_deployment(
    owner: Owner, spec: ModelDeploymentSpec, platform: Platform | None = None, server: ServerSpec | None = None
) -> Obj:
    """`server` is the resolved container (render.runtime.resolve); None: the spec's own image."""
    name = child_name(owner.name)
    server = server or explicit_server(spec)
    mount = model_mount(spec, platform or Platform())
    labels = lbl.common_labels(name, spec.model.name, spec.model.version)
    pod_labels = {**(spec.pod_labels or {}), **labels}
    if spec.rollout is not None and spec.rollout.http_route is not None:
        pod_labels[lbl.TRACK_LABEL] = lbl.STABLE  # what <name>-stable selects (a canary's pods say canary)
    strategy: Obj = {"type": "RollingUpdate"}
    if spec.rollout is not None:
        strategy["rollingUpdate"] = {"maxSurge": spec.rollout.max_surge, "maxUnavailable": spec.rollout.max_unavailable}
    pod_spec: Obj = {
        "initContainers": mount.init_containers,
        "containers": [_container(spec, server, mount)],
        "volumes": mount.volumes,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "nodeSelector": dict(spec.node_selector or {}),
        "tolerations": dump(spec.tolerations),
        "priorityClassName": spec.priority_class_name,
        "runtimeClassName": spec.runtime_class_name,
        "serviceAccountName": spec.service_account_name,
        "imagePullSecrets": dump(spec.image_pull_secrets),
    }
    if spec.service_account_name is None or authorized(spec):
        # a model server has no business with the API; the authorizing proxy has a token of its own
        pod_spec["automountServiceAccountToken"] = False
    annotations = dict(spec.pod_annotations or {})
    if authorized(spec):
        pod_spec["containers"].append(proxy_container(server, platform or Platform()))
        pod_spec["volumes"] = pod_spec["volumes"] + proxy_volumes()
        annotations[CONFIG_ANNOTATION] = proxy_config(owner.namespace, owner.name)
    deployment: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(owner, name, labels),
        "spec": {
            "selector": {"matchLabels": lbl.selector_labels(name)},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }
    if spec.autoscaling is None:
        deployment["spec"]["replicas"] = spec.replicas
    deployment = prune(deployment)
    _pass_through(deployment["spec"]["template"]["spec"], spec, name)
    return with_hash(deployment)


def _pass_through(pod: Obj, spec: ModelDeploymentSpec, name: str) -> None:
    """Kubernetes types the user wrote, added after pruning: their empty maps mean something
    (`namespaceSelector: {}` is every namespace, `labelSelector: {}` every pod)."""
    model = pod["containers"][0]
    for holder, key, extra in (
        (pod, "volumes", dump(spec.volumes)),
        (model, "volumeMounts", dump(spec.volume_mounts)),
        (model, "envFrom", dump(spec.env_from)),
        (pod, "topologySpreadConstraints", _spread(spec, name)),
    ):
        if extra:
            holder[key] = [*holder.get(key, []), *copy.deepcopy(extra)]
    if spec.affinity is not None:
        pod["affinity"] = copy.deepcopy(dump(spec.affinity))


def _spread(spec: ModelDeploymentSpec, name: str) -> list[Obj] | None:
    """A constraint without a labelSelector spreads nothing: it means this model's pods, so it gets theirs."""
    constraints: list[Obj] | None = copy.deepcopy(dump(spec.topology_spread_constraints))
    for constraint in constraints or []:
        constraint.setdefault("labelSelector", {"matchLabels": lbl.selector_labels(name)})
    return constraints


CANARY_SUFFIX = "-canary"


def render_canary(stable: Obj, replicas: int) -> Obj:
    """The canary Deployment: the desired stable Deployment under another name, its pods labelled canary.

    Its pods keep the stable's selector labels, so the one Service sends them their share of the
    requests; the canary's own selector adds the track label, and the stable's ReplicaSets leave
    them alone because they are owned by the canary's.
    """
    canary = copy.deepcopy(stable)
    metadata = canary["metadata"]
    metadata["name"] = metadata["name"] + CANARY_SUFFIX
    metadata["annotations"].pop(lbl.APPLIED_HASH, None)
    track = {lbl.TRACK_LABEL: lbl.CANARY}
    metadata["labels"] = {**metadata["labels"], **track}
    spec = canary["spec"]
    spec["selector"]["matchLabels"] = {**spec["selector"]["matchLabels"], **track}
    spec["template"]["metadata"]["labels"] = {**spec["template"]["metadata"]["labels"], **track}
    spec["replicas"] = replicas
    return with_hash(canary)


def template_revision(deployment: Obj) -> str:
    """A short fingerprint of a Deployment's pod template: what a rollout is about."""
    template = json.dumps(deployment["spec"]["template"], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(template.encode()).hexdigest()[:10]


def render_service(
    owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec | None = None, proxied: bool | None = None
) -> Obj:
    """`proxied`: whether the serving pods have the proxy yet (render.authz.proxy_serving); None: as the spec says."""
    name = child_name(owner.name)
    server = server or explicit_server(spec)
    # with authorization, the Service's port leads to the proxy (TLS): callers cannot pick the model's own
    behind_proxy = authorized(spec) if proxied is None else proxied and authorized(spec)
    port: Obj = {"name": "http", "port": server.port, "targetPort": "http", "protocol": "TCP"}
    if behind_proxy:
        port.update(targetPort=PROXY_PORT, appProtocol="https")
    ports = [port]
    if metrics_port(server) != server.port:
        ports.append({"name": "metrics", "port": metrics_port(server), "targetPort": "metrics", "protocol": "TCP"})
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(owner, name, lbl.common_labels(name, spec.model.name, spec.model.version)),
        "spec": {"type": "ClusterIP", "selector": lbl.selector_labels(name), "ports": ports},
    }
    return with_hash(prune(service))


def render_track_service(
    owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec | None, track: str, proxied: bool | None = None
) -> Obj | None:
    """`<name>-stable` or `<name>-canary`: what an HTTPRoute weighs against each other during a canary."""
    if spec.rollout is None or spec.rollout.http_route is None:
        return None
    service = render_service(owner, spec, server, proxied)
    service["metadata"]["name"] = f"{child_name(owner.name)}-{track}"
    service["metadata"]["annotations"].pop(lbl.APPLIED_HASH, None)
    service["spec"]["selector"] = {**service["spec"]["selector"], lbl.TRACK_LABEL: track}
    return with_hash(service)


def render_hpa(owner: Owner, spec: ModelDeploymentSpec) -> Obj | None:
    scaling = spec.autoscaling
    if scaling is None or scaling.engine != "hpa":  # keda: render/keda.py, never both
        return None
    name = child_name(owner.name)
    metrics: list[Obj] = []
    for resource, target in (
        ("cpu", scaling.target_cpu_utilization_percentage),
        ("memory", scaling.target_memory_utilization_percentage),
    ):
        if target is not None:
            metrics.append(
                {
                    "type": "Resource",
                    "resource": {"name": resource, "target": {"type": "Utilization", "averageUtilization": target}},
                }
            )
    metrics += dump(scaling.metrics) or []
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": child_metadata(owner, name, lbl.common_labels(name, spec.model.name, spec.model.version)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": metrics,
            "behavior": dump(scaling.behavior),
        },
    }
    return with_hash(prune(hpa))


def render_children(owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec | None = None) -> DesiredChildren:
    return DesiredChildren(
        deployment=render_deployment(owner, spec, server=server),
        service=render_service(owner, spec, server),
        hpa=render_hpa(owner, spec),
    )


def service_port(spec: ModelDeploymentSpec, server: ServerSpec) -> int:
    """The Service's client port: the model's port number, whatever listens behind it."""
    return server.port


def service_url(owner: Owner, server: ServerSpec, spec: ModelDeploymentSpec | None = None) -> str:
    """https behind the authorizing proxy, which serves TLS only."""
    scheme = "https" if spec is not None and authorized(spec) else "http"
    return f"{scheme}://{child_name(owner.name)}.{owner.namespace}.svc:{server.port}"
