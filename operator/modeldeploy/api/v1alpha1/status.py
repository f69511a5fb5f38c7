"""The ModelDeployment status: everything the operator observed, written only by the operator.

Every field is optional so the operator can fill the status section by section as it
learns things, and readers must cope with any part missing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic.config import JsonDict

from modeldeploy.api.base import StatusModel, Timestamp
from modeldeploy.api.conditions import Condition
from modeldeploy.api.v1alpha1.drift import MAX_DRIFT_METRICS, DriftMethod

_NULLABLE: JsonDict = {"nullable": True}


class ReplicaHealth(StatusModel):
    """What the last probe round saw on one pod; bools are null until the first probe answers."""

    pod: str = Field(description="Pod name.")
    ip: str | None = Field(default=None, description="Pod IP the probes went to.")
    live: bool | None = Field(
        default=None, description="Liveness endpoint answered successfully.", json_schema_extra=_NULLABLE
    )
    ready: bool | None = Field(
        default=None, description="Readiness endpoint answered successfully.", json_schema_extra=_NULLABLE
    )
    model_ready: bool | None = Field(
        default=None,
        description="The runtime reports the model itself as loaded and ready.",
        json_schema_extra=_NULLABLE,
    )
    served_version: str | None = Field(default=None, description="Model version the pod reports serving.")
    latency_ms: float | None = Field(
        default=None, ge=0, description="Round-trip time of the last probe, in milliseconds."
    )
    error: str | None = Field(default=None, description="Why the last probe failed, if it did.")
    since: Timestamp | None = Field(default=None, description="When the pod entered its current health state.")

    @property
    def healthy(self) -> bool:
        """Every check passed: the one rule for the Healthy column, ModelHealthy and the metrics."""
        return self.error is None and bool(self.live) and bool(self.ready) and bool(self.model_ready)


class HealthStatus(StatusModel):
    """Aggregate of the operator's probes, shown as the Healthy column."""

    healthy_replicas: int | None = Field(default=None, ge=0, description="Replicas passing all probes.")
    total_replicas: int | None = Field(default=None, ge=0, description="Replicas probed.")
    summary: str | None = Field(default=None, description="healthyReplicas/totalReplicas, e.g. 3/3.")
    last_probe_time: Timestamp | None = Field(default=None, description="When the last probe round finished.")
    replicas: list[ReplicaHealth] | None = Field(default=None, description="Per-pod results of the last probe round.")


class ConfigDriftStatus(StatusModel):
    """Out-of-band edits to the children (Deployment, Service, HPA) that the operator reverted."""

    corrections: int | None = Field(default=None, ge=0, description="Edits to owned objects reverted so far.")
    last_correction_time: Timestamp | None = Field(default=None, description="When the last edit was reverted.")
    last_corrected_child: str | None = Field(
        default=None, description="The object last reverted, as kind/name, e.g. Deployment/iris."
    )


class MetricDriftStatus(StatusModel):
    """Score of one watched histogram series."""

    name: str = Field(description="Histogram name from spec.drift.metrics[].name.")
    labels: dict[str, str] | None = Field(
        default=None,
        description="Label selector from spec.drift.metrics[].labels, to tell series of one histogram apart.",
    )
    score: float | None = Field(default=None, description="Drift score of this series; absent until enough samples.")
    samples: int | None = Field(default=None, ge=0, description="Observations in the window.")


class DataDriftStatus(StatusModel):
    """The last evaluation of spec.drift."""

    method: DriftMethod | None = Field(default=None, description="Method used for the scores.")
    score: float | None = Field(default=None, description="Highest score across the watched metrics.")
    threshold: float | None = Field(default=None, description="Threshold the score was compared with.")
    samples: int | None = Field(default=None, ge=0, description="Fewest observations among the watched metrics.")
    window_seconds: int | None = Field(default=None, ge=0, description="Window the scores cover, in seconds.")
    last_evaluated: Timestamp | None = Field(default=None, description="When the scores were computed.")
    drifted: bool | None = Field(default=None, description="Whether score exceeded threshold.")
    metrics: list[MetricDriftStatus] | None = Field(default=None, description="Per-metric scores.")


class VersionMismatch(StatusModel):
    """A pod serving something other than spec.model.version."""

    pod: str = Field(description="Pod name.")
    served_version: str | None = Field(default=None, description="Version the pod reports; absent if it reports none.")


class VersionDriftStatus(StatusModel):
    """Served versions compared with the requested one."""

    expected: str | None = Field(default=None, description="spec.model.version at the last check.")
    mismatched: list[VersionMismatch] | None = Field(
        default=None, description="Pods serving another version; empty when all match."
    )


class RuntimeReference(StatusModel):
    """The runtime a ModelDeployment is served by, as resolved for its current generation."""

    kind: str = Field(description="ModelRuntime or ClusterModelRuntime.")
    name: str = Field(description="Name of the runtime.")


