"""The pydantic models: examples parse, dumps round-trip, and defaults agree with the CRD."""

from __future__ import annotations

import json
import types
import typing
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from modeldeploy import api
from modeldeploy.api import (
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelSpec,
    ProbingSpec,
    ResourceRequirements,
    RuntimeSpec,
)
from modeldeploy.api.base import quantity_value
from modeldeploy.api.rules import HTTP_PATH_RULE, METADATA_NAME_FORMAT, METADATA_NAME_LENGTH
from modeldeploy.crdgen import render_crd
from tests.fixtures.invalid import FULL_STATUS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_examples_parse(path: Path) -> None:
    document = _load(path)
    resource = ModelDeployment.model_validate(document)
    assert resource.api_version == "modeldeploy.io/v1alpha1"
    assert resource.kind == "ModelDeployment"
    assert resource.spec.model.name == "iris"
    if resource.spec.runtime.image is not None:  # an image of its own: the reference model server
        assert resource.spec.runtime.image == "ghcr.io/modeldeploy/modeldeploy:0.1.0"
        assert resource.spec.runtime.command == ["python", "-m", "modeldeploy.modelserver"]
    else:  # a runtime by format, with nothing to override
        assert resource.spec.runtime.overrides() == set()
    assert "namespace" not in document["metadata"]
    assert ModelDeploymentSpec.model_validate(document["spec"]) == resource.spec


def test_every_example_exists() -> None:
    assert [path.name for path in EXAMPLES] == ["canary.yaml", "full.yaml", "minimal.yaml", "sklearn-s3.yaml"]


