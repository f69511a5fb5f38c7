"""The operator against the floor at N = 100, 300, 1,000, in one sandbox and one run.

The floor is a bare async client (httpx, 16 requests in flight) creating the same N Deployments
and N Services the operator renders (its own render functions, owner references dropped), timed
from the first create to the last Deployment available. The operator's side is N
ModelDeployments created by the same client the same way, timed to the last Ready=True (rollout
finished and every replica probed through the sandbox's replica farm). Per N it prints, with
the ratio to the floor (or to the team's target where there is no floor):

  first create -> last Ready; per-object p50 / p95; operator requests per object by verb (writes
  from the apiserver's audit log, all verbs from the operator's own counter); kube-apiserver CPU
  and operator CPU per object (utime + stime from /proc); idle RSS; writes over two resyncs of
  the converged set; writes of a restarted operator; spec edit -> Deployment template latency
  against a bare PATCH of a plain Deployment, both seen through a watch.

Once per run: RSS over a churn of create / edit / delete at the largest N, and one probe round
over 2,000 replicas against bare httpx (benchmarks/probe_benchmark.py). Figures only, no
verdicts; the machine is shared, the ratios are what one run makes comparable.

    MODELDEPLOY_SANDBOX_DIR=/tmp/sb-bench MODELDEPLOY_SANDBOX_NET=41 \\
        .venv/bin/python benchmarks/scale_benchmark.py --counts 100,300,1000 --churn-minutes 15
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import json
import math
import os
import platform
import random
import shlex
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import probe_benchmark  # noqa: E402
from _common import (  # noqa: E402
    Obj,
    cpu_seconds,
    deployment_available,
    md_ready,
    model_deployment,
    percentile,
    rss_mib,
)
from tests.conftest import CRD_FILE, OperatorProcess, reconciles_by_result, start_operator, stop_operator  # noqa: E402
from tests.faults.meters import WRITE_VERBS, AuditEntry, AuditLog  # noqa: E402

from modeldeploy.api.v1alpha1 import ModelDeploymentSpec  # noqa: E402
from modeldeploy.render.children import Owner, render_children  # noqa: E402
from modeldeploy.render.names import child_name  # noqa: E402
from modeldeploy_dev.sandbox.cluster import APISERVER, Sandbox, _node_manifest, loopback_net  # noqa: E402

MD_PATH = "/apis/modeldeploy.io/v1alpha1/namespaces/{ns}/modeldeployments"
DEPLOY_PATH = "/apis/apps/v1/namespaces/{ns}/deployments"
SERVICE_PATH = "/api/v1/namespaces/{ns}/services"
APPLY_TYPE = "application/apply-patch+yaml"
USER_AGENT = "scale-benchmark"  # not "modeldeploy...": the audit log tells the operator by its user agent
PODS_PER_NODE = 250  # a kwok node's podCIDR is a /24
EXTRA_NODE_BLOCK = 20  # extra nodes get 127.<net>.20.0/24, 127.<net>.21.0/24, ...
PROBE_BLOCK = 150  # the probe round's replicas live at 127.<net>.150.1 onwards


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- a bare async Kubernetes client ------------------------------------------------------------------


class Kube:
    """httpx against the sandbox apiserver with the admin token: the floor's client, and ours."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
        context = ssl.create_default_context(cafile=cluster["certificate-authority"])
        headers = {"Authorization": f"Bearer {user['token']}", "User-Agent": USER_AGENT}
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self.http = httpx.AsyncClient(
            base_url=cluster["server"], verify=context, headers=headers, timeout=60, limits=limits
        )
        self.watch_http = httpx.AsyncClient(
            base_url=cluster["server"], verify=context, headers=headers, timeout=httpx.Timeout(150, connect=10)
        )

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.watch_http.aclose()

    async def request(self, method: str, path: str, body: Obj | None = None, content_type: str = "") -> Obj:
        headers = {"Content-Type": content_type} if content_type else {}
        content = json.dumps(body).encode() if body is not None else None
        response = await self.http.request(method, path, content=content, headers=headers)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        result: Obj = response.json()
        return result

    async def create_all(self, jobs: list[tuple[str, str, Obj]], inflight: int) -> dict[str, float]:
        """POST every (key, path, body) with `inflight` requests in flight; key -> monotonic time sent."""
        sent: dict[str, float] = {}
        queue = iter(jobs)

        async def worker() -> None:
            for key, path, body in queue:
                sent[key] = time.monotonic()
                await self.request("POST", path, body)

        await asyncio.gather(*(worker() for _ in range(inflight)))
        return sent

    async def namespace(self, name: str) -> None:
        await self.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        for _ in range(100):  # the default ServiceAccount, which nothing here needs but pods wait for
            response = await self.http.get(f"/api/v1/namespaces/{name}/serviceaccounts/default")
            if response.status_code == 200:
                return
            await asyncio.sleep(0.1)

    async def delete_namespaces(self, names: list[str], seconds: float = 600) -> float:
        started = time.monotonic()
        for name in names:
            await self.http.delete(f"/api/v1/namespaces/{name}")
        for name in names:
            while time.monotonic() - started < seconds:
                if (await self.http.get(f"/api/v1/namespaces/{name}")).status_code == 404:
                    break
                await asyncio.sleep(1)
        return time.monotonic() - started