class ModelStatus(StatusModel):
    """The runtime serving the model, and the artifact the pods were given as their fetchers reported it."""

    runtime: RuntimeReference | None = Field(
        default=None,
        description=(
            "The ModelRuntime or ClusterModelRuntime serving the model; absent for a spec.runtime.image of its own."
        ),
    )

    uri: str | None = Field(default=None, description="spec.model.uri the pods fetched.")
    sha256: str | None = Field(
        default=None,
        description="SHA-256 of the fetched artifact (a single file), as every fetching pod computed it.",
    )
    files: int | None = Field(default=None, ge=0, description="Files fetched (a prefix holds several).")
    fetched_replicas: int | None = Field(default=None, ge=0, description="Pods whose fetch of this URI succeeded.")


MAX_HISTORY = 10
RevisionOutcome = Literal["Progressing", "Promoted", "Superseded", "RolledBack"]


class RevisionStatus(StatusModel):
    """One revision of what served: the trail of which model version, image and runtime served when."""

    revision: int = Field(ge=1, description="Revision number, counting up from 1 for this ModelDeployment.")
    version: str = Field(description="spec.model.version of the revision.")
    image: str = Field(description="The model server image the revision ran.")
    runtime: str | None = Field(
        default=None, description="The ModelRuntime or ClusterModelRuntime it ran on; absent for an image of its own."
    )
    started: Timestamp = Field(description="When the operator began rolling it out.")
    served: Timestamp | None = Field(
        default=None, description="When it was first Ready: every desired replica on it, healthy."
    )
    finished: Timestamp | None = Field(default=None, description="When another revision replaced it.")
    outcome: RevisionOutcome = Field(
        description=(
            "Progressing (rolling out), Promoted (served as desired), Superseded (replaced by a later revision), "
            "RolledBack (taken back)."
        )
    )
    reason: str | None = Field(default=None, description="Why it ended as it did, when it ended.")


RolloutPhase = Literal["Progressing", "Promoted", "RolledBack"]
MAX_ROLLOUT_CHECKS = 4 + MAX_DRIFT_METRICS
CheckState = Literal["Passed", "Failed", "Pending"]


class RolloutCheck(StatusModel):
    """One canary check as last judged: its verdict and the figures behind it."""

    name: str = Field(description="health, version, errorRate, latency or drift:<metric>.")
    state: CheckState = Field(description="Passed, Failed, or Pending (not enough evidence yet).")
    message: str = Field(description="The figures and the threshold.")


class RolloutStatus(StatusModel):
    """The canary (or the watched rolling update) of the latest template; absent when none ever ran."""

    phase: RolloutPhase = Field(
        description=(
            "Progressing (a canary step), Promoted (the stable took the new template), RolledBack (taken back)."
        )
    )
    revision: str = Field(description="Hash of the new pod template this rollout is about.")
    version: str = Field(description="spec.model.version of the new template.")
    stable_version: str | None = Field(default=None, description="The version the stable replicas serve meanwhile.")
    step: int | None = Field(default=None, ge=0, description="The current canary step, from 1.")
    steps: int | None = Field(default=None, ge=0, description="How many steps the canary has.")
    weight: int | None = Field(default=None, ge=0, le=100, description="The canary's share of the replicas, percent.")
    canary_replicas: int | None = Field(default=None, ge=0, description="Replicas of the canary Deployment.")
    http_route: str | None = Field(
        default=None, description="The HTTPRoute carrying the weights (else replica shares)."
    )
    since: Timestamp = Field(description="When the current phase or step began.")
    checks: list[RolloutCheck] | None = Field(
        default=None,
        max_length=MAX_ROLLOUT_CHECKS,
        description="The checks at the last verdict.",
    )
    message: str | None = Field(default=None, description="Why the rollout is where it is.")
    action: str | None = Field(default=None, description="The last modeldeploy.io/rollout-action carried out.")


class DriftStatus(StatusModel):
    """The three kinds of drift the operator tracks, kept apart because their fixes differ."""

    config: ConfigDriftStatus | None = Field(default=None, description="Reverted edits to owned objects.")
    data: DataDriftStatus | None = Field(default=None, description="Input data drift against the baselines.")
    version: VersionDriftStatus | None = Field(default=None, description="Served versus requested model version.")


class ModelDeploymentStatus(StatusModel):
    """Observed state of a ModelDeployment."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this status describes."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Latest observations: Ready, Reconciling, Stalled, Available, ModelHealthy, Drifted.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    replicas: int | None = Field(default=None, ge=0, description="Pods of the current Deployment.")
    ready_replicas: int | None = Field(default=None, ge=0, description="Pods passing their readiness probe.")
    updated_replicas: int | None = Field(default=None, ge=0, description="Pods running the current spec.")
    selector: str | None = Field(
        default=None, description="Label selector of the pods, in string form, for the scale subresource."
    )
    url: str | None = Field(default=None, description="In-cluster base URL of the model server Service.")
    model: ModelStatus | None = Field(
        default=None, description="The runtime serving the model and the artifact fetched."
    )
    health: HealthStatus | None = Field(default=None, description="Results of the operator's probes.")
    drift: DriftStatus | None = Field(default=None, description="Configuration, data and version drift.")
    rollout: RolloutStatus | None = Field(
        default=None, description="The canary or watched rollout of the latest template."
    )
    history: list[RevisionStatus] | None = Field(
        default=None,
        max_length=MAX_HISTORY,
        description=(
            f"The last {MAX_HISTORY} revisions (model version, image, runtime), newest first: what served when. "
            "A new revision begins when the version, the image or the runtime changes."
        ),
    )
