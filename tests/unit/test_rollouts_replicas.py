"""Which replicas count for a canary's health and version checks (controller/rollouts.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from modeldeploy.api.v1alpha1 import ReplicaHealth
from modeldeploy.controller.rollouts import _replicas
from modeldeploy.status.compute import HealthReport


def pod(name: str, canary: bool, version: str = "2.0.0") -> dict[str, object]:
    labels = {"modeldeploy.io/version": version, **({"modeldeploy.io/track": "canary"} if canary else {})}
    return {"metadata": {"name": name, "labels": labels}, "status": {"phase": "Running", "podIP": "127.0.0.9"}}


def replica(name: str, healthy: bool, served: str | None = "2.0.0") -> ReplicaHealth:
    return ReplicaHealth(
        pod=name,
        ip="127.0.0.9",
        live=healthy,
        ready=healthy,
        model_ready=healthy,
        served_version=served,
        error=None if healthy else "cannot connect to 127.0.0.9:8080: connection refused",
    )


def test_a_canary_replica_never_healthy_yet_is_starting_not_failing() -> None:
    pods = [pod("c-1", True), pod("c-2", True), pod("s-1", False, "1.0.0")]
    report = HealthReport(
        probed_at=datetime(2026, 1, 1, tzinfo=UTC),
        replicas=(replica("c-1", False), replica("c-2", False), replica("s-1", True, "1.0.0")),
        starting=("c-1",),
    )
    seen = _replicas(report, pods, "2.0.0", canary_only=True)
    assert seen.healthy == 0
    assert seen.unhealthy == ("c-2: cannot connect to 127.0.0.9:8080: connection refused",), "c-1 is still starting"
    assert seen.wrong_version == (), "the stable's version is not the canary's business"


def test_a_canary_replica_on_another_version_is_named() -> None:
    report = HealthReport(probed_at=datetime(2026, 1, 1, tzinfo=UTC), replicas=(replica("c-1", True, "1.9.0"),))
    seen = _replicas(report, [pod("c-1", True)], "2.0.0", canary_only=True)
    assert (seen.healthy, seen.wrong_version) == (0, ("c-1 serves 1.9.0",))
