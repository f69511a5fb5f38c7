"""status.history on the real apiserver: the trail of what served when, with no write of its own."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

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
