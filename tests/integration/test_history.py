"""status.history on the real apiserver, and `kubectl modeldeploy rollout status|history` reading it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from modeldeploy_dev.sandbox.cluster import Sandbox, kubectl_binary
from tests.conftest import Kubectl, get_json, model_deployment, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator")]


def history(kubectl: Kubectl) -> list[tuple[int, str, str]]:
    status: dict[str, Any] = get_json(kubectl, "md", "iris").get("status") or {}  # type: ignore[assignment]
    return [(e["revision"], e["version"], e["outcome"]) for e in status.get("history") or []]


def settled(kubectl: Kubectl, generation: int) -> bool:
    md: dict[str, Any] = get_json(kubectl, "md", "iris")  # type: ignore[assignment]
    status = md.get("status") or {}
    ready = {c["type"]: c["status"] for c in status.get("conditions", [])}.get("Ready")
    return bool(status.get("observedGeneration") == generation and ready == "True")


def test_versions_are_revisions_and_scaling_is_not(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(model_deployment()))
    wait_for(lambda: settled(kubectl, 1), timeout=90, what="generation 1 Ready")
    assert history(kubectl) == [(1, "1.0.0", "Promoted")]

    kubectl("patch", "md", "iris", "--type=merge", "-p", json.dumps({"spec": {"model": {"version": "2.0.0"}}}))
    wait_for(lambda: settled(kubectl, 2), timeout=90, what="generation 2 Ready")
    wait_for(lambda: history(kubectl)[:1] == [(2, "2.0.0", "Promoted")], timeout=30, what="revision 2 promoted")
    assert history(kubectl) == [(2, "2.0.0", "Promoted"), (1, "1.0.0", "Superseded")]
    entries = get_json(kubectl, "md", "iris")["status"]["history"]  # type: ignore[index]
    assert entries[1]["reason"] == "replaced by revision 2"
    assert entries[1]["finished"] >= entries[1]["served"] >= entries[1]["started"]
    assert entries[0]["image"] == "registry.invalid/modelserver:1"

    kubectl("scale", "md/iris", "--replicas=3")
    wait_for(lambda: settled(kubectl, 3), timeout=90, what="generation 3 Ready")
    time.sleep(2)
    assert history(kubectl) == [(2, "2.0.0", "Promoted"), (1, "1.0.0", "Superseded")], "scaling is no revision"


def plugin(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl modeldeploy ...` as a user runs it: kubectl finds the plugin on the PATH (flags after its name)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    env["KUBECONFIG"] = str(sandbox.kubeconfig)
    return subprocess.run(
        [kubectl_binary(), "modeldeploy", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_kubectl_modeldeploy_rollout_status_and_history(sandbox: Sandbox, kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(model_deployment()))
    waited = plugin(sandbox, "rollout", "status", "iris", "-n", namespace, "--wait", "--timeout", "90")
    assert waited.returncode == 0, waited.stderr + waited.stdout
    assert "modeldeployment 'iris' successfully rolled out: revision 1, version 1.0.0 on 2/2 replicas" in waited.stdout

    listed = plugin(sandbox, "rollout", "history", "iris", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:3] == ["REVISION", "VERSION", "OUTCOME"]
    assert row.split()[:3] == ["1", "1.0.0", "Promoted"]

    bad = {"spec": {"model": {"format": "no-such-format"}, "runtime": {"image": None}}}
    kubectl("patch", "md", "iris", "--type=merge", "-p", json.dumps(bad))
    stalled = plugin(sandbox, "rollout", "status", "iris", "-n", namespace, "--wait", "--timeout", "90")
    assert stalled.returncode == 1
    assert "is stalled (NoRuntime)" in stalled.stdout, stalled.stdout
    missing = plugin(sandbox, "rollout", "status", "nothing-here", "-n", namespace)
    assert missing.returncode == 1
    assert 'modeldeployment "nothing-here" not found' in missing.stderr
