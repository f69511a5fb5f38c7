"""The ModelDeployment status from what the operator observed (pure).

One function decides every condition, so the rules that kubectl wait, kstatus (Flux) and
Argo CD read live in one place:
- observedGeneration is our own generation once we have processed it (applied, or found it
  stalled), never a child's;
- Ready needs the current generation applied, the rollout finished, the Deployment
  available, the model healthy (when probed) and no replica serving another version;
- Reconciling is True while any of that is still converging; Stalled while retrying cannot help.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from modeldeploy.api.conditions import AVAILABLE, DRIFTED, MODEL_HEALTHY, READY, RECONCILING, STALLED
from modeldeploy.api.v1alpha1 import (
    ConfigDriftStatus,
    DataDriftStatus,
    DriftStatus,
    HealthStatus,
    ModelDeploymentStatus,
    ModelStatus,
    ReplicaHealth,
    RolloutStatus,
    VersionDriftStatus,
    VersionMismatch,
)
from modeldeploy.drift.report import DataDriftReport
from modeldeploy.status.conditions import (
    AWAITING_PROBE,
    AWAITING_REPLICAS,
    DATA_DRIFT,
    INSUFFICIENT_SAMPLES,
    ROLLING_OUT,
    VERSION_DRIFT,
    Verdict,
    merge,
)
from modeldeploy.status.events import transition_events
from modeldeploy.status.history import Serving, next_history, read_history

MAX_REPLICA_DETAILS = 20


@dataclass(frozen=True)
class Problem:
    """An error retrying will not fix: becomes Stalled=True with this reason and message."""

    reason: str
    message: str


@dataclass(frozen=True)
class HealthReport:
    """The last probe cycle, as the prober saw it."""

    probed_at: datetime
    replicas: Sequence[ReplicaHealth]  # as judged (status/health.py), shown on the status as they are
    unprobed: Sequence[tuple[str, str]] = ()  # (pod, why it was not probed): reported, not counted
    pending: Sequence[str] = ()  # Running pods not judged yet: starting, or appeared after this round
    # judged unhealthy without ever having answered healthy (a server still starting, past the failure
    # threshold): shown as unhealthy, but a canary is not rolled back for it before its deadline
    starting: Sequence[str] = ()


@dataclass(frozen=True)
class Observation:
    generation: int
    expected_version: str
    desired_replicas: int | None  # None while an HPA owns the count
    probing_enabled: bool
    problem: Problem | None = None
    deployment: Mapping[str, Any] | None = None
    selector: str | None = None
    url: str | None = None
    health: HealthReport | None = None
    data_drift: DataDriftReport | None = None
    config_drift: ConfigDriftStatus | None = None
    previous_status: Mapping[str, Any] = field(default_factory=dict)  # as read from the API
    ignored_replicas: int | None = None  # spec.replicas set (kubectl scale) while an HPA owns the count
    fetch_failures: Sequence[tuple[str, str]] = ()  # (pod, reason) whose model fetch is failing
    model: ModelStatus | None = None  # what the pods' fetchers reported
    serving: Serving | None = None  # what serves for this spec (None: not decided, e.g. no runtime)
    rollout: RolloutStatus | None = None  # status.rollout as decided (rollout/canary.py)
    # versions served without being drift: the stable's, while a canary runs or a rollback holds it
    other_versions: frozenset[str] = frozenset()
    may_scale_to_zero: bool = False  # autoscaling by KEDA with minReplicas 0

    def mismatched(self, replica: ReplicaHealth) -> bool:
        served = replica.served_version
        return served is not None and served != self.expected_version and served not in self.other_versions


def ignored_replicas_message(replicas: int) -> str:
    return (
        f"spec.replicas={replicas} is ignored: autoscaling owns the replica count; "
        "change autoscaling.minReplicas/maxReplicas"
    )


@dataclass(frozen=True)
class Rollout:
    complete: bool
    message: str
    replicas: int
    ready: int
    updated: int
    available: bool
    available_reason: str
    available_message: str


def rollout_of(deployment: Mapping[str, Any] | None, desired: int | None) -> Rollout:
    if deployment is None:
        return Rollout(
            False,
            "waiting for the Deployment to be created",
            0,
            0,
            0,
            False,
            "DeploymentMissing",
            "the Deployment does not exist yet",
        )
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    want = desired if desired is not None else int(spec.get("replicas", 1))
    replicas, updated = int(status.get("replicas", 0)), int(status.get("updatedReplicas", 0))
    ready, available_count = int(status.get("readyReplicas", 0)), int(status.get("availableReplicas", 0))
    observed = int(status.get("observedGeneration", 0)) >= int(deployment.get("metadata", {}).get("generation", 0))
    available_condition = next((c for c in status.get("conditions", []) if c.get("type") == "Available"), None)
    available = available_condition is not None and available_condition.get("status") == "True"
    if not observed:
        message = "the Deployment controller has not seen the latest template yet"
    elif updated < want:
        message = f"rolling out: {updated}/{want} replicas updated"
    elif replicas > updated:
        message = f"rolling out: {replicas - updated} old replicas pending termination"
    elif available_count < want:
        message = f"waiting for replicas: {available_count}/{want} available"
    else:
        message = f"{available_count}/{want} replicas available"
    complete = observed and updated >= want and replicas == updated and available_count >= want
    return Rollout(
        complete=complete,
        message=message,
        replicas=replicas,
        ready=ready,
        updated=updated,
        available=available,
        available_reason=str((available_condition or {}).get("reason", "Unknown")),
        available_message=str((available_condition or {}).get("message", "")),
    )


def carried(obs: Observation, type_: str) -> dict[str, Any] | None:
    """A condition the status already states for this generation, kept until we have evidence.

    Probe results live in the operator's memory; after a restart, the first round is a few
    seconds away. Until then the verdict on the status still stands: recomputing it as Unknown
    would flip Ready for nothing, and Argo CD, Flux and people would see a blip that never was.
    """
    for item in obs.previous_status.get("conditions") or []:
        if item.get("type") == type_ and item.get("observedGeneration") == obs.generation:
            return dict(item)
    return None


def _carried_mismatches(obs: Observation) -> list[str]:
    version = (obs.previous_status.get("drift") or {}).get("version") or {}
    return [f"{m.get('pod')} serves {m.get('servedVersion')}" for m in version.get("mismatched") or []]


def _health_conditions(obs: Observation, rollout: Rollout) -> tuple[Verdict, list[str]]:
    """ModelHealthy, plus the pods serving a version other than the expected one."""
    if not obs.probing_enabled:
        return Verdict(MODEL_HEALTHY, "Unknown", "ProbingDisabled", "spec.probing.enabled is false"), []
    if obs.health is None:
        stated = carried(obs, MODEL_HEALTHY)
        if stated is not None and stated.get("status") in ("True", "False"):
            condition = Verdict(MODEL_HEALTHY, stated["status"], stated.get("reason", ""), stated.get("message", ""))
            return condition, _carried_mismatches(obs)
        return Verdict(MODEL_HEALTHY, "Unknown", AWAITING_PROBE, "no probe cycle has completed yet"), []
    replicas = obs.health.replicas
    mismatched = [f"{r.pod} serves {r.served_version}" for r in replicas if obs.mismatched(r)]
    unhealthy = [r for r in replicas if not r.healthy]
    if not unhealthy and obs.health.pending:  # only known-good replicas so far: the new ones decide
        pods = ", ".join(obs.health.pending[:3])
        waiting = f"{len(obs.health.pending)} new replica(s) not yet healthy or not yet probed: {pods}"
        return Verdict(MODEL_HEALTHY, "Unknown", AWAITING_PROBE, waiting), mismatched
    if not replicas:
        if rollout.replicas == 0 and rollout.complete:  # not before the Deployment controller acted
            if scaled_to_zero(obs, rollout):
                return Verdict(MODEL_HEALTHY, "True", SCALED_TO_ZERO, SCALED_TO_ZERO_MESSAGE), mismatched
            return Verdict(MODEL_HEALTHY, "True", "NoReplicas", "scaled to zero replicas"), mismatched
        return Verdict(MODEL_HEALTHY, "Unknown", AWAITING_REPLICAS, "no replica is running yet"), mismatched
    if not unhealthy and rollout.complete and len(replicas) < rollout.ready:
        # the Deployment counts a ready pod the pod cache has not seen Running yet: not judged
        waiting = f"{len(replicas)} of {rollout.ready} ready replicas probed; the rest are not probed yet"
        return Verdict(MODEL_HEALTHY, "Unknown", AWAITING_PROBE, waiting), mismatched
    if not unhealthy:
        return Verdict(
            MODEL_HEALTHY, "True", "AllReplicasHealthy", f"{len(replicas)}/{len(replicas)} replicas healthy"
        ), mismatched
    detail = "; ".join(f"{r.pod}: {r.error or _why(r)}" for r in unhealthy[:3])
    more = f" (+{len(unhealthy) - 3} more)" if len(unhealthy) > 3 else ""
    return (
        Verdict(
            MODEL_HEALTHY,
            "False",
            "ReplicasUnhealthy",
            f"{len(unhealthy)}/{len(replicas)} replicas unhealthy: {detail}{more}",
        ),
        mismatched,
    )


def _why(replica: ReplicaHealth) -> str:
    if not replica.live:
        return "not live"
    if not replica.ready:
        return "server not ready"
    return "model not ready"


def stuck_rollout(deployment: Mapping[str, Any] | None) -> Problem | None:
    """A rollout past its progressDeadlineSeconds will not finish by itself: that is Stalled.

    Without this, Argo CD would show Progressing and Flux would wait out its whole timeout.
    """
    if deployment is None:
        return None
    status = deployment.get("status", {})
    if int(status.get("observedGeneration", 0)) < int(deployment.get("metadata", {}).get("generation", 0)):
        return None  # the verdict is about an older template: the new one has not been judged
    for item in status.get("conditions", []):
        if item.get("type") == "Progressing" and item.get("reason") == "ProgressDeadlineExceeded":
            return Problem("ProgressDeadlineExceeded", f"the rollout made no progress: {item.get('message', '')}")
    return None


def fetch_problem(failures: Sequence[tuple[str, str]]) -> Problem | None:
    """Pods that cannot fetch their model: the fetcher's own reason, and how many pods it holds back.

    Stalled rather than Reconciling: the kubelet retries, but the same URI fails the same way
    until the artifact or the spec changes; kstatus and Argo CD should say so, not wait.
    """
    if not failures:
        return None
    pod, reason = failures[0]
    others = f" and {len(failures) - 1} more" if len(failures) > 1 else ""
    return Problem("ModelFetchFailed", f"{reason} (pod {pod}{others})")


def compute_status(obs: Observation, *, now: str) -> ModelDeploymentStatus:
    """The whole status subresource for one observation, as the API types it (`status_body` writes it)."""
    if obs.problem is None and (failed := fetch_problem(obs.fetch_failures)) is not None:
        obs = replace(obs, problem=failed)
    if obs.problem is None and (stuck := stuck_rollout(obs.deployment)) is not None:
        obs = replace(obs, problem=stuck)
    rollout = rollout_of(obs.deployment, obs.desired_replicas)
    healthy, mismatched = _health_conditions(obs, rollout)
    version_drift = bool(mismatched) and rollout.complete
    stalled, reconciling = _progress_conditions(obs, rollout, mismatched)
    drifted = _drifted_condition(obs, mismatched if version_drift else [])
    ready = _ready(obs, rollout, healthy, version_drift, stalled, reconciling)
    if canary := _canary_running(obs):  # in progress until promoted or rolled back, whatever the stable says
        reconciling = Verdict(RECONCILING, "True", CANARY, canary)
        ready = Verdict(READY, "False", CANARY, canary)
    if obs.ignored_replicas is not None:
        ready = replace(ready, message=f"{ready.message}; {ignored_replicas_message(obs.ignored_replicas)}")
    conditions = [ready, reconciling, stalled, _available_condition(obs, rollout), healthy, drifted]
    health: HealthStatus | None = None
    if obs.health is not None:
        health = health_status(obs.health)
    elif healthy.status in ("True", "False") and obs.previous_status.get("health"):
        health = HealthStatus.read(obs.previous_status["health"])  # carried with ModelHealthy
    return ModelDeploymentStatus(
        observed_generation=obs.generation,
        conditions=merge(obs.previous_status.get("conditions"), conditions, now=now, generation=obs.generation),
        replicas=rollout.replicas,
        ready_replicas=rollout.ready,
        updated_replicas=rollout.updated,
        selector=obs.selector or None,
        url=obs.url or None,
        model=obs.model,
        health=health,
        drift=_drift_section(obs, drifted, mismatched),
        rollout=obs.rollout,
        history=next_history(
            read_history(obs.previous_status.get("history")),
            obs.serving,
            ready.status == "True",
            now,
            rolled_back=obs.rollout.message if obs.rollout is not None and obs.rollout.phase == "RolledBack" else None,
        )
        or None,
    )


CANARY = "Canary"


def _canary_running(obs: Observation) -> str | None:
    """What a running canary says, while no problem stalls the object."""
    rollout = obs.rollout
    if obs.problem is not None or rollout is None or rollout.phase != "Progressing" or rollout.step is None:
        return None
    return (
        f"canary of version {rollout.version} at step {rollout.step}/{rollout.steps} "
        f"({rollout.weight}% of the replicas, {rollout.canary_replicas} canary); "
        f"{rollout.stable_version or 'the stable'} serves the rest"
    )


def _progress_conditions(obs: Observation, rollout: Rollout, mismatched: list[str]) -> tuple[Verdict, Verdict]:
    """(Stalled, Reconciling): stuck until a person acts, or still on its way."""
    if obs.problem is not None:
        return (
            Verdict(STALLED, "True", obs.problem.reason, obs.problem.message),
            Verdict(RECONCILING, "False", "Stalled", "retrying will not help until the spec or cluster changes"),
        )
    stalled = Verdict(STALLED, "False", "NoErrors", "")
    if rollout.complete:
        return stalled, Verdict(RECONCILING, "False", "Converged", rollout.message)
    progress = f"; {len(mismatched)} replica(s) still on another version" if mismatched else ""
    return stalled, Verdict(RECONCILING, "True", ROLLING_OUT, rollout.message + progress)


def _available_condition(obs: Observation, rollout: Rollout) -> Verdict:
    if obs.deployment is None:
        return Verdict(AVAILABLE, "Unknown", rollout.available_reason, rollout.available_message)
    return Verdict(
        AVAILABLE, "True" if rollout.available else "False", rollout.available_reason, rollout.available_message
    )


def _drifted_condition(obs: Observation, version_mismatches: list[str]) -> Verdict:
    """Version drift (once the rollout is complete) before data drift; a verdict carried over a restart."""
    data = obs.data_drift
    if version_mismatches:
        served = ", ".join(version_mismatches[:5])
        return Verdict(DRIFTED, "True", VERSION_DRIFT, f"expected version {obs.expected_version}, but {served}")
    if data is not None and data.drifted:
        return Verdict(DRIFTED, "True", DATA_DRIFT, data.message)
    if data is not None and data.insufficient:
        return Verdict(DRIFTED, "Unknown", INSUFFICIENT_SAMPLES, data.message)
    if data is None and (stated := _carried_data_drift(obs)) is not None:
        return stated
    return Verdict(DRIFTED, "False", "NoDrift", data.message if data is not None else "no drift detected")


def _drift_section(obs: Observation, drifted: Verdict, mismatched: list[str]) -> DriftStatus | None:
    """status.drift: config corrections, the data verdict's detail, and which replicas serve another version."""
    previous = obs.previous_status.get("drift") or {}
    data: DataDriftStatus | None = None
    if obs.data_drift is not None:
        data = obs.data_drift.status
    elif drifted.reason in (DATA_DRIFT, INSUFFICIENT_SAMPLES) and previous.get("data"):
        data = DataDriftStatus.read(previous["data"])  # carried with the verdict
    version: VersionDriftStatus | None = None
    if mismatched and obs.health is None and previous.get("version"):
        version = VersionDriftStatus.read(previous["version"])
    elif mismatched:
        version = VersionDriftStatus(
            expected=obs.expected_version,
            mismatched=[
                VersionMismatch(pod=r.pod, served_version=r.served_version)
                for r in (obs.health.replicas if obs.health else [])
                if obs.mismatched(r)
            ][:MAX_REPLICA_DETAILS],
        )
    config = obs.config_drift if obs.config_drift is not None and obs.config_drift.corrections else None
    if not (config or data or version):
        return None
    return DriftStatus(config=config, data=data, version=version)


