"""The operator's Kubernetes client against lightkube, on the calls a reconcile makes.

Per object, with 16 in flight: server-side apply of a ModelDeployment, its Deployment and its
Service (as the operator renders them), a status write of the ModelDeployment, and a GET of
the Deployment: five requests either way. Each client runs `--rounds` times, alternating, in
a namespace of its own on the sandbox's apiserver; printed per client: wall time and the
benchmark process's CPU per object (median over rounds), and requests per object counted at
the apiserver by user agent in the audit log would be equal by construction, so they are
counted on the client side.

lightkube is not a dependency: run with it on the path, e.g.
`pip install --target /tmp/lk lightkube` then `PYTHONPATH=/tmp/lk python benchmarks/client_benchmark.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "devtools"), str(ROOT)]

from _common import model_deployment  # noqa: E402

from modeldeploy import kubeapi  # noqa: E402
from modeldeploy.api.v1alpha1 import ModelDeploymentSpec  # noqa: E402
from modeldeploy.render.children import Owner, render_children  # noqa: E402
from modeldeploy_dev.sandbox.cluster import Sandbox  # noqa: E402

Obj = dict[str, Any]
STATUS = {"observedGeneration": 1}


def objects(namespace: str, i: int) -> tuple[Obj, Obj, Obj]:
    md = model_deployment(f"m{i}")
    md["metadata"]["namespace"] = namespace
    spec = ModelDeploymentSpec.model_validate(md["spec"])
    children = render_children(Owner(f"m{i}", namespace, str(uuid.uuid4())), spec)
    for child in (children.deployment, children.service):
        child["metadata"].pop("ownerReferences")  # no owner: the garbage collector would delete them
    return md, children.deployment, children.service


async def ours(kubeconfig: Path, namespace: str, n: int, inflight: int) -> int:
    api = kubeapi.KubeClient(kubeapi.load_configuration(str(kubeconfig)), max_requests=64)
    requests = 0

    async def one(i: int) -> None:
        nonlocal requests
        md, deployment, service = objects(namespace, i)
        await api.apply(md)
        await asyncio.gather(api.apply(deployment), api.apply(service))
        await api.patch_status(kubeapi.MODEL_DEPLOYMENT, namespace, f"m{i}", STATUS)
        await api.get(kubeapi.DEPLOYMENT, namespace, deployment["metadata"]["name"])
        requests += 5

    await run_all(one, n, inflight)
    await api.aclose()
    return requests


async def lightkube_client(kubeconfig: Path, namespace: str, n: int, inflight: int) -> int:
    from lightkube import AsyncClient, KubeConfig  # type: ignore[import-not-found]
    from lightkube.generic_resource import create_namespaced_resource  # type: ignore[import-not-found]
    from lightkube.resources.apps_v1 import Deployment  # type: ignore[import-not-found]
    from lightkube.resources.core_v1 import Service  # type: ignore[import-not-found]

    model = create_namespaced_resource("modeldeploy.io", "v1alpha1", "ModelDeployment", "modeldeployments")
    client = AsyncClient(KubeConfig.from_file(str(kubeconfig)), field_manager=kubeapi.FIELD_MANAGER)
    requests = 0

    async def one(i: int) -> None:
        nonlocal requests
        md, deployment, service = objects(namespace, i)
        await client.apply(model.from_dict(md), force=True)
        await asyncio.gather(
            client.apply(Deployment.from_dict(deployment), force=True),
            client.apply(Service.from_dict(service), force=True),
        )
        await client.patch(
            model.Status,
            f"m{i}",
            [{"op": "add", "path": "/status", "value": STATUS}],
            namespace=namespace,
            patch_type=__import__("lightkube.types", fromlist=["PatchType"]).PatchType.JSON,
        )
        await client.get(Deployment, deployment["metadata"]["name"], namespace=namespace)
        requests += 5

    await run_all(one, n, inflight)
    await client.close()
    return requests


async def run_all(one: Callable[[int], Awaitable[None]], n: int, inflight: int) -> None:
    numbers = iter(range(n))

    async def worker() -> None:
        for i in numbers:
            await one(i)

    await asyncio.gather(*(worker() for _ in range(inflight)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inflight", type=int, default=16)
    args = parser.parse_args()
    sandbox = Sandbox()
    sandbox.up()
    sandbox.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    clients = {"kubeapi.KubeClient (ours)": ours, "lightkube.AsyncClient": lightkube_client}
    figures: dict[str, list[tuple[float, float, int]]] = {name: [] for name in clients}
    for round_ in range(args.rounds):
        for name, client in clients.items():
            namespace = f"client-bench-{uuid.uuid4().hex[:6]}"
            sandbox.kubectl("create", "namespace", namespace)
            cpu, wall = time.process_time(), time.perf_counter()
            requests = asyncio.run(client(sandbox.kubeconfig, namespace, args.n, args.inflight))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            figures[name].append((wall, cpu, requests))
            print(f"round {round_ + 1} {name}: {wall:.1f} s wall, {1000 * cpu / args.n:.1f} ms CPU/object", flush=True)
            sandbox.kubectl("delete", "namespace", namespace, "--wait=false")
    print(f"\nN = {args.n}, {args.inflight} in flight, median of {args.rounds} rounds")
    print("| client | wall | client CPU / object | requests / object |\n|---|---|---|---|")
    base = None
    for name, runs in figures.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs) * 1000 / args.n
        base = base or (wall, cpu)
        print(
            f"| {name} | {wall:.1f} s ({wall / base[0]:.2f}x) | {cpu:.1f} ms ({cpu / base[1]:.2f}x) "
            f"| {runs[0][2] / args.n:g} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