class Watch:
    """One list + watch of a collection: the latest object per name and when each first met `ready`."""

    def __init__(self, kube: Kube, path: str, ready: Callable[[Obj], bool] | None = None) -> None:
        self.kube, self.path, self.ready = kube, path, ready
        self.objects: dict[str, Obj] = {}
        self.ready_at: dict[str, float] = {}
        self._expected: list[tuple[str, Callable[[Obj], bool], asyncio.Future[float]]] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()

    async def __aenter__(self) -> Watch:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._synced.wait(), 60)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        version: str | None = None
        while True:
            try:
                if version is None:
                    page = await self.kube.request("GET", self.path)
                    for item in page["items"]:
                        self._see(item)
                    version = page["metadata"]["resourceVersion"]
                    self._synced.set()
                params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true"}
                params["timeoutSeconds"] = "120"
                async with self.kube.watch_http.stream("GET", self.path, params=params) as response:
                    async for line in response.aiter_lines():
                        if not line:
                            continue
                        event = json.loads(line)
                        if event["type"] == "ERROR":  # 410: too old, list again
                            version = None
                            break
                        obj = event["object"]
                        version = obj["metadata"]["resourceVersion"]
                        if event["type"] == "DELETED":
                            self.objects.pop(obj["metadata"]["name"], None)
                        elif event["type"] != "BOOKMARK":
                            self._see(obj)
            except (httpx.HTTPError, RuntimeError) as error:
                log(f"watch {self.path}: {error!r}; again")
                await asyncio.sleep(0.5)

    def _see(self, obj: Obj) -> None:
        now = time.monotonic()
        name = obj["metadata"]["name"]
        self.objects[name] = obj
        if self.ready is not None and name not in self.ready_at and self.ready(obj):
            self.ready_at[name] = now
        for expected in list(self._expected):
            want, predicate, future = expected
            if want == name and predicate(obj):
                self._expected.remove(expected)
                if not future.done():
                    future.set_result(now)
        self._changed.set()
        self._changed = asyncio.Event()

    def expect(self, name: str, predicate: Callable[[Obj], bool]) -> asyncio.Future[float]:
        """A future holding the monotonic time `name` is first seen meeting `predicate` from now on."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._expected.append((name, predicate, future))
        return future

    async def until(self, check: Callable[[], bool], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not check():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))
        return True


# ---- meters ---------------------------------------------------------------------------------------


@dataclass
class AuditMark:
    """A position in the audit log that survives one rotation (lumberjack renames, then starts anew)."""

    path: Path
    inode: int
    offset: int

    @classmethod
    def take(cls, path: Path) -> AuditMark:
        stat = path.stat()
        return cls(path, stat.st_ino, stat.st_size)

    def entries(self) -> list[AuditEntry]:
        if self.path.stat().st_ino == self.inode:
            return AuditLog(self.path).since(self.offset)
        rotated = [p for p in self.path.parent.glob("audit-*.log") if p.stat().st_ino == self.inode]
        older = AuditLog(rotated[0]).since(self.offset) if rotated else []
        if not rotated:
            log("audit log rotated and its backup is gone: counts from the new file only")
        return older + AuditLog(self.path).since(0)


def operator_writes(mark: AuditMark, namespaces: set[str] | None = None) -> Counter[str]:
    """The operator's write requests since `mark`, as `verb resource[/sub]` -> count."""
    counts: Counter[str] = Counter()
    for entry in mark.entries():
        if entry.by_operator and entry.verb in WRITE_VERBS and (namespaces is None or entry.namespace in namespaces):
            counts[f"{entry.verb} {entry.resource}{'/' + entry.subresource if entry.subresource else ''}"] += 1
    return counts


def operator_requests(operator: OperatorProcess) -> Counter[str]:
    """`modeldeploy_api_requests_total` summed over codes: `VERB resource` -> count."""
    with urllib.request.urlopen(operator.metrics_url, timeout=5) as response:
        text = response.read().decode()
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name == "modeldeploy_api_requests":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[f"{sample.labels['verb']} {sample.labels['resource']}"] += int(sample.value)
    return counts


def delta(after: Counter[str], before: Counter[str]) -> Counter[str]:
    return Counter({k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)})


def per_object(counts: Counter[str], n: int) -> dict[str, float]:
    return {k: round(v / n, 2) for k, v in sorted(counts.items())}


