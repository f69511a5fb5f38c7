"""The `spec.autoscaling` and `spec.rollout` sections: how many replicas, and how they are replaced."""

from __future__ import annotations

from typing import Self

from pydantic import ConfigDict, Field, model_validator

from modeldeploy.api.base import (
    MAX_REPLICAS,
    CelRule,
    EmbeddedObject,
    IntOrPercent,
    IntOrPercentUpTo100,
    SpecModel,
    cel,
    is_zero,
)

MAX_UTILIZATION_PERCENTAGE = 1000
"""Utilization is measured against requests, so targets above 100% are legitimate when limits
exceed requests; 1000% is a sanity bound that still catches a misplaced zero."""

MIN_NOT_ABOVE_MAX = CelRule(
    rule="!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
    message="autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas",
    field_path=".minReplicas",
)
NEEDS_A_TARGET = CelRule(
    rule=(
        "has(self.targetCPUUtilizationPercentage) || has(self.targetMemoryUtilizationPercentage) || has(self.metrics)"
    ),
    message=(
        "autoscaling needs at least one target: set targetCPUUtilizationPercentage, "
        "targetMemoryUtilizationPercentage or metrics"
    ),
)

_ZERO = "(type({0}) == int ? {0} == 0 : {0}.matches('^0+%$'))"
SURGE_OR_UNAVAILABLE = CelRule(
    rule=(
        "!has(self.maxSurge) || !has(self.maxUnavailable) || !("
        + _ZERO.format("self.maxSurge")
        + " && "
        + _ZERO.format("self.maxUnavailable")
        + ")"
    ),
    message="rollout.maxSurge and rollout.maxUnavailable may not both be 0, or a rollout could never progress",
)


class AutoscalingSpec(SpecModel):
    """Becomes a HorizontalPodAutoscaler (autoscaling/v2); the shortcuts cover the common case."""

    model_config = ConfigDict(json_schema_extra=cel(MIN_NOT_ABOVE_MAX, NEEDS_A_TARGET))

    min_replicas: int = Field(
        default=1, ge=1, le=MAX_REPLICAS, description=f"Lower bound for the replica count (1-{MAX_REPLICAS})."
    )
    max_replicas: int = Field(
        ge=1, le=MAX_REPLICAS, description=f"Upper bound for the replica count (1-{MAX_REPLICAS})."
    )
    target_cpu_utilization_percentage: int | None = Field(
        default=None,
        alias="targetCPUUtilizationPercentage",
        ge=1,
        le=MAX_UTILIZATION_PERCENTAGE,
        description=(
            "Average CPU utilization to hold, in percent of runtime.resources.requests.cpu "
            f"(1-{MAX_UTILIZATION_PERCENTAGE}; above 100 is valid when limits exceed requests)."
        ),
    )
    target_memory_utilization_percentage: int | None = Field(
        default=None,
        alias="targetMemoryUtilizationPercentage",
        ge=1,
        le=MAX_UTILIZATION_PERCENTAGE,
        description=(
            "Average memory utilization to hold, in percent of runtime.resources.requests.memory "
            f"(1-{MAX_UTILIZATION_PERCENTAGE})."
        ),
    )
    metrics: list[EmbeddedObject] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description=(
            "Further autoscaling/v2 MetricSpec entries (Pods, Object, External...), appended after the "
            "CPU and memory targets."
        ),
    )
    behavior: EmbeddedObject | None = Field(
        default=None,
        description="autoscaling/v2 HorizontalPodAutoscalerBehavior: scale-up and scale-down policies.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(MIN_NOT_ABOVE_MAX.message)
        if (
            self.target_cpu_utilization_percentage is None
            and self.target_memory_utilization_percentage is None
            and not self.metrics
        ):
            raise ValueError(NEEDS_A_TARGET.message)
        return self


class RolloutSpec(SpecModel):
    """The Deployment's RollingUpdate parameters; absent fields keep the Deployment defaults (25%)."""

    model_config = ConfigDict(json_schema_extra=cel(SURGE_OR_UNAVAILABLE))

    max_surge: IntOrPercent | None = Field(
        default=None,
        description=(
            "Replicas that may be created above the desired count during a rollout: a count or a percentage like '25%'."
        ),
    )
    max_unavailable: IntOrPercentUpTo100 | None = Field(
        default=None,
        description=("Replicas that may be unavailable during a rollout: a count or a percentage from '0%' to '100%'."),
    )

    @model_validator(mode="after")
    def _can_progress(self) -> Self:
        surge, unavailable = self.max_surge, self.max_unavailable
        if surge is not None and unavailable is not None and is_zero(surge) and is_zero(unavailable):
            raise ValueError(SURGE_OR_UNAVAILABLE.message)
        return self