def test_full_example_uses_every_section() -> None:
    spec = _load(ROOT / "examples" / "full.yaml")["spec"]
    top_level = {field.alias or name for name, field in ModelDeploymentSpec.model_fields.items()}
    # imagePullSecrets and the priority and runtime classes are shown commented out (they would not
    # exist); replicas is left out
    # because autoscaling owns the count (a set spec.replicas would be reported as ignored)
    assert top_level - set(spec) == {"imagePullSecrets", "replicas", "priorityClassName", "runtimeClassName"}
    baseline = spec["drift"]["metrics"][0]["baseline"]
    assert baseline["bounds"] == [1, 2, 3, 4, 5, 6, 7]
    assert sum(baseline["proportions"]) == pytest.approx(1.0)
    assert spec["drift"]["metrics"][0] == {
        "name": "modelserver_feature_value",
        "labels": {"feature": "petal_length"},
        "baseline": baseline,
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_examples_round_trip(path: Path) -> None:
    resource = ModelDeployment.model_validate(_load(path))
    dumped = _dump(resource)
    assert ModelDeployment.model_validate(dumped) == resource
    assert json.loads(json.dumps(dumped)) == dumped  # JSON-ready as is


def test_minimal_example_dumps_with_defaults_filled_in() -> None:
    spec = _dump(ModelDeployment.model_validate(_load(ROOT / "examples" / "minimal.yaml")).spec)
    assert spec == {
        "model": {"name": "iris", "version": "1.0.0"},
        "runtime": {
            "image": "ghcr.io/modeldeploy/modeldeploy:0.1.0",
            "command": ["python", "-m", "modeldeploy.modelserver"],
            "port": 8080,
            "protocol": "v2",
            "metrics": {"path": "/metrics"},
        },
        "replicas": 1,
        "probing": {"enabled": True, "intervalSeconds": 30, "timeoutSeconds": 2, "failureThreshold": 3},
    }


def test_status_round_trips_exactly() -> None:
    status = ModelDeploymentStatus.model_validate(FULL_STATUS)
    assert _dump(status) == FULL_STATUS
    assert ModelDeploymentStatus.model_validate(_dump(status)) == status
    assert json.loads(json.dumps(status.model_dump(by_alias=True, exclude_none=True))) == FULL_STATUS


def test_status_read_ignores_fields_from_newer_operators() -> None:
    status = ModelDeploymentStatus.read({"replicas": 1, "futureField": {"x": 1}, "health": {"newCount": 2}})
    assert _dump(status) == {"replicas": 1, "health": {}}


def test_a_status_built_with_an_undeclared_key_is_an_error_naming_it() -> None:
    """Built by the operator's own code, a misspelled key would be a section the apiserver never sees."""
    with pytest.raises(ValidationError, match="HealthStatus declares no 'healthyReplica'"):
        api.HealthStatus(healthyReplica=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="ReplicaHealth declares no 'modelready'"):
        ModelDeploymentStatus.model_validate({"health": {"replicas": [{"pod": "p", "modelready": True}]}})
    assert api.HealthStatus(healthy_replicas=1) == api.HealthStatus(healthyReplicas=1)  # names and aliases both


def test_timestamps_are_normalised_to_utc_seconds() -> None:
    moment = datetime(2025, 1, 2, 4, 4, 5, 123456, tzinfo=timezone(timedelta(hours=1)))
    condition = api.Condition(type=api.READY, status="True", reason="Done", message="", last_transition_time=moment)
    assert condition.last_transition_time == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert _dump(condition)["lastTransitionTime"] == "2025-01-02T03:04:05Z"
    with pytest.raises(ValidationError):
        api.Condition(type="Ready", status="True", reason="Done", message="", last_transition_time=datetime(2025, 1, 1))


def test_condition_type_constants() -> None:
    assert api.CONDITION_TYPES == ("Ready", "Reconciling", "Stalled", "Available", "ModelHealthy", "Drifted")
    assert (api.READY, api.RECONCILING, api.STALLED, api.AVAILABLE, api.MODEL_HEALTHY, api.DRIFTED) == (
        api.CONDITION_TYPES
    )


def test_python_code_can_use_snake_case() -> None:
    spec = ModelDeploymentSpec(
        model=ModelSpec(name="iris", version="2"),
        runtime=RuntimeSpec(image="img", health_path="/h", readiness_path="/r", protocol="custom"),
        pod_labels={"team": "a"},
    )
    assert _dump(spec)["runtime"]["healthPath"] == "/h"
    assert _dump(spec)["podLabels"] == {"team": "a"}
    assert ModelDeploymentSpec.model_validate(_dump(spec)) == spec


def test_spec_is_strict_like_the_apiserver() -> None:
    with pytest.raises(ValidationError):
        ModelSpec.model_validate({"name": "iris", "version": 1.0})
    with pytest.raises(ValidationError):
        ProbingSpec.model_validate({"enabled": "yes"})


def test_api_exports_names() -> None:
    assert (api.GROUP, api.VERSION, api.API_VERSION, api.KIND, api.PLURAL) == (
        "modeldeploy.io",
        "v1alpha1",
        "modeldeploy.io/v1alpha1",
        "ModelDeployment",
        "modeldeployments",
    )
    assert api.SHORT_NAMES == ("md",)
    assert api.CATEGORIES == ("ml",)
    for name in api.__all__:
        assert hasattr(api, name), name


# ---- defaults: the models and the CRD schema must agree, field by field ------------------------


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for argument in typing.get_args(annotation):
        found.extend(_nested_models(argument))
    return found


def _element_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of the model inside a field: the field itself, or its list items / map values."""
    if schema.get("type") == "array":
        return _element_schema(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        return _element_schema(schema["additionalProperties"])
    return schema


# spec.runtime's fields override a runtime's only where a person wrote them, so the apiserver must
# not fill in their Python defaults: models whose top-level fields carry no schema default at all.
PYTHON_ONLY_DEFAULTS: tuple[type[BaseModel], ...] = (RuntimeSpec,)


def _compare_defaults(model: type[BaseModel], schema: dict[str, Any], path: str) -> list[str]:
    problems: list[str] = []
    properties = schema["properties"]
    aliases = {field.alias or name: (name, field) for name, field in model.model_fields.items()}
    if set(aliases) != set(properties):
        problems.append(f"{path}: fields {sorted(aliases)} vs schema {sorted(properties)}")
    required = set(schema.get("required", []))
    for alias, (_, field) in aliases.items():
        where, prop = f"{path}.{alias}", properties.get(alias, {})
        python_only = model in PYTHON_ONLY_DEFAULTS or (
            field.default_factory is not None and field.default_factory in PYTHON_ONLY_DEFAULTS
        )
        if python_only:
            if "default" in prop or alias in required:
                problems.append(f"{where}: a default the apiserver would fill in, or required: {prop}")
        elif field.default_factory is not None:
            produced = field.default_factory()  # type: ignore[call-arg]
            if isinstance(produced, BaseModel):
                if prop.get("default") != {}:
                    problems.append(f"{where}: model default {produced!r} but schema default {prop.get('default')!r}")
                elif type(produced).model_validate({}) != produced:
                    problems.append(f"{where}: factory differs from validating {{}}")
            elif "default" in prop:
                problems.append(f"{where}: schema default for a non-model factory")
        elif field.default is PydanticUndefined:
            if "default" in prop or alias not in required:
                problems.append(f"{where}: required in the model but not in the schema")
        elif field.default is None:
            if "default" in prop or alias in required:
                problems.append(f"{where}: optional without default in the model, schema says {prop}")
        elif prop.get("default") != field.default or type(prop.get("default")) is not type(field.default):
            problems.append(f"{where}: model default {field.default!r}, schema default {prop.get('default')!r}")
        for nested in _nested_models(field.annotation):
            problems.extend(_compare_defaults(nested, _element_schema(prop), where))
    return problems


def test_model_defaults_equal_schema_defaults() -> None:
    root = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    problems = _compare_defaults(ModelDeploymentSpec, root["spec"], ".spec")
    problems += _compare_defaults(ModelDeploymentStatus, root["status"], ".status")
    assert problems == []


def test_schema_defaults_are_all_visited() -> None:
    """Guard for the walk above: it must reach the deep defaults (drift, metrics endpoint)."""
    visited: list[str] = []

    def collect(model: type[BaseModel], path: str) -> None:
        for name, field in model.model_fields.items():
            if field.default not in (None, PydanticUndefined):
                visited.append(f"{path}.{field.alias or name}")
            for nested in _nested_models(field.annotation):
                collect(nested, f"{path}.{field.alias or name}")

    collect(ModelDeploymentSpec, ".spec")
    assert {".spec.drift.threshold", ".spec.runtime.metrics.path", ".spec.autoscaling.minReplicas"} <= set(visited)


def _paths(value: Any, path: str = "") -> set[str]:
    if isinstance(value, dict):
        return {path} | {p for key, child in value.items() for p in _paths(child, f"{path}.{key}")}
    if isinstance(value, list):
        return {path} | {p for child in value for p in _paths(child, f"{path}[]")}
    return {path}


def _schema_paths(node: dict[str, Any], path: str = "") -> set[str]:
    found = {path}
    for name, child in node.get("properties", {}).items():
        found |= _schema_paths(child, f"{path}.{name}")
    if "items" in node:
        found |= _schema_paths(node["items"], f"{path}[]")
    return found


def test_full_status_fixture_sets_every_field() -> None:
    """Otherwise the apiserver round trip in the integration tests could miss a pruned field."""
    status_schema = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    missing = _schema_paths(status_schema) - _paths(FULL_STATUS)
    assert sorted(missing) == []


def test_spec_accepts_read_only_mapping_views() -> None:
    """kopf passes `body.spec` as a Mapping view, not a dict."""
    spec = _load(ROOT / "examples" / "full.yaml")["spec"]
    view = types.MappingProxyType({**spec, "model": types.MappingProxyType(spec["model"])})
    assert ModelDeploymentSpec.model_validate(view) == ModelDeploymentSpec.model_validate(spec)


# ---- rules the apiserver and pydantic share (the manifests are in tests/fixtures/invalid) --------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", "1"),
        ("+2", "2"),
        ("500m", "0.5"),
        ("2u", "0.000002"),
        ("1.5Gi", str(3 * 2**29)),
        (".5", "0.5"),
        ("5.", "5"),
        ("1e3", "1000"),
        ("1E3", "1000"),
        ("1E", str(10**18)),
        ("1Ei", str(2**60)),
        ("1e-3", "0.001"),
        ("1" * 40 + "Ki", str(int("1" * 40) * 1024)),
    ],
)
def test_quantity_value_reads_what_kubernetes_reads(text: str, value: str) -> None:
    assert quantity_value(text) == Decimal(value)


@pytest.mark.parametrize("text", ["-1", "1e1.5", "1K", "1e", "lots", "1 Gi", "", "1Gi\n"])
def test_quantity_value_refuses_what_the_pattern_refuses(text: str) -> None:
    assert quantity_value(text) is None


@pytest.mark.parametrize(
    ("requests", "limits", "ok"),
    [
        ({"memory": "1024Mi"}, {"memory": "1Gi"}, True),
        ({"memory": "1025Mi"}, {"memory": "1Gi"}, False),
        ({"cpu": "1000m"}, {"cpu": 1}, True),
        ({"cpu": "1001m"}, {"cpu": 1}, False),
        ({"cpu": 2}, {"memory": "1Gi"}, True),  # no limit for cpu: nothing to exceed
        ({"cpu": "2"}, None, True),
    ],
)
def test_requests_may_not_exceed_limits(
    requests: dict[str, int | str], limits: dict[str, int | str] | None, ok: bool
) -> None:
    resources = {"requests": requests, "limits": limits}
    if ok:
        ResourceRequirements.model_validate({k: v for k, v in resources.items() if v is not None})
    else:
        with pytest.raises(ValidationError, match=r"must not exceed runtime\.resources\.limits"):
            ResourceRequirements.model_validate(resources)


def test_name_rule_applies_only_to_a_name() -> None:
    """generateName alone, or no metadata, as in Python code building a spec: nothing to check yet."""
    document = _load(ROOT / "examples" / "minimal.yaml")
    document["metadata"] = {"generateName": "iris-"}
    ModelDeployment.model_validate(document)
    document.pop("metadata")
    ModelDeployment.model_validate(document)


def test_python_raises_the_messages_of_the_root_cel_rules() -> None:
    document = _load(ROOT / "examples" / "minimal.yaml")
    for name, rule in (("a" * 64, METADATA_NAME_LENGTH), ("iris.v1", METADATA_NAME_FORMAT)):
        document["metadata"]["name"] = name
        with pytest.raises(ValidationError) as raised:
            ModelDeployment.model_validate(document)
        assert rule.message in str(raised.value)
    root = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert [rule["message"] for rule in root["x-kubernetes-validations"]] == [
        METADATA_NAME_LENGTH.message,
        METADATA_NAME_FORMAT.message,
    ]


def test_a_checked_rule_carries_its_message_to_both_sides() -> None:
    with pytest.raises(ValidationError) as raised:
        RuntimeSpec.model_validate({"image": "model:1", "healthPath": "//other-host/x"})
    (error,) = raised.value.errors()
    assert error["loc"] == ("healthPath",)
    assert error["msg"] == HTTP_PATH_RULE.message  # no "Value error, " prefix
    schema = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    health_path = schema["properties"]["spec"]["properties"]["runtime"]["properties"]["healthPath"]
    assert health_path["x-kubernetes-validations"] == [HTTP_PATH_RULE.as_schema()]
    assert health_path["maxLength"] == 1024
