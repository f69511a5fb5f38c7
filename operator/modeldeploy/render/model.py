"""How a model artifact reaches the runtime container: a fetch init container, a claim, or the image (pure).

The fetcher is the operator's own image (`modeldeploy fetch`): one image to trust and mirror,
and the same code the tests run against a real S3 server. It writes into an emptyDir that the
runtime mounts read-only, so a runtime cannot change the model it serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modeldeploy.api.v1alpha1 import ModelDeploymentSpec
from modeldeploy.storage.location import (
    COPY_CONTAINER,
    FETCH_CONTAINER,
    MODEL_DIR,
    MODEL_MOUNT,
    MODEL_VOLUME,
    OCI_MODEL_DIR,
    OCI_MODEL_PATH,
    Location,
    parse,
)

Obj = dict[str, Any]
# Enough for the fetcher's own memory (it streams in 8 MiB chunks); the artifact goes to disk.
FETCH_RESOURCES: Obj = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
RESTRICTED: Obj = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


DEFAULT_FETCHER_IMAGE = "ghcr.io/modeldeploy/modeldeploy:0.1.0"
DEFAULT_AUTH_PROXY_IMAGE = "quay.io/brancz/kube-rbac-proxy:v0.19.1"


IMAGE_VOLUMES_SINCE = (1, 35)
"""Image volumes are on by default from Kubernetes 1.35 (beta; alpha behind the ImageVolume gate before)."""


def image_volumes_by_default(version: dict[str, object]) -> bool:
    """Whether an apiserver reporting `version` (its /version document) has image volumes on by default.

    `minor` can carry a suffix ("35+" on some managed clusters); an unreadable version counts as
    old, so a model is copied rather than given a volume the cluster would refuse.
    """
    try:
        major = int(str(version.get("major", "")).rstrip("+"))
        minor = int(str(version.get("minor", "")).rstrip("+"))
    except ValueError:
        return False
    return (major, minor) >= IMAGE_VOLUMES_SINCE


@dataclass(frozen=True)
class Platform:
    """What the operator was started with that shapes what it renders."""

    fetcher_image: str = DEFAULT_FETCHER_IMAGE
    image_volumes: bool = True  # the cluster mounts OCI images as volumes (Kubernetes >= 1.35, or its gate)
    # NetworkPolicyPeers a model's NetworkPolicy always admits: the operator's own pods (its probes)
    # to every port, and the metrics scrapers to the metrics port (the chart derives both).
    operator_peers: tuple[Obj, ...] = ()
    scraper_peers: tuple[Obj, ...] = ()
    auth_proxy_image: str = DEFAULT_AUTH_PROXY_IMAGE


@dataclass
class ModelMount:
    """The pieces a Deployment's pod needs for its model: volumes, init containers, mounts, MODEL_DIR."""

    volumes: list[Obj] = field(default_factory=list)
    init_containers: list[Obj] = field(default_factory=list)
    mounts: list[Obj] = field(default_factory=list)
    model_dir: str | None = None


def model_mount(spec: ModelDeploymentSpec, platform: Platform) -> ModelMount:
    model = spec.model
    if model.uri is None:
        return ModelMount()
    location = parse(model.uri)  # the schema admitted it; parse refuses what a pattern cannot see
    if location.kind == "image":
        return ModelMount(model_dir=model.uri)
    if location.kind == "oci":
        return _modelcar(location, platform)
    if location.kind == "pvc":
        volume = {"name": MODEL_VOLUME, "persistentVolumeClaim": {"claimName": location.claim, "readOnly": True}}
        mount: Obj = {"name": MODEL_VOLUME, "mountPath": MODEL_DIR, "readOnly": True}
        if location.sub_path:
            mount["subPath"] = location.sub_path
        return ModelMount(volumes=[volume], mounts=[mount], model_dir=MODEL_DIR)
    args = ["fetch", model.uri, MODEL_MOUNT]
    if model.sha256 is not None:
        args += ["--sha256", model.sha256.lower()]
    fetcher: Obj = {
        "name": FETCH_CONTAINER,
        "image": platform.fetcher_image,
        "command": ["modeldeploy"],
        "args": args,
        "volumeMounts": [{"name": MODEL_VOLUME, "mountPath": MODEL_MOUNT}],
        "resources": FETCH_RESOURCES,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": RESTRICTED,
    }
    if model.credentials is not None:
        fetcher["envFrom"] = [{"secretRef": {"name": model.credentials.name}}]
    return ModelMount(
        volumes=[{"name": MODEL_VOLUME, "emptyDir": {}}],
        init_containers=[fetcher],
        mounts=[{"name": MODEL_VOLUME, "mountPath": MODEL_MOUNT, "readOnly": True}],
        model_dir=MODEL_DIR,
    )


# A modelcar's image runs only `cp`, as nobody: it is someone's model, not code we trust as root.
_COPY_SECURITY: Obj = {**RESTRICTED, "runAsUser": 65534}


def _modelcar(location: Location, platform: Platform) -> ModelMount:
    """An OCI image holding the model under /models: mounted read-only as an image volume, or copied out.

    The copy is for clusters without image volumes: an init container from the model's own image
    copies /models into the emptyDir, so the runtime sees the same $MODEL_DIR either way.
    """
    assert location.reference is not None
    if platform.image_volumes:
        volume = {"name": MODEL_VOLUME, "image": {"reference": location.reference, "pullPolicy": "IfNotPresent"}}
        mount: Obj = {"name": MODEL_VOLUME, "mountPath": MODEL_MOUNT, "readOnly": True}
        return ModelMount(volumes=[volume], mounts=[mount], model_dir=OCI_MODEL_DIR)
    copier: Obj = {
        "name": COPY_CONTAINER,
        "image": location.reference,
        "command": ["cp", "-R", OCI_MODEL_PATH, f"{MODEL_MOUNT}/"],
        "volumeMounts": [{"name": MODEL_VOLUME, "mountPath": MODEL_MOUNT}],
        "resources": FETCH_RESOURCES,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": _COPY_SECURITY,
    }
    return ModelMount(
        volumes=[{"name": MODEL_VOLUME, "emptyDir": {}}],
        init_containers=[copier],
        mounts=[{"name": MODEL_VOLUME, "mountPath": MODEL_MOUNT, "readOnly": True}],
        model_dir=OCI_MODEL_DIR,
    )
