"""How fast ModelDeployments converge, and what the operator costs, on the sandbox.

Side by side in one run, on the same control plane:
  floor:       N plain Deployments (what kube-controller-manager + kwok take on their own)
  modeldeploy: N ModelDeployments, from `create` to Ready=True, which includes rendering,
               server-side apply of Deployment + Service, the same Deployment rollout, and a
               real HTTP probe of every replica (served by the sandbox's replica farm)
It prints per-object latency percentiles for both, their ratio, the operator's resident
memory when idle after convergence, and the API write requests one resync of N converged
objects costs (should be 0).

    .venv/bin/python benchmarks/reconcile_benchmark.py --count 100
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import deployment_available, md_ready, model_deployment, percentile, rss_mib, summary  # noqa: E402
from tests.conftest import start_operator, stop_operator  # noqa: E402

from modeldeploy_dev.sandbox.cluster import Sandbox  # noqa: E402


def follow(
    stream_fn: Any, args: tuple[Any, ...], done: dict[str, float], is_done: Any, expected: int
) -> threading.Thread:
    def run() -> None:
        w = watch.Watch()
        for event in w.stream(stream_fn, *args, timeout_seconds=600):
            obj = event["object"]
            obj = obj if isinstance(obj, dict) else client.ApiClient().sanitize_for_serialization(obj)
            name = obj["metadata"]["name"]
            if name not in done and is_done(obj):
                done[name] = time.monotonic()
                if len(done) >= expected:
                    w.stop()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def writes(sandbox: Sandbox) -> float:
    text = sandbox.kubectl("get", "--raw", "/metrics").stdout
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "apiserver_request":
            for s in family.samples:
                resource = (s.labels.get("resource"), s.labels.get("subresource", ""))
                if (
                    s.name.endswith("_total")
                    and s.labels.get("verb") in {"POST", "PUT", "PATCH", "DELETE", "APPLY"}
                    and (resource in {("deployments", ""), ("services", ""), ("modeldeployments", "status")})
                ):
                    total += s.value
    return total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--resync", type=float, default=10.0)
    args = parser.parse_args()
    sandbox = Sandbox()
    sandbox.up()
    sandbox.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds" / "modeldeploy.io_modeldeployments.yaml")
    )
    api_client = config.new_client_from_config(config_file=str(sandbox.kubeconfig))
    apps, core, custom = client.AppsV1Api(api_client), client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)
    stamp = int(time.time())
    ns_floor, ns_md = f"bench-floor-{stamp}", f"bench-md-{stamp}"
    for ns in (ns_floor, ns_md):
        core.create_namespace({"metadata": {"name": ns}})
    time.sleep(2)  # the default ServiceAccount

    log = Path(tempfile.mkdtemp()) / "operator.log"
    os.environ["MODELDEPLOY_RESYNC_SECONDS"] = str(args.resync)
    operator = start_operator(sandbox.kubeconfig, log)
    try:
        # floor: plain Deployments
        done: dict[str, float] = {}
        thread = follow(apps.list_namespaced_deployment, (ns_floor,), done, deployment_available, args.count)
        created: dict[str, float] = {}
        for i in range(args.count):
            name = f"d{i}"
            body = {
                "metadata": {"name": name},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "c", "image": "registry.invalid/x:1"}]},
                    },
                },
            }
            created[name] = time.monotonic()
            apps.create_namespaced_deployment(ns_floor, body)
        thread.join(timeout=600)
        floor = [done[n] - created[n] for n in created if n in done]

        # modeldeploy
        done_md: dict[str, float] = {}
        thread = follow(
            custom.list_namespaced_custom_object,
            ("modeldeploy.io", "v1alpha1", ns_md, "modeldeployments"),
            done_md,
            md_ready,
            args.count,
        )
        created_md: dict[str, float] = {}
        for i in range(args.count):
            name = f"m{i}"
            body = model_deployment(name)
            created_md[name] = time.monotonic()
            custom.create_namespaced_custom_object("modeldeploy.io", "v1alpha1", ns_md, "modeldeployments", body)
        thread.join(timeout=600)
        ours = [done_md[n] - created_md[n] for n in created_md if n in done_md]

        time.sleep(3)
        before = writes(sandbox)
        time.sleep(args.resync * 2 + 1)
        resync_writes = writes(sandbox) - before
        memory = rss_mib(operator.process.pid)
    finally:
        stop_operator(operator)
        for ns in (ns_floor, ns_md):
            core.delete_namespace(ns)

    print(f"\nN = {args.count} objects, 1 replica each, one sandbox (Kubernetes v1.37.2 + kwok), 2 cores")
    print(f"  floor (plain Deployment -> available): {len(floor)}/{args.count} converged   {summary(floor)}")
    print(f"  ModelDeployment -> Ready (probed):     {len(ours)}/{args.count} converged   {summary(ours)}")
    print(
        f"  ratio (p50 ours / p50 floor): {percentile(ours, 0.5) / percentile(floor, 0.5):.2f}x   "
        f"(p95: {percentile(ours, 0.95) / percentile(floor, 0.95):.2f}x)"
    )
    print(f"  operator RSS, idle after converging {args.count} ModelDeployments: {memory:.1f} MiB")
    print(f"  API writes during two resyncs of {args.count} converged ModelDeployments: {resync_writes:.0f}")
    result = {"count": args.count, "floor": floor, "ours": ours, "rss_mib": memory, "resync_writes": resync_writes}
    (Path(tempfile.gettempdir()) / "reconcile_benchmark.json").write_text(json.dumps(result))
    return 0 if len(ours) == args.count and resync_writes == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
