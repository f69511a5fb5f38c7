"""Version v1alpha1 of the ModelDeployment API."""

from modeldeploy.api.v1alpha1.drift import DriftMethod, DriftMetric, DriftSpec, HistogramBaseline
from modeldeploy.api.v1alpha1.placement import LocalObjectReference, Toleration
from modeldeploy.api.v1alpha1.resource import API_VERSION, VERSION, ClusterModelRuntime, ModelDeployment, ModelRuntime
from modeldeploy.api.v1alpha1.runtime import (
    EnvVar,
    MetricsEndpoint,
    ModelRuntimeSpec,
    Protocol,
    ResourceRequirements,
    RuntimeSpec,
    ServerSpec,
    SupportedFormat,
)
from modeldeploy.api.v1alpha1.scaling import AutoscalingSpec, RolloutSpec
from modeldeploy.api.v1alpha1.spec import ModelDeploymentSpec, ModelSpec, ProbingSpec
from modeldeploy.api.v1alpha1.status import (
    ConfigDriftStatus,
    DataDriftStatus,
    DriftStatus,
    HealthStatus,
    MetricDriftStatus,
    ModelDeploymentStatus,
    ModelStatus,
    ReplicaHealth,
    RevisionStatus,
    RuntimeReference,
    VersionDriftStatus,
    VersionMismatch,
)

__all__ = [
    "API_VERSION",
    "VERSION",
    "AutoscalingSpec",
    "ClusterModelRuntime",
    "ConfigDriftStatus",
    "DataDriftStatus",
    "DriftMethod",
    "DriftMetric",
    "DriftSpec",
    "DriftStatus",
    "EnvVar",
    "HealthStatus",
    "HistogramBaseline",
    "LocalObjectReference",
    "MetricDriftStatus",
    "MetricsEndpoint",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "ModelRuntime",
    "ModelRuntimeSpec",
    "ModelSpec",
    "ModelStatus",
    "ProbingSpec",
    "Protocol",
    "ReplicaHealth",
    "ResourceRequirements",
    "RevisionStatus",
    "RolloutSpec",
    "RuntimeReference",
    "RuntimeSpec",
    "ServerSpec",
    "SupportedFormat",
    "Toleration",
    "VersionDriftStatus",
    "VersionMismatch",
]
