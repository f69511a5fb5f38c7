"""Pods to probe targets: who is probed, why others are not, and that only the pod IP is taken."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from pydantic import ValidationError

from modeldeploy.api import MetricsEndpoint, ModelDeploymentSpec, Protocol, RuntimeSpec
from modeldeploy.api.rules import HTTP_PATH_MESSAGE, MAX_PORT
from modeldeploy.probing.targets import (
    PROTOCOLS,
    CustomPaths,
    ProbeSettings,
    ProbeTarget,
    UnprobedReplica,
    targets_from_pods,
)

SETTINGS = ProbeSettings(port=8080, model_name="iris", expected_version="2", metrics_port=8082)


def pod(name: str, phase: str | None = "Running", ip: str | None = "127.0.60.5", **extra: Any) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if phase is not None:
        status["phase"] = phase
    if ip is not None:
        status["podIP"] = ip
    metadata: dict[str, Any] = {"name": name, **extra}
    return {"metadata": metadata, "status": status}


def test_running_pods_with_ip_become_targets_with_spec_settings() -> None:
    running = pod("a")
    # Fields a workload could set must not redirect the probe.
    running["metadata"]["annotations"] = {"prometheus.io/port": "9999", "prometheus.io/path": "/x"}
    running["spec"] = {"containers": [{"ports": [{"containerPort": 1234}]}]}
    targets, unprobed = targets_from_pods([running], SETTINGS)
    assert unprobed == []
    assert targets == [
        ProbeTarget(
            pod="a",
            ip="127.0.60.5",
            port=8080,
            model_name="iris",
            expected_version="2",
            metrics_port=8082,
            metrics_path="/metrics",
        )
    ]
    assert targets[0].url("/v2/health/live") == "http://127.0.60.5:8080/v2/health/live"
    assert targets[0].metrics_url() == "http://127.0.60.5:8082/metrics"


def test_unprobed_pods_say_why() -> None:
    pods = [
        pod("pending", phase="Pending", ip=None),
        pod("no-ip", ip=None),
        pod("deleting", deletionTimestamp="2026-01-01T00:00:00Z"),
        pod("failed", phase="Failed"),
        pod("hostname-ip", ip="evil.example.com"),
        pod("fresh", phase=None, ip=None),
        pod("ok"),
    ]
    targets, unprobed = targets_from_pods(pods, SETTINGS)
    assert [t.pod for t in targets] == ["ok"]
    assert unprobed == [
        UnprobedReplica("pending", "Pending"),
        UnprobedReplica("no-ip", "no pod IP"),
        UnprobedReplica("deleting", "terminating"),
        UnprobedReplica("failed", "Failed"),
        UnprobedReplica("hostname-ip", "invalid pod IP 'evil.example.com'"),
        UnprobedReplica("fresh", "no phase yet"),
    ]


def test_ipv6_pod_ip_is_bracketed() -> None:
    targets, _ = targets_from_pods([pod("v6", ip="fd00::5")], SETTINGS)
    assert targets[0].url("/metrics") == "http://[fd00::5]:8080/metrics"


@pytest.mark.parametrize("path", ["http://evil.example.com/", "//evil.example.com/x", "/a b", "health", "/x#frag"])
def test_paths_that_could_leave_the_pod_are_rejected(path: str) -> None:
    with pytest.raises(ValueError, match="must be an absolute URL path") as raised:
        ProbeSettings(port=8080, model_name="iris", metrics_path=path)
    assert HTTP_PATH_MESSAGE in str(raised.value)
    with pytest.raises(ValueError, match="must be an absolute URL path"):
        CustomPaths(health=path)


# Paths on both sides of the rule. The prober and the schema must split them the same way: a
# path the CRD admits but the prober refuses was a traceback every probe round (issue 9).
PATHS = [
    "/",
    "/healthz",
    "/v2/health/ready",
    "/health?verbose=1&probe=a//b",
    "/v2/models/my%20model/ready",
    "/a//b",
    "/~user/x;v=1/(a)*+,:@!$'",
    "//evil.example.com/x",
    "//",
    "http://evil.example.com/",
    "healthz",
    "",
    "/a b",
    "/x#frag",
    "/a\\b",
    "/a\tb",
    "/a\nb",
    "/healthz\n",
    "/a%zz",
    "/a%2",
    "/caf\u00e9",
    '/"quoted"',
    "/{template}",
    "/" + "x" * 1023,
    "/" + "x" * 1024,
]


def _schema_admits(path: str) -> bool:
    try:
        RuntimeSpec(image="model:1", protocol="custom", health_path=path, readiness_path=path)
        MetricsEndpoint(path=path)
    except ValidationError:
        return False
    return True


def _prober_admits(path: str) -> bool:
    try:
        ProbeSettings(port=8080, model_name="iris", metrics_path=path, custom_paths=CustomPaths(path, path, path, path))
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("path", PATHS, ids=repr)
def test_schema_and_prober_agree_on_every_path(path: str) -> None:
    assert _schema_admits(path) == _prober_admits(path)


def test_both_sides_of_the_path_rule_are_exercised() -> None:
    verdicts = [_prober_admits(path) for path in PATHS]
    assert verdicts.count(True) == 8
    assert not _prober_admits("//evil.example.com/x")


def test_settings_from_any_valid_spec_are_accepted_by_the_prober() -> None:
    """What the controller does each round (controller/probes.py probe_settings), on an edge spec."""
    spec = ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "org/my+model", "version": "2"},
            "runtime": {
                "image": "model:1",
                "port": MAX_PORT,
                "protocol": "custom",
                "healthPath": "/h?x=1",
                "readinessPath": "/r%2F",
                "metadataPath": "/",
                "versionPath": "/v;1",
                "metrics": {"port": 1, "path": "/m/"},
            },
        }
    )
    runtime = spec.runtime
    settings = ProbeSettings(
        port=runtime.port,
        model_name=spec.model.name,
        protocol=runtime.protocol,
        expected_version=spec.model.version,
        metrics_port=runtime.metrics.port,
        metrics_path=runtime.metrics.path,
        custom_paths=CustomPaths(
            runtime.health_path, runtime.readiness_path, runtime.metadata_path, runtime.version_path
        ),
    )
    (target,), _ = targets_from_pods([pod("a")], settings)
    assert target.url(runtime.health_path or "") == f"http://127.0.60.5:{MAX_PORT}/h?x=1"


def test_protocols_are_the_specs() -> None:
    assert typing.get_args(Protocol) == PROTOCOLS


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="port must be 1-65535"):
        ProbeSettings(port=0, model_name="iris")
    with pytest.raises(ValueError, match="port must be 1-65535"):
        ProbeSettings(port=65536, model_name="iris")
    with pytest.raises(ValueError, match="unknown protocol"):
        ProbeSettings(port=80, model_name="iris", protocol="grpc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        ProbeTarget(pod="x", ip="example.com", port=80, model_name="iris")


def test_model_name_is_quoted_for_paths() -> None:
    target = ProbeTarget(pod="x", ip="127.0.60.1", port=80, model_name="a/b c")
    assert target.quoted_model == "a%2Fb%20c"
