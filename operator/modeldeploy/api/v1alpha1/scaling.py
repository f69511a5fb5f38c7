"""The `spec.autoscaling` and `spec.rollout` sections: how many replicas, and how they are replaced."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, StrictStr, model_validator

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
from modeldeploy.api.rules import ObjectName

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
        " || has(self.requestRate)"
    ),
    message=(
        "autoscaling needs at least one target: set targetCPUUtilizationPercentage, "
        "targetMemoryUtilizationPercentage, metrics or (engine keda) requestRate"
    ),
)
KEDA_FIELDS = CelRule(
    rule="has(self.engine) && self.engine == 'keda' ? !has(self.metrics) "
    ": !has(self.requestRate) && !has(self.cooldownSeconds)",
    message="autoscaling.requestRate and cooldownSeconds need engine keda; metrics (HPA MetricSpecs) need engine hpa",
)
ZERO_NEEDS_A_WAKING_QUERY = CelRule(
    rule="!has(self.minReplicas) || self.minReplicas > 0 || (has(self.engine) && self.engine == 'keda' "
    "&& has(self.requestRate) && has(self.requestRate.query))",
    message=(
        "autoscaling.minReplicas 0 needs engine keda and requestRate.query: at zero replicas the model exports "
        "no metrics, so only a query on requests counted before the model (a gateway's, an ingress's) can wake it"
    ),
    field_path=".minReplicas",
)

AutoscalingEngine = Literal["hpa", "keda"]


class RequestRateTrigger(SpecModel):
    """A KEDA prometheus trigger on requests per second."""

    prometheus_address: StrictStr = Field(
        max_length=512,
        pattern=r"^https?://[^ ]+$",
        description="Prometheus URL, e.g. http://prometheus.monitoring:9090.",
    )
    target_per_replica: float = Field(gt=0, description="Requests per second one replica should take.")
    activation: float = Field(default=0, ge=0, description="Requests per second above which a model at zero wakes.")
    query: StrictStr | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="PromQL giving requests/s; default: the runtime's request counter over this model's pods.",
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

    model_config = ConfigDict(
        json_schema_extra=cel(MIN_NOT_ABOVE_MAX, NEEDS_A_TARGET, KEDA_FIELDS, ZERO_NEEDS_A_WAKING_QUERY)
    )

    engine: AutoscalingEngine = Field(
        default="hpa", description="hpa: a HorizontalPodAutoscaler; keda: a KEDA ScaledObject (scales to zero)."
    )
    min_replicas: int = Field(
        default=1, ge=0, le=MAX_REPLICAS, description=f"Lower bound for the replica count (0-{MAX_REPLICAS}; 0: keda)."
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
    request_rate: RequestRateTrigger | None = Field(default=None, description="keda: scale on requests per second.")
    cooldown_seconds: int | None = Field(
        default=None, ge=0, le=86400, description="keda: idle seconds before scaling to zero (KEDA's default 300)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(MIN_NOT_ABOVE_MAX.message)
        if (
            self.target_cpu_utilization_percentage is None
            and self.target_memory_utilization_percentage is None
            and not self.metrics
            and self.request_rate is None
        ):
            raise ValueError(NEEDS_A_TARGET.message)
        keda = self.engine == "keda"
        if (keda and self.metrics is not None) or (
            not keda and (self.request_rate is not None or self.cooldown_seconds is not None)
        ):
            raise ValueError(KEDA_FIELDS.message)
        if self.min_replicas == 0 and not (keda and self.request_rate is not None and self.request_rate.query):
            raise ValueError(ZERO_NEEDS_A_WAKING_QUERY.message)
        return self


RolloutStrategy = Literal["RollingUpdate", "Canary"]
DURATION_PATTERN = r"^[0-9]{1,6}(s|m|h)$"
MAX_STEPS = 10
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def duration_seconds(text: str) -> int:
    """'90s', '5m', '1h' in seconds (DURATION_PATTERN has admitted it)."""
    return int(text[:-1]) * _UNIT_SECONDS[text[-1]]


Duration = Annotated[StrictStr, Field(pattern=DURATION_PATTERN, max_length=7)]

STEPS_ONLY_FOR_CANARY = CelRule(
    rule="self.strategy == 'Canary' ? has(self.steps) && size(self.steps) > 0 "
    ": !has(self.steps) && !has(self.analysis)",
    message="rollout.steps (at least one) and rollout.analysis belong to strategy Canary, and Canary needs steps",
)
WEIGHTS_INCREASING = CelRule(
    rule="!has(self.steps) || self.steps.all(s, self.steps.exists_one(t, t.weight == s.weight)) "
    "&& self.steps.map(s, s.weight).isSorted()",
    message="rollout.steps[].weight must increase from step to step",
    field_path=".steps",
)
ROUTE_ONLY_FOR_CANARY = CelRule(
    rule="!has(self.httpRoute) || self.strategy == 'Canary'",
    message="rollout.httpRoute carries a canary's weights: it needs strategy Canary",
    field_path=".httpRoute",
)
AUTO_ROLLBACK_ONLY_ROLLING = CelRule(
    rule="!has(self.autoRollback) || !self.autoRollback || self.strategy == 'RollingUpdate'",
    message="rollout.autoRollback is for strategy RollingUpdate; a Canary always rolls back a failing version",
    field_path=".autoRollback",
)


class HTTPRouteReference(SpecModel):
    """A Gateway API HTTPRoute in the ModelDeployment's namespace, written by its owner, not by modeldeploy."""

    name: ObjectName = Field(description="The HTTPRoute's name.")


