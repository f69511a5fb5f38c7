"""compute_status: every condition from one Observation, with the kstatus rules held throughout."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from modeldeploy.api.v1alpha1 import ConfigDriftStatus, DataDriftStatus, ModelDeploymentStatus, ReplicaHealth
from modeldeploy.drift.report import DataDriftReport
from modeldeploy.status import compute as status_compute
from modeldeploy.status.compute import (
    MAX_REPLICA_DETAILS,
    HealthReport,
    Observation,
    Problem,
    can_be_folded,
    for_current_pods,
    rollout_of,
    status_body,
    stuck_rollout,
    without_volatile,
)

NOW, LATER = "2024-05-01T12:00:00Z", "2024-05-01T12:10:00Z"
SINCE = "2024-05-01T11:00:00Z"
VERSION = "1.0.0"
CONDITION_ORDER = ["Ready", "Reconciling", "Stalled", "Available", "ModelHealthy", "Drifted"]

Obj = dict[str, Any]


def compute_status(obs: Observation, *, now: str) -> Obj:
    """The status as written: the form kubectl, kstatus and Argo CD read."""
    return status_body(status_compute.compute_status(obs, now=now))


def health_status(report: HealthReport) -> Obj:
    return status_compute.health_status(report).model_dump(by_alias=True, exclude_none=True, mode="json")


def deployment(
    *,
    want: int | None = 2,
    generation: int = 4,
    observed: int | None = 4,
    replicas: int = 2,
    updated: int = 2,
    ready: int = 2,
    available: int = 2,
    available_status: str | None = "True",
    progressing_reason: str = "NewReplicaSetAvailable",
) -> Obj:
    spec: Obj = {} if want is None else {"replicas": want}
    status: Obj = {
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "conditions": [
            {"type": "Progressing", "status": "True", "reason": progressing_reason, "message": "progress message"},
        ],
    }
    if observed is not None:
        status["observedGeneration"] = observed
    if available_status is not None:
        status["conditions"].insert(
            0,
            {
                "type": "Available",
                "status": available_status,
                "reason": "MinimumReplicasAvailable" if available_status == "True" else "MinimumReplicasUnavailable",
                "message": "Deployment has minimum availability."
                if available_status == "True"
                else "Deployment does not have minimum availability.",
            },
        )
    if progressing_reason == "ProgressDeadlineExceeded":
        status["conditions"][-1].update(status="False", message='ReplicaSet "iris-abc" has timed out progressing.')
    return {"metadata": {"name": "iris", "generation": generation}, "spec": spec, "status": status}


def replica(
    pod: str,
    *,
    healthy: bool = True,
    served: str | None = VERSION,
    error: str | None = None,
    live: bool | None = True,
    ready: bool | None = True,
    model_ready: bool | None = None,
    latency: float | None = 3.5,
) -> ReplicaHealth:
    return ReplicaHealth(
        pod=pod,
        ip="127.0.60.1",
        live=live,
        ready=ready,
        model_ready=healthy if model_ready is None else model_ready,
        served_version=served,
        latency_ms=latency,
        error=error,
        since=SINCE,
    )


def health(
    *replicas: ReplicaHealth, pending: tuple[str, ...] = (), unprobed: tuple[tuple[str, str], ...] = ()
) -> HealthReport:
    return HealthReport(probed_at=NOW, replicas=list(replicas), unprobed=unprobed, pending=pending)


def healthy_pair() -> HealthReport:
    return health(replica("iris-a"), replica("iris-b"))


def data_drift(drifted: bool, message: str = "data drift on modelserver_feature_value: psi 0.41") -> DataDriftReport:
    status = {"method": "psi", "score": 0.41 if drifted else 0.02, "threshold": 0.2, "samples": 500, "drifted": drifted}
    return DataDriftReport(status=DataDriftStatus.read(status), drifted=drifted, message=message)


def observation(**overrides: Any) -> Observation:
    values: Obj = {
        "generation": 4,
        "expected_version": VERSION,
        "desired_replicas": 2,
        "probing_enabled": True,
        "deployment": deployment(),
        "health": healthy_pair(),
    }
    values.update(overrides)
    return Observation(**values)


def conditions(status: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in status["conditions"]}


def triple(status: Obj, type_: str) -> tuple[str, str]:
    condition = conditions(status)[type_]
    return condition["status"], condition["reason"]


@dataclass
class Case:
    obs: Observation
    expected: dict[str, tuple[str, str]]
    messages: dict[str, str] = field(default_factory=dict)  # substrings the message must contain


CASES: dict[str, Case] = {
    "fresh, no deployment yet": Case(
        observation(deployment=None, health=None),
        {
            "Ready": ("False", "RollingOut"),
            "Reconciling": ("True", "RollingOut"),
            "Stalled": ("False", "NoErrors"),
            "Available": ("Unknown", "DeploymentMissing"),
            "ModelHealthy": ("Unknown", "AwaitingProbe"),
            "Drifted": ("False", "NoDrift"),
        },
        {"Reconciling": "waiting for the Deployment to be created", "Available": "does not exist"},
    ),
    "template not observed by the Deployment controller": Case(
        observation(deployment=deployment(generation=5, observed=4)),
        {
            "Ready": ("False", "RollingOut"),
            "Reconciling": ("True", "RollingOut"),
            "Stalled": ("False", "NoErrors"),
            "Available": ("True", "MinimumReplicasAvailable"),
            "ModelHealthy": ("True", "AllReplicasHealthy"),
            "Drifted": ("False", "NoDrift"),
        },
        {"Reconciling": "has not seen the latest template"},
    ),
    "rolling out": Case(
        observation(deployment=deployment(replicas=3, updated=1, ready=2, available=2)),
        {
            "Ready": ("False", "RollingOut"),
            "Reconciling": ("True", "RollingOut"),
            "Stalled": ("False", "NoErrors"),
            "Available": ("True", "MinimumReplicasAvailable"),
        },
        {"Reconciling": "rolling out: 1/2 replicas updated", "Ready": "rolling out: 1/2"},
    ),
    "old replicas terminating": Case(
        observation(deployment=deployment(replicas=3, updated=2)),
        {"Ready": ("False", "RollingOut"), "Reconciling": ("True", "RollingOut")},
        {"Reconciling": "1 old replicas pending termination"},
    ),
    "waiting for availability": Case(
        observation(deployment=deployment(available=1, ready=1, available_status="False")),
        {
            "Ready": ("False", "RollingOut"),
            "Reconciling": ("True", "RollingOut"),
            "Available": ("False", "MinimumReplicasUnavailable"),
        },
        {"Reconciling": "waiting for replicas: 1/2 available"},
    ),
    "complete, probing disabled": Case(
        observation(probing_enabled=False, health=None),
        {
            "Ready": ("True", "Ready"),
            "Reconciling": ("False", "Converged"),
            "Stalled": ("False", "NoErrors"),
            "Available": ("True", "MinimumReplicasAvailable"),
            "ModelHealthy": ("Unknown", "ProbingDisabled"),
            "Drifted": ("False", "NoDrift"),
        },
        {"Ready": "model 1.0.0 served", "Reconciling": "2/2 replicas available"},
    ),
    "complete, probing disabled ignores unhealthy reports": Case(
        observation(probing_enabled=False, health=health(replica("iris-a", healthy=False, error="boom"))),
        {"Ready": ("True", "Ready"), "ModelHealthy": ("Unknown", "ProbingDisabled")},
    ),
    "complete, awaiting the first probe": Case(
        observation(health=None),
        {
            "Ready": ("False", "AwaitingProbe"),
            "Reconciling": ("False", "Converged"),
            "Stalled": ("False", "NoErrors"),
            "ModelHealthy": ("Unknown", "AwaitingProbe"),
        },
    ),
    "complete and healthy": Case(
        observation(),
        {
            "Ready": ("True", "Ready"),
            "Reconciling": ("False", "Converged"),
            "Stalled": ("False", "NoErrors"),
            "Available": ("True", "MinimumReplicasAvailable"),
            "ModelHealthy": ("True", "AllReplicasHealthy"),
            "Drifted": ("False", "NoDrift"),
        },
        {"ModelHealthy": "2/2 replicas healthy", "Ready": "2 replica(s) ready"},
    ),
    "one replica unhealthy": Case(
        observation(
            health=health(replica("iris-a"), replica("iris-b", healthy=False, error="HTTP 503 from /v2/health/ready"))
        ),
        {
            "Ready": ("False", "ModelUnhealthy"),
            "Reconciling": ("False", "Converged"),
            "Stalled": ("False", "NoErrors"),
            "ModelHealthy": ("False", "ReplicasUnhealthy"),
        },
        {"ModelHealthy": "1/2 replicas unhealthy: iris-b: HTTP 503 from /v2/health/ready", "Ready": "iris-b"},
    ),
    "unhealthy without an error says why": Case(
        observation(
            health=health(
                replica("iris-a", live=False, ready=False, error=None),
                replica("iris-b", ready=False),
                replica("iris-c", healthy=False),
            )
        ),
        {"ModelHealthy": ("False", "ReplicasUnhealthy")},
        {"ModelHealthy": "3/3 replicas unhealthy: iris-a: not live; iris-b: server not ready; iris-c: model not ready"},
    ),
    "many unhealthy are summarised": Case(
        observation(health=health(*(replica(f"iris-{i}", healthy=False, error="down") for i in range(5)))),
        {"ModelHealthy": ("False", "ReplicasUnhealthy")},
        {"ModelHealthy": "5/5 replicas unhealthy: iris-0: down; iris-1: down; iris-2: down (+2 more)"},
    ),
    "version mismatch during rollout": Case(
        observation(
            deployment=deployment(replicas=3, updated=2),
            health=health(replica("iris-a"), replica("iris-b"), replica("iris-old", served="0.9.0")),
        ),
        {
            "Ready": ("False", "RollingOut"),
            "Reconciling": ("True", "RollingOut"),
            "Stalled": ("False", "NoErrors"),
            "Drifted": ("False", "NoDrift"),
        },
        {"Reconciling": "1 replica(s) still on another version"},
    ),
    "version drift after the rollout": Case(
        observation(health=health(replica("iris-a"), replica("iris-b", served="0.9.0"))),
        {
            "Ready": ("False", "VersionDrift"),
            "Reconciling": ("False", "Converged"),
            "Stalled": ("False", "NoErrors"),
            "ModelHealthy": ("True", "AllReplicasHealthy"),
            "Drifted": ("True", "VersionDrift"),
        },
        {"Drifted": "expected version 1.0.0, but iris-b serves 0.9.0"},
    ),
    "data drift keeps Ready": Case(
        observation(data_drift=data_drift(True)),
        {
            "Ready": ("True", "Ready"),
            "Reconciling": ("False", "Converged"),
            "Drifted": ("True", "DataDrift"),
        },
        {"Drifted": "data drift on modelserver_feature_value"},
    ),
    "no data drift carries the evaluation message": Case(
        observation(data_drift=data_drift(False, "modelserver_feature_value: psi 0.02 over 500 samples")),
        {"Ready": ("True", "Ready"), "Drifted": ("False", "NoDrift")},
        {"Drifted": "psi 0.02 over 500 samples"},
    ),
    "version drift outranks data drift": Case(
        observation(data_drift=data_drift(True), health=health(replica("iris-a"), replica("iris-b", served="2.0.0"))),
        {"Drifted": ("True", "VersionDrift"), "Ready": ("False", "VersionDrift")},
    ),
    "stalled by a problem": Case(
        observation(problem=Problem("ImagePullSecretNotFound", "Secret 'registry' does not exist")),
        {
            "Ready": ("False", "Stalled"),
            "Reconciling": ("False", "Stalled"),
            "Stalled": ("True", "ImagePullSecretNotFound"),
            "Available": ("True", "MinimumReplicasAvailable"),
        },
        {"Stalled": "Secret 'registry' does not exist", "Ready": "Secret 'registry' does not exist"},
    ),
    "stalled before any deployment exists": Case(
        observation(problem=Problem("InvalidSpec", "spec.model.version: bad"), deployment=None, health=None),
        {
            "Ready": ("False", "Stalled"),
            "Reconciling": ("False", "Stalled"),
            "Stalled": ("True", "InvalidSpec"),
            "Available": ("Unknown", "DeploymentMissing"),
        },
    ),
    "stalled mid-rollout": Case(
        observation(problem=Problem("ApplyRejected", "denied"), deployment=deployment(updated=1)),
        {"Ready": ("False", "Stalled"), "Reconciling": ("False", "Stalled"), "Stalled": ("True", "ApplyRejected")},
    ),
    "progress deadline exceeded": Case(
        observation(deployment=deployment(updated=1, available=1, progressing_reason="ProgressDeadlineExceeded")),
        {
            "Ready": ("False", "Stalled"),
            "Reconciling": ("False", "Stalled"),
            "Stalled": ("True", "ProgressDeadlineExceeded"),
        },
        {"Stalled": 'the rollout made no progress: ReplicaSet "iris-abc" has timed out progressing.'},
    ),
    "an explicit problem wins over the progress deadline": Case(
        observation(
            problem=Problem("Forbidden", "no"),
            deployment=deployment(updated=1, progressing_reason="ProgressDeadlineExceeded"),
        ),
        {"Stalled": ("True", "Forbidden")},
    ),
    "scaled to zero": Case(
        observation(
            desired_replicas=0,
            deployment=deployment(want=0, replicas=0, updated=0, ready=0, available=0),
            health=health(),
        ),
        {
            "Ready": ("True", "Ready"),
            "Reconciling": ("False", "Converged"),
            "Stalled": ("False", "NoErrors"),
            "Available": ("True", "MinimumReplicasAvailable"),
            "ModelHealthy": ("True", "NoReplicas"),
            "Drifted": ("False", "NoDrift"),
        },
    ),
    "new, the Deployment controller has not acted yet: not 'scaled to zero'": Case(
        observation(
            desired_replicas=1,
            deployment=deployment(want=1, observed=None, replicas=0, updated=0, ready=0, available=0),
            health=health(),
        ),
        {"Ready": ("False", "RollingOut"), "ModelHealthy": ("Unknown", "AwaitingReplicas")},
    ),
    "replicas exist but none probed yet": Case(
        observation(health=health()),
        {"Ready": ("False", "AwaitingReplicas"), "ModelHealthy": ("Unknown", "AwaitingReplicas")},
    ),
    "new pods awaiting their first probe": Case(
        observation(health=health(replica("iris-a"), pending=("iris-new",))),
        {"Ready": ("False", "AwaitingProbe"), "ModelHealthy": ("Unknown", "AwaitingProbe")},
        {"ModelHealthy": "iris-new"},
    ),
    "autoscaled: the Deployment's own count is the target": Case(
        observation(
            desired_replicas=None,
            deployment=deployment(want=3, replicas=3, updated=3, ready=3, available=3),
            health=health(replica("iris-a"), replica("iris-b"), replica("iris-c")),
        ),
        {"Ready": ("True", "Ready"), "Reconciling": ("False", "Converged")},
        {"Reconciling": "3/3 replicas available"},
    ),
    "autoscaled and short of the Deployment's count": Case(
        observation(desired_replicas=None, deployment=deployment(want=3)),
        {"Ready": ("False", "RollingOut"), "Reconciling": ("True", "RollingOut")},
        {"Reconciling": "2/3 replicas updated"},
    ),
    "complete but the Deployment reports unavailable": Case(
        observation(deployment=deployment(available_status="False")),
        {"Ready": ("False", "DeploymentUnavailable"), "Available": ("False", "MinimumReplicasUnavailable")},
        {"Ready": "does not have minimum availability"},
    ),
    "complete without an Available condition": Case(
        observation(deployment=deployment(available_status=None)),
        {"Ready": ("False", "DeploymentUnavailable"), "Available": ("False", "Unknown")},
        {"Ready": "the Deployment is not available"},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_conditions(name: str) -> None:
    case = CASES[name]
    status = compute_status(case.obs, now=NOW)
    found = {type_: triple(status, type_) for type_ in case.expected}
    assert found == case.expected
    for type_, fragment in case.messages.items():
        assert fragment in conditions(status)[type_]["message"], (type_, conditions(status)[type_]["message"])


@pytest.mark.parametrize("name", list(CASES))
def test_kstatus_invariants(name: str) -> None:
    obs = CASES[name].obs
    status = compute_status(obs, now=NOW)
    by_type = conditions(status)
    assert [c["type"] for c in status["conditions"]] == CONDITION_ORDER
    assert not (by_type["Reconciling"]["status"] == "True" and by_type["Stalled"]["status"] == "True")
    if by_type["Ready"]["status"] == "True":
        assert by_type["Reconciling"]["status"] == "False"
        assert by_type["Stalled"]["status"] == "False"
        assert by_type["Available"]["status"] == "True"
    if by_type["Stalled"]["status"] == "True":
        assert by_type["Ready"]["status"] == "False"
    if by_type["Reconciling"]["status"] == "True":
        assert by_type["Ready"]["status"] == "False"
    assert status["observedGeneration"] == obs.generation
    for condition in status["conditions"]:
        assert condition["observedGeneration"] == obs.generation
        assert condition["lastTransitionTime"] == NOW


@pytest.mark.parametrize("name", list(CASES))
def test_status_fits_the_api_schema(name: str) -> None:
    """Validated strictly (an undeclared key is an error, see test_api_models) and unchanged by it."""
    status = compute_status(CASES[name].obs, now=NOW)
    parsed = ModelDeploymentStatus.model_validate(status)
    assert parsed.observed_generation == CASES[name].obs.generation
    assert status_body(parsed) == status


def test_a_stale_progress_deadline_does_not_stall_a_new_generation() -> None:
    stale = deployment(generation=5, observed=4, updated=1, available=1, progressing_reason="ProgressDeadlineExceeded")
    status = compute_status(observation(deployment=stale, generation=6), now=NOW)
    assert triple(status, "Stalled") == ("False", "NoErrors")
    assert triple(status, "Reconciling") == ("True", "RollingOut")


def test_a_pending_pod_does_not_hide_a_known_unhealthy_replica() -> None:
    report = health(replica("iris-a"), replica("iris-b", healthy=False, error="down"), pending=("iris-c",))
    assert triple(compute_status(observation(health=report), now=NOW), "ModelHealthy") == ("False", "ReplicasUnhealthy")


def test_a_pending_pod_does_not_hide_a_known_version_drift() -> None:
    report = health(replica("iris-a"), replica("iris-b", served="0.9.0"), pending=("iris-c",))
    status = compute_status(observation(health=report), now=NOW)
    assert triple(status, "Drifted") == ("True", "VersionDrift")


def test_too_few_samples_leave_drifted_unknown() -> None:
    report = DataDriftReport(
        status=DataDriftStatus(
            method="psi", threshold=0.2, samples=5, drifted=False, metrics=[{"name": "m", "samples": 5}]
        ),
        drifted=False,
        message="m: psi n/a over 5 samples",
        insufficient=True,
    )
    assert triple(compute_status(observation(data_drift=report), now=NOW), "Drifted")[0] == "Unknown"


# ---- transition times across observations -------------------------------------------------------


def test_transition_times_move_only_on_flips() -> None:
    first = compute_status(observation(health=None), now=NOW)
    assert triple(first, "Ready") == ("False", "AwaitingProbe")
    second = compute_status(observation(previous_status=first), now=LATER)
    times = {c["type"]: c["lastTransitionTime"] for c in second["conditions"]}
    assert times["Ready"] == LATER  # False -> True
    assert times["ModelHealthy"] == LATER  # Unknown -> True
    assert times["Reconciling"] == NOW  # False throughout
    assert times["Stalled"] == NOW
    assert times["Available"] == NOW
    assert times["Drifted"] == NOW


def test_reason_change_on_the_same_status_keeps_the_time() -> None:
    first = compute_status(observation(health=None), now=NOW)
    second = compute_status(
        observation(previous_status=first, health=health(replica("iris-a", healthy=False, error="x"))), now=LATER
    )
    ready = conditions(second)["Ready"]
    assert (ready["status"], ready["reason"], ready["lastTransitionTime"]) == ("False", "ModelUnhealthy", NOW)


def test_observed_generation_is_ours_not_the_deployments() -> None:
    status = compute_status(observation(generation=9, deployment=deployment(generation=2, observed=2)), now=NOW)
    assert status["observedGeneration"] == 9
    assert {c["observedGeneration"] for c in status["conditions"]} == {9}


# ---- the rest of the status ---------------------------------------------------------------------


def test_replica_counts_selector_and_url() -> None:
    status = compute_status(
        observation(
            deployment=deployment(replicas=3, updated=2, ready=1),
            selector="modeldeploy.io/name=iris",
            url="http://iris.ns.svc:8080",
        ),
        now=NOW,
    )
    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"]) == (3, 2, 1)
    assert status["selector"] == "modeldeploy.io/name=iris"
    assert status["url"] == "http://iris.ns.svc:8080"


def test_optional_sections_are_absent_when_unknown() -> None:
    status = compute_status(observation(deployment=None, health=None), now=NOW)
    assert {"selector", "url", "health", "drift"}.isdisjoint(status)
    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"]) == (0, 0, 0)


def test_drift_sections() -> None:
    config = {"corrections": 2, "lastCorrectedChild": "Deployment/iris"}
    report = data_drift(True)
    status = compute_status(
        observation(
            config_drift=ConfigDriftStatus.read(config),
            data_drift=report,
            health=health(replica("iris-a"), replica("iris-b", served="0.9.0"), replica("iris-c", served=None)),
        ),
        now=NOW,
    )
    assert status["drift"]["config"] == config
    assert status["drift"]["data"] == report.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert status["drift"]["version"] == {
        "expected": VERSION,
        "mismatched": [{"pod": "iris-b", "servedVersion": "0.9.0"}],
    }


def test_version_mismatches_are_capped() -> None:
    replicas = [replica(f"iris-{i:02}", served="0.9.0") for i in range(30)]
    status = compute_status(observation(health=health(*replicas)), now=NOW)
    assert len(status["drift"]["version"]["mismatched"]) == MAX_REPLICA_DETAILS
    assert conditions(status)["Drifted"]["message"].count(" serves 0.9.0") == 5


def test_unreported_version_is_not_drift() -> None:
    status = compute_status(observation(health=health(replica("iris-a", served=None), replica("iris-b"))), now=NOW)
    assert triple(status, "Drifted") == ("False", "NoDrift")
    assert "drift" not in status


def test_empty_config_drift_adds_no_section() -> None:
    assert "drift" not in compute_status(observation(config_drift=ConfigDriftStatus()), now=NOW)
    assert "drift" not in compute_status(observation(config_drift=ConfigDriftStatus(corrections=0)), now=NOW)


# ---- health_status ------------------------------------------------------------------------------


def test_health_status_counts_and_orders_unhealthy_first() -> None:
    replicas = [replica(f"ok-{i:02}") for i in range(20)] + [
        replica(f"zz-bad-{i}", healthy=False, error="down") for i in (3, 1, 4, 0, 2)
    ]
    section = health_status(health(*replicas))
    assert section["healthyReplicas"] == 20
    assert section["totalReplicas"] == 25
    assert section["summary"] == "20/25"
    assert section["lastProbeTime"] == NOW
    pods = [r["pod"] for r in section["replicas"]]
    assert len(pods) == MAX_REPLICA_DETAILS
    assert pods[:5] == ["zz-bad-0", "zz-bad-1", "zz-bad-2", "zz-bad-3", "zz-bad-4"]
    assert pods[5:] == [f"ok-{i:02}" for i in range(15)]


def test_health_status_entry_keeps_false_and_drops_none() -> None:
    section = health_status(
        health(replica("iris-a", live=False, ready=None, model_ready=False, served=None, latency=None, error="refused"))
    )
    assert section["replicas"] == [
        {"pod": "iris-a", "since": SINCE, "ip": "127.0.60.1", "live": False, "modelReady": False, "error": "refused"}
    ]
    assert section["healthyReplicas"] == 0


def test_health_status_lists_unprobed_pods_within_the_cap() -> None:
    section = health_status(health(replica("iris-a"), unprobed=(("iris-b", "no IP yet"),)))
    assert section["replicas"][-1] == {"pod": "iris-b", "error": "not probed: no IP yet"}
    assert section["totalReplicas"] == 1
    full = health_status(health(*(replica(f"p-{i:02}") for i in range(MAX_REPLICA_DETAILS)), unprobed=(("late", "x"),)))
    assert len(full["replicas"]) == MAX_REPLICA_DETAILS


def test_health_section_in_status() -> None:
    status = compute_status(observation(), now=NOW)
    assert status["health"]["summary"] == "2/2"
    assert [r["pod"] for r in status["health"]["replicas"]] == ["iris-a", "iris-b"]


# ---- without_volatile ---------------------------------------------------------------------------


def test_without_volatile_removes_only_the_volatile_keys() -> None:
    status = {
        "observedGeneration": 3,
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": NOW, "observedGeneration": 3}],
        "health": {
            "lastProbeTime": NOW,
            "summary": "1/1",
            "replicas": [{"pod": "a", "latencyMs": 3.2, "since": SINCE, "live": False}],
        },
        "drift": {"data": {"lastEvaluated": NOW, "score": 0.1, "metrics": [{"name": "m", "score": 0.1}]}},
    }
    original = copy.deepcopy(status)
    assert without_volatile(status) == {
        "observedGeneration": 3,
        "conditions": [{"type": "Ready", "status": "True", "observedGeneration": 3}],
        "health": {"summary": "1/1", "replicas": [{"pod": "a", "since": SINCE, "live": False}]},
        "drift": {"data": {"score": 0.1, "metrics": [{"name": "m", "score": 0.1}]}},
    }
    assert status == original


def test_without_volatile_equates_statuses_differing_only_in_times_and_latencies() -> None:
    first = compute_status(observation(), now=NOW)
    slower = health(replica("iris-a", latency=90.0), replica("iris-b", latency=1.0))
    second = compute_status(observation(health=HealthReport(probed_at=LATER, replicas=slower.replicas)), now=LATER)
    assert first != second
    assert without_volatile(first) == without_volatile(second)
    unhealthy = compute_status(
        observation(health=health(replica("iris-a"), replica("iris-b", healthy=False))), now=LATER
    )
    assert without_volatile(first) != without_volatile(unhealthy)


# ---- building blocks ----------------------------------------------------------------------------


def test_stuck_rollout() -> None:
    assert stuck_rollout(None) is None
    assert stuck_rollout(deployment()) is None
    assert stuck_rollout({"metadata": {}}) is None
    problem = stuck_rollout(deployment(progressing_reason="ProgressDeadlineExceeded"))
    assert problem is not None
    assert problem.reason == "ProgressDeadlineExceeded"
    assert "timed out progressing" in problem.message


def test_rollout_of_a_deployment_without_status() -> None:
    rollout = rollout_of({"metadata": {"generation": 1}, "spec": {"replicas": 1}}, 1)
    assert not rollout.complete
    assert not rollout.available
    assert (rollout.replicas, rollout.ready, rollout.updated) == (0, 0, 0)
    assert "has not seen the latest template" in rollout.message


def test_rollout_of_defaults_to_one_replica_when_autoscaled_without_a_count() -> None:
    rollout = rollout_of(deployment(want=None, replicas=1, updated=1, ready=1, available=1), None)
    assert rollout.complete
    assert rollout.message == "1/1 replicas available"


def test_replica_report_healthy() -> None:
    assert replica("a").healthy
    assert not replica("a", error="x").healthy
    assert not replica("a", live=None).healthy
    assert not replica("a", ready=False).healthy
    assert not replica("a", model_ready=None, healthy=False).healthy


def _conditions(generation: int, *states: tuple[str, str, str, str]) -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "conditions": [{"type": t, "status": s, "reason": r, "message": m} for t, s, r, m in states],
    }


@pytest.mark.parametrize(
    ("old", "new", "progress"),
    [
        (  # a rollout moving on: the same states, other counts
            _conditions(1, ("Ready", "False", "RollingOut", "1/3 updated")),
            _conditions(1, ("Ready", "False", "RollingOut", "2/3 updated")),
            True,
        ),
        (  # a state changed: news
            _conditions(1, ("Ready", "False", "RollingOut", "3/3 updated")),
            _conditions(1, ("Ready", "True", "Ready", "3 ready")),
            False,
        ),
        (  # still not Ready, at another step: on the way
            _conditions(1, ("Ready", "False", "RollingOut", "x")),
            _conditions(1, ("Ready", "False", "DeploymentUnavailable", "x"), ("Available", "True", "Min", "")),
            True,
        ),
        (  # Ready turning False: news
            _conditions(1, ("Ready", "True", "Ready", "x")),
            _conditions(1, ("Ready", "False", "ReplicasUnhealthy", "x")),
            False,
        ),
        (  # a new generation observed: news
            _conditions(1, ("Ready", "False", "RollingOut", "x")),
            _conditions(2, ("Ready", "False", "RollingOut", "x")),
            False,
        ),
        ({}, _conditions(1, ("Ready", "False", "RollingOut", "x")), False),  # the first status ever
        (  # the rollout done, Ready waiting on the first probe: on the way
            _conditions(1, ("Ready", "False", "RollingOut", "x"), ("Reconciling", "True", "RollingOut", "")),
            _conditions(1, ("Ready", "False", "AwaitingProbe", "x"), ("Reconciling", "False", "Complete", "")),
            True,
        ),
        (  # the first probe answering before the Deployment's status caught up: on the way to Ready
            _conditions(1, ("Ready", "False", "RollingOut", "x"), ("ModelHealthy", "Unknown", "AwaitingProbe", "")),
            _conditions(1, ("Ready", "False", "RollingOut", "x"), ("ModelHealthy", "True", "AllReplicasHealthy", "")),
            True,
        ),
        (  # the model turning unhealthy while Ready is already False: news (a Warning goes with it)
            _conditions(1, ("Ready", "False", "RollingOut", "x"), ("ModelHealthy", "Unknown", "AwaitingProbe", "")),
            _conditions(1, ("Ready", "False", "RollingOut", "x"), ("ModelHealthy", "False", "ReplicasUnhealthy", "")),
            False,
        ),
        (  # drift found: news
            _conditions(1, ("Ready", "True", "Ready", "x"), ("Drifted", "False", "NoDrift", "")),
            _conditions(1, ("Ready", "True", "Ready", "x"), ("Drifted", "True", "DataDrift", "")),
            False,
        ),
        (  # a condition appearing
            _conditions(1, ("Ready", "False", "RollingOut", "x")),
            _conditions(1, ("Ready", "False", "RollingOut", "x"), ("Stalled", "True", "ApplyRejected", "no")),
            False,
        ),
    ],
)
def test_only_the_way_to_a_state_can_wait_to_be_folded_into_the_next_write(
    old: dict[str, Any], new: dict[str, Any], progress: bool
) -> None:
    assert can_be_folded(old, new) is progress


def pod(name: str, *, deleting: bool = False, phase: str = "Running") -> Obj:
    metadata: Obj = {"name": name}
    if deleting:
        metadata["deletionTimestamp"] = NOW
    return {"metadata": metadata, "status": {"phase": phase, "podIP": "127.0.60.9"}}


def test_replicas_of_departed_pods_no_longer_count_and_new_ones_are_pending() -> None:
    report = health(replica("old-a"), replica("old-b"), replica("new-a"), unprobed=(("old-c", "not Running"),))
    current = for_current_pods(
        report, [pod("old-a", deleting=True), pod("new-a"), pod("new-b"), pod("new-c", phase="Pending")]
    )
    assert [r.pod for r in current.replicas] == ["new-a"]
    assert current.unprobed == ()
    assert current.pending == ("new-b",)
    assert for_current_pods(healthy_pair(), [pod("iris-a"), pod("iris-b")]) == healthy_pair()


def test_the_end_of_a_version_bump_is_not_version_drift() -> None:
    """Issue: `Warning VersionDrift expected 2.0.0, but <old pod> serves 1.0.0` on every bump.

    The Deployment says the rollout is complete; the last probe round still holds the outgoing
    pods, serving the old version, now being deleted; the new pods were not probed yet.
    """
    last_round = health(replica("old-a", served="1.0.0"), replica("old-b", served="1.0.0"))
    now = [pod("old-a", deleting=True), pod("old-b", deleting=True), pod("new-a"), pod("new-b")]
    status = compute_status(observation(expected_version="2.0.0", health=for_current_pods(last_round, now)), now=NOW)
    assert triple(status, "Drifted")[0] != "True"
    assert triple(status, "Ready") != ("True", "Ready")  # not Ready either until the new pods are probed
    unfiltered = compute_status(observation(expected_version="2.0.0", health=last_round), now=NOW)
    assert triple(unfiltered, "Drifted") == ("True", "VersionDrift")  # what the operator reported before


def test_a_replica_count_the_hpa_will_not_follow_is_said_on_ready() -> None:
    status = compute_status(observation(desired_replicas=None, ignored_replicas=5), now=NOW)
    ready = conditions(status)["Ready"]
    assert ready["status"] == "True"
    assert "spec.replicas=5 is ignored: autoscaling owns the replica count" in ready["message"]
    assert "autoscaling.minReplicas/maxReplicas" in ready["message"]
    plain = conditions(compute_status(observation(desired_replicas=None), now=NOW))["Ready"]
    assert "ignored" not in plain["message"]


def test_not_ready_while_the_deployment_counts_more_ready_pods_than_were_probed() -> None:
    """The Deployment's count can run ahead of the pod cache: a pod it calls ready, still Pending
    to the operator, was never probed, and Ready once turned True with 1 of 2 replicas probed."""
    status = compute_status(observation(health=health(replica("iris-a"), unprobed=(("iris-b", "Pending"),))), now=NOW)
    assert triple(status, "ModelHealthy") == ("Unknown", "AwaitingProbe")
    assert "1 of 2 ready replicas probed" in conditions(status)["ModelHealthy"]["message"]
    assert triple(status, "Ready") == ("False", "AwaitingProbe")
    both = compute_status(observation(), now=NOW)
    assert triple(both, "Ready") == ("True", "Ready")
    # mid-rollout the rollout decides Ready; a probed subset does not turn ModelHealthy for nothing
    rolling = observation(deployment=deployment(updated=1), health=health(replica("iris-a")))
    assert triple(compute_status(rolling, now=NOW), "ModelHealthy") == ("True", "AllReplicasHealthy")


@pytest.mark.parametrize("name", list(CASES))
def test_a_status_read_back_compares_equal_to_the_one_written(name: str) -> None:
    """After a restart the operator compares what it computes with what the apiserver returns:
    the written form must survive a read unchanged, or every restart would rewrite every status."""
    status = compute_status(CASES[name].obs, now=NOW)
    assert status_body(ModelDeploymentStatus.read(json.loads(json.dumps(status)))) == status
