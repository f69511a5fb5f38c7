"""The generated CRD: committed copy up to date, structural, small, and deterministic."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml
from pydantic import BaseModel, Field

from modeldeploy.api import CONDITION_TYPES, DRIFTED, READY
from modeldeploy.api.base import CelRule, Checked, cel
from modeldeploy.crdgen import SOURCES, CrdSource, StructuralSchemaError, render_crd, render_crd_yaml, structural_schema
from modeldeploy.crdgen.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "modeldeploy.io_modeldeployments.yaml"

Node = dict[str, Any]


def _schema(source: CrdSource | None = None) -> Node:
    schema: Node = render_crd(source or SOURCES[0])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


EVERY_KIND = pytest.mark.parametrize("source", SOURCES, ids=[s.names.kind for s in SOURCES])


def _walk(node: Node, path: str = "") -> Iterator[tuple[str, Node]]:
    """Every schema node with a readable path (`.a.b`, `[]` for items, `{}` for map values)."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def _paths_with(key: str) -> set[str]:
    return {path for path, node in _walk(_schema()) if node.get(key)}


@EVERY_KIND
def test_committed_crd_is_up_to_date(source: CrdSource) -> None:
    committed = ROOT / "crds" / source.file_name
    assert committed.read_text(encoding="utf-8") == render_crd_yaml(source), (
        f"{committed.relative_to(ROOT)} is stale: run `python -m modeldeploy.crdgen` from the repository root"
    )


@EVERY_KIND
def test_committed_file_is_the_rendered_dict(source: CrdSource) -> None:
    assert yaml.safe_load((ROOT / "crds" / source.file_name).read_text(encoding="utf-8")) == render_crd(source)


@EVERY_KIND
def test_crd_stays_well_below_what_client_side_apply_can_carry(source: CrdSource) -> None:
    """`kubectl apply` without --server-side stores the whole object in an annotation, and an
    object's annotations may hold 256 KiB in all: half of that leaves room for what comes next."""
    size = len(render_crd_yaml(source).encode())
    assert size < 128 * 1024, f"CRD is {size} bytes"


def test_rendering_does_not_depend_on_hash_seed_or_process() -> None:
    code = "import sys; from modeldeploy.crdgen import render_crd_yaml; sys.stdout.write(render_crd_yaml())"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("0", "1")
    }
    assert outputs == {render_crd_yaml()}


def test_render_crd_hands_out_independent_copies() -> None:
    first = render_crd()
    first["spec"]["versions"][0]["subresources"]["scale"]["specReplicasPath"] = ".oops"
    first["spec"]["versions"][0]["additionalPrinterColumns"].clear()
    assert render_crd_yaml() == CRD_FILE.read_text(encoding="utf-8")


def test_yaml_has_no_anchors() -> None:
    text = render_crd_yaml()
    assert "&id" not in text
    assert "*id" not in text


def test_names_scope_and_subresources() -> None:
    crd = render_crd()
    assert crd["metadata"]["name"] == "modeldeployments.modeldeploy.io"
    spec = crd["spec"]
    assert spec["group"] == "modeldeploy.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "ModelDeployment",
        "listKind": "ModelDeploymentList",
        "plural": "modeldeployments",
        "singular": "modeldeployment",
        "shortNames": ["md"],
        "categories": ["ml"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }


def test_printer_columns() -> None:
    columns = {c["name"]: c["jsonPath"] for c in render_crd()["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns == {
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Replicas": ".status.replicas",
        "Ready Replicas": ".status.readyReplicas",
        "Version": ".spec.model.version",
        "Healthy": ".status.health.summary",
        "Drifted": '.status.conditions[?(@.type=="Drifted")].status',
        "Runtime": ".status.model.runtime.name",
        "Rollout": ".status.rollout.phase",
        "Age": ".metadata.creationTimestamp",
    }
    assert {READY, DRIFTED} <= set(CONDITION_TYPES)


@EVERY_KIND
def test_printer_column_paths_exist_in_the_schema(source: CrdSource) -> None:
    paths = {path for path, _ in _walk(_schema(source))}
    for column in render_crd(source)["spec"]["versions"][0]["additionalPrinterColumns"]:
        field_path = column["jsonPath"].split("[")[0]
        if not field_path.startswith(".metadata"):
            assert field_path in paths or f"{field_path}[]" in paths, column


@EVERY_KIND
def test_schema_is_structural(source: CrdSource) -> None:
    for path, node in _walk(_schema(source)):
        for forbidden in ("$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "title", "definitions"):
            assert forbidden not in node, f"{path or '<root>'} has {forbidden}"
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        if node.get("type") == "array":
            assert "items" in node, f"{path} is an array without items"
        if node.get("type") == "object":
            assert not ("properties" in node and "additionalProperties" in node), path
        assert not (node.get("x-kubernetes-int-or-string") and "type" in node), path
        assert node.get("additionalProperties", {}) is not False, path
        assert not node.get("uniqueItems"), f"{path}: uniqueItems is not allowed in CRDs"


def test_root_metadata_is_only_typed() -> None:
    assert _schema()["properties"]["metadata"] == {"type": "object"}


def test_every_property_is_described() -> None:
    undescribed = [
        f"{path}.{name}"
        for path, node in _walk(_schema())
        for name, child in node.get("properties", {}).items()
        if not child.get("description") and f"{path}.{name}" != ".metadata"
    ]
    assert undescribed == []
    assert _schema()["description"].startswith("ModelDeployment serves a machine learning model")


def test_descriptions_are_unwrapped_paragraphs() -> None:
    for path, node in _walk(_schema()):
        description = node.get("description", "")
        assert "\n" not in description.replace("\n\n", ""), f"{path}: line break inside a paragraph"


def test_preserve_unknown_fields_only_on_embedded_kubernetes_types() -> None:
    assert _paths_with("x-kubernetes-preserve-unknown-fields") == {
        ".spec.runtime.env[].valueFrom",
        ".spec.autoscaling.metrics[]",
        ".spec.autoscaling.behavior",
        # core/v1 and networking/v1 types the Deployment and the NetworkPolicy validate on apply
        ".spec.access.networkPolicy.from[].namespaceSelector",
        ".spec.access.networkPolicy.from[].podSelector",
        ".spec.access.networkPolicy.from[].ipBlock",
        ".spec.affinity",
        ".spec.topologySpreadConstraints[]",
        ".spec.volumes[]",
        ".spec.volumeMounts[]",
        ".spec.envFrom[]",
    }


def test_int_or_string_fields() -> None:
    assert _paths_with("x-kubernetes-int-or-string") == {
        ".spec.runtime.resources.requests{}",
        ".spec.runtime.resources.limits{}",
        ".spec.rollout.maxSurge",
        ".spec.rollout.maxUnavailable",
        ".spec.disruptionBudget.maxUnavailable",
        ".spec.disruptionBudget.minAvailable",
    }


def test_nullable_only_where_null_means_not_yet_probed() -> None:
    assert _paths_with("nullable") == {
        ".status.health.replicas[].live",
        ".status.health.replicas[].ready",
        ".status.health.replicas[].modelReady",
    }


def test_list_types() -> None:
    lists = {
        path: node["x-kubernetes-list-map-keys"] for path, node in _walk(_schema()) if "x-kubernetes-list-type" in node
    }
    assert lists == {".spec.runtime.env": ["name"], ".status.conditions": ["type"]}


def test_cel_rules_carry_messages_and_bounded_inputs() -> None:
    rules = [(path, rule) for path, node in _walk(_schema()) for rule in node.get("x-kubernetes-validations", [])]
    assert len(rules) >= 10
    for path, rule in rules:
        assert set(rule) <= {"rule", "message", "fieldPath", "optionalOldSelf"}, path
        assert rule["message"], path
        assert ("oldSelf" in rule["rule"]) == rule.get("optionalOldSelf", False), path
    baseline = _schema()["properties"]["spec"]["properties"]["drift"]["properties"]["metrics"]["items"]
    assert "maxItems" in baseline["properties"]["baseline"]["properties"]["bounds"]  # keeps CEL cost bounded


def _spec_nodes() -> Iterator[tuple[str, Node]]:
    """Schema nodes of .spec, leaving out Kubernetes types passed through as is."""
    for path, node in _walk(_schema()["properties"]["spec"], ".spec"):
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            yield path, node


def test_every_spec_string_list_and_map_is_bounded() -> None:
    """An unbounded string sits in the object (and in every CEL cost estimate) however large it is."""
    unbounded = []
    for path, node in _spec_nodes():
        kind = "string" if node.get("x-kubernetes-int-or-string") else node.get("type")
        if kind == "string" and "maxLength" not in node and "enum" not in node:
            unbounded.append(path)
        if kind == "array" and "maxItems" not in node:
            unbounded.append(path)
        if kind == "object" and isinstance(node.get("additionalProperties"), dict) and "maxProperties" not in node:
            unbounded.append(path)
    assert unbounded == []


def test_replica_counts_are_bounded() -> None:
    maxima = {path: node.get("maximum") for path, node in _spec_nodes()}
    for path in (".spec.replicas", ".spec.autoscaling.minReplicas", ".spec.autoscaling.maxReplicas"):
        assert maxima[path] == 1000, path
    assert maxima[".spec.rollout.maxSurge"] == 1000


def test_no_regex_shorthand_that_go_rust_and_python_read_differently() -> None:
    """`\\s`, `\\w`, `\\d` cover Unicode in Rust's regex (pydantic) and Python, ASCII only in Go's RE2."""
    texts = [node.get("pattern", "") for _, node in _walk(_schema())]
    texts += [rule["rule"] for _, node in _walk(_schema()) for rule in node.get("x-kubernetes-validations", [])]
    offending = [text for text in texts if re.search(r"\\[sSwWdDbB]", text)]
    assert offending == []


def test_the_name_rules_sit_at_the_root_and_spare_existing_objects() -> None:
    rules = _schema()["x-kubernetes-validations"]
    assert [rule["message"].split(" must ")[0] for rule in rules] == ["metadata.name", "metadata.name"]
    for rule in rules:
        assert rule["rule"].startswith("oldSelf.hasValue() || ")
        assert rule["optionalOldSelf"] is True


def test_spec_and_model_are_required() -> None:
    schema = _schema()
    assert schema["required"] == ["spec"]
    spec = schema["properties"]["spec"]
    assert spec["required"] == ["model"]  # without a runtime, model.format selects one
    assert spec["properties"]["model"]["required"] == ["name", "version"]
    assert "required" not in schema["properties"]["status"]


# ---- the command line -------------------------------------------------------------------------


def test_check_passes_on_the_committed_file() -> None:
    assert main(["--check", "--output", str(CRD_FILE)]) == 0


def test_check_fails_with_a_diff_on_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "crd.yaml"
    stale.write_text(render_crd_yaml().replace("shortNames:\n    - md", "shortNames:\n    - mdx"))
    assert main(["--check", "-o", str(stale)]) == 1
    captured = capsys.readouterr()
    assert "-    - mdx" in captured.out
    assert "+    - md" in captured.out
    assert "python -m modeldeploy.crdgen" in captured.err


def test_check_fails_on_a_missing_file(tmp_path: Path) -> None:
    assert main(["--check", "-o", str(tmp_path / "absent.yaml")]) == 1


def test_writes_the_file_and_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "crd.yaml"
    assert main(["-o", str(target)]) == 0
    assert target.read_text() == render_crd_yaml()
    assert main(["-o", "-"]) == 0
    assert capsys.readouterr().out == render_crd_yaml()


def test_module_runs_as_a_script(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modeldeploy.crdgen", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- the converter refuses what a structural schema cannot say ---------------------------------


class _FreeForm(BaseModel):
    anything: dict[str, Any] = Field(description="untyped")


class _Union(BaseModel):
    either: int | bool = Field(description="a union")


class _WrappedDictBoundOnTheField(BaseModel):
    """max_length on the field of a dict wrapped in Annotated becomes a string maxLength."""

    labels: Annotated[dict[str, str], Checked(CelRule("true", "never"), bool)] | None = Field(
        default=None, max_length=3, description="bounded in the wrong place"
    )


class _Described(BaseModel):
    """Developer note that must not reach the CRD."""

    value: int = Field(gt=0, description="positive")


class _Outer(BaseModel):
    """Outer docstring."""

    inner: _Described = Field(description="field wins")


class _RulesOnTypeAndField(BaseModel):
    labels: (
        Annotated[dict[str, str], Field(max_length=3), Checked(CelRule("type-rule", "from the type"), bool)] | None
    ) = Field(default=None, description="both", json_schema_extra=cel(CelRule("field-rule", "from the field")))


def test_rules_on_the_type_and_on_the_field_add_up() -> None:
    """A field-level rule once replaced the type's (podLabels lost its key check in the CRD only)."""
    labels = structural_schema(_RulesOnTypeAndField)["properties"]["labels"]
    assert [rule["rule"] for rule in labels["x-kubernetes-validations"]] == ["type-rule", "field-rule"]
    assert labels["maxProperties"] == 3


def test_pod_labels_keep_both_key_rules() -> None:
    pod_labels = _schema()["properties"]["spec"]["properties"]["podLabels"]
    messages = [rule["message"] for rule in pod_labels["x-kubernetes-validations"]]
    assert [message.split(" ")[0] for message in messages] == ["keys", "podLabels"]


@pytest.mark.parametrize("model", [_FreeForm, _Union, _WrappedDictBoundOnTheField])
def test_converter_rejects_non_structural_models(model: type[BaseModel]) -> None:
    with pytest.raises(StructuralSchemaError):
        structural_schema(model)


def test_converter_inlines_and_translates() -> None:
    schema = structural_schema(_Outer)
    assert schema["description"] == "Outer docstring."
    inner = schema["properties"]["inner"]
    assert inner["description"] == "field wins"
    assert inner["properties"]["value"] == {
        "description": "positive",
        "type": "integer",
        "minimum": 0,
        "exclusiveMinimum": True,
    }