def _carried_data_drift(obs: Observation) -> Verdict | None:
    stated = carried(obs, DRIFTED)
    if stated is None or stated.get("reason") not in (DATA_DRIFT, INSUFFICIENT_SAMPLES):
        return None
    return Verdict(DRIFTED, stated.get("status", "Unknown"), stated["reason"], stated.get("message", ""))


SCALED_TO_ZERO = "ScaledToZero"
SCALED_TO_ZERO_MESSAGE = (
    "scaled to zero by KEDA for want of requests; a request rate above autoscaling.requestRate.activation "
    "brings a replica back"
)


def scaled_to_zero(obs: Observation, rollout: Rollout) -> bool:
    """KEDA, not a person, put the Deployment at zero replicas, and it is there."""
    wanted = int(((obs.deployment or {}).get("spec") or {}).get("replicas", 1))
    return obs.may_scale_to_zero and wanted == 0 and rollout.replicas == 0 and rollout.complete


def _ready(
    obs: Observation,
    rollout: Rollout,
    healthy: Verdict,
    version_drift: bool,
    stalled: Verdict,
    reconciling: Verdict,
) -> Verdict:
    if stalled.is_true:
        return Verdict(READY, "False", "Stalled", stalled.message)
    if not rollout.complete:
        return Verdict(READY, "False", ROLLING_OUT, reconciling.message)
    if not rollout.available:
        return Verdict(
            READY, "False", "DeploymentUnavailable", rollout.available_message or "the Deployment is not available"
        )
    if obs.probing_enabled and healthy.status != "True":
        reason = "ModelUnhealthy" if healthy.status == "False" else healthy.reason
        return Verdict(READY, "False", reason, healthy.message)
    if version_drift:
        return Verdict(READY, "False", VERSION_DRIFT, "a replica serves another model version than spec.model.version")
    if scaled_to_zero(obs, rollout):  # Ready by policy: where the autoscaler was asked to put it
        return Verdict(READY, "True", SCALED_TO_ZERO, SCALED_TO_ZERO_MESSAGE)
    return Verdict(READY, "True", "Ready", f"{rollout.ready} replica(s) ready, model {obs.expected_version} served")


