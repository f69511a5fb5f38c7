"""What Flux sees: kstatus (sigs.k8s.io/cli-utils) computed for ModelDeployments.

The probe is tests/kstatus, a small Go program around `status.Compute`, built once into the
sandbox cache by `modeldeploy_dev.sandbox.build`. Phase A hands it objects on disk; phase B creates a
ModelDeployment in the sandbox API server, writes its status through the status subresource (no
operator runs in the test namespace) and asks the probe to read it live.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy_dev.sandbox import build
from modeldeploy_dev.sandbox.cluster import Sandbox
from tests.conftest import Kubectl

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "modeldeploy.io_modeldeployments.yaml"
ARGOCD_FIXTURES = ROOT / "tests" / "fixtures" / "argocd"
EXAMPLE_DIRS = (ROOT / "examples", ROOT / "docs" / "examples")
CRD_NAME = "modeldeployments.modeldeploy.io"
API_VERSION = "modeldeploy.io/v1alpha1"
HOLD = "modeldeploy.io/test-hold"
TIME = "2026-05-04T10:00:00Z"


# ---- helpers ----------------------------------------------------------------------------
def condition(kind: str, status: str, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": TIME,
        "observedGeneration": generation,
    }


def converged(generation: int) -> list[dict[str, Any]]:
    """The conditions of a ModelDeployment that is done: every one in its good state."""
    return [
        condition("Ready", "True", "Ready", "model serves on 2/2 replicas", generation),
        condition("Reconciling", "False", "Converged", "children match the spec", generation),
        condition("Stalled", "False", "NoError", "no error", generation),
        condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", generation),
        condition("ModelHealthy", "True", "ProbesPassing", "2/2 replicas pass their probes", generation),
        condition("Drifted", "False", "NoDrift", "no drift", generation),
    ]


def with_conditions(base: list[dict[str, Any]], *changed: dict[str, Any]) -> list[dict[str, Any]]:
    kinds = {c["type"] for c in changed}
    return [c for c in base if c["type"] not in kinds] + list(changed)


# Status stanzas and kstatus's verdict on them, for an object at generation 1 (phase B) or 4 (phase A).
def status_cases(generation: int) -> dict[str, tuple[dict[str, Any], str, str]]:
    g = generation
    return {
        "ready-current": ({"observedGeneration": g, "conditions": converged(g)}, "Current", "Resource is Ready"),
        "generation-ahead": (
            {"observedGeneration": g - 1, "conditions": converged(g - 1)},
            "InProgress",
            f"ModelDeployment generation is {g}, but latest observed generation is {g - 1}",
        ),
        "reconciling": (
            {
                "observedGeneration": g,
                "conditions": with_conditions(
                    converged(g),
                    condition("Ready", "False", "Reconciling", "rollout in progress", g),
                    condition("Reconciling", "True", "RollingOut", "1/2 replicas run the new model", g),
                ),
            },
            "InProgress",
            "1/2 replicas run the new model",
        ),
        "stalled": (
            {
                "observedGeneration": g,
                "conditions": with_conditions(
                    converged(g),
                    condition("Ready", "False", "Stalled", "see the Stalled condition", g),
                    condition("Stalled", "True", "InvalidModelURI", "scheme ftp is not supported", g),
                ),
            },
            "Failed",
            "scheme ftp is not supported",
        ),
        "ready-false": (
            {
                "observedGeneration": g,
                "conditions": with_conditions(
                    converged(g), condition("Ready", "False", "DeploymentUnavailable", "0/2 replicas available", g)
                ),
            },
            "InProgress",
            "0/2 replicas available",
        ),
        "data-drift-stays-current": (
            {
                "observedGeneration": g,
                "conditions": with_conditions(
                    converged(g), condition("Drifted", "True", "DataDrift", "feature amount: PSI 0.31", g)
                ),
            },
            "Current",
            "Resource is Ready",
        ),
    }


PHASE_A = status_cases(4)


def file_object(status: dict[str, Any] | None, **metadata: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "metadata": {"name": "sentiment", "namespace": "ml", "generation": 4, **metadata},
        "spec": {"replicas": 2},
    }
    if status is not None:
        obj["status"] = status
    return obj


def run_kstatus(binary: Path, *args: str) -> dict[str, str]:
    result = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"kstatus {' '.join(args)} failed ({result.returncode}): {result.stderr}"
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"kstatus printed {result.stdout!r}, not one JSON line"
    verdict = json.loads(lines[0])
    assert set(verdict) == {"status", "message"}, verdict
    return {k: str(v) for k, v in verdict.items()}


def kstatus_of(binary: Path, obj: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "obj.json"
    path.write_text(json.dumps(obj))
    return run_kstatus(binary, "--file", str(path))


@pytest.fixture(scope="session")
def kstatus_binary() -> Path:
    path = build.binary(build.KSTATUS)
    assert path.is_file(), path
    return path


# ---- phase A: objects on disk -----------------------------------------------------------
@pytest.mark.parametrize("case", list(PHASE_A), ids=list(PHASE_A))
def test_kstatus_of_file(case: str, kstatus_binary: Path, tmp_path: Path) -> None:
    status, expected, message = PHASE_A[case]
    verdict = kstatus_of(kstatus_binary, file_object(status), tmp_path)
    assert verdict["status"] == expected, verdict
    assert message in verdict["message"], verdict


def test_kstatus_of_deleted_object_is_terminating(kstatus_binary: Path, tmp_path: Path) -> None:
    status = PHASE_A["ready-current"][0]
    obj = file_object(status, deletionTimestamp=TIME, finalizers=[HOLD])
    assert kstatus_of(kstatus_binary, obj, tmp_path) == {
        "status": "Terminating",
        "message": "Resource scheduled for deletion",
    }


def test_kstatus_reads_yaml_too(kstatus_binary: Path, tmp_path: Path) -> None:
    path = tmp_path / "obj.yaml"
    path.write_text(yaml.safe_dump(file_object(PHASE_A["stalled"][0])))
    assert run_kstatus(kstatus_binary, "--file", str(path))["status"] == "Failed"


def test_kstatus_rejects_bad_usage(kstatus_binary: Path, tmp_path: Path) -> None:
    for args in ([], ["--file", str(tmp_path / "missing.json")], ["--file", "x", "--name", "y"]):
        result = subprocess.run([str(kstatus_binary), *args], capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 1, (args, result)
        assert result.stdout == "", (args, result.stdout)
        assert result.stderr.startswith("kstatus: "), (args, result.stderr)


def test_kstatus_without_status_is_current(kstatus_binary: Path, tmp_path: Path) -> None:
    """kstatus's fallback, which docs/gitops.md warns about: no status and no conditions count as Current.

    Flux's `wait: true` can therefore pass in the moment between the apply and the operator's first
    status write; the operator has to write observedGeneration and Reconciling=True promptly.
    """
    assert kstatus_of(kstatus_binary, file_object(None), tmp_path)["status"] == "Current"
    assert kstatus_of(kstatus_binary, file_object({"observedGeneration": 4}), tmp_path)["status"] == "Current"


# How Flux (kstatus) judges each Argo CD health fixture; docs/gitops.md summarises the differences.
ARGOCD_VS_KSTATUS = {
    "data-drift": "Current",
    "empty-conditions": "Current",
    "generation-not-observed": "InProgress",
    "healthy": "Current",
    "model-unhealthy": "InProgress",
    "model-unhealthy-during-rollout": "InProgress",
    "no-generation": "Current",
    "no-status": "Current",
    "observed-generation-missing": "Current",
    "ready-condition-stale": "Current",
    "ready-false": "InProgress",
    "ready-missing": "Current",
    "ready-unknown": "InProgress",
    "reconciling": "InProgress",
    "stalled": "Failed",
    "stalled-on-older-generation": "InProgress",
    "stalled-wins-over-reconciling": "InProgress",
    "version-drift": "InProgress",
    "version-drift-while-reconciling": "InProgress",
}


def test_every_argocd_fixture_has_a_kstatus_expectation() -> None:
    assert {p.stem for p in ARGOCD_FIXTURES.glob("*.yaml")} == set(ARGOCD_VS_KSTATUS)


@pytest.mark.parametrize("fixture", sorted(ARGOCD_VS_KSTATUS))
def test_kstatus_of_argocd_fixture(fixture: str, kstatus_binary: Path, tmp_path: Path) -> None:
    obj = yaml.safe_load((ARGOCD_FIXTURES / f"{fixture}.yaml").read_text())["object"]
    verdict = kstatus_of(kstatus_binary, json.loads(json.dumps(obj, default=str)), tmp_path)
    assert verdict["status"] == ARGOCD_VS_KSTATUS[fixture], verdict


# ---- phase B: live, against the sandbox API server --------------------------------------
def _minimal(schema: dict[str, Any]) -> Any:
    """The smallest value the structural schema accepts, for schemas without patterns."""
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: _minimal(props[name]) for name in schema.get("required", []) if name in props}
    if kind == "array":
        return [_minimal(schema.get("items", {})) for _ in range(schema.get("minItems", 0))]
    if kind == "integer" or kind == "number":
        return max(schema.get("minimum", 1), 1)
    if kind == "boolean":
        return False
    if kind == "string":
        return "x" * max(schema.get("minLength", 1), 1)
    return {}


def example_spec(crd: dict[str, Any]) -> dict[str, Any]:
    """A valid spec: one of the project's example ModelDeployments, else one made from the CRD schema."""
    for directory in EXAMPLE_DIRS:
        for path in sorted(directory.rglob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if isinstance(doc, dict) and doc.get("kind") == "ModelDeployment" and doc.get("spec"):
                    return dict(doc["spec"])
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    spec = _minimal(version["schema"]["openAPIV3Schema"]["properties"]["spec"])
    assert isinstance(spec, dict)
    return spec


@pytest.fixture(scope="session")
def crd_document() -> dict[str, Any]:
    """Requested before `crd`, so a missing CRD file skips without starting the sandbox."""
    if not CRD.exists():
        pytest.skip(f"{CRD.relative_to(ROOT)} is not generated yet")
    crd = yaml.safe_load(CRD.read_text())
    assert isinstance(crd, dict)
    assert crd["metadata"]["name"] == CRD_NAME
    return crd


@dataclass
class LiveModelDeployment:
    """A ModelDeployment in the sandbox whose status the test writes, and its kstatus read live.

    No operator should reconcile the test namespace, but a session-scoped one (tests/conftest.py's
    `operator`) serves every namespace. Each write is therefore checked: a verdict only counts when
    the object's resourceVersion did not move between the write and the probe's read.
    """

    kubectl: Kubectl
    kubeconfig: Path
    namespace: str
    binary: Path
    name: str = "kstatus-probe"

    def get(self) -> dict[str, Any]:
        obj: dict[str, Any] = json.loads(self.kubectl("get", "modeldeployment", self.name, "-o", "json").stdout)
        return obj

    def kstatus(self) -> dict[str, str]:
        args = ("--kubeconfig", str(self.kubeconfig), "--namespace", self.namespace, "--name", self.name)
        return run_kstatus(self.binary, *args)

    def undisturbed(self, action: Callable[[], str]) -> tuple[dict[str, Any], dict[str, str]]:
        """Run `action` (returns the resourceVersion it wrote), then kstatus; retry if anyone else wrote between.

        Returns the object as the probe saw it, and the probe's verdict.
        """
        seen = []
        for _ in range(ATTEMPTS):
            written = action()
            verdict = self.kstatus()
            after = self.get()
            if after["metadata"]["resourceVersion"] == written:
                return after, verdict
            seen.append((written, after["metadata"]["resourceVersion"]))
            time.sleep(0.5)
        raise AssertionError(f"another writer (an operator?) changed {self.name} after each write: {seen}")

    def write_status(self, status: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        patch = json.dumps({"status": status})

        args = ("patch", "modeldeployment", self.name, "--subresource=status", "--type=merge", "-p", patch)

        def action() -> str:
            return self.kubectl(*args, "-o", "jsonpath={.metadata.resourceVersion}").stdout

        return self.undisturbed(action)


ATTEMPTS = 8


@pytest.fixture
def live(
    crd_document: dict[str, Any], crd: Path, kubectl: Kubectl, namespace: str, sandbox: Sandbox, kstatus_binary: Path
) -> Iterator[LiveModelDeployment]:
    """A ModelDeployment held by a test finalizer (so a deleted one stays readable)."""
    md = LiveModelDeployment(kubectl, sandbox.kubeconfig, namespace, kstatus_binary)
    obj = {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "metadata": {"name": md.name, "finalizers": [HOLD]},
        "spec": example_spec(crd_document),
    }
    created = json.loads(kubectl("create", "-f", "-", "-o", "json", input=json.dumps(obj)).stdout)
    assert created["metadata"]["generation"] == 1
    yield md
    current = kubectl("get", "modeldeployment", md.name, "-o", "json", check=False)
    if current.returncode == 0:
        finalizers = [f for f in json.loads(current.stdout)["metadata"].get("finalizers", []) if f != HOLD]
        drop = json.dumps({"metadata": {"finalizers": finalizers or None}})
        kubectl("patch", "modeldeployment", md.name, "--type=merge", "-p", drop, check=False)


def test_live_kstatus_before_any_status_write(live: LiveModelDeployment) -> None:
    obj = live.get()
    verdict = live.kstatus()
    if live.get()["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"] or "status" in obj:
        pytest.skip("an operator wrote status before the probe could look at the bare object")
    # kstatus's fallback, also pinned on a file in phase A.
    assert verdict["status"] == "Current", verdict


@pytest.mark.parametrize("case", list(status_cases(1)))
def test_live_kstatus_follows_the_status_subresource(case: str, live: LiveModelDeployment) -> None:
    status, expected, message = status_cases(1)[case]
    obj, verdict = live.write_status(status)
    written = obj["status"]
    assert written["observedGeneration"] == status["observedGeneration"], written
    assert {c["type"]: c["status"] for c in written["conditions"]} == {
        c["type"]: c["status"] for c in status["conditions"]
    }
    assert verdict["status"] == expected, verdict
    assert message in verdict["message"], verdict


def test_live_kstatus_walks_through_a_rollout(live: LiveModelDeployment) -> None:
    """One object, status rewritten in place: the verdict follows every write."""
    cases = status_cases(1)
    for case in ("reconciling", "ready-current", "stalled", "generation-ahead", "ready-current"):
        status, expected, _ = cases[case]
        assert live.write_status(status)[1]["status"] == expected, case


def test_live_kstatus_of_a_deleting_object_is_terminating(live: LiveModelDeployment) -> None:
    assert live.write_status(status_cases(1)["ready-current"][0])[1]["status"] == "Current"

    def delete() -> str:
        live.kubectl("delete", "modeldeployment", live.name, "--wait=false")
        obj = live.get()
        assert obj["metadata"].get("deletionTimestamp"), obj["metadata"]
        return str(obj["metadata"]["resourceVersion"])

    _, verdict = live.undisturbed(delete)
    assert verdict == {"status": "Terminating", "message": "Resource scheduled for deletion"}
