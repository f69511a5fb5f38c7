"""Turn a pydantic model's JSON schema into a Kubernetes structural schema.

Pydantic speaks JSON Schema 2020-12 with `$ref`s and `anyOf`-with-null for optionals; the
apiserver wants OpenAPI v3 with everything inlined and no type unions. The conversion is
deliberately strict: any keyword it does not know raises, so a model change that the CRD
cannot express fails the generator instead of silently loosening validation.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

Schema = dict[str, Any]

# Output order of keywords, which also lists every keyword allowed through.
_KEY_ORDER = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "nullable",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "items",
    "additionalProperties",
    "properties",
    "required",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
)
_DROPPED = frozenset({"title"})
_VALIDATION_KEY_ORDER = ("rule", "message", "fieldPath", "reason", "messageExpression", "optionalOldSelf")
_LINE_BREAK_IN_PARAGRAPH = re.compile(r"(?<!\n)\n(?!\n)")
_PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields"
_INT_OR_STRING = "x-kubernetes-int-or-string"
_VALIDATIONS = "x-kubernetes-validations"


class StructuralSchemaError(ValueError):
    """The model uses a construct a Kubernetes structural schema cannot express."""


def structural_schema(model: type[BaseModel]) -> Schema:
    """The model as an inlined OpenAPI v3 schema, described by its Field descriptions.

    The top-level model's docstring becomes the root description; nested models' docstrings
    are developer notes and are left out, since each use of a nested model is described by
    the field that holds it.
    """
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    return _Converter(definitions).convert(raw, model.__name__)


class _Converter:
    def __init__(self, definitions: dict[str, Schema]) -> None:
        self._definitions = definitions

    def convert(self, schema: Schema, path: str) -> Schema:
        flat = self._flatten(schema, path)
        converted: Schema = {}
        for key, value in flat.items():
            if key == "properties":
                converted[key] = {name: self.convert(sub, f"{path}.{name}") for name, sub in value.items()}
            elif key == "items":
                converted[key] = self.convert(value, f"{path}[]")
            elif key == "additionalProperties":
                self._additional_properties(flat, value, converted, path)
            elif key == "description":
                # Docstrings wrap at the source's line length; kubectl explain wraps on its own.
                converted[key] = _LINE_BREAK_IN_PARAGRAPH.sub(" ", value)
            elif key == _VALIDATIONS:
                converted[key] = [_ordered(rule, _VALIDATION_KEY_ORDER, path) for rule in value]
            elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
                # JSON Schema 2020-12 carries the bound itself; OpenAPI v3.0 a flag next to minimum/maximum.
                converted[key.replace("exclusiveM", "m")] = value
                converted[key] = True
            elif key in _KEY_ORDER:
                converted[key] = value
            else:
                raise StructuralSchemaError(f"{path}: keyword {key!r} is not supported in a CRD schema")
        if converted.get("default", ...) is None:
            del converted["default"]
        if converted.get("type") == "object" and {"minLength", "maxLength"} & set(converted):
            # pydantic's answer to max_length on a wrapped dict; the apiserver would ignore it.
            raise StructuralSchemaError(f"{path}: minLength/maxLength on an object; bound the dict inside Annotated")
        return _ordered(converted, _KEY_ORDER, path)

    def _additional_properties(self, flat: Schema, value: Any, converted: Schema, path: str) -> None:
        if value is False:
            return  # closed models: unknown fields are pruned, and rejected by strict field validation
        if value is True:
            if not flat.get(_PRESERVE_UNKNOWN):
                raise StructuralSchemaError(
                    f"{path}: a free-form dict needs the EmbeddedObject type (x-kubernetes-preserve-unknown-fields)"
                )
            return
        converted["additionalProperties"] = self.convert(value, f"{path}{{}}")

    def _flatten(self, schema: Schema, path: str) -> Schema:
        """Resolve `$ref` and `anyOf` at this level; keys written on the field win over the type's.

        Except CEL rules, which add up: a rule on the field (say, reserved label keys) must not
        silently replace one the type carries (say, well-formed label keys).
        """
        local = {key: value for key, value in schema.items() if key not in _DROPPED}
        if "$ref" in local:
            target = self._definition(local.pop("$ref"), path)
            return self._flatten(_overlay(target, local), path)
        if "anyOf" in local:
            branches = [self._flatten(branch, path) for branch in local.pop("anyOf") if branch.get("type") != "null"]
            return _overlay(self._union(branches, path), local)
        return local

    def _definition(self, reference: str, path: str) -> Schema:
        name = reference.removeprefix("#/$defs/")
        if name not in self._definitions:
            raise StructuralSchemaError(f"{path}: unresolvable reference {reference!r}")
        return {key: value for key, value in self._definitions[name].items() if key != "description"}

    @staticmethod
    def _union(branches: list[Schema], path: str) -> Schema:
        if len(branches) == 1:
            return branches[0]
        by_type = {branch.get("type"): branch for branch in branches}
        if len(branches) == 2 and set(by_type) == {"integer", "string"}:
            merged: Schema = {_INT_OR_STRING: True}
            for branch in branches:
                for key, value in branch.items():
                    if key == "type":
                        continue
                    if key in merged and merged[key] != value:
                        raise StructuralSchemaError(f"{path}: int-or-string branches disagree on {key!r}")
                    merged[key] = value
            return merged
        raise StructuralSchemaError(f"{path}: unions other than X | None and int | str cannot be structural")


def _overlay(base: Schema, top: Schema) -> Schema:
    merged = {**base, **top}
    rules = [*base.get(_VALIDATIONS, []), *top.get(_VALIDATIONS, [])]
    if rules:
        merged[_VALIDATIONS] = rules
    return merged


def _ordered(schema: Schema, order: tuple[str, ...], path: str) -> Schema:
    """A copy with keys in a fixed order, so the YAML does not depend on how pydantic sorts."""
    unknown = set(schema) - set(order)
    if unknown:
        raise StructuralSchemaError(f"{path}: unsupported keys {sorted(unknown)}")
    return {key: schema[key] for key in order if key in schema}