def health_status(report: HealthReport) -> HealthStatus:
    """status.health: counts, and a capped list of replicas with the unhealthy ones first."""
    details = sorted(report.replicas, key=lambda r: (r.healthy, r.pod))[:MAX_REPLICA_DETAILS]
    for pod, reason in list(report.unprobed)[: max(0, MAX_REPLICA_DETAILS - len(details))]:
        details.append(ReplicaHealth(pod=pod, error=f"not probed: {reason}"))
    healthy = sum(1 for r in report.replicas if r.healthy)
    return HealthStatus(
        healthy_replicas=healthy,
        total_replicas=len(report.replicas),
        summary=f"{healthy}/{len(report.replicas)}",
        last_probe_time=report.probed_at,
        replicas=details,
    )


def without_volatile(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status minus what changes every probe cycle (times, latencies), for change detection."""

    def strip(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {
                k: strip(v)
                for k, v in value.items()
                if k not in ("lastProbeTime", "latencyMs", "lastEvaluated", "lastTransitionTime")
            }
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(status)  # type: ignore[no-any-return]


def can_be_folded(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether `new` may wait a moment, to be folded into the next status write.

    What tools and people wait on must not wait: a newly observed generation, Ready or Stalled
    turning (kstatus, Argo CD, `kubectl wait`), and whatever a person hears of (the Events a
    write posts: a replica unhealthy or recovered, drift found or cleared). The rest is the way
    there (a rollout's counts, Reconciling and Available on the way to Ready, the first probe
    answering before the Deployment's status caught up, replica detail, messages); written as
    each step came it cost a write per step, when a user and kstatus see the same end state.
    """
    if not old or old.get("observedGeneration") != new.get("observedGeneration"):
        return False

    def turning(status: Mapping[str, Any]) -> dict[Any, Any]:
        watched = (READY, STALLED)
        return {c.get("type"): c.get("status") for c in status.get("conditions") or [] if c.get("type") in watched}

    return turning(old) == turning(new) and old.get("rollout") == new.get("rollout") and not transition_events(old, new)


def for_current_pods(report: HealthReport, pods: Iterable[Mapping[str, Any]]) -> HealthReport:
    """The last probe round, restated for the pods there are now.

    A replica whose pod is gone or being deleted no longer counts: at the end of a rollout the
    round before still held the outgoing pods serving the old version, and reading it then
    reported version drift (a Warning) for a second on every version bump. Running pods the
    round has not seen yet are marked pending, so they are not judged before they are probed.
    """
    staying: dict[str, Mapping[str, Any]] = {}
    for pod in pods:
        metadata = pod.get("metadata") or {}
        if not metadata.get("deletionTimestamp"):
            staying[str(metadata.get("name"))] = pod
    replicas = tuple(r for r in report.replicas if r.pod in staying)
    unprobed = tuple((pod, why) for pod, why in report.unprobed if pod in staying)
    starting = tuple(pod for pod in report.starting if pod in staying)
    seen = {r.pod for r in report.replicas} | {pod for pod, _ in report.unprobed}
    pending = tuple(
        name
        for name, pod in staying.items()
        if (pod.get("status") or {}).get("podIP")
        and (pod.get("status") or {}).get("phase") == "Running"
        and name not in seen
    )
    if replicas == tuple(report.replicas) and unprobed == tuple(report.unprobed) and not pending:
        return report
    return replace(report, replicas=replicas, unprobed=unprobed, pending=pending, starting=starting)


def status_body(status: ModelDeploymentStatus) -> dict[str, Any]:
    """The status as it is written, compared and read back: camelCase JSON, absent sections left out.

    Serialised here and only here: the comparisons that decide whether to write at all
    (`without_volatile`, `can_be_folded`, the Events) read this form, the form the apiserver
    returns, so a status written by a previous operator compares equal to one computed now.
    """
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")
