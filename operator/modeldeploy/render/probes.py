"""Kubelet probes that fit each serving protocol.

Readiness asks whether the model is loaded (not just whether the process answers), so a
pod whose model failed to load never receives traffic; a startup probe gives slow model
loads five minutes before liveness may restart the container.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from modeldeploy.api.v1alpha1 import ServerSpec

Obj = dict[str, Any]


def _http(path: str, period: int, failures: int) -> Obj:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "failureThreshold": failures}


def protocol_paths(model_name: str, runtime: ServerSpec) -> tuple[str | None, str]:
    """(liveness path or None for a TCP check, readiness path) for the server's protocol."""
    name = quote(model_name, safe="")
    standard: dict[str, tuple[str | None, str]] = {
        "v2": ("/v2/health/live", f"/v2/models/{name}/ready"),
        "v1": (None, f"/v1/models/{name}"),
        "openai": ("/health", "/v1/models"),
    }
    live, ready = standard.get(runtime.protocol, ("/", "/"))
    # healthPath / readinessPath override the protocol's standard paths, for every protocol
    live = runtime.health_path or live
    ready = runtime.readiness_path or (runtime.health_path if runtime.protocol == "custom" else None) or ready
    return live, ready


def container_probes(model_name: str, runtime: ServerSpec) -> Obj:
    live_path, ready_path = protocol_paths(model_name, runtime)
    liveness: Obj = (
        _http(live_path, 10, 3)
        if live_path is not None
        else {"tcpSocket": {"port": "http"}, "periodSeconds": 10, "failureThreshold": 3}
    )
    startup = {**liveness, "periodSeconds": 5, "failureThreshold": 60}
    return {"startupProbe": startup, "livenessProbe": liveness, "readinessProbe": _http(ready_path, 5, 3)}
