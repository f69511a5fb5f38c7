"""The generated CRD in a real kube-apiserver: it validates, defaults, documents and scales.

Rejections are checked with `kubectl apply --dry-run=server`, which runs schema, CEL and
strict field validation without storing anything.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.api import AutoscalingSpec, ModelDeployment, ModelDeploymentStatus, ModelSpec, RuntimeSpec
from modeldeploy.api.base import MAX_REPLICAS
from modeldeploy.api.rules import METADATA_NAME_LENGTH
from tests.conftest import Kubectl, wait_for
from tests.fixtures.invalid import FULL_STATUS, InvalidCase, edge_valid_manifests, invalid_cases

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("crd")]

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = ROOT / "examples" / "minimal.yaml"
INVALID = invalid_cases()
EDGE_VALID = edge_valid_manifests()


def _apply(kubectl: Kubectl, manifest: dict[str, Any], *flags: str, check: bool = True) -> str:
    result = kubectl("apply", *flags, "-f", "-", input=json.dumps(manifest), check=check)
    return result.stderr + result.stdout


def _flat(text: str) -> str:
    return " ".join(text.split())


def _explain(kubectl: Kubectl, field: str) -> str:
    # Discovery of a just-created CRD can lag behind Established by a moment.
    deadline = time.monotonic() + 30
    while True:
        result = kubectl("explain", field, check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            assert result.returncode == 0, result.stderr
            return _flat(result.stdout)
        time.sleep(0.5)


@pytest.mark.parametrize("example", ["minimal.yaml", "full.yaml"])
def test_example_passes_server_side_dry_run(kubectl: Kubectl, example: str) -> None:
    output = kubectl("apply", "--dry-run=server", "-f", str(ROOT / "examples" / example)).stdout
    assert "created (server dry run)" in output


@pytest.mark.parametrize("case", INVALID, ids=[case.name for case in INVALID])
def test_invalid_manifest_is_rejected(kubectl: Kubectl, case: InvalidCase) -> None:
    result = kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(case.manifest), check=False)
    assert result.returncode != 0, f"{case.name} was accepted"
    for expected in case.apiserver:
        assert expected in result.stderr, result.stderr


@pytest.mark.parametrize("manifest", EDGE_VALID.values(), ids=list(EDGE_VALID))
def test_edge_manifest_is_accepted(kubectl: Kubectl, manifest: dict[str, Any]) -> None:
    assert "created (server dry run)" in _apply(kubectl, manifest, "--dry-run=server")


@pytest.mark.parametrize("example", ["minimal.yaml", "full.yaml"])
def test_apiserver_defaults_equal_model_defaults(kubectl: Kubectl, example: str) -> None:
    manifest = yaml.safe_load((ROOT / "examples" / example).read_text())
    stored = json.loads(_apply(kubectl, manifest, "--dry-run=server", "-o", "json"))
    spec = ModelDeployment.model_validate(manifest).spec
    expected = spec.model_dump(by_alias=True, exclude_none=True)
    # spec.runtime's fields override a runtime's only where written: the apiserver fills in none of them
    written = {RuntimeSpec.model_fields[name].alias or name for name in spec.runtime.model_fields_set}
    expected["runtime"] = {k: v for k, v in expected["runtime"].items() if k in written}
    assert stored["spec"] == expected


def test_explain_documents_model_and_autoscaling(kubectl: Kubectl) -> None:
    root = _explain(kubectl, "md")
    assert "ModelDeployment serves a machine learning model" in root
    for field, model in (("md.spec.model", ModelSpec), ("md.spec.autoscaling", AutoscalingSpec)):
        text = _explain(kubectl, field)
        for name, info in model.model_fields.items():
            assert (info.alias or name) in text
            assert _flat(str(info.description)) in text, f"{field}.{info.alias or name} undocumented"


def test_status_is_stored_without_pruning(kubectl: Kubectl) -> None:
    _apply(kubectl, yaml.safe_load(MINIMAL.read_text()))
    patched = kubectl(
        "patch",
        "md/iris",
        "--subresource=status",
        "--type=merge",
        "--dry-run=server",
        "-p",
        json.dumps({"status": FULL_STATUS}),
        "-o",
        "json",
    ).stdout
    stored = json.loads(patched)["status"]
    assert stored == FULL_STATUS
    assert ModelDeploymentStatus.model_validate(stored) == ModelDeploymentStatus.model_validate(FULL_STATUS)


def test_status_subresource_rejects_invalid_status(kubectl: Kubectl) -> None:
    _apply(kubectl, yaml.safe_load(MINIMAL.read_text()))
    bad = {"status": {"conditions": [{"type": "Ready", "status": "Maybe"}]}}
    result = kubectl(
        "patch",
        "md/iris",
        "--subresource=status",
        "--type=merge",
        "--dry-run=server",
        "-p",
        json.dumps(bad),
        check=False,
    )
    assert result.returncode != 0
    assert "status.conditions[0].status" in result.stderr


def test_get_shows_the_printer_columns(kubectl: Kubectl) -> None:
    _apply(kubectl, yaml.safe_load(MINIMAL.read_text()))
    status = {
        "replicas": 3,
        "readyReplicas": 2,
        "health": {"summary": "2/3"},
        "conditions": [
            {
                "type": name,
                "status": value,
                "reason": "Test",
                "message": "",
                "lastTransitionTime": "2025-01-02T03:04:05Z",
            }
            for name, value in (("Ready", "True"), ("Drifted", "False"))
        ],
    }
    kubectl("patch", "md/iris", "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}))
    header, row = kubectl("get", "md", "iris").stdout.splitlines()
    assert header.split() == ["NAME", "READY", "REPLICAS", "READY", "REPLICAS", "VERSION", "HEALTHY", "DRIFTED", "AGE"]
    assert row.split()[:7] == ["iris", "True", "3", "2", "1.0.0", "2/3", "False"]
    assert "modeldeployment.modeldeploy.io/iris" in kubectl("get", "ml", "-o", "name").stdout.split()


def test_scale_subresource_changes_spec_replicas(kubectl: Kubectl) -> None:
    _apply(kubectl, yaml.safe_load(MINIMAL.read_text()))
    kubectl("scale", "md/iris", "--replicas=3")
    assert kubectl("get", "md", "iris", "-o", "jsonpath={.spec.replicas}").stdout == "3"
    scale = json.loads(kubectl("get", "md", "iris", "--subresource=scale", "-o", "json").stdout)
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 3


def test_scale_subresource_respects_the_replica_bound(kubectl: Kubectl) -> None:
    _apply(kubectl, yaml.safe_load(MINIMAL.read_text()))
    result = kubectl("scale", "md/iris", f"--replicas={MAX_REPLICAS + 1}", check=False)
    assert result.returncode != 0
    assert f"spec.replicas in body should be less than or equal to {MAX_REPLICAS}" in result.stderr
    kubectl("scale", "md/iris", f"--replicas={MAX_REPLICAS}")


def _name_rules_rejected(kubectl: Kubectl, name: str) -> bool:
    manifest = yaml.safe_load(MINIMAL.read_text())
    manifest["metadata"]["name"] = name
    result = kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(manifest), check=False)
    return result.returncode != 0 and METADATA_NAME_LENGTH.message in result.stderr


def test_objects_named_before_the_name_rules_stay_updatable(
    kubectl: Kubectl, admin_kubectl: Kubectl, crd: Path
) -> None:
    """The name rules run on create only (optionalOldSelf): an object stored under an older CRD
    keeps taking spec and status writes, so upgrading the CRD does not lock the operator out."""
    current = yaml.safe_load(crd.read_text())
    older = copy.deepcopy(current)
    del older["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"]
    long_name = "a" * 64
    manifest = yaml.safe_load(MINIMAL.read_text())
    manifest["metadata"]["name"] = long_name
    try:
        admin_kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(older))
        wait_for(lambda: not _name_rules_rejected(kubectl, long_name), timeout=30, what="the older CRD in effect")
        _apply(kubectl, manifest)
    finally:
        admin_kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
        wait_for(lambda: _name_rules_rejected(kubectl, "b" * 64), timeout=30, what="the current CRD in effect")

    kubectl("patch", f"md/{long_name}", "--type=merge", "-p", json.dumps({"spec": {"replicas": 2}}))
    status = {"status": {"observedGeneration": 2, "replicas": 2}}
    kubectl("patch", f"md/{long_name}", "--subresource=status", "--type=merge", "-p", json.dumps(status))
    stored = json.loads(kubectl("get", "md", long_name, "-o", "json").stdout)
    assert (stored["spec"]["replicas"], stored["status"]["replicas"]) == (2, 2)
    assert _name_rules_rejected(kubectl, "c" * 64), "new objects are still held to the rule"
