"""Building blocks shared by every API model.

The models are the single source of truth for the CRD schema: `modeldeploy.crdgen` turns
their JSON schema into a structural OpenAPI schema. The helpers here carry the few things
JSON schema cannot say by itself (CEL rules, embedded Kubernetes objects, int-or-string) in
a form that both pydantic validation and the generator understand.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation, localcontext
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
    StrictInt,
    StrictStr,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

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


_READING: Mapping[str, bool] = {"reading": True}


class StatusModel(BaseModel):
    """Base of everything the operator writes.

    Lenient when reading (`read`): an older operator reading status written by a newer one
    must not fail on fields it does not know, and timestamps arrive as strings. Strict when
    built by the operator's own code: a key the API does not declare is a bug, and ignored it
    would be a status section the apiserver never sees.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        protected_namespaces=(),
    )

    @classmethod
    def read(cls, data: Any) -> Self:
        """A status as the apiserver holds it, keys this operator does not know ignored."""
        return cls.model_validate(data, context=_READING)

    @model_validator(mode="before")
    @classmethod
    def _declared_keys_only(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, Mapping) and info.context is not _READING:
            fields = cls.model_fields
            unknown = [k for k in data if k not in fields and not any(f.alias == k for f in fields.values())]
            if unknown:
                raise ValueError(f"{cls.__name__} declares no {', '.join(map(repr, sorted(unknown)))}")
        return data


@dataclass(frozen=True)
class CelRule:
    """One `x-kubernetes-validations` entry.

    Models keep the rule next to a Python validator that raises the same `message`, so a
    manifest fails the same way in `model_validate` and in the apiserver.
    """

    rule: str
    message: str
    field_path: str | None = None
    optional_old_self: bool = False
    """Evaluate a rule that mentions `oldSelf` on create too, with `oldSelf` an empty optional."""

    def as_schema(self) -> JsonDict:
        entry: JsonDict = {"rule": self.rule, "message": self.message}
        if self.field_path is not None:
            entry["fieldPath"] = self.field_path
        if self.optional_old_self:
            entry["optionalOldSelf"] = True
        return entry


def cel(*rules: CelRule) -> JsonDict:
    """Schema fragment for `json_schema_extra` carrying the given rules."""
    return {VALIDATIONS_KEY: [rule.as_schema() for rule in rules]}


@dataclass(frozen=True)
class Checked:
    """An `Annotated` marker enforcing one CelRule in both places from a single definition.

    The CRD gets the rule on the annotated value's schema (so the apiserver names the exact
    field, list item or map value that broke it), and pydantic runs `check`, the rule written
    in Python, raising the same message. Unlike a `pattern`, whose apiserver error only shows
    the regular expression, the message can say what to write instead.
    """

    rule: CelRule
    check: Callable[[Any], bool]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._validate, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = dict(handler(schema))
        json_schema[VALIDATIONS_KEY] = [*json_schema.get(VALIDATIONS_KEY, []), self.rule.as_schema()]
        return json_schema

    def _validate(self, value: Any) -> Any:
        if not self.check(value):
            # A custom error, not ValueError: pydantic would prefix "Value error, " to the shared message.
            # The message goes in as context: as the template itself, braces in it would be read as fields.
            raise PydanticCustomError("cel_rule", "{message}", {"message": self.rule.message})
        return value


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

QUANTITY_PATTERN = r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$"
"""What Kubernetes' ParseQuantity reads, less what a container resource may not be.

No minus sign: requests and limits must not be negative, so the Deployment would refuse one.
The exponent is a whole number: the usual CRD pattern also admits `1e1.5`, which
ParseQuantity, and with it the Deployment, rejects.
"""
QUANTITY_MAX_LENGTH = 64
"""Far beyond any real quantity (`1.5Gi`, `250m`); keeps a pasted blob out of the object."""

_DECIMAL_POWERS = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QUANTITY_SUFFIXES: dict[str, Decimal] = {
    **{suffix: Decimal(10) ** power for suffix, power in _DECIMAL_POWERS.items()},
    **{f"{prefix}i": Decimal(2) ** (10 * (n + 1)) for n, prefix in enumerate("KMGTPE")},
}
_QUANTITY_PARTS = re.compile(r"^\+?([0-9]*\.?[0-9]*)([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$")

Quantity = (
    Annotated[StrictInt, Field(ge=0)]
    | Annotated[StrictStr, Field(max_length=QUANTITY_MAX_LENGTH, pattern=QUANTITY_PATTERN)]
)
"""A resource quantity such as `2`, `500m` or `1Gi` (int-or-string in the schema)."""


def quantity_value(value: int | str) -> Decimal | None:
    """The number a Quantity stands for, as the CEL `quantity()` library compares them; None if not one."""
    if isinstance(value, int):
        return Decimal(value)
    if not re.fullmatch(QUANTITY_PATTERN, value):
        return None
    match = _QUANTITY_PARTS.fullmatch(value)
    if match is None:  # pragma: no cover - QUANTITY_PATTERN admits nothing this does not
        return None
    number, suffix = match.group(1), match.group(2) or ""
    # Exact for any quantity QUANTITY_MAX_LENGTH admits; the default 28 digits would round.
    with localcontext(prec=2 * QUANTITY_MAX_LENGTH):
        try:
            if suffix in _QUANTITY_SUFFIXES:
                return Decimal(number) * _QUANTITY_SUFFIXES[suffix]
            return Decimal(number + suffix)  # a decimal exponent such as e3
        except (InvalidOperation, KeyError):  # pragma: no cover - ditto
            return None


MAX_REPLICAS = 1000
"""Upper bound of every replica count in the spec (replicas, autoscaling bounds, rollout counts).

The operator probes every replica every round: a round over 2000 replicas took 11.7 s in
benchmarks/probe_benchmark.py, so 1000 keeps a round near 6 s, well inside the default 30 s
interval. Beyond that one ModelDeployment is the wrong unit (split it), and the bound turns a
typo such as 2147483647 or a stray zero into an error at apply time instead of a Deployment
that asks the cluster for more pods than it will ever schedule.
"""

_COUNT = Annotated[StrictInt, Field(ge=0, le=MAX_REPLICAS)]

IntOrPercent = _COUNT | Annotated[StrictStr, Field(max_length=8, pattern=r"^[0-9]+%$")]
"""A count or a percentage string like `25%`, as Deployment rollout parameters take."""

IntOrPercentUpTo100 = _COUNT | Annotated[StrictStr, Field(max_length=4, pattern=r"^(100|[1-9]?[0-9])%$")]
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