def by_verb(counts: Counter[str]) -> Counter[str]:
    verbs: Counter[str] = Counter()
    for key, value in counts.items():
        verbs[key.split()[0]] += value
    return verbs


def ratio(ours: float | None, floor: float | None) -> float | None:
    if ours is None or floor is None or floor == 0 or math.isnan(floor) or math.isnan(ours):
        return None
    return round(ours / floor, 2)


def stats(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"p50_s": math.nan, "p95_s": math.nan, "max_s": math.nan}
    return {
        "p50_s": round(percentile(latencies, 0.5), 3),
        "p95_s": round(percentile(latencies, 0.95), 3),
        "max_s": round(max(latencies), 3),
    }


def env_version(obj: Obj) -> str | None:
    for container in obj["spec"]["template"]["spec"]["containers"]:
        for env in container.get("env", []):
            if env["name"] == "MODEL_VERSION":
                return str(env.get("value"))
    return None


# ---- the run ----------------------------------------------------------------------------------------


@dataclass
class Context:
    sandbox: Sandbox
    kube: Kube
    args: argparse.Namespace
    workdir: Path
    stamp: str
    apiserver_pid: int
    results: dict[str, Any] = field(default_factory=dict)

    def start_operator(self, label: str) -> OperatorProcess:
        # the snapshot taken at the start: the working tree may change under a long run
        env = {"MODELDEPLOY_RESYNC_SECONDS": str(self.args.resync), "PYTHONPATH": str(self.workdir / "operator-src")}
        operator = start_operator(self.sandbox.kubeconfig, self.workdir / f"operator-{label}.log", env)
        log(f"operator {label} started (pid {operator.process.pid})")
        return operator


def rendered_children(namespace: str, name: str) -> tuple[Obj, Obj]:
    """The Deployment and Service the operator renders for `model_deployment(name)`, without owner."""
    spec = ModelDeploymentSpec.model_validate(model_deployment(name)["spec"])
    children = render_children(Owner(name, namespace, "00000000-0000-0000-0000-000000000000"), spec)
    for child in (children.deployment, children.service):
        child["metadata"].pop("ownerReferences", None)
    return children.deployment, children.service


async def floor_run(ctx: Context, n: int) -> dict[str, Any]:
    ns = f"bench-floor-{n}-{ctx.stamp}"
    await ctx.kube.namespace(ns)
    jobs: list[tuple[str, str, Obj]] = []
    for i in range(n):
        deployment, service = rendered_children(ns, f"m{i}")
        jobs.append((deployment["metadata"]["name"], DEPLOY_PATH.format(ns=ns), deployment))
        jobs.append((f"svc/{service['metadata']['name']}", SERVICE_PATH.format(ns=ns), service))
    async with Watch(ctx.kube, DEPLOY_PATH.format(ns=ns), deployment_available) as watch:
        cpu_api, cpu_self = cpu_seconds(ctx.apiserver_pid), time.process_time()
        sent = await ctx.kube.create_all(jobs, ctx.args.inflight)
        await watch.until(lambda: len(watch.ready_at) >= n, 120 + 2 * n)
        cpu_api, cpu_self = cpu_seconds(ctx.apiserver_pid) - cpu_api, time.process_time() - cpu_self
    latencies = [watch.ready_at[k] - sent[k] for k in watch.ready_at if k in sent]
    span = max(watch.ready_at.values()) - min(sent.values()) if watch.ready_at else math.nan
    log(f"floor N={n}: {len(latencies)}/{n} available, first create -> last available {span:.1f}s")
    deleted = await ctx.kube.delete_namespaces([ns])
    log(f"floor namespace deleted in {deleted:.0f}s")
    return {
        "converged": len(latencies),
        "first_to_last_s": round(span, 3),
        **stats(latencies),
        "requests_per_object": {"POST deployments": 1.0, "POST services": 1.0},
        "apiserver_cpu_ms_per_object": round(1000 * cpu_api / n, 2),
        "client_cpu_ms_per_object": round(1000 * cpu_self / n, 2),
    }


