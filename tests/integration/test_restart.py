"""An operator restart changes nothing a user can see: all state is rebuilt from the cluster."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from modeldeploy_dev.sandbox.cluster import Sandbox
from modeldeploy_dev.sandbox.traffic import iris_rows, send_rows
from tests.conftest import (
    Kubectl,
    condition,
    get_json,
    model_deployment,
    petal_length_drift,
    start_operator,
    stop_operator,
    wait_for,
)

pytestmark = pytest.mark.integration  # runs its own operators: no module-wide admin operator here

INTERVAL = 2


def reasons(kubectl: Kubectl) -> list[str]:
    items = get_json(kubectl, "events", "--field-selector=involvedObject.kind=ModelDeployment")["items"]
    return sorted(str(e["reason"]) for e in items)  # type: ignore[union-attr, index]


def test_a_restarted_operator_keeps_verdicts_and_emits_nothing_new(
    sandbox: Sandbox, crd: Path, kubectl: Kubectl, tmp_path: Path
) -> None:
    first = start_operator(sandbox.kubeconfig, tmp_path / "first.log")
    try:
        doc = model_deployment(
            replicas=2,
            runtime={"image": "ghcr.io/modeldeploy/modeldeploy:0.1.0"},
            probing={"intervalSeconds": INTERVAL, "timeoutSeconds": 1, "failureThreshold": 1},
            drift=petal_length_drift(min_samples=300),
        )
        kubectl("apply", "-f", "-", input=json.dumps(doc))
        kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=60s")
        time.sleep(INTERVAL + 1)  # one scrape of every replica: the reference point
        pods = get_json(kubectl, "pods", "-l", "modeldeploy.io/name=iris")["items"]
        addresses = [(p["status"]["podIP"], 8080) for p in pods]  # type: ignore[union-attr, index]
        assert asyncio.run(send_rows(addresses, "iris", iris_rows(900, shift=(0, 0, 2.0, 0), seed=5))) == 900
        wait_for(
            lambda: condition(get_json(kubectl, "md", "iris"), "Drifted").get("reason") == "DataDrift",
            timeout=4 * INTERVAL,
            what="DataDrift before the restart",
        )
    finally:
        stop_operator(first)
    before = get_json(kubectl, "md", "iris")
    events_before = reasons(kubectl)

    second = start_operator(sandbox.kubeconfig, tmp_path / "second.log")
    try:
        time.sleep(4 * INTERVAL)  # several probe rounds and a resync under the new process
        after = get_json(kubectl, "md", "iris")
        for type_ in ("Ready", "ModelHealthy", "Drifted", "Stalled", "Reconciling"):
            old, new = condition(before, type_), condition(after, type_)
            assert (new["status"], new["reason"]) == (old["status"], old["reason"]), type_
            assert new["lastTransitionTime"] == old["lastTransitionTime"], type_
        assert reasons(kubectl) == events_before, "a restart must not announce transitions that did not happen"
    finally:
        stop_operator(second)
