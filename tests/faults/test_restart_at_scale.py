"""A restart over many converged, probed ModelDeployments is invisible: no write, no Event.

The README once claimed this from a test at N = 3; at N = 100 a restart wrote 130 status
PATCHes and flipped 15 objects Ready=False and back, with Events. Two causes: workers began
before the Deployment cache had listed (a child judged missing, Available=Unknown), and the
per-replica `since` was reset by the new process and counted as a change. This runs at the
scale that showed it, with every replica probed through the farm, and counts the restarted
operator's writes in the apiserver's audit log. Half the models name an image, half are given
a ClusterModelRuntime by their format and fetch an artifact (an init container): a restarted
operator that resolved runtimes before its runtime cache had listed would stall those as
NoRuntime and write.

`MODELDEPLOY_FAULTS_RESTART_N` changes N (default 100).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from modeldeploy_dev.sandbox.cluster import Sandbox
from tests.conftest import Kubectl, model_deployment, stop_operator, wait_for
from tests.faults.meters import (
    FARM_IMAGE,
    AuditLog,
    StartOperator,
    apiserver_requests,
    apply_all,
    converged,
    items,
    log_lines,
    model_deployments,
    reconciles,
    report_recovery,
    tracebacks,
    write_delta,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N = int(os.environ.get("MODELDEPLOY_FAULTS_RESTART_N", "100"))
INTERVAL = 5
PROBING = {"intervalSeconds": INTERVAL, "timeoutSeconds": 2, "failureThreshold": 1}
WATCHED = 4 * INTERVAL  # the new operator's first probe rounds and resyncs, after it has reconciled all


def probed_and_ready(md: dict[str, Any]) -> bool:
    health = (md.get("status") or {}).get("health") or {}
    return converged(md) and health.get("healthyReplicas") == 1


def with_status(status: dict[str, Any]) -> dict[str, Any]:
    """A ModelDeployment of generation 1 (none here is ever changed) with `status`."""
    return {"metadata": {"generation": 1}, "status": status}


def event_counts(kubectl: Kubectl, ours: bool = True) -> dict[str, int]:
    """Events (name -> count) the operator posted, or (ours=False) the rest of the cluster did."""
    counted: dict[str, int] = {}
    for event in items(kubectl, "events"):
        source = event.get("reportingComponent") or (event.get("source") or {}).get("component")
        if (source == "modeldeploy") != ours:
            continue
        series = event.get("series") or {}
        counted[f"{event['metadata']['name']} {event['reason']}"] = int(series.get("count") or event.get("count") or 1)
    return counted


def test_a_restart_over_converged_probed_models_writes_nothing(
    sandbox: Sandbox,
    crd: Path,
    kubectl: Kubectl,
    admin_kubectl: Kubectl,
    namespace: str,
    operators: StartOperator,
    audit: AuditLog,
) -> None:
    fmt = f"restart-{uuid.uuid4().hex[:6]}"
    runtime = {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ClusterModelRuntime",
        "metadata": {"name": fmt},
        "spec": {**FARM_IMAGE, "supportedFormats": [{"name": fmt}]},
    }
    admin_kubectl("apply", "-f", "-", input=json.dumps(runtime))
    selecting = {"name": "iris", "version": "1.0.0", "format": fmt, "uri": "s3://models/iris/1.0.0/"}

    def doc(i: int) -> dict[str, Any]:
        if i % 2:
            return model_deployment(f"m-{i:03d}", replicas=1, runtime={}, model=selecting, probing=PROBING)
        return model_deployment(f"m-{i:03d}", replicas=1, runtime=FARM_IMAGE, probing=PROBING)

    first = operators(sandbox.kubeconfig, "first")
    started = time.monotonic()
    apply_all(kubectl, [doc(i) for i in range(N)])

    def all_probed() -> bool:
        mds = model_deployments(kubectl)
        return len(mds) == N and all(probed_and_ready(md) for md in mds)

    wait_for(all_probed, timeout=60 + 2 * N, interval=1, what=f"{N} probed ModelDeployments Ready")
    print(f"{N} probed ModelDeployments Ready in {time.monotonic() - started:.1f}s")
    time.sleep(2 * INTERVAL)  # a couple of probe rounds on the converged set: nothing left to report
    before = {md["metadata"]["name"]: md["status"] for md in model_deployments(kubectl)}
    events, others = event_counts(kubectl), event_counts(kubectl, ours=False)
    stop_operator(first)

    mark, counters = audit.mark(), apiserver_requests(admin_kubectl)
    restarted = time.monotonic()
    second = operators(sandbox.kubeconfig, "second")
    wait_for(lambda: reconciles(second) >= N, timeout=120, interval=0.5, what=f"the new operator to reconcile all {N}")
    report_recovery(f"restart over {N} converged probed ModelDeployments, all reconciled", time.monotonic() - restarted)
    time.sleep(WATCHED)

    writes = audit.operator_writes(mark, namespace)
    # The apiserver's own counters, cluster-wide (no client label): only the operator writes these.
    delta = write_delta(counters, apiserver_requests(admin_kubectl), {"modeldeployments"})
    after = {md["metadata"]["name"]: md["status"] for md in model_deployments(kubectl)}
    changed = {name: status for name, status in after.items() if status != before.get(name)}
    new_events = {name: n for name, n in event_counts(kubectl).items() if events.get(name) != n}
    other_events = {name: n for name, n in event_counts(kubectl, ours=False).items() if others.get(name) != n}
    flipped = [name for name, status in after.items() if not probed_and_ready(with_status(status))]
    print(
        f"restart over {N}: {reconciles(second):.0f} reconciles, {len(writes)} operator writes, "
        f"{len(changed)} statuses changed, {len(new_events)} Events new or counted again; "
        f"apiserver_request_total writes to ModelDeployments: {delta}; "
        f"other components' Events new or counted again: {len(other_events)}, e.g. {sorted(other_events)[:3]}"
    )
    if changed:
        name = sorted(changed)[0]
        old = before.get(name) or {}
        diff = {k: (old.get(k), v) for k, v in changed[name].items() if old.get(k) != v}
        print(f"first changed status, {name}: {json.dumps(diff)[:2000]}")
    admin_kubectl("delete", "clustermodelruntime", fmt, "--wait=false", check=False)
    by_runtime = [md for md in model_deployments(kubectl) if (md["status"].get("model") or {}).get("runtime")]
    assert len(by_runtime) == N // 2, "half the models are served by the runtime, and say so"
    assert not writes, f"{len(writes)} writes after a restart over converged objects: {[str(e) for e in writes[:5]]}"
    assert not delta, delta
    assert not new_events, new_events
    assert not flipped, f"not Ready after the restart: {flipped[:10]}"
    assert tracebacks(second) == 0, "\n".join(log_lines(second, "ERROR")[:10])
