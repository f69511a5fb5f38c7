"""Pod placement and identity types, re-modelled from core/v1 so the CRD validates them up front."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modeldeploy.api.base import SpecModel


class Toleration(SpecModel):
    """core/v1 Toleration; re-modelled rather than passed through so typos fail at apply time."""

    key: str | None = Field(
        default=None, description="Taint key to tolerate; empty with operator Exists means all taints."
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists (any value) or Equal (value must match). Equal when absent."
    )
    value: str | None = Field(default=None, description="Taint value to match when operator is Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate; all effects when absent."
    )
    toleration_seconds: int | None = Field(
        default=None,
        description="For NoExecute: how long the pod stays bound after the taint appears; forever when absent.",
    )


class LocalObjectReference(SpecModel):
    """A reference by name to an object in the same namespace."""

    name: str = Field(min_length=1, description="Name of the referenced object (e.g. a docker-registry Secret).")
