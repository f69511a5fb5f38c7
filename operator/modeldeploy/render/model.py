"""How a model artifact reaches the runtime container: a fetch init container, a claim, or the image (pure).

The fetcher is the operator's own image (`modeldeploy fetch`): one image to trust and mirror,
and the same code the tests run against a real S3 server. It writes into an emptyDir that the
runtime mounts read-only, so a runtime cannot change the model it serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modeldeploy.api.v1alpha1 import ModelDeploymentSpec
from modeldeploy.storage.location import FETCH_CONTAINER, MODEL_DIR, MODEL_MOUNT, MODEL_VOLUME, parse

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


@dataclass(frozen=True)
class Platform:
    """What the operator was started with that shapes what it renders."""

    fetcher_image: str = DEFAULT_FETCHER_IMAGE


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
