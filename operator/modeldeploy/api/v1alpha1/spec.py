"""The ModelDeployment spec: what to serve, on what, and how to watch it."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import ConfigDict, Field, StrictStr, model_validator

from modeldeploy.api.base import (
    MAX_REPLICAS,
    CelRule,
    EmbeddedObject,
    SpecModel,
    cel,
    default_empty_object,
    no_schema_default,
)
from modeldeploy.api.names import RESERVED_LABEL_PREFIXES
from modeldeploy.api.rules import (
    ANNOTATION_KEYS,
    LABEL_KEYS,
    MODEL_URI_PATTERN,
    SHA256_PATTERN,
    LabelValue,
    ObjectName,
)
from modeldeploy.api.v1alpha1.access import AccessSpec, DisruptionBudgetSpec, ExposureSpec
from modeldeploy.api.v1alpha1.drift import DriftSpec
from modeldeploy.api.v1alpha1.placement import LocalObjectReference, Toleration
from modeldeploy.api.v1alpha1.runtime import RuntimeSpec
from modeldeploy.api.v1alpha1.scaling import AutoscalingSpec, RolloutSpec

LABEL_VALUE_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
MODEL_NAME_PATTERN = r"^[^\x00-\x20\x7f]+$"
"""No spaces or control characters. Spelled out rather than `\\S`, which Rust's regex (pydantic)
reads as Unicode-aware and Go's RE2 (the apiserver) as ASCII-only."""
MAX_PROBE_INTERVAL_SECONDS = 3600
"""Health older than an hour is no longer news; a longer interval is a unit mistake."""
MAX_FAILURE_THRESHOLD = 100
MAX_POD_ANNOTATIONS = 32
MAX_ANNOTATION_VALUE_LENGTH = 4096
"""32 annotations of at most 4 KiB (keys at most 317 characters) stay below the Pod's 256 KiB
total for annotations, so no accepted combination makes the Deployment invalid."""

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


# The size bound sits inside the Annotated type, before the key check: on the field it would
# land on the wrapped type and come out as a string's maxLength instead of maxProperties.
# Node selector keys are not checked yet: tests/integration/test_reconciler.py uses an invalid
# one as its example of a spec the Deployment refuses (ApplyRejected). Once that test takes
# another example, add LABEL_KEYS here as on _PodLabels.
_NodeSelector = Annotated[dict[str, LabelValue], Field(max_length=32)]
_PodLabels = Annotated[dict[str, LabelValue], Field(max_length=64), LABEL_KEYS]
_PodAnnotations = Annotated[
    dict[str, Annotated[StrictStr, Field(max_length=MAX_ANNOTATION_VALUE_LENGTH)]],
    Field(max_length=MAX_POD_ANNOTATIONS),
    ANNOTATION_KEYS,
]


_FETCHED = (
    "has(self.uri) && !self.uri.startsWith('/') && !self.uri.startsWith('pvc://') && !self.uri.startsWith('oci://')"
)
SHA256_NEEDS_FETCH = CelRule(
    rule=f"!has(self.sha256) || ({_FETCHED})",
    message="model.sha256 checks a fetched artifact: it needs an s3://, gs://, az:// or http(s):// model.uri",
    field_path=".sha256",
)
CREDENTIALS_NEED_FETCH = CelRule(
    rule=f"!has(self.credentials) || ({_FETCHED})",
    message="model.credentials are for the fetcher: they need an s3://, gs://, az:// or http(s):// model.uri",
    field_path=".credentials",
)


def _fetched(uri: str | None) -> bool:
    return uri is not None and not uri.startswith(("/", "pvc://", "oci://"))


