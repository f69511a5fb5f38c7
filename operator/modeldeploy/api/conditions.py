"""Condition types and the condition shape, shared by every part of the operator.

Names live here, not in the status writer, so that printer columns, tests and any
client agree on the spelling.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modeldeploy.api.base import StatusModel, Timestamp

READY = "Ready"
"""The deployment serves the requested model version on its desired replicas."""
RECONCILING = "Reconciling"
"""The operator is still converging children towards the spec (kstatus convention)."""
STALLED = "Stalled"
"""The operator cannot make progress without a change from the user (kstatus convention)."""
AVAILABLE = "Available"
"""At least the minimum number of replicas are available."""
MODEL_HEALTHY = "ModelHealthy"
"""The model server endpoints answer the protocol's health and readiness checks."""
DRIFTED = "Drifted"
"""Input data or served version departs from the declared baseline."""

CONDITION_TYPES: tuple[str, ...] = (READY, RECONCILING, STALLED, AVAILABLE, MODEL_HEALTHY, DRIFTED)

ConditionStatus = Literal["True", "False", "Unknown"]

_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class Condition(StatusModel):
    """The metav1.Condition shape, so kstatus-aware tools (kubectl wait, Argo CD, Flux) read it."""

    type: str = Field(
        max_length=316,
        pattern=_TYPE_PATTERN,
        description="Type of condition in CamelCase: Ready, Reconciling, Stalled, Available, ModelHealthy or Drifted.",
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=_REASON_PATTERN,
        description="Machine-readable CamelCase reason for the last transition.",
    )
    message: str = Field(max_length=32768, description="Human-readable details about the last transition.")
    last_transition_time: Timestamp = Field(description="When the condition last changed status (RFC 3339).")
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The .metadata.generation the condition was computed from.",
    )