async def least_operator_run(ctx: Context, n: int) -> dict[str, Any]:
    """The requests no operator can skip, made by the bare client: a second floor, closer to ours.

    Per object: the user's ModelDeployment POST; once it returns, server-side applies of the
    Deployment and Service as the operator renders them (owned by it, so the garbage collector
    tracks them as it does ours), concurrently; once the Deployment is available, one status
    PATCH saying Ready. No watch of ModelDeployments or Pods, no probe, no cache: a lower bound
    for any operator that writes a Ready condition, measured like the others.
    """
    ns = f"bench-least-{n}-{ctx.stamp}"
    await ctx.kube.namespace(ns)
    md_path, deploy_path, service_path = (p.format(ns=ns) for p in (MD_PATH, DEPLOY_PATH, SERVICE_PATH))
    apply = "?fieldManager=modeldeploy&force=true"
    spec = ModelDeploymentSpec.model_validate(model_deployment("m0")["spec"])
    sent: dict[str, float] = {}
    done: dict[str, float] = {}
    pending: asyncio.Queue[str] = asyncio.Queue()
    queued: set[str] = set()

    async def create(names: Iterator[str]) -> None:
        for name in names:
            sent[name] = time.monotonic()
            created = await ctx.kube.request("POST", md_path, model_deployment(name))
            children = render_children(Owner(name, ns, created["metadata"]["uid"]), spec)
            await asyncio.gather(
                *(
                    ctx.kube.request("PATCH", f"{path}/{child['metadata']['name']}{apply}", child, APPLY_TYPE)
                    for path, child in ((deploy_path, children.deployment), (service_path, children.service))
                )
            )

    async def mark_ready() -> None:
        while True:
            name = await pending.get()
            status = {
                "status": {
                    "observedGeneration": 1,
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "Available",
                            "message": "",
                            "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        }
                    ],
                }
            }
            await ctx.kube.request("PATCH", f"{md_path}/{name}/status", status, "application/merge-patch+json")
            done[name] = time.monotonic()

    async with Watch(ctx.kube, deploy_path, deployment_available) as watch:
        cpu_api, cpu_self = cpu_seconds(ctx.apiserver_pid), time.process_time()
        markers = [asyncio.create_task(mark_ready()) for _ in range(ctx.args.inflight)]
        names = iter(f"m{i}" for i in range(n))
        creators = asyncio.gather(*(create(names) for _ in range(ctx.args.inflight)))

        def feed() -> bool:
            for name in watch.ready_at:
                if name not in queued:
                    queued.add(name)
                    pending.put_nowait(name)
            return len(done) >= n

        await watch.until(feed, 120 + 2 * n)
        await creators
        for task in markers:
            task.cancel()
        cpu_api, cpu_self = cpu_seconds(ctx.apiserver_pid) - cpu_api, time.process_time() - cpu_self
    latencies = [done[k] - sent[k] for k in done]
    span = max(done.values()) - min(sent.values()) if done else math.nan
    log(f"least operator N={n}: {len(latencies)}/{n} Ready, first create -> last Ready {span:.1f}s")
    deleted = await ctx.kube.delete_namespaces([ns])
    log(f"least-operator namespace deleted in {deleted:.0f}s")
    return {
        "converged": len(latencies),
        "first_to_last_s": round(span, 3),
        **stats(latencies),
        "requests_per_object": {
            "POST modeldeployments": 1.0,
            "APPLY deployments": 1.0,
            "APPLY services": 1.0,
            "PATCH modeldeployments/status": 1.0,
        },
        "apiserver_cpu_ms_per_object": round(1000 * cpu_api / n, 2),
        "client_cpu_ms_per_object": round(1000 * cpu_self / n, 2),
    }


