"""Pods to probe targets: who is probed, why others are not, and that only the pod IP is taken."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.probing.targets import (
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
    with pytest.raises(ValueError, match="absolute path"):
        ProbeSettings(port=8080, model_name="iris", metrics_path=path)
    with pytest.raises(ValueError, match="absolute path"):
        CustomPaths(health=path)


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="port must be 1-65535"):
        ProbeSettings(port=0, model_name="iris")
    with pytest.raises(ValueError, match="unknown protocol"):
        ProbeSettings(port=80, model_name="iris", protocol="grpc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        ProbeTarget(pod="x", ip="example.com", port=80, model_name="iris")


def test_model_name_is_quoted_for_paths() -> None:
    target = ProbeTarget(pod="x", ip="127.0.60.1", port=80, model_name="a/b c")
    assert target.quoted_model == "a%2Fb%20c"
