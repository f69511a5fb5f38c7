"""Version v1alpha1 of the ModelDeployment API."""

from modeldeploy.api.v1alpha1.drift import DriftMethod, DriftMetric, DriftSpec, HistogramBaseline
from modeldeploy.api.v1alpha1.placement import LocalObjectReference, Toleration
from modeldeploy.api.v1alpha1.resource import API_VERSION, VERSION, ModelDeployment
from modeldeploy.api.v1alpha1.runtime import EnvVar, MetricsEndpoint, Protocol, ResourceRequirements, RuntimeSpec
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
    VersionDriftStatus,
    VersionMismatch,
)

__all__ = [
    "API_VERSION",
    "VERSION",
    "AutoscalingSpec",
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
    "ModelSpec",
    "ModelStatus",
    "ProbingSpec",
    "Protocol",
    "ReplicaHealth",
    "ResourceRequirements",
    "RolloutSpec",
    "RuntimeSpec",
    "Toleration",
    "VersionDriftStatus",
    "VersionMismatch",
]