async def operator_run(ctx: Context, n: int, result: dict[str, Any], last: bool) -> None:
    """Fills `result` as it goes: whatever was measured before a failure stays."""
    ns, edit_ns = f"bench-md-{n}-{ctx.stamp}", f"bench-edit-{n}-{ctx.stamp}"
    await ctx.kube.namespace(ns)
    first = ctx.start_operator(f"{n}-first")
    operator = first
    try:
        await asyncio.sleep(3)  # past its startup lists
        jobs = [(f"m{i}", MD_PATH.format(ns=ns), model_deployment(f"m{i}")) for i in range(n)]
        async with Watch(ctx.kube, MD_PATH.format(ns=ns), md_ready) as watch:
            mark = AuditMark.take(ctx.sandbox.audit_log())
            counted = await asyncio.to_thread(operator_requests, first)
            cpu_api, cpu_op = cpu_seconds(ctx.apiserver_pid), cpu_seconds(first.process.pid)
            sent = await ctx.kube.create_all(jobs, ctx.args.inflight)
            await watch.until(lambda: len(watch.ready_at) >= n, 120 + 2 * n)
            cpu_api, cpu_op = cpu_seconds(ctx.apiserver_pid) - cpu_api, cpu_seconds(first.process.pid) - cpu_op
            counted = delta(await asyncio.to_thread(operator_requests, first), counted)
        latencies = [watch.ready_at[k] - sent[k] for k in watch.ready_at if k in sent]
        span = max(watch.ready_at.values()) - min(sent.values()) if watch.ready_at else math.nan
        log(f"operator N={n}: {len(latencies)}/{n} Ready, first create -> last Ready {span:.1f}s")
        writes = operator_writes(mark, {ns})
        result.update(
            converged=len(latencies),
            first_to_last_s=round(span, 3),
            **stats(latencies),
            audit_writes_per_object=per_object(writes, n),
            audit_writes_per_object_by_verb=per_object(by_verb(writes), n),
            audit_writes_per_object_total=round(sum(writes.values()) / n, 2),
            requests_per_object=per_object(counted, n),
            requests_per_object_by_verb=per_object(by_verb(counted), n),
            requests_per_object_total=round(sum(counted.values()) / n, 2),
            apiserver_cpu_ms_per_object=round(1000 * cpu_api / n, 2),
            operator_cpu_ms_per_object=round(1000 * cpu_op / n, 2),
        )

        await asyncio.sleep(5)
        result["idle_rss_mib"] = round(rss_mib(first.process.pid), 1)
        mark = AuditMark.take(ctx.sandbox.audit_log())
        counted = await asyncio.to_thread(operator_requests, first)
        await asyncio.sleep(2 * ctx.args.resync + 1)
        resync = operator_writes(mark)
        counted = delta(await asyncio.to_thread(operator_requests, first), counted)
        result["resync_writes"] = sum(resync.values())
        result["resync_writes_detail"] = dict(resync)
        result["resync_requests_counter"] = dict(counted)
        log(f"N={n}: idle RSS {result['idle_rss_mib']} MiB, {result['resync_writes']} writes over two resyncs")

        stop_operator(first)
        mark = AuditMark.take(ctx.sandbox.audit_log())
        restarted = time.monotonic()
        operator = await asyncio.to_thread(ctx.start_operator, f"{n}-second")
        deadline = time.monotonic() + 120 + n
        while time.monotonic() < deadline:
            if sum((await asyncio.to_thread(reconciles_by_result, operator)).values()) >= n:
                break
            await asyncio.sleep(0.5)
        result["restart_reconciled_all_s"] = round(time.monotonic() - restarted, 2)
        await asyncio.sleep(2 * ctx.args.resync + 1)
        restart = operator_writes(mark)
        result["restart_writes"] = sum(restart.values())
        result["restart_writes_detail"] = dict(restart)
        log(
            f"N={n}: restart reconciled all in {result['restart_reconciled_all_s']}s, {result['restart_writes']} writes"
        )

        result["spec_edit"] = await spec_edits(ctx, ns, edit_ns, min(n, ctx.args.edits))
        if last and ctx.args.churn_minutes > 0:
            result["churn"] = await churn(ctx, operator, ctx.args.churn_minutes)
    finally:
        stop_operator(operator)
        if operator is not first:
            stop_operator(first)
        deleted = await ctx.kube.delete_namespaces([ns, edit_ns, f"bench-churn-{ctx.stamp}"])
        log(f"namespaces of N={n} deleted in {deleted:.0f}s")


async def spec_edits(ctx: Context, ns: str, edit_ns: str, k: int) -> dict[str, Any]:
    """Edit spec.model.version of k ModelDeployments, one at a time, each followed by a bare PATCH."""
    await ctx.kube.namespace(edit_ns)
    bare = []
    for i in range(k):
        deployment, _ = rendered_children(edit_ns, f"b{i}")
        for labels in (deployment["metadata"]["labels"], deployment["spec"]["template"]["metadata"]["labels"]):
            labels["app.kubernetes.io/managed-by"] = USER_AGENT  # neither the farm's nor the operator's
        bare.append((deployment["metadata"]["name"], DEPLOY_PATH.format(ns=edit_ns), deployment))
    await ctx.kube.create_all(bare, ctx.args.inflight)
    ours: list[float] = []
    floor: list[float] = []
    timeouts: Counter[str] = Counter()
    async with (
        Watch(ctx.kube, DEPLOY_PATH.format(ns=ns)) as children,
        Watch(ctx.kube, DEPLOY_PATH.format(ns=edit_ns), deployment_available) as plain,
    ):
        await plain.until(lambda: len(plain.ready_at) >= k, 120)
        for i in range(k):
            version = f"1.1.{i}"
            seen = children.expect(child_name(f"m{i}"), lambda obj, v=version: env_version(obj) == v)  # type: ignore[misc]
            started = time.monotonic()
            await ctx.kube.request(
                "PATCH",
                f"{MD_PATH.format(ns=ns)}/m{i}",
                {"spec": {"model": {"version": version}}},
                "application/merge-patch+json",
            )
            try:
                ours.append(await asyncio.wait_for(seen, ctx.args.edit_timeout) - started)
            except TimeoutError:
                log(f"spec edit of m{i} not in its Deployment after {ctx.args.edit_timeout:g}s")
                timeouts["operator"] += 1
                continue
            name = bare[i][0]
            seen = plain.expect(name, lambda obj, v=version: env_version(obj) == v)  # type: ignore[misc]
            started = time.monotonic()
            patch = {"spec": {"template": {"spec": {"containers": [{"name": "model-server", "env": [
                {"name": "MODEL_VERSION", "value": version}]}]}}}}  # fmt: skip
            await ctx.kube.request(
                "PATCH", f"{DEPLOY_PATH.format(ns=edit_ns)}/{name}", patch, "application/strategic-merge-patch+json"
            )
            try:
                floor.append(await asyncio.wait_for(seen, ctx.args.edit_timeout) - started)
            except TimeoutError:
                timeouts["bare_patch"] += 1
            await asyncio.sleep(0.5)
    log(f"spec edits: ours {stats(ours)}, bare PATCH {stats(floor)}, not seen in time: {dict(timeouts)}")
    return {"edits": k, "operator": stats(ours), "bare_patch": stats(floor), "timeouts": dict(timeouts)}


