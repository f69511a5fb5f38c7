"""Per-ModelDeployment probe loops: health, served version and data drift of every replica.

Each loop probes the Running pods of its Deployment (found through the pod watch cache,
addressed by `status.podIP` only), keeps per-replica failure counts and drift windows,
stores the results in the controller state and asks for a reconcile, which writes status
only when something meaningful changed. A change in the set of pods wakes the loop at once,
so a finished rollout is judged on the new replicas, not on the last round's old ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from modeldeploy import metrics
from modeldeploy.api.v1alpha1 import ModelDeploymentSpec, ReplicaHealth, ServerSpec
from modeldeploy.api.v1alpha1.drift import DriftSpec
from modeldeploy.controller.analysis import CanaryMemory, canary_pod_names, canary_queries, gather
from modeldeploy.controller.cache import Key
from modeldeploy.controller.state import ControllerState
from modeldeploy.drift.evaluate import Baseline, DriftResult, evaluate
from modeldeploy.drift.histograms import HistogramError
from modeldeploy.drift.report import DataDriftReport, drift_report, meaningfully_different
from modeldeploy.drift.window import SlidingWindow, observe_scrape
from modeldeploy.probing.metrics import MetricQuery, MetricsError
from modeldeploy.probing.prober import ReplicaProbe
from modeldeploy.probing.targets import CustomPaths, ProbeSettings, ProbeTarget, targets_from_pods
from modeldeploy.render.children import metrics_path, metrics_port
from modeldeploy.render.names import child_name
from modeldeploy.render.runtime import RuntimeProblem, explicit_server
from modeldeploy.status.compute import HealthReport
from modeldeploy.status.health import ReplicaMemory, memory_from_status, track

log = logging.getLogger("modeldeploy.probes")
MIN_POKE_INTERVAL = 1.0


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class DriftMemory:
    windows: dict[MetricQuery, SlidingWindow] = field(default_factory=dict)
    drifted: dict[MetricQuery, bool] = field(default_factory=dict)
    signature: tuple[Any, ...] = ()


@dataclass
class LoopState:
    key: Key
    child: str
    task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    replicas: dict[str, ReplicaMemory] = field(default_factory=dict)
    drift: DriftMemory = field(default_factory=DriftMemory)
    last_poke: float = 0.0
    starting_rounds: int = 0
    canary: CanaryMemory | None = None


def probe_settings(spec: ModelDeploymentSpec, runtime: ServerSpec) -> ProbeSettings:
    return ProbeSettings(
        port=runtime.port,
        model_name=spec.model.name,
        protocol=runtime.protocol,
        expected_version=spec.model.version,
        metrics_port=metrics_port(runtime),
        metrics_path=metrics_path(runtime),
        custom_paths=CustomPaths(
            health=runtime.health_path,
            readiness=runtime.readiness_path,
            metadata=runtime.metadata_path,
            version=runtime.version_path,
        ),
    )


def drift_queries(spec: ModelDeploymentSpec) -> list[tuple[MetricQuery, Baseline]]:
    if spec.drift is None:
        return []
    return [
        (MetricQuery.of(m.name, dict(m.labels or {})), Baseline.of(m.baseline.bounds, m.baseline.proportions))
        for m in spec.drift.metrics
    ]


class ReplicaProber(Protocol):
    """What the loops need of the prober: one round over some targets (the seam the table tests use)."""

    async def probe_replicas(
        self,
        targets: Sequence[ProbeTarget],
        *,
        request_timeout: float | None = None,
        deadline: float | None = None,
        metrics: Sequence[MetricQuery] = (),
    ) -> list[ReplicaProbe]: ...


class ProbeManager:
    def __init__(self, state: ControllerState, prober: ReplicaProber, on_result: Callable[[Key], None]) -> None:
        self.state = state
        self.prober = prober
        self.on_result = on_result
        self.loops: dict[Key, LoopState] = {}
        self._by_child: dict[tuple[str, str], Key] = {}

    # ---- lifecycle, driven by the reconciler -----------------------------------------------
    def ensure(self, key: Key, spec: ModelDeploymentSpec) -> None:
        if not spec.probing.enabled:
            self.stop(key)
            return
        loop = self.loops.get(key)
        if loop is None:
            loop = LoopState(key, child_name(key[1]))
            self.loops[key] = loop
            self._by_child[(key[0], loop.child)] = key
        if loop.task is None or loop.task.done():
            loop.task = asyncio.create_task(self._run(loop), name=f"probe-{key[0]}/{key[1]}")

    def stop(self, key: Key) -> None:
        loop = self.loops.pop(key, None)
        if loop is None:
            return
        self._by_child.pop((key[0], loop.child), None)
        if loop.task is not None:
            loop.task.cancel()
        self.state.health.pop(key, None)
        self.state.data_drift.pop(key, None)

    def running(self, key: Key) -> bool:
        """Whether `key` has a live probe loop (False also when probing is off: nothing to restart)."""
        loop = self.loops.get(key)
        return loop is not None and loop.task is not None and not loop.task.done()

    def poke_pods_of(self, namespace: str, child: str | None) -> None:
        """The pods of `child` changed: probe them soon (at most once a second)."""
        key = self._by_child.get((namespace, child or ""))
        loop = self.loops.get(key) if key else None
        if loop is not None:
            loop.wake.set()

    async def close(self) -> None:
        tasks = [loop.task for loop in self.loops.values() if loop.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.loops.clear()

    # ---- the loop ---------------------------------------------------------------------------
    async def _run(self, loop: LoopState) -> None:
        await asyncio.sleep(random.uniform(0.2, 1.0))  # spread the first rounds of many resources
        while True:
            body = self.state.models.get(loop.key)
            if body is None:
                return
            try:
                spec = self.state.spec(body)  # parsed once per generation, shared with the reconciler
                server = self.state.resolved(body).server
            except (ValueError, RuntimeProblem):
                return  # the reconcile reports why, and starts the loop again once it is fixed
            starting = False
            try:
                starting = await self.cycle(loop, spec, server)
            except Exception:  # a probe round must never kill the loop
                log.exception("probe round of %s/%s failed", *loop.key)
            interval = next_round_in(spec.probing.interval_seconds, loop, starting)
            loop.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(loop.wake.wait(), timeout=interval)
            wait = MIN_POKE_INTERVAL - (time.monotonic() - loop.last_poke)
            if wait > 0:
                await asyncio.sleep(wait)
            loop.last_poke = time.monotonic()

    async def cycle(self, loop: LoopState, spec: ModelDeploymentSpec, server: ServerSpec | None = None) -> bool:
        """One probe round; True while some replica is still starting (never yet healthy).

        `server` is the resolved container; None: the spec's own image.
        """
        started = time.perf_counter()
        namespace = loop.key[0]
        pods = self.state.pods.by_label(namespace, loop.child)
        targets, unprobed = targets_from_pods(pods, probe_settings(spec, server or explicit_server(spec)))
        queries = drift_queries(spec)
        revision = (
            self.state.canary_revision.get(loop.key) if spec.rollout is not None and spec.rollout.canary else None
        )
        extra = canary_queries(spec) if revision is not None else []
        probes = await self.prober.probe_replicas(
            targets,
            request_timeout=float(spec.probing.timeout_seconds),
            metrics=[q for q, _ in queries] + extra,
        )
        now = _now()
        judged = [(probe.pod, self._remember(loop, probe, spec, now)) for probe in probes]
        for gone in set(loop.replicas) - {p.pod for p in probes}:
            del loop.replicas[gone]
        report = HealthReport(
            probed_at=now,
            replicas=tuple(r for _, r in judged if r is not None),
            unprobed=tuple((u.pod, u.reason) for u in unprobed),
            pending=tuple(pod for pod, r in judged if r is None),
            starting=tuple(
                pod for pod, r in judged if r is not None and not r.healthy and loop.replicas[pod].last_good is None
            ),
        )
        self.state.health[loop.key] = report
        if spec.drift is not None:
            fresh = self._drift(loop, spec, probes, queries, now)
            previous = self.state.data_drift.get(loop.key)
            if previous is None or meaningfully_different(previous, fresh, now):
                self.state.data_drift[loop.key] = fresh
        else:
            self.state.data_drift.pop(loop.key, None)
        self._analyse(loop, spec, probes, pods, queries, revision)
        self._record_metrics(loop.key, probes, report, time.perf_counter() - started)
        self.on_result(loop.key)
        never_healthy = any(loop.replicas[p.pod].last_good is None for p in probes if not p.healthy)
        return never_healthy or bool(unprobed)

    def _analyse(
        self,
        loop: LoopState,
        spec: ModelDeploymentSpec,
        probes: list[ReplicaProbe],
        pods: Sequence[Any],
        queries: list[tuple[MetricQuery, Baseline]],
        revision: str | None,
    ) -> None:
        """A running canary's checks from this round's scrapes (controller/analysis.py)."""
        if revision is None:
            loop.canary = None
            self.state.canary_checks.pop(loop.key, None)
            return
        if loop.canary is None or loop.canary.revision != revision:
            loop.canary = CanaryMemory(revision)
        drift = [(q, b.bounds) for q, b in queries]
        checks = gather(loop.canary, spec, probes, canary_pod_names(pods), drift)
        self.state.canary_checks[loop.key] = (revision, checks)

    def _remember(
        self, loop: LoopState, probe: ReplicaProbe, spec: ModelDeploymentSpec, now: datetime
    ) -> ReplicaHealth | None:
        """The replica as the status shows it; None while it is starting (see `status.health.judge`)."""
        memory = loop.replicas.get(probe.pod)
        if memory is None:
            body = self.state.models.get(loop.key) or {}
            memory = loop.replicas[probe.pod] = memory_from_status(body.get("status") or {}, probe.pod)
        return track(memory, probe.as_status(spec.model.version), spec.probing.failure_threshold, now)

    def _drift(
        self,
        loop: LoopState,
        spec: ModelDeploymentSpec,
        probes: list[ReplicaProbe],
        queries: list[tuple[MetricQuery, Baseline]],
        now: datetime,
    ) -> DataDriftReport:
        drift = spec.drift
        assert drift is not None
        memory = self._drift_memory(loop, drift, queries)
        timestamp = time.time()
        live_pods = {p.pod for p in probes}
        problems: list[str] = []
        unscraped: set[str] = set()
        results: list[tuple[MetricQuery, DriftResult]] = []
        for query, baseline in queries:
            window = memory.windows.setdefault(query, SlidingWindow(drift.window_seconds, len(baseline.proportions)))
            for pod in set(window.replicas()) - live_pods:
                window.forget(pod)
            for probe in probes:
                problem = _feed(window, probe, query, baseline, timestamp)
                if problem is not None:
                    problems.append(f"{probe.pod}: {problem}")
                    unscraped.add(probe.pod)
            window.prune(timestamp)
            result = evaluate(
                baseline, window, drift.method, drift.threshold, drift.min_samples, memory.drifted.get(query, False)
            )
            memory.drifted[query] = result.drifted
            if result.score is not None:
                metrics.DRIFT_SCORE.labels(namespace=loop.key[0], name=loop.key[1], metric=str(query)).set(result.score)
            results.append((query, result))
        return drift_report(drift, results, any(memory.drifted.values()), problems, unscraped, now)

    def _drift_memory(
        self, loop: LoopState, drift: DriftSpec, queries: list[tuple[MetricQuery, Baseline]]
    ) -> DriftMemory:
        """The loop's windows and verdicts; a new baseline or window starts from scratch.

        After an operator restart the verdict starts as the status states it, so a drift that
        was announced is neither lost nor announced again while the window refills.
        """
        signature = (drift.method, drift.window_seconds, tuple((q, b) for q, b in queries))
        memory = loop.drift
        if memory.signature != signature:
            fresh_start = not memory.signature
            loop.drift = memory = DriftMemory(signature=signature)
            if fresh_start:
                body = self.state.models.get(loop.key) or {}
                stated = bool(((body.get("status") or {}).get("drift") or {}).get("data", {}).get("drifted"))
                memory.drifted = dict.fromkeys((q for q, _ in queries), stated)
        return memory

    @staticmethod
    def _record_metrics(key: Key, probes: list[ReplicaProbe], report: HealthReport, seconds: float) -> None:
        for probe in probes:
            outcome = "healthy" if probe.healthy else ("error" if probe.findings.error else "unhealthy")
            metrics.PROBES.labels(outcome=outcome).inc()
            metrics.PROBE_SECONDS.observe(probe.latency_ms / 1000)
        metrics.PROBE_CYCLE_SECONDS.observe(seconds)
        metrics.HEALTHY_REPLICAS.labels(namespace=key[0], name=key[1]).set(sum(1 for r in report.replicas if r.healthy))
        metrics.PROBED_REPLICAS.labels(namespace=key[0], name=key[1]).set(len(report.replicas))


STARTUP_FIRST_RETRY = 0.5


def next_round_in(interval_seconds: float, loop: LoopState, starting: bool) -> float:
    """Seconds to the next round: the interval, or a quick backoff while replicas are starting.

    A replica that has never answered healthy is most likely still loading its model (or, in
    the sandbox, still being bound by the farm); waiting a whole interval to look again would
    hold Ready back for no reason. Like kubelet's startup probe, look again soon: 0.5 s, 1 s,
    2 s ... up to the interval.
    """
    jittered = interval_seconds * random.uniform(0.9, 1.1)
    if not starting:
        loop.starting_rounds = 0
        return jittered
    delay = STARTUP_FIRST_RETRY * 2.0**loop.starting_rounds
    loop.starting_rounds += 1
    return min(jittered, delay)


def _feed(
    window: SlidingWindow, probe: ReplicaProbe, query: MetricQuery, baseline: Baseline, timestamp: float
) -> str | None:
    """Put one replica's scrape of `query` into the window; why it could not be used, if it could not."""
    buckets = probe.histograms.get(query)
    if buckets is None:
        return None
    if isinstance(buckets, MetricsError):
        return str(buckets)
    observed = observe_scrape(window, probe.pod, timestamp, buckets, baseline.bounds)
    return str(observed) if isinstance(observed, HistogramError) else None