class ModelSpec(SpecModel):
    """Identity of the served model and where its artifact lives; the version is what rollouts and checks compare."""

    model_config = ConfigDict(json_schema_extra=cel(SHA256_NEEDS_FETCH, CREDENTIALS_NEED_FETCH))

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=MODEL_NAME_PATTERN,
        description="Name the runtime serves the model under (used in inference and health URLs), e.g. iris.",
    )
    version: str = Field(
        max_length=63,
        pattern=LABEL_VALUE_PATTERN,
        description=(
            "Model version to serve, e.g. '1.0.0' (quote it in YAML). Letters, digits, '-', '_' and '.', "
            "at most 63 characters, so it can label pods. Changing it rolls the deployment out."
        ),
    )
    uri: str | None = Field(
        default=None,
        max_length=2048,
        pattern=MODEL_URI_PATTERN,
        description=(
            "Where the model artifact lives. s3://, gs://, az:// (azure://) and http(s):// are fetched into the pod "
            "before the runtime starts (one object, or every object under a prefix); pvc://claim/path is mounted "
            "read-only; oci://registry/repo:tag is an image holding the model under /models (an image volume, "
            "pulled with spec.imagePullSecrets); an absolute path is a model already in the image. The runtime "
            "finds it at $MODEL_DIR. "
            "Optional: without it the model is in the image."
        ),
    )
    sha256: str | None = Field(
        default=None,
        max_length=64,
        pattern=SHA256_PATTERN,
        description="SHA-256 of a single-file artifact, checked after fetching; a mismatch fails the fetch.",
    )
    credentials: LocalObjectReference | None = Field(
        default=None,
        description=(
            "Secret whose keys become the fetcher's environment (envFrom), e.g. AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION; GOOGLE_SERVICE_ACCOUNT_KEY; "
            "AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY. The kubelet reads it, never the operator."
        ),
    )
    format: str | None = Field(
        default=None,
        max_length=63,
        description=(
            "Serialization format, e.g. sklearn, xgboost, onnx, huggingface. Without spec.runtime.name or "
            "spec.runtime.image, the runtime is the one that lists this format (MODEL_FORMAT in the container)."
        ),
    )

    @model_validator(mode="after")
    def _fetch_settings_need_a_fetched_uri(self) -> Self:
        if self.sha256 is not None and not _fetched(self.uri):
            raise ValueError(SHA256_NEEDS_FETCH.message)
        if self.credentials is not None and not _fetched(self.uri):
            raise ValueError(CREDENTIALS_NEED_FETCH.message)
        return self


class ProbingSpec(SpecModel):
    """The operator's own probes of every replica, which feed status.health and ModelHealthy."""

    model_config = ConfigDict(json_schema_extra=cel(PROBE_TIMEOUT_WITHIN_INTERVAL))

    enabled: bool = Field(default=True, description="Whether the operator probes replicas at all.")
    interval_seconds: int = Field(
        default=30,
        ge=1,
        le=MAX_PROBE_INTERVAL_SECONDS,
        description=f"Seconds between probe rounds (1-{MAX_PROBE_INTERVAL_SECONDS}).",
    )
    timeout_seconds: int = Field(
        default=2,
        ge=1,
        le=MAX_PROBE_INTERVAL_SECONDS,
        description="Seconds before one probe request fails; at most intervalSeconds.",
    )
    failure_threshold: int = Field(
        default=3,
        ge=1,
        le=MAX_FAILURE_THRESHOLD,
        description=(f"Consecutive failed rounds before a replica counts as unhealthy (1-{MAX_FAILURE_THRESHOLD})."),
    )

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> Self:
        if self.timeout_seconds > self.interval_seconds:
            raise ValueError(PROBE_TIMEOUT_WITHIN_INTERVAL.message)
        return self


DRIFT_ANALYSIS_NEEDS_DRIFT = CelRule(
    rule="!has(self.rollout) || !has(self.rollout.analysis) || !has(self.rollout.analysis.maxDriftScore) "
    "|| has(self.drift)",
    message="rollout.analysis.maxDriftScore compares the spec.drift metrics: set spec.drift too",
    field_path=".rollout.analysis.maxDriftScore",
)

JUDGED_ROLLOUT_NEEDS_PROBES = CelRule(
    rule="!has(self.rollout) || !has(self.probing) || !has(self.probing.enabled) || self.probing.enabled "
    "|| (self.rollout.strategy != 'Canary' && !(has(self.rollout.autoRollback) && self.rollout.autoRollback))",
    message="rollout.strategy Canary and rollout.autoRollback judge the replicas' probes: probing.enabled must be true",
    field_path=".probing.enabled",
)


