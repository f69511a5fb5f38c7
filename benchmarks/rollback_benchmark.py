"""Time from a failing canary's first bad probe to its rollback completed, beside the probe interval.

One ModelDeployment (3 stable replicas of the reference server, served by the sandbox's farm)
runs a canary with a long pause; once its replica is probed healthy, it is made unhealthy
(the farm's `unhealthy` fault on that pod: health answers 503). Measured, `--rounds` times:
- fault -> first bad probe: the operator's own `modeldeploy_probe_requests_total{outcome=unhealthy}`
  counter first moving, polled every 20 ms (one model, so the only unhealthy probe is that one);
- first bad probe -> RolledBack on the status, and -> the canary Deployment gone (rollback completed).
Each round is a new version on the same object (the previous one stays rolled back, the stable
on 1.0.0). Printed beside it is the probe interval: a fault in a real pod is seen by the next
round, up to one interval later, and `failureThreshold: 1` makes that one probe enough. In the
sandbox the fault arrives as a pod annotation, and a pod event wakes the probe loop at once, so
"fault -> first bad probe" here is shorter than a real fault's; the figure that matters is from
the first bad probe on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "devtools"), str(ROOT)]

from _common import percentile  # noqa: E402
from kubernetes import client, config  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from tests.conftest import make_kubectl, start_operator, stop_operator  # noqa: E402

from modeldeploy_dev.sandbox.cluster import Sandbox  # noqa: E402

NAMESPACE = "bench-rollback"
FAULT = "farm.modeldeploy.io/fault"


def manifest(version: str, interval: int) -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris", "namespace": NAMESPACE},
        "spec": {
            "model": {"name": "iris", "version": version},
            "runtime": {"image": "ghcr.io/modeldeploy/modeldeploy:0.1.0"},
            "replicas": 3,
            "probing": {"intervalSeconds": interval, "timeoutSeconds": 1, "failureThreshold": 1},
            "rollout": {
                "strategy": "Canary",
                "steps": [{"weight": 25, "pause": "1h"}],
                "progressDeadlineSeconds": 3600,
            },
        },
    }


def unhealthy_probes(metrics_url: str) -> float:
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "modeldeploy_probe_requests":
            return sum(
                s.value for s in family.samples if s.name.endswith("_total") and s.labels["outcome"] != "healthy"
            )
    return 0.0


def wait(check: Any, timeout: float, what: str, interval: float = 0.02) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--interval", type=int, default=2, help="probing.intervalSeconds (default 2)")
    args = parser.parse_args()

    sandbox = Sandbox()
    started_here = not sandbox.healthy()
    sandbox.up()
    config.load_kube_config(str(sandbox.kubeconfig))
    custom, apps = client.CustomObjectsApi(), client.AppsV1Api()
    admin = make_kubectl(sandbox.kubeconfig, None)
    admin("apply", "-f", str(ROOT / "crds"))
    admin("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true")
    admin("create", "namespace", NAMESPACE)
    kubectl = make_kubectl(sandbox.kubeconfig, NAMESPACE)
    log = Path(tempfile.mkdtemp(prefix="rollback-bench-")) / "operator.log"
    operator = start_operator(sandbox.kubeconfig, log)

    def md() -> dict[str, Any]:
        return custom.get_namespaced_custom_object("modeldeploy.io", "v1alpha1", NAMESPACE, "modeldeployments", "iris")  # type: ignore[no-any-return]

    def rollout() -> dict[str, Any]:
        return dict((md().get("status") or {}).get("rollout") or {})

    def canary_gone() -> bool:
        return not apps.list_namespaced_deployment(NAMESPACE, field_selector="metadata.name=iris-canary").items

    to_probe: list[float] = []
    to_status: list[float] = []
    to_done: list[float] = []
    try:
        kubectl("apply", "-f", "-", input=json.dumps(manifest("1.0.0", args.interval)))
        kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=120s")
        for round_ in range(args.rounds):
            version = f"2.0.{round_}"
            kubectl("apply", "-f", "-", input=json.dumps(manifest(version, args.interval)))
            wait(
                lambda v=version: rollout().get("phase") == "Progressing" and rollout().get("version") == v,
                60,
                "canary",
            )

            def canary_healthy() -> bool:
                health = (md().get("status") or {}).get("health") or {}
                replicas = health.get("replicas") or []
                return any("canary" in r["pod"] and r.get("live") and r.get("modelReady") for r in replicas)

            wait(canary_healthy, 60, "the canary replica healthy", interval=0.2)
            pod = next(
                p["metadata"]["name"]
                for p in json.loads(kubectl("get", "pods", "-l", "modeldeploy.io/track=canary", "-o", "json").stdout)[
                    "items"
                ]
                if not p["metadata"].get("deletionTimestamp")
            )
            before = unhealthy_probes(operator.metrics_url)
            faulted = time.monotonic()
            kubectl("annotate", "pod", pod, f"{FAULT}=unhealthy", "--overwrite")
            probed = wait(lambda b=before: unhealthy_probes(operator.metrics_url) > b, 30, "the first bad probe")
            stated = wait(lambda: rollout().get("phase") == "RolledBack", 30, "RolledBack")
            done = wait(canary_gone, 30, "the canary Deployment deleted")
            to_probe.append(probed - faulted)
            to_status.append(stated - probed)
            to_done.append(done - probed)
            print(
                f"round {round_ + 1:2d}: fault->first bad probe {to_probe[-1]:5.2f}s  "
                f"bad probe->RolledBack {to_status[-1]:5.2f}s  bad probe->canary deleted {to_done[-1]:5.2f}s",
                flush=True,
            )
    finally:
        stop_operator(operator)
        if started_here:
            sandbox.down()

    floor = float(args.interval)
    p50 = percentile(to_done, 0.5)
    print()
    print(f"probe interval (a fault is seen within one round):      {floor:.2f}s")
    mean = statistics.mean(to_probe)
    print(f"fault -> first bad probe                  p50 {percentile(to_probe, 0.5):5.2f}s  mean {mean:5.2f}s")
    print(
        f"first bad probe -> status RolledBack      p50 {percentile(to_status, 0.5):5.2f}s  max {max(to_status):5.2f}s"
    )
    ratio = p50 / floor
    worst = max(to_done)
    print(f"first bad probe -> rollback completed     p50 {p50:5.2f}s  max {worst:5.2f}s  ({ratio:.2f} x the interval)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