async def churn(ctx: Context, operator: OperatorProcess, minutes: float) -> dict[str, Any]:
    """Create, edit and delete ModelDeployments for `minutes` beside the converged N; sample RSS."""
    ns = f"bench-churn-{ctx.stamp}"
    await ctx.kube.namespace(ns)
    path = MD_PATH.format(ns=ns)
    rng = random.Random(7)
    pool: list[str] = []
    samples: list[tuple[float, float]] = []
    operations: Counter[str] = Counter()
    started = time.monotonic()
    next_sample, serial = started, 0
    log(f"churn for {minutes} minutes")
    while (now := time.monotonic()) - started < minutes * 60:
        if now >= next_sample:
            samples.append((round(now - started, 1), round(rss_mib(operator.process.pid), 1)))
            next_sample += 10
        for _ in range(3):
            pool.append(f"c{serial}")
            await ctx.kube.request("POST", path, model_deployment(f"c{serial}"))
            serial += 1
            operations["create"] += 1
        for name in rng.sample(pool, min(3, len(pool))):
            version = f"2.0.{rng.randrange(1000)}"
            body = {"spec": {"model": {"version": version}}}
            await ctx.kube.request("PATCH", f"{path}/{name}", body, "application/merge-patch+json")
            operations["edit"] += 1
        while len(pool) > 30:
            await ctx.kube.http.delete(f"{path}/{pool.pop(0)}")
            operations["delete"] += 1
        await asyncio.sleep(3)
    samples.append((round(time.monotonic() - started, 1), round(rss_mib(operator.process.pid), 1)))
    after_minute = min(samples, key=lambda s: abs(s[0] - 60))[1]
    result = {
        "minutes": minutes,
        "operations": dict(operations),
        "rss_after_1_min_mib": after_minute,
        "rss_at_end_mib": samples[-1][1],
        "rss_max_mib": max(s[1] for s in samples),
        "samples": samples,
    }
    log(f"churn: RSS {after_minute} MiB after 1 min, {samples[-1][1]} MiB at the end")
    return result


async def run_sandbox_part(ctx: Context) -> None:
    for index, n in enumerate(ctx.args.counts):
        log(f"=== N = {n}")
        entry: dict[str, Any] = {"operator": {}}
        ctx.results.setdefault("counts", {})[str(n)] = entry
        entry["floor"] = await floor_run(ctx, n)
        if ctx.args.least_operator:
            entry["least_operator"] = await least_operator_run(ctx, n)
        await operator_run(ctx, n, entry["operator"], last=index == len(ctx.args.counts) - 1)


