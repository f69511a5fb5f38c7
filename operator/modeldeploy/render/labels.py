"""The labels every child carries, and the selector that ties pods to one ModelDeployment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeldeploy.render.names import label_value

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "modeldeploy"
NAME_LABEL = "modeldeploy.io/name"
MODEL_LABEL = "modeldeploy.io/model"
VERSION_LABEL = "modeldeploy.io/version"
APPLIED_HASH = "modeldeploy.io/applied-hash"
TRACK_LABEL = "modeldeploy.io/track"
"""On the canary Deployment and its pods only ("canary"): the stable's selector predates it and cannot change."""
CANARY = "canary"
STABLE = "stable"  # on the stable's pods only when their canaries are weighted on an HTTPRoute


def selector_labels(child: str) -> dict[str, str]:
    """Immutable once a Deployment exists: only the child name, which never changes."""
    return {NAME_LABEL: child}


def common_labels(child: str, model_name: str, model_version: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "modeldeploy-model",
        "app.kubernetes.io/instance": child,
        "app.kubernetes.io/component": "model-server",
        MANAGED_BY: MANAGER,
        NAME_LABEL: child,
        MODEL_LABEL: label_value(model_name),
        VERSION_LABEL: label_value(model_version),
    }


def is_canary(obj: Mapping[str, Any]) -> bool:
    """Whether an object (a pod, as the caches hold it) belongs to a canary."""
    return ((obj.get("metadata") or {}).get("labels") or {}).get(TRACK_LABEL) == CANARY


def selector_string(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
