"""Building blocks shared by every API model.

The models are the single source of truth for the CRD schema: `modeldeploy.crdgen` turns
their JSON schema into a structural OpenAPI schema. The helpers here carry the few things
JSON schema cannot say by itself (CEL rules, embedded Kubernetes objects, int-or-string) in
a form that both pydantic validation and the generator understand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

VALIDATIONS_KEY = "x-kubernetes-validations"


class SpecModel(BaseModel):
    """Base of everything a user writes.

    Strict and closed so that Python rejects what the apiserver rejects: a quoted number is
    not an integer there, and an unknown field is an error under kubectl's strict field
    validation. `populate_by_name` lets Python code use snake_case keyword arguments while
    manifests use camelCase.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        protected_namespaces=(),
    )

    @model_validator(mode="before")
    @classmethod
    def _accept_read_only_mappings(cls, data: Any) -> Any:
        # kopf hands out read-only Mapping views of the body; strict mode accepts only dicts.
        if isinstance(data, Mapping) and not isinstance(data, dict):
            return dict(data)
        return data


class StatusModel(BaseModel):
    """Base of everything the operator writes.

    Lenient on purpose: an older operator reading status written by a newer one must not
    fail on fields it does not know, and timestamps arrive as strings.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        protected_namespaces=(),
    )


@dataclass(frozen=True)
class CelRule:
    """One `x-kubernetes-validations` entry.

    Models keep the rule next to a Python validator that raises the same `message`, so a
    manifest fails the same way in `model_validate` and in the apiserver.
    """

    rule: str
    message: str
    field_path: str | None = None

    def as_schema(self) -> JsonDict:
        entry: JsonDict = {"rule": self.rule, "message": self.message}
        if self.field_path is not None:
            entry["fieldPath"] = self.field_path
        return entry


def cel(*rules: CelRule) -> JsonDict:
    """Schema fragment for `json_schema_extra` carrying the given rules."""
    return {VALIDATIONS_KEY: [rule.as_schema() for rule in rules]}


def default_empty_object() -> JsonDict:
    """Schema fragment for a sub-object that the apiserver should create when absent.

    Kubernetes applies nested defaults only inside objects that exist; `default: {}` on
    the parent makes the children's defaults visible in the stored object.
    """
    return {"default": {}}


def no_schema_default(schema: JsonDict) -> None:
    """`json_schema_extra` for Python-side defaults (apiVersion, kind) the apiserver must not fill in."""
    schema.pop("default", None)


EmbeddedObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
"""A Kubernetes type we pass through without re-modelling (e.g. an EnvVarSource).

The apiserver keeps it as is; whatever consumes it (the Deployment, the HPA) validates it.
"""

QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

Quantity = StrictInt | Annotated[StrictStr, Field(pattern=QUANTITY_PATTERN)]
"""A resource quantity such as `2`, `500m` or `1Gi` (int-or-string in the schema)."""

IntOrPercent = Annotated[StrictInt, Field(ge=0)] | Annotated[StrictStr, Field(max_length=8, pattern=r"^[0-9]+%$")]
"""A count or a percentage string like `25%`, as Deployment rollout parameters take."""

IntOrPercentUpTo100 = (
    Annotated[StrictInt, Field(ge=0)] | Annotated[StrictStr, Field(max_length=4, pattern=r"^(100|[1-9]?[0-9])%$")]
)
"""Like IntOrPercent, but a percentage may not exceed 100% (e.g. maxUnavailable)."""


def is_zero(value: int | str) -> bool:
    """Whether an IntOrPercent means nothing at all (`0`, `0%`, `00%`)."""
    return int(str(value).rstrip("%")) == 0


def _to_utc_seconds(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(microsecond=0)


Timestamp = Annotated[
    AwareDatetime,
    AfterValidator(_to_utc_seconds),
    PlainSerializer(lambda value: value.strftime("%Y-%m-%dT%H:%M:%SZ"), return_type=str),
]
"""A point in time as Kubernetes writes it: RFC 3339, UTC, whole seconds.

Normalised on the way in so that a parsed status compares equal to the one we wrote, and
serialised as a string even in Python mode so status patches are JSON-ready.
"""
