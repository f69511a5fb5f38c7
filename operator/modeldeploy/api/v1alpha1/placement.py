"""Pod placement and identity types, re-modelled from core/v1 so the CRD validates them up front."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, StrictStr, model_validator

from modeldeploy.api.base import CelRule, Checked, SpecModel, cel
from modeldeploy.api.rules import (
    DNS_SUBDOMAIN_MAX_LENGTH,
    LABEL_KEY_PATTERN,
    QUALIFIED_NAME_MAX_LENGTH,
    LabelValue,
    ObjectName,
    cel_matches,
    is_label_key,
)

# The rules the Pod applies to tolerations (k8s.io/kubernetes validateTolerations), so a
# mistake fails at apply time instead of as a Deployment the apiserver refuses.
TOLERATION_KEY_RULE = CelRule(
    rule=(
        f"self == '' || ({cel_matches(LABEL_KEY_PATTERN)} "
        f"&& (!self.contains('/') || self.indexOf('/') <= {DNS_SUBDOMAIN_MAX_LENGTH}))"
    ),
    message="must be a taint key like dedicated or example.com/gpu (a label key), or empty",
)
EMPTY_KEY_NEEDS_EXISTS = CelRule(
    rule="(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
    message="tolerations[].operator must be Exists when key is empty (that tolerates every taint); or set a key",
)
EXISTS_HAS_NO_VALUE = CelRule(
    rule="!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
    message="tolerations[].value must be empty when operator is Exists; use operator Equal to match a value",
    field_path=".value",
)
SECONDS_ONLY_FOR_NO_EXECUTE = CelRule(
    rule="!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
    message="tolerations[].tolerationSeconds needs effect NoExecute, the only effect that evicts",
    field_path=".tolerationSeconds",
)


def _is_taint_key(value: str) -> bool:
    return value == "" or is_label_key(value)


_TaintKey = Annotated[
    StrictStr, Field(max_length=QUALIFIED_NAME_MAX_LENGTH), Checked(TOLERATION_KEY_RULE, _is_taint_key)
]


class Toleration(SpecModel):
    """core/v1 Toleration; re-modelled rather than passed through so typos fail at apply time."""

    model_config = ConfigDict(
        json_schema_extra=cel(EMPTY_KEY_NEEDS_EXISTS, EXISTS_HAS_NO_VALUE, SECONDS_ONLY_FOR_NO_EXECUTE)
    )

    key: _TaintKey | None = Field(
        default=None, description="Taint key to tolerate; empty with operator Exists means all taints."
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists (any value) or Equal (value must match). Equal when absent."
    )
    value: LabelValue | None = Field(
        default=None, description="Taint value to match when operator is Equal; empty with Exists."
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate; all effects when absent."
    )
    toleration_seconds: int | None = Field(
        default=None,
        description=("For NoExecute only: how long the pod stays bound after the taint appears; forever when absent."),
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.key and self.operator != "Exists":
            raise ValueError(EMPTY_KEY_NEEDS_EXISTS.message)
        if self.operator == "Exists" and self.value:
            raise ValueError(EXISTS_HAS_NO_VALUE.message)
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError(SECONDS_ONLY_FOR_NO_EXECUTE.message)
        return self


class LocalObjectReference(SpecModel):
    """A reference by name to an object in the same namespace."""

    name: ObjectName = Field(description="Name of the referenced object (e.g. a docker-registry Secret).")
