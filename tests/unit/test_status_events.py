"""Events on condition transitions: one per thing a person should hear about, none otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.api.v1alpha1 import DataDriftStatus, ReplicaHealth
from modeldeploy.drift.report import DataDriftReport
from modeldeploy.status.compute import HealthReport, Observation, Problem, compute_status, status_body
from modeldeploy.status.events import transition_events

Obj = dict[str, Any]
T = "2024-01-01T00:00:00Z"


def status(**conditions: tuple[str, str] | tuple[str, str, str]) -> Obj:
    """A status with the given conditions: Type=(status, reason[, message])."""
    items = []
    for type_, value in conditions.items():
        message = value[2] if len(value) == 3 else f"{type_} message"
        items.append({"type": type_, "status": value[0], "reason": value[1], "message": message})
    return {"conditions": items}


HEALTHY = ("True", "AllReplicasHealthy", "2/2 replicas healthy")
UNHEALTHY = ("False", "ReplicasUnhealthy", "1/2 replicas unhealthy: iris-b: down")
NO_DRIFT = ("False", "NoDrift", "psi 0.02")
DATA_DRIFT = ("True", "DataDrift", "data drift on feature: psi 0.4")
VERSION_DRIFT = ("True", "VersionDrift", "expected version 1.0.0, but iris-b serves 0.9.0")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # ModelHealthy
        (status(ModelHealthy=HEALTHY), status(ModelHealthy=UNHEALTHY), [("Warning", "ModelUnhealthy", UNHEALTHY[2])]),
        ({}, status(ModelHealthy=UNHEALTHY), [("Warning", "ModelUnhealthy", UNHEALTHY[2])]),
        (
            status(ModelHealthy=("Unknown", "AwaitingProbe")),
            status(ModelHealthy=UNHEALTHY),
            [("Warning", "ModelUnhealthy", UNHEALTHY[2])],
        ),
        (status(ModelHealthy=UNHEALTHY), status(ModelHealthy=HEALTHY), [("Normal", "ModelRecovered", HEALTHY[2])]),
        (status(ModelHealthy=UNHEALTHY), status(ModelHealthy=("False", "ReplicasUnhealthy", "2/2 down")), []),
        (status(ModelHealthy=("Unknown", "AwaitingProbe")), status(ModelHealthy=HEALTHY), []),
        ({}, status(ModelHealthy=HEALTHY), []),
        (status(ModelHealthy=UNHEALTHY), status(ModelHealthy=("Unknown", "ProbingDisabled")), []),
        # Drifted
        (status(Drifted=NO_DRIFT), status(Drifted=DATA_DRIFT), [("Warning", "DriftDetected", DATA_DRIFT[2])]),
        ({}, status(Drifted=DATA_DRIFT), [("Warning", "DriftDetected", DATA_DRIFT[2])]),
        (status(Drifted=NO_DRIFT), status(Drifted=VERSION_DRIFT), [("Warning", "VersionDrift", VERSION_DRIFT[2])]),
        (status(Drifted=DATA_DRIFT), status(Drifted=VERSION_DRIFT), [("Warning", "VersionDrift", VERSION_DRIFT[2])]),
        (status(Drifted=VERSION_DRIFT), status(Drifted=DATA_DRIFT), [("Warning", "DriftDetected", DATA_DRIFT[2])]),
        (status(Drifted=DATA_DRIFT), status(Drifted=("True", "DataDrift", "psi 0.5")), []),
        (
            status(Drifted=DATA_DRIFT),
            status(Drifted=NO_DRIFT),
            [("Normal", "DriftCleared", f"DataDrift cleared: {NO_DRIFT[2]}")],
        ),
        (
            status(Drifted=VERSION_DRIFT),
            status(Drifted=NO_DRIFT),
            [("Normal", "DriftCleared", f"VersionDrift cleared: {NO_DRIFT[2]}")],
        ),
        (
            status(Drifted=DATA_DRIFT),
            status(Drifted=("Unknown", "NotEnoughSamples", "5 samples")),
            [("Normal", "DriftCleared", "DataDrift cleared: 5 samples")],
        ),
        (status(Drifted=NO_DRIFT), status(Drifted=("False", "NoDrift", "psi 0.03")), []),
        # Stalled
        (
            status(Stalled=("False", "NoErrors")),
            status(Stalled=("True", "ImagePullSecretNotFound", "Secret missing")),
            [("Warning", "ImagePullSecretNotFound", "Secret missing")],
        ),
        ({}, status(Stalled=("True", "InvalidSpec", "bad")), [("Warning", "InvalidSpec", "bad")]),
        (
            status(Stalled=("True", "InvalidSpec", "bad")),
            status(Stalled=("True", "ProgressDeadlineExceeded", "stuck")),
            [("Warning", "ProgressDeadlineExceeded", "stuck")],
        ),
        (status(Stalled=("True", "InvalidSpec", "bad")), status(Stalled=("True", "InvalidSpec", "worse")), []),
        (status(Stalled=("True", "InvalidSpec", "bad")), status(Stalled=("False", "NoErrors")), []),
        # Ready
        (
            status(Ready=("False", "RollingOut")),
            status(Ready=("True", "Ready", "2 ready")),
            [("Normal", "Ready", "2 ready")],
        ),
        ({}, status(Ready=("True", "Ready", "1 ready")), [("Normal", "Ready", "1 ready")]),
        (status(Ready=("Unknown", "X")), status(Ready=("True", "Ready", "ok")), [("Normal", "Ready", "ok")]),
        (status(Ready=("True", "Ready", "2 ready")), status(Ready=("True", "Ready", "3 ready")), []),
        (status(Ready=("True", "Ready")), status(Ready=("False", "RollingOut")), []),
        # nothing at all
        ({}, {}, []),
        ({"conditions": None}, {}, []),
    ],
)
def test_transition_events(old: Obj, new: Obj, expected: list[tuple[str, str, str]]) -> None:
    assert transition_events(old, new) == expected


def test_no_events_when_nothing_transitions() -> None:
    steady = status(
        Ready=("True", "Ready"),
        Reconciling=("False", "Converged"),
        Stalled=("False", "NoErrors"),
        Available=("True", "MinimumReplicasAvailable"),
        ModelHealthy=HEALTHY,
        Drifted=NO_DRIFT,
    )
    assert transition_events(steady, steady) == []
    bad = status(
        Ready=("False", "Stalled"), Stalled=("True", "InvalidSpec"), ModelHealthy=UNHEALTHY, Drifted=DATA_DRIFT
    )
    assert transition_events(bad, bad) == []


def test_several_transitions_at_once_are_ordered() -> None:
    old = status(
        Ready=("False", "RollingOut"), ModelHealthy=UNHEALTHY, Drifted=DATA_DRIFT, Stalled=("False", "NoErrors")
    )
    new = status(Ready=("True", "Ready", "up"), ModelHealthy=HEALTHY, Drifted=NO_DRIFT, Stalled=("False", "NoErrors"))
    assert [reason for _, reason, _ in transition_events(old, new)] == ["ModelRecovered", "DriftCleared", "Ready"]
    worse = status(
        Ready=("False", "Stalled"), ModelHealthy=UNHEALTHY, Drifted=VERSION_DRIFT, Stalled=("True", "Forbidden", "no")
    )
    assert [reason for _, reason, _ in transition_events(new, worse)] == ["ModelUnhealthy", "VersionDrift", "Forbidden"]


def test_event_reasons_and_types_are_valid() -> None:
    old = status(ModelHealthy=HEALTHY, Drifted=NO_DRIFT, Stalled=("False", "NoErrors"), Ready=("False", "X"))
    new = status(ModelHealthy=UNHEALTHY, Drifted=DATA_DRIFT, Stalled=("True", "ApplyRejected"), Ready=("True", "Ready"))
    for type_, reason, _ in transition_events(old, new):
        assert type_ in ("Normal", "Warning")
        assert reason.isalnum()
        assert reason[0].isupper()


# ---- with statuses from compute_status -------------------------------------------------------------


def _replica(pod: str, *, healthy: bool = True, served: str = "1.0.0") -> ReplicaHealth:
    return ReplicaHealth(
        pod=pod,
        ip="127.0.60.1",
        live=True,
        ready=True,
        model_ready=healthy,
        served_version=served,
        latency_ms=1.0,
        error=None if healthy else "down",
        since="2024-01-01T00:00:00Z",
    )


def _deployment() -> Obj:
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 1,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": 2,
            "availableReplicas": 2,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}],
        },
    }


def _compute(previous: Obj, **overrides: Any) -> Obj:
    values: Obj = {
        "generation": 1,
        "expected_version": "1.0.0",
        "desired_replicas": 2,
        "probing_enabled": True,
        "deployment": _deployment(),
        "health": HealthReport(T, [_replica("iris-a"), _replica("iris-b")]),
        "previous_status": previous,
    }
    values.update(overrides)
    return status_body(compute_status(Observation(**values), now=T))


def test_a_life_cycle_of_computed_statuses() -> None:
    fresh = _compute({}, deployment=None, health=None)
    assert transition_events({}, fresh) == []

    ready = _compute(fresh)
    assert [e[1] for e in transition_events(fresh, ready)] == ["Ready"]
    assert transition_events(ready, _compute(ready)) == []

    sick = _compute(ready, health=HealthReport(T, [_replica("iris-a"), _replica("iris-b", healthy=False)]))
    events = transition_events(ready, sick)
    assert [e[:2] for e in events] == [("Warning", "ModelUnhealthy")]
    assert "iris-b" in events[0][2]

    recovered = _compute(sick)
    assert [e[1] for e in transition_events(sick, recovered)] == ["ModelRecovered", "Ready"]

    drifting = _compute(recovered, data_drift=DataDriftReport(DataDriftStatus(), True, "data drift on m"))
    assert transition_events(recovered, drifting) == [("Warning", "DriftDetected", "data drift on m")]

    old_pod = HealthReport(T, [_replica("iris-a"), _replica("iris-b", served="0.9")])
    version = _compute(drifting, health=old_pod)
    assert [e[1] for e in transition_events(drifting, version)] == ["VersionDrift"]

    stalled = _compute(version, health=old_pod, problem=Problem("InvalidSpec", "spec.x: bad"))
    assert [e[1] for e in transition_events(version, stalled)] == ["InvalidSpec"]

    fixed = _compute(stalled)
    assert [e[1] for e in transition_events(stalled, fixed)] == ["DriftCleared", "Ready"]


def test_the_first_rollout_of_a_new_object_is_routine_a_later_one_or_a_recovery_is_news() -> None:
    rolling = status(Ready=("False", "RollingOut"))
    ready = status(Ready=("True", "Ready", "1 ready"))
    assert transition_events(rolling, ready, created=True) == []
    assert transition_events({}, ready, created=True) == []
    # the way to a first Ready passes through waiting for replicas and their first probe: routine
    # too (a thousand new models once posted 260 Normal/Ready Events nobody reads)
    for reason in ("AwaitingReplicas", "AwaitingProbe"):
        assert transition_events(status(Ready=("False", reason)), ready, created=True) == []
    assert transition_events(rolling, ready) == [("Normal", "Ready", "1 ready")]  # a spec change rolled out
    unavailable = status(Ready=("False", "DeploymentUnavailable"))
    assert transition_events(unavailable, ready, created=True) == [("Normal", "Ready", "1 ready")]
