"""Kubelet probes that fit each serving protocol.

Readiness asks whether the model is loaded (not just whether the process answers), so a
pod whose model failed to load never receives traffic; a startup probe gives slow model
loads five minutes before liveness may restart the container.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from modeldeploy.api.v1alpha1 import ModelDeploymentSpec

Obj = dict[str, Any]


def _http(path: str, period: int, failures: int) -> Obj:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "failureThreshold": failures}


def protocol_paths(spec: ModelDeploymentSpec) -> tuple[str | None, str]:
    """(liveness path or None for a TCP check, readiness path) for the spec's protocol."""
    name = quote(spec.model.name, safe="")
    runtime = spec.runtime
    if runtime.protocol == "v2":
        return "/v2/health/live", f"/v2/models/{name}/ready"
    if runtime.protocol == "v1":
        return None, f"/v1/models/{name}"
    if runtime.protocol == "openai":
        return "/health", "/v1/models"
    return runtime.health_path or "/", runtime.readiness_path or runtime.health_path or "/"


def container_probes(spec: ModelDeploymentSpec) -> Obj:
    live_path, ready_path = protocol_paths(spec)
    liveness: Obj = (
        _http(live_path, 10, 3)
        if live_path is not None
        else {"tcpSocket": {"port": "http"}, "periodSeconds": 10, "failureThreshold": 3}
    )
    startup = {**liveness, "periodSeconds": 5, "failureThreshold": 60}
    return {"startupProbe": startup, "livenessProbe": liveness, "readinessProbe": _http(ready_path, 5, 3)}
