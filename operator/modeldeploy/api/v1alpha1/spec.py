"""The ModelDeployment spec: what to serve, on what, and how to watch it."""

from __future__ import annotations

from typing import Self

from pydantic import ConfigDict, Field, model_validator

from modeldeploy.api.base import CelRule, SpecModel, cel, default_empty_object
from modeldeploy.api.names import RESERVED_LABEL_PREFIXES
from modeldeploy.api.v1alpha1.drift import DriftSpec
from modeldeploy.api.v1alpha1.placement import LocalObjectReference, Toleration
from modeldeploy.api.v1alpha1.runtime import RuntimeSpec
from modeldeploy.api.v1alpha1.scaling import AutoscalingSpec, RolloutSpec

LABEL_VALUE_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"

PROBE_TIMEOUT_WITHIN_INTERVAL = CelRule(
    rule=("!has(self.timeoutSeconds) || !has(self.intervalSeconds) || self.timeoutSeconds <= self.intervalSeconds"),
    message="probing.timeoutSeconds must not exceed probing.intervalSeconds, or probes would overlap",
    field_path=".timeoutSeconds",
)
POD_LABELS_NOT_RESERVED = CelRule(
    rule="self.all(k, " + " && ".join(f"!k.startsWith('{prefix}')" for prefix in RESERVED_LABEL_PREFIXES) + ")",
    message=(
        "podLabels may not use keys starting with " + " or ".join(RESERVED_LABEL_PREFIXES) + "; the operator sets those"
    ),
)


class ModelSpec(SpecModel):
    """Identity of the served model; the version is what rollouts and version checks compare."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^\S+$",
        description="Name the runtime serves the model under (used in inference and health URLs), e.g. iris.",
    )
    version: str = Field(
        pattern=LABEL_VALUE_PATTERN,
        description=(
            "Model version to serve, e.g. '1.0.0' (quote it in YAML). Letters, digits, '-', '_' and '.', "
            "at most 63 characters, so it can label pods. Changing it rolls the deployment out."
        ),
    )
    uri: str | None = Field(
        default=None,
        max_length=2048,
        description="Where the runtime loads the model from, e.g. s3://models/iris/1.0.0. Optional.",
    )
    format: str | None = Field(
        default=None,
        max_length=63,
        description="Serialization format, free text for the runtime, e.g. sklearn, onnx, pytorch. Optional.",
    )


class ProbingSpec(SpecModel):
    """The operator's own probes of every replica, which feed status.health and ModelHealthy."""

    model_config = ConfigDict(json_schema_extra=cel(PROBE_TIMEOUT_WITHIN_INTERVAL))

    enabled: bool = Field(default=True, description="Whether the operator probes replicas at all.")
    interval_seconds: int = Field(default=30, ge=1, description="Seconds between probe rounds.")
    timeout_seconds: int = Field(
        default=2, ge=1, description="Seconds before one probe request fails; at most intervalSeconds."
    )
    failure_threshold: int = Field(
        default=3, ge=1, description="Consecutive failed rounds before a replica counts as unhealthy."
    )

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> Self:
        if self.timeout_seconds > self.interval_seconds:
            raise ValueError(PROBE_TIMEOUT_WITHIN_INTERVAL.message)
        return self


class ModelDeploymentSpec(SpecModel):
    """Desired state of a ModelDeployment, as the user writes it."""

    model: ModelSpec = Field(description="The model to serve.")
    runtime: RuntimeSpec = Field(description="The model server container.")
    replicas: int = Field(
        default=1,
        ge=0,
        description="Desired replicas. Ignored while autoscaling is set. `kubectl scale md/<name>` changes it.",
    )
    autoscaling: AutoscalingSpec | None = Field(
        default=None, description="Horizontal autoscaling; when set it decides the replica count."
    )
    rollout: RolloutSpec | None = Field(default=None, description="Rolling update parameters.")
    probing: ProbingSpec = Field(
        default_factory=ProbingSpec,
        description="Health probing of the replicas by the operator.",
        json_schema_extra=default_empty_object(),
    )
    drift: DriftSpec | None = Field(default=None, description="Data drift detection; off when absent.")
    node_selector: dict[str, str] | None = Field(
        default=None, description="Node labels the pods must match to be scheduled."
    )
    tolerations: list[Toleration] | None = Field(default=None, description="Taints the pods tolerate.")
    service_account_name: str | None = Field(
        default=None,
        max_length=253,
        description="ServiceAccount the pods run as; the namespace's default when absent.",
    )
    image_pull_secrets: list[LocalObjectReference] | None = Field(
        default=None, description="Secrets with registry credentials for pulling runtime.image."
    )
    pod_labels: dict[str, str] | None = Field(
        default=None,
        max_length=64,
        description=(
            "Extra labels on the pods. Keys under "
            + " and ".join(RESERVED_LABEL_PREFIXES)
            + " are reserved for the operator."
        ),
        json_schema_extra=cel(POD_LABELS_NOT_RESERVED),
    )
    pod_annotations: dict[str, str] | None = Field(
        default=None, description="Extra annotations on the pods, e.g. for a service mesh."
    )

    @model_validator(mode="after")
    def _pod_labels_not_reserved(self) -> Self:
        if self.pod_labels and any(key.startswith(RESERVED_LABEL_PREFIXES) for key in self.pod_labels):
            raise ValueError(POD_LABELS_NOT_RESERVED.message)
        return self
