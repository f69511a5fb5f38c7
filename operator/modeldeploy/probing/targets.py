"""Which replicas to probe, and where: Kubernetes Pods in, probe targets out.

Only the pod IP comes from the cluster; port, paths and model identity come
from the ModelDeployment spec via the caller. Nothing a workload can write
(annotations, labels, a status field it controls) can point the operator's
prober at another host, so the prober cannot be turned into a way to reach
arbitrary addresses from the operator's network position.
"""

from __future__ import annotations

import ipaddress
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from modeldeploy.api.rules import HTTP_PATH_MESSAGE, MAX_PORT, MIN_PORT, is_http_path
from modeldeploy.api.v1alpha1 import Protocol

# The spec's own type and rules, not copies: a value the CRD admits must never fail here, where
# the only outcome would be a traceback every probe round and nothing on the status.
ProtocolName = Protocol
PROTOCOLS: tuple[ProtocolName, ...] = typing.get_args(Protocol)


def check_path(path: str, what: str) -> None:
    """Refuse a path that could leave the pod: it is appended to http://<pod ip>:<port>."""
    if not is_http_path(path):
        raise ValueError(f"{what} {HTTP_PATH_MESSAGE}, got {path!r}")


def _check_port(port: int, what: str) -> None:
    if not MIN_PORT <= port <= MAX_PORT:
        raise ValueError(f"{what} must be {MIN_PORT}-{MAX_PORT}, got {port}")


@dataclass(frozen=True)
class CustomPaths:
    """Endpoints of a runtime that follows none of the known protocols; any may be absent."""

    health: str | None = None
    readiness: str | None = None
    metadata: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        for name in ("health", "readiness", "metadata", "version"):
            value = getattr(self, name)
            if value is not None:
                check_path(value, f"custom {name} path")


@dataclass(frozen=True)
class ProbeSettings:
    """How to probe every replica of one deployment, as derived from its spec."""

    port: int
    model_name: str
    protocol: ProtocolName = "v2"
    expected_version: str | None = None
    metrics_port: int | None = None
    metrics_path: str = "/metrics"
    custom_paths: CustomPaths = field(default_factory=CustomPaths)

    def __post_init__(self) -> None:
        _check_port(self.port, "port")
        if self.metrics_port is not None:
            _check_port(self.metrics_port, "metrics port")
        check_path(self.metrics_path, "metrics path")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}: use one of {', '.join(PROTOCOLS)}")
        if not self.model_name:
            raise ValueError("model name must not be empty")


@dataclass(frozen=True)
class ProbeTarget:
    pod: str
    ip: str
    port: int
    model_name: str
    protocol: ProtocolName = "v2"
    expected_version: str | None = None
    metrics_port: int | None = None
    metrics_path: str = "/metrics"
    custom_paths: CustomPaths = field(default_factory=CustomPaths)

    def __post_init__(self) -> None:
        # An IP literal, never a name: a name would be resolved, and could resolve anywhere.
        ipaddress.ip_address(self.ip)
        ProbeSettings(
            self.port, self.model_name, self.protocol, self.expected_version, self.metrics_port, self.metrics_path
        )

    @property
    def host(self) -> str:
        return f"[{self.ip}]" if ":" in self.ip else self.ip

    def url(self, path: str) -> str:
        check_path(path, "probe path")
        return f"http://{self.host}:{self.port}{path}"

    def metrics_url(self) -> str | None:
        if self.metrics_port is None:
            return None
        return f"http://{self.host}:{self.metrics_port}{self.metrics_path}"

    @property
    def quoted_model(self) -> str:
        return quote(self.model_name, safe="")


@dataclass(frozen=True)
class UnprobedReplica:
    """A pod that exists but cannot be probed yet or any more, and why."""

    pod: str
    reason: str


def _get(obj: Mapping[str, Any], *keys: str) -> Any:
    value: Any = obj
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def unprobed_reason(pod: Mapping[str, Any]) -> str | None:
    """Why this pod is not probed, or None if it is."""
    if _get(pod, "metadata", "deletionTimestamp"):
        return "terminating"
    phase = _get(pod, "status", "phase")
    if phase != "Running":
        return str(phase) if phase else "no phase yet"
    ip = _get(pod, "status", "podIP")
    if not ip:
        return "no pod IP"
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return f"invalid pod IP {ip!r}"
    return None


def targets_from_pods(
    pods: Iterable[Mapping[str, Any]], settings: ProbeSettings
) -> tuple[list[ProbeTarget], list[UnprobedReplica]]:
    """Split pods into probe targets (Running, with an IP, not being deleted) and the rest."""
    targets: list[ProbeTarget] = []
    unprobed: list[UnprobedReplica] = []
    for pod in pods:
        name = str(_get(pod, "metadata", "name") or "")
        reason = unprobed_reason(pod)
        if reason is not None:
            unprobed.append(UnprobedReplica(name, reason))
            continue
        targets.append(
            ProbeTarget(
                pod=name,
                ip=str(_get(pod, "status", "podIP")),
                port=settings.port,
                model_name=settings.model_name,
                protocol=settings.protocol,
                expected_version=settings.expected_version,
                metrics_port=settings.metrics_port,
                metrics_path=settings.metrics_path,
                custom_paths=settings.custom_paths,
            )
        )
    return targets, unprobed