class ModelDeploymentSpec(SpecModel):
    """Desired state of a ModelDeployment, as the user writes it."""

    model_config = ConfigDict(json_schema_extra=cel(DRIFT_ANALYSIS_NEEDS_DRIFT, JUDGED_ROLLOUT_NEEDS_PROBES))

    model: ModelSpec = Field(description="The model to serve.")
    runtime: RuntimeSpec = Field(
        default_factory=RuntimeSpec,
        description=(
            "The model server: a ModelRuntime or ClusterModelRuntime by name, a container of your own by image, "
            "or, when neither is given, the runtime that serves spec.model.format. Fields set here next to a name "
            "(or without one) override the runtime's."
        ),
        json_schema_extra=no_schema_default,
    )
    replicas: int = Field(
        default=1,
        ge=0,
        le=MAX_REPLICAS,
        description=(
            f"Desired replicas (0-{MAX_REPLICAS}). Ignored while autoscaling is set. "
            "`kubectl scale md/<name>` changes it."
        ),
    )
    autoscaling: AutoscalingSpec | None = Field(
        default=None, description="Horizontal autoscaling; when set it decides the replica count."
    )
    rollout: RolloutSpec | None = Field(
        default=None, description="How a new version replaces the old: RollingUpdate (the default) or Canary."
    )
    probing: ProbingSpec = Field(
        default_factory=ProbingSpec,
        description="Health probing of the replicas by the operator.",
        json_schema_extra=default_empty_object(),
    )
    drift: DriftSpec | None = Field(default=None, description="Data drift detection; off when absent.")
    node_selector: _NodeSelector | None = Field(
        default=None, description="Node labels the pods must match to be scheduled."
    )
    tolerations: list[Toleration] | None = Field(default=None, max_length=32, description="Taints the pods tolerate.")
    service_account_name: ObjectName | None = Field(
        default=None,
        description="ServiceAccount the pods run as; the namespace's default when absent.",
    )
    image_pull_secrets: list[LocalObjectReference] | None = Field(
        default=None, max_length=16, description="Secrets with registry credentials for pulling runtime.image."
    )
    pod_labels: _PodLabels | None = Field(
        default=None,
        description=(
            "Extra labels on the pods. Keys under "
            + " and ".join(RESERVED_LABEL_PREFIXES)
            + " are reserved for the operator."
        ),
        json_schema_extra=cel(POD_LABELS_NOT_RESERVED),
    )
    access: AccessSpec | None = Field(default=None, description="Who may call the model; anyone when absent.")
    exposure: ExposureSpec | None = Field(
        default=None, description="An HTTPRoute or Ingress to the model; in-cluster only when absent."
    )
    disruption_budget: DisruptionBudgetSpec | None = Field(
        default=None, description="The PodDisruptionBudget; maxUnavailable 1 when more than one replica may run."
    )
    affinity: EmbeddedObject | None = Field(default=None, description="core/v1 Affinity of the pods.")
    topology_spread_constraints: list[EmbeddedObject] | None = Field(
        default=None,
        max_length=8,
        description="core/v1 TopologySpreadConstraints; a missing labelSelector selects this model's pods.",
    )
    priority_class_name: ObjectName | None = Field(default=None, description="The pods' PriorityClass.")
    runtime_class_name: ObjectName | None = Field(default=None, description="The pods' RuntimeClass.")
    volumes: list[EmbeddedObject] | None = Field(
        default=None, max_length=32, description="core/v1 Volumes added to the pods (not named 'model')."
    )
    volume_mounts: list[EmbeddedObject] | None = Field(
        default=None, max_length=32, description="core/v1 VolumeMounts of the model server container."
    )
    env_from: list[EmbeddedObject] | None = Field(
        default=None,
        max_length=16,
        description="core/v1 EnvFromSources of the model server (Secrets are read by the kubelet only).",
    )
    pod_annotations: _PodAnnotations | None = Field(
        default=None,
        description=(
            f"Extra annotations on the pods, e.g. for a service mesh; at most {MAX_POD_ANNOTATIONS}, "
            f"values up to {MAX_ANNOTATION_VALUE_LENGTH} characters."
        ),
    )

    @model_validator(mode="after")
    def _drift_analysis_needs_drift(self) -> Self:
        analysis = self.rollout.analysis if self.rollout is not None else None
        if analysis is not None and analysis.max_drift_score is not None and self.drift is None:
            raise ValueError(DRIFT_ANALYSIS_NEEDS_DRIFT.message)
        judged = self.rollout is not None and (self.rollout.canary or self.rollout.auto_rollback)
        if judged and not self.probing.enabled:
            raise ValueError(JUDGED_ROLLOUT_NEEDS_PROBES.message)
        return self

    @model_validator(mode="after")
    def _pod_labels_not_reserved(self) -> Self:
        if self.pod_labels and any(key.startswith(RESERVED_LABEL_PREFIXES) for key in self.pod_labels):
            raise ValueError(POD_LABELS_NOT_RESERVED.message)
        return self
