"""One bad object: the apiserver refuses what the operator renders for it, again and again.

Both repros once made write storms (hundreds of status writes in seconds, a Warning per loop):
the "correction" was recorded before the apply failed, the status changed, and the status
change queued the object again. A model name outside the Basic Multilingual Plane broke the
apply body itself; an `env[].valueFrom` of the wrong shape passes the CRD's schema (it is
passed through as Kubernetes defines it) and the apiserver answers the apply with a 500.

What a user is owed: the first is simply served; the second ends Stalled with the
apiserver's own message, retried on a backoff, for a handful of writes a minute, and a
well-formed neighbour converges meanwhile.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from modeldeploy_dev.sandbox.cluster import Sandbox
from tests.conftest import Kubectl, condition, model_deployment, wait_for
from tests.faults.meters import (
    AuditLog,
    StartOperator,
    converged,
    get_obj,
    items,
    log_lines,
    report_recovery,
    time_until,
    tracebacks,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

WINDOW = 40.0  # seconds of a stalled object's life the writes are counted over


def test_a_model_name_outside_the_bmp_is_served(
    sandbox: Sandbox, crd: Path, kubectl: Kubectl, namespace: str, operators: StartOperator, audit: AuditLog
) -> None:
    operator = operators(sandbox.kubeconfig)
    mark = audit.mark()
    started = time.monotonic()
    doc = model_deployment("parrot", replicas=1, model={"name": "iris-\U0001f99c", "version": "1.0.0"})
    kubectl("apply", "-f", "-", input=json.dumps(doc, ensure_ascii=False))
    seconds = time_until(lambda: converged(get_obj(kubectl, "md", "parrot")), since=started, timeout=60, what="Ready")
    report_recovery("model name with a non-BMP character, Ready", seconds)
    deployment = get_obj(kubectl, "deployment", "parrot")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODEL_NAME"] == "iris-\U0001f99c"
    time.sleep(10)
    writes = audit.operator_writes(mark, namespace)
    refused = [str(e) for e in writes if e.code >= 400]
    print(f"non-BMP model name: {len(writes)} operator writes, {len(refused)} refused")
    assert not refused, refused
    assert len(writes) <= 8, [str(e) for e in writes]  # children, status, an Event or two
    assert tracebacks(operator) == 0, "\n".join(log_lines(operator, "ERROR")[:10])


def test_an_apply_the_apiserver_answers_500_ends_stalled_with_bounded_writes(
    sandbox: Sandbox, crd: Path, kubectl: Kubectl, namespace: str, operators: StartOperator, audit: AuditLog
) -> None:
    operator = operators(sandbox.kubeconfig)
    runtime = {
        "image": "registry.invalid/modelserver:1",
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": "status.podIP"}}],  # fieldRef wants a map
    }
    mark = audit.mark()
    started = time.monotonic()
    kubectl("apply", "-f", "-", input=json.dumps(model_deployment("refused", replicas=1, runtime=runtime)))
    kubectl("apply", "-f", "-", input=json.dumps(model_deployment("neighbour", replicas=1)))

    def stalled() -> dict[str, str] | None:
        stated = condition(get_obj(kubectl, "md", "refused"), "Stalled")
        return stated if stated.get("status") == "True" else None

    seconds = time_until(stalled, since=started, timeout=60, what="Stalled")
    report_recovery("apply answered 500, Stalled with the apiserver's message", seconds)
    stated = condition(get_obj(kubectl, "md", "refused"), "Stalled")
    assert stated["reason"] == "ApplyRejected", stated
    assert "fieldRef" in stated["message"], stated
    assert "expected map" in stated["message"], stated
    ready = condition(get_obj(kubectl, "md", "refused"), "Ready")
    assert ready["status"] == "False", ready
    wait_for(lambda: converged(get_obj(kubectl, "md", "neighbour")), timeout=60, what="the neighbour Ready")

    window = audit.mark()
    time.sleep(WINDOW)
    writes = audit.operator_writes(window, namespace, names={"refused"})
    applies = [e for e in writes if e.resource == "deployments"]
    status = [e for e in writes if e.subresource == "status"]
    events = [
        e
        for e in items(kubectl, "events", "--field-selector=involvedObject.name=refused")
        if e.get("reason") == "ApplyRejected"
    ]
    counts = [int(e.get("count") or 1) + len(e.get("series") or {}) for e in events]
    print(
        f"stalled object over {WINDOW:.0f}s: {len(applies)} apply attempts, {len(status)} status writes, "
        f"{len(writes)} writes in all; ApplyRejected Events: {len(events)} objects, counts {counts}"
    )
    # Backoff 5 s, 10 s, 20 s, 40 s ...: a few attempts in the window, each refused, no status churn.
    assert 1 <= len(applies) <= 5, [str(e) for e in applies]
    assert len(status) <= 1, [str(e) for e in status]
    assert len(writes) <= 8, [str(e) for e in writes]
    everything = audit.operator_writes(mark, namespace, names={"refused"})
    assert len(everything) <= 20, f"{len(everything)} writes since the apply: {[str(e) for e in everything[:10]]}"
    assert converged(get_obj(kubectl, "md", "neighbour"))
    assert tracebacks(operator) == 0, "\n".join(log_lines(operator, "ERROR")[:10])

    # fixed by the user: the object leaves Stalled without waiting out the backoff
    fixed = model_deployment("refused", replicas=1)
    started = time.monotonic()
    kubectl("apply", "-f", "-", input=json.dumps(fixed))
    seconds = time_until(lambda: converged(get_obj(kubectl, "md", "refused")), since=started, timeout=30, what="Ready")
    report_recovery("stalled object fixed by its owner, Ready", seconds)
    assert condition(get_obj(kubectl, "md", "refused"), "Stalled").get("status") != "True"