class CanaryStep(SpecModel):
    """One step of a canary: the canary's share of the ready replicas, held for `pause` while checks pass."""

    weight: int = Field(
        ge=1,
        le=99,
        description=(
            "The canary's share, percent: of the ready replicas (the stable keeps its own), or of an httpRoute's "
            "traffic."
        ),
    )
    pause: Duration = Field(description="How long the step holds with every check passing, e.g. '30s', '5m', '1h'.")

    @property
    def pause_seconds(self) -> int:
        return duration_seconds(self.pause)


class RequestMetric(SpecModel):
    """Where the runtime counts its requests: a Prometheus histogram of request durations."""

    name: StrictStr = Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", max_length=200, description="Histogram name.")
    status_label: StrictStr | None = Field(
        default=None,
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        max_length=100,
        description="Label holding the HTTP status code; series whose value starts with '5' are errors.",
    )


class CanaryAnalysis(SpecModel):
    """What gates each step. Replica health and the served version are always checked."""

    max_error_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Highest share of the canary's requests answered 5xx, from the runtime's request metric.",
    )
    max_latency_seconds: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="Highest canary request latency at `latencyQuantile`, from the runtime's request histogram.",
    )
    latency_quantile: float = Field(
        default=0.95, gt=0, lt=1, allow_inf_nan=False, description="The quantile maxLatencySeconds applies to."
    )
    max_drift_score: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description=(
            "Highest spec.drift.method score of each spec.drift metric, the canary's traffic against the stable's."
        ),
    )
    min_requests: int = Field(
        default=20,
        ge=1,
        le=1_000_000,
        description=("Canary requests (drift: samples) needed before error rate, latency and drift are judged."),
    )
    request_metric: RequestMetric | None = Field(
        default=None,
        description=("The runtime's request histogram; absent: the reference server's, MLServer's or vLLM's."),
    )


class RolloutSpec(SpecModel):
    """How a new version replaces the old: a plain rolling update, or a canary judged on model evidence."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            SURGE_OR_UNAVAILABLE,
            STEPS_ONLY_FOR_CANARY,
            WEIGHTS_INCREASING,
            AUTO_ROLLBACK_ONLY_ROLLING,
            ROUTE_ONLY_FOR_CANARY,
        )
    )

    strategy: RolloutStrategy = Field(
        default="RollingUpdate",
        description=(
            "RollingUpdate, or Canary: the new version beside the stable one, step by step, promoted when every "
            "check passes, rolled back at the first that fails."
        ),
    )
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
    progress_deadline_seconds: int = Field(
        default=DEFAULT_PROGRESS_DEADLINE_SECONDS,
        ge=10,
        le=86400,
        description=(
            "How long new replicas may take to be healthy on the new version before a canary step, or an "
            "autoRollback, rolls back."
        ),
    )
    auto_rollback: bool = Field(
        default=False,
        description=("RollingUpdate: revert to the template that served when the new one is not healthy in time."),
    )
    steps: list[CanaryStep] | None = Field(
        default=None, max_length=MAX_STEPS, description="Canary steps in order, weights increasing."
    )
    analysis: CanaryAnalysis | None = Field(default=None, description="Canary checks beyond health and version.")
    http_route: HTTPRouteReference | None = Field(
        default=None,
        description=(
            "An HTTPRoute with a backendRef to this Service: during a canary it becomes <name>-stable and "
            "<name>-canary, weighted by the step, and is restored after."
        ),
    )

    @model_validator(mode="after")
    def _can_progress(self) -> Self:
        surge, unavailable = self.max_surge, self.max_unavailable
        if surge is not None and unavailable is not None and is_zero(surge) and is_zero(unavailable):
            raise ValueError(SURGE_OR_UNAVAILABLE.message)
        canary = self.strategy == "Canary"
        if (canary and not self.steps) or (not canary and (self.steps is not None or self.analysis is not None)):
            raise ValueError(STEPS_ONLY_FOR_CANARY.message)
        weights = [step.weight for step in self.steps or []]
        if weights != sorted(set(weights)):
            raise ValueError(WEIGHTS_INCREASING.message)
        if self.auto_rollback and self.strategy != "RollingUpdate":
            raise ValueError(AUTO_ROLLBACK_ONLY_ROLLING.message)
        if self.http_route is not None and not canary:
            raise ValueError(ROUTE_ONLY_FOR_CANARY.message)
        return self

    @property
    def canary(self) -> bool:
        return self.strategy == "Canary"