def ensure_nodes(sandbox: Sandbox, pods: int) -> int:
    """Enough kwok nodes (a /24 of pod IPs each) for `pods` pods, spread at random, with room."""
    wanted = max(3, math.ceil(2.5 * pods / PODS_PER_NODE))
    documents = []
    for j in range(wanted - 3):
        node = _node_manifest(j)
        cidr = f"127.{loopback_net()}.{EXTRA_NODE_BLOCK + j}.0/24"
        name = f"kwok-node-bench-{j}"
        node["metadata"]["name"] = name  # type: ignore[index]
        node["metadata"]["labels"]["kubernetes.io/hostname"] = name  # type: ignore[index]
        node["spec"] = {"podCIDR": cidr, "podCIDRs": [cidr]}
        documents.append(json.dumps(node))
    if documents:
        sandbox.kubectl(
            "apply", "--server-side", "--field-manager=scale-benchmark", "-f", "-", input="\n".join(documents)
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        nodes = json.loads(sandbox.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        ready = [
            n
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True" for c in (n.get("status") or {}).get("conditions") or []
            )
        ]  # a node kwok has not taken up yet has no conditions
        if len(ready) >= wanted:
            return len(ready)
        time.sleep(1)
    raise RuntimeError(f"fewer than {wanted} Ready nodes")


def machine() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.rstrip()

    meminfo = Path("/proc/meminfo").read_text().split("\n")[0].split()
    model = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
    dirty = git("status", "--porcelain", "--untracked-files=no").splitlines()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": [line[3:] for line in dirty],
        # the operator under test runs from the working tree: which uncommitted state of it, exactly
        "operator_diff_sha256": hashlib.sha256(git("diff", "HEAD", "--", "operator").encode()).hexdigest()[:12],
        "nproc": os.cpu_count(),
        "mem_gib": round(int(meminfo[1]) / 1024 / 1024, 1),
        "cpu": model[0].split(":", 1)[1].strip() if model else platform.processor(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
    }


def fmt(value: Any, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}{unit}" if abs(value) < 100 else f"{value:.0f}{unit}"
    return f"{value}{unit}"


def rows(results: dict[str, Any], args: argparse.Namespace) -> list[tuple[str, str, str, str, str]]:
    """(metric, N, floor, operator, ratio) for the table."""
    table: list[tuple[str, str, str, str, str]] = []
    for n, both in results.get("counts", {}).items():
        f, o = both.get("floor") or {}, both.get("operator") or {}

        def add(metric: str, floor: Any, ours: Any, r: Any, unit: str = "", n: str = n) -> None:
            table.append((metric, n, fmt(floor, unit), fmt(ours, unit), f"{r:.2f}x" if isinstance(r, float) else r))

        add("converged / N", f.get("converged"), o.get("converged"), "", "")
        add(
            "first create -> last Ready",
            f.get("first_to_last_s"),
            o.get("first_to_last_s"),
            ratio(o.get("first_to_last_s"), f.get("first_to_last_s")),
            " s",
        )
        add("per-object p50", f.get("p50_s"), o.get("p50_s"), ratio(o.get("p50_s"), f.get("p50_s")), " s")
        add("per-object p95", f.get("p95_s"), o.get("p95_s"), ratio(o.get("p95_s"), f.get("p95_s")), " s")
        add(
            "per-object p95 vs floor's first->last",
            f.get("first_to_last_s"),
            o.get("p95_s"),
            ratio(o.get("p95_s"), f.get("first_to_last_s")),
            " s",
        )
        least = both.get("least_operator")
        if least:
            for what, key in (("first create -> last Ready", "first_to_last_s"), ("per-object p95", "p95_s")):
                add(
                    f"{what}, vs the least operator (floor column)",
                    least.get(key),
                    o.get(key),
                    ratio(o.get(key), least.get(key)),
                    " s",
                )
            add(
                "  least operator vs floor (operator column: least operator)",
                f.get("first_to_last_s"),
                least.get("first_to_last_s"),
                ratio(least.get("first_to_last_s"), f.get("first_to_last_s")),
                " s",
            )
            add(
                "  least operator's kube-apiserver CPU / object (vs floor)",
                f.get("apiserver_cpu_ms_per_object"),
                least.get("apiserver_cpu_ms_per_object"),
                ratio(least.get("apiserver_cpu_ms_per_object"), f.get("apiserver_cpu_ms_per_object")),
                " ms",
            )
        if "requests_per_object_total" in o:
            for what, counted in (
                ("operator writes / object, audit log", "audit_writes_per_object"),
                ("operator requests / object, all verbs, own counter", "requests_per_object"),
            ):
                verbs = ", ".join(f"{k} {v}" for k, v in o[f"{counted}_by_verb"].items())
                total = o[f"{counted}_total"]
                add(f"{what} ({verbs})", 2.0, total, ratio(total, 2.0))  # the floor: 2 POSTs per object
            total = o["requests_per_object_total"]
            add("  same, vs target 4 (floor column: target)", 4.0, total, ratio(total, 4.0))
            add(
                "kube-apiserver CPU / object",
                f.get("apiserver_cpu_ms_per_object"),
                o["apiserver_cpu_ms_per_object"],
                ratio(o["apiserver_cpu_ms_per_object"], f.get("apiserver_cpu_ms_per_object")),
                " ms",
            )
            add(
                "operator CPU / object (floor: client process)",
                f.get("client_cpu_ms_per_object"),
                o["operator_cpu_ms_per_object"],
                ratio(o["operator_cpu_ms_per_object"], f.get("client_cpu_ms_per_object")),
                " ms",
            )
        if "idle_rss_mib" in o:
            add("idle RSS (floor column: target)", 150.0, o["idle_rss_mib"], ratio(o["idle_rss_mib"], 150.0), " MiB")
            add(f"resync writes (2 x {args.resync:g} s)", 0, o["resync_writes"], "")
        if "restart_writes" in o:
            add("restart writes (all reconciled + 2 resyncs)", 0, o["restart_writes"], "")
        if "spec_edit" in o:
            e = o["spec_edit"]
            add(
                f"spec edit -> Deployment p50 (vs bare PATCH, {e['edits']} edits)",
                e["bare_patch"]["p50_s"],
                e["operator"]["p50_s"],
                ratio(e["operator"]["p50_s"], e["bare_patch"]["p50_s"]),
                " s",
            )
            add(
                "spec edit -> Deployment max (vs bare PATCH)",
                e["bare_patch"]["max_s"],
                e["operator"]["max_s"],
                ratio(e["operator"]["max_s"], e["bare_patch"]["max_s"]),
                " s",
            )
        if o.get("spec_edit", {}).get("timeouts"):
            timeouts = o["spec_edit"]["timeouts"]
            add("spec edits not seen in time", timeouts.get("bare_patch", 0), timeouts.get("operator", 0), "")
        if "churn" in o:
            c = o["churn"]
            add(
                f"RSS over {c['minutes']:g} min churn: end vs after 1 min",
                c["rss_after_1_min_mib"],
                c["rss_at_end_mib"],
                ratio(c["rss_at_end_mib"], c["rss_after_1_min_mib"]),
                " MiB",
            )
    probe = results.get("probe_round")
    if probe:
        bare = probe["bare_client_per_replica"]["median_s"]
        table.append(
            (
                "probe round, 2,000 replicas (floor: bare httpx, client per replica)",
                "-",
                fmt(bare, " s"),
                fmt(probe["prober"]["median_s"], " s"),
                f"{probe['prober']['median_s'] / bare:.2f}x",
            )
        )
    return table


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    m = results["machine"]
    lines = [
        f"date {m['date']}; operator diff sha256 {m['operator_diff_sha256']}; commit {m['commit']}{' + uncommitted changes in ' + ', '.join(m['dirty']) if m['dirty'] else ' (clean)'}",  # noqa: E501
        f"machine: {m['nproc']} cores ({m['cpu']}), {m['mem_gib']} GiB, load at start {m['loadavg_at_start']}",
        f"command: {m['command']}",
        *([f"FAILED: {results['error']} (figures below are those measured before)"] if "error" in results else []),
        "floor: httpx.AsyncClient, 16 requests in flight, N Deployments + N Services as the operator renders them",
        "",
        "| metric | N | floor | operator | ratio |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(row)} |" for row in rows(results, args)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="100,300,1000", help="comma-separated N")
    parser.add_argument("--churn-minutes", type=float, default=15.0, help="0 skips the churn")
    parser.add_argument("--skip-probe-round", action="store_true")
    parser.add_argument(
        "--no-least-operator",
        dest="least_operator",
        action="store_false",
        help="skip the second floor: the requests any operator must make, by a bare client",
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--resync", type=float, default=10.0, help="the operator's MODELDEPLOY_RESYNC_SECONDS")
    parser.add_argument("--inflight", type=int, default=16, help="requests in flight when creating")
    parser.add_argument("--edits", type=int, default=10, help="spec edits timed per N")
    parser.add_argument("--edit-timeout", type=float, default=120.0, help="seconds an edit may take to show")
    parser.add_argument("--probe-replicas", type=int, default=2000)
    parser.add_argument("--probe-cycles", type=int, default=3)
    args = parser.parse_args()
    args.counts = [int(c) for c in args.counts.split(",") if c.strip()]

    results: dict[str, Any] = {"machine": machine(), "args": {k: v for k, v in vars(args).items() if k != "json"}}
    sandbox = Sandbox()
    started_here = not sandbox.healthy()
    sandbox.up()
    try:
        sandbox.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
        sandbox.kubectl("wait", "--for=condition=Established", "crd/modeldeployments.modeldeploy.io", "--timeout=30s")
        results["nodes"] = ensure_nodes(sandbox, max(args.counts) + 60)
        state = sandbox.state()
        assert state is not None
        workdir = Path(tempfile.mkdtemp(prefix="scale-benchmark-"))
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / "operator" / "modeldeploy", workdir / "operator-src" / "modeldeploy", ignore=ignore)
        log(f"operator source snapshot and logs in {workdir}")

        async def sandbox_part() -> None:
            kube = Kube(sandbox.kubeconfig)
            ctx = Context(sandbox, kube, args, workdir, str(int(time.time())), state.pids[APISERVER], results)
            try:
                await run_sandbox_part(ctx)
            finally:
                await kube.aclose()

        asyncio.run(sandbox_part())
    except Exception as error:  # print what was measured before it
        log(f"run failed: {traceback.format_exc()}")
        results["error"] = repr(error)
    finally:
        if started_here and not os.environ.get("MODELDEPLOY_KEEP_SANDBOX"):
            sandbox.down()
    if not args.skip_probe_round:
        log(f"probe round over {args.probe_replicas} replicas")
        try:
            results["probe_round"] = probe_benchmark.run(
                args.probe_replicas, 256, args.probe_cycles, 10.0, ["per-replica"], loopback_net(), PROBE_BLOCK
            )
        except Exception as error:  # the sandbox figures are worth printing anyway
            log(f"probe round failed: {error!r}")
            results["probe_round_error"] = repr(error)
    text = report(results, args)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if "error" in results else 0


if __name__ == "__main__":
    sys.exit(main())
