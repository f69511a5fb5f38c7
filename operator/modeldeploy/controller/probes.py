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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modeldeploy import metrics
from modeldeploy.api.v1alpha1 import ModelDeploymentSpec
from modeldeploy.api.v1alpha1.drift import DriftSpec
from modeldeploy.controller.cache import Key
from modeldeploy.controller.state import ControllerState
from modeldeploy.drift.evaluate import Baseline, DriftResult, evaluate
from modeldeploy.drift.histograms import HistogramError
from modeldeploy.drift.window import SlidingWindow, observe_scrape
from modeldeploy.probing.metrics import MetricQuery, MetricsError
from modeldeploy.probing.prober import Prober, ReplicaProbe
from modeldeploy.probing.targets import CustomPaths, ProbeSettings, targets_from_pods
from modeldeploy.render.children import metrics_path, metrics_port
from modeldeploy.render.names import child_name
from modeldeploy.status.compute import DataDriftReport, HealthReport, ReplicaReport

log = logging.getLogger("modeldeploy.probes")
MIN_POKE_INTERVAL = 1.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ReplicaMemory:
    """What one replica's history says: consecutive failures, last good result, since when."""

    failures: int = 0
    last_good: ReplicaProbe | None = None
    healthy: bool | None = None
    since: str = ""


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


def probe_settings(spec: ModelDeploymentSpec) -> ProbeSettings:
    runtime = spec.runtime
    return ProbeSettings(
        port=runtime.port,
        model_name=spec.model.name,
        protocol=runtime.protocol,
        expected_version=spec.model.version,
        metrics_port=metrics_port(spec),
        metrics_path=metrics_path(spec),
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


class ProbeManager:
    def __init__(self, state: ControllerState, prober: Prober, on_result: Callable[[Key], None]) -> None:
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
            except ValueError:
                return
            starting = False
            try:
                starting = await self.cycle(loop, spec)
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

    async def cycle(self, loop: LoopState, spec: ModelDeploymentSpec) -> bool:
        """One probe round; True while some replica is still starting (never yet healthy)."""
        started = time.perf_counter()
        namespace = loop.key[0]
        pods = self.state.pods.by_label(namespace, loop.child)
        targets, unprobed = targets_from_pods(pods, probe_settings(spec))
        queries = drift_queries(spec)
        probes = await self.prober.probe_replicas(
            targets,
            request_timeout=float(spec.probing.timeout_seconds),
            metrics=[q for q, _ in queries],
        )
        now = _now()
        judged = [
            (probe.pod, self._remember(loop, probe, spec.probing.failure_threshold, spec.model.version, now))
            for probe in probes
        ]
        for gone in set(loop.replicas) - {p.pod for p in probes}:
            del loop.replicas[gone]
        report = HealthReport(
            probed_at=now,
            replicas=tuple(r for _, r in judged if r is not None),
            unprobed=tuple((u.pod, u.reason) for u in unprobed),
            pending=tuple(pod for pod, r in judged if r is None),
        )
        self.state.health[loop.key] = report
        if spec.drift is not None:
            fresh = self._drift(loop, spec, probes, queries, now)
            previous = self.state.data_drift.get(loop.key)
            if previous is None or meaningfully_different(previous, fresh):
                self.state.data_drift[loop.key] = fresh
        else:
            self.state.data_drift.pop(loop.key, None)
        self._record_metrics(loop.key, probes, report, time.perf_counter() - started)
        self.on_result(loop.key)
        never_healthy = any(loop.replicas[p.pod].last_good is None for p in probes if not p.healthy)
        return never_healthy or bool(unprobed)

    def _remember(
        self, loop: LoopState, probe: ReplicaProbe, threshold: int, expected: str, now: str
    ) -> ReplicaReport | None:
        """The replica as the status shows it; None while it is starting (see `judge`)."""
        memory = loop.replicas.get(probe.pod)
        if memory is None:
            memory = loop.replicas[probe.pod] = self._memory_from_status(loop.key, probe)
        shown = judge(memory, probe, threshold)
        if shown is None:
            return None
        healthy = shown.healthy
        if memory.healthy != healthy:
            memory.healthy = healthy
            memory.since = now
        served = shown.served_version
        if served is None and shown.version_matches is False:
            served = f"not {expected}"  # evidence of another version, though not which one
        return ReplicaReport(
            pod=probe.pod,
            ip=probe.ip,
            live=shown.live,
            ready=shown.ready,
            model_ready=shown.model_ready,
            served_version=served,
            latency_ms=round(probe.latency_ms, 1),
            error=shown.error,
            since=memory.since,
        )

    def _memory_from_status(self, key: Key, probe: ReplicaProbe) -> ReplicaMemory:
        body = self.state.models.get(key) or {}
        return memory_from_status(body.get("status") or {}, probe)

    def _drift(
        self,
        loop: LoopState,
        spec: ModelDeploymentSpec,
        probes: list[ReplicaProbe],
        queries: list[tuple[MetricQuery, Baseline]],
        now: str,
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
            outcome = "healthy" if probe.healthy else ("error" if probe.error else "unhealthy")
            metrics.PROBES.labels(outcome=outcome).inc()
            metrics.PROBE_SECONDS.observe(probe.latency_ms / 1000)
        metrics.PROBE_CYCLE_SECONDS.observe(seconds)
        metrics.HEALTHY_REPLICAS.labels(namespace=key[0], name=key[1]).set(sum(1 for r in report.replicas if r.healthy))
        metrics.PROBED_REPLICAS.labels(namespace=key[0], name=key[1]).set(len(report.replicas))


STARTUP_FIRST_RETRY = 0.5


def judge(memory: ReplicaMemory, probe: ReplicaProbe, threshold: int) -> ReplicaProbe | None:
    """Record one round's answer in `memory`; return the answer the status shows, None if none yet.

    A verdict changes only after `threshold` rounds in a row say otherwise, in both
    directions: a healthy replica keeps its last good answer through a slow round or two, and
    a replica that has not yet answered healthy is starting (its model loading), not unhealthy.
    """
    if probe.healthy:
        memory.failures = 0
        memory.last_good = probe
        return probe
    memory.failures += 1
    if memory.failures >= threshold:
        return probe
    return memory.last_good


def memory_from_status(status: Mapping[str, Any], probe: ReplicaProbe) -> ReplicaMemory:
    """What a status written before says of the probed replica, so a new operator carries on.

    Its `since`: without it every replica's `since` moved to the first round after a restart,
    one status write per ModelDeployment for nothing a person would call a change. Its last
    good answer: without it the failure threshold did not hold across a restart, and one slow
    first round (a thousand probe loops starting at once) turned healthy replicas unhealthy.
    """
    for entry in (status.get("health") or {}).get("replicas") or []:
        if entry.get("pod") != probe.pod or not entry.get("since"):
            continue
        healthy = bool(entry.get("live") and entry.get("ready") and entry.get("modelReady")) and not entry.get("error")
        memory = ReplicaMemory(healthy=healthy, since=str(entry["since"]))
        if healthy:
            served = entry.get("servedVersion")
            memory.last_good = ReplicaProbe(
                pod=probe.pod,
                ip=probe.ip,
                live=True,
                ready=True,
                model_ready=True,
                served_version=str(served) if served is not None else None,
                version_matches=None,
                latency_ms=float(entry.get("latencyMs") or 0.0),
                error=None,
            )
        return memory
    return ReplicaMemory()


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


SCORE_CHANGE = 0.1  # relative change of a drift score worth a status write
REFRESH_SECONDS = 300.0  # a drift verdict is re-stated at least this often under traffic


def meaningfully_different(previous: DataDriftReport, fresh: DataDriftReport) -> bool:
    """Whether the new drift result deserves a status write.

    Under steady traffic the score and sample count move a little every round; writing each
    wiggle would cost a write per ModelDeployment per interval. A change of verdict always
    counts, a score that moved by more than 10% counts, and so does a stale statement. So does a
    replica whose metrics cannot be read, or can again: drift is judged without it meanwhile,
    and the person reading the status needs to know which one and why.
    """
    if (previous.drifted, previous.insufficient) != (fresh.drifted, fresh.insufficient):
        return True
    if previous.unscraped != fresh.unscraped:
        return True
    old, new = previous.status.get("score"), fresh.status.get("score")
    if (old is None) != (new is None):
        return True
    if old is not None and new is not None and abs(new - old) > SCORE_CHANGE * max(abs(old), 0.01):
        return True
    stated = datetime.strptime(str(previous.status.get("lastEvaluated")), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (datetime.now(UTC) - stated).total_seconds() >= REFRESH_SECONDS


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


def drift_report(
    drift: DriftSpec,
    results: list[tuple[MetricQuery, DriftResult]],
    drifted: bool,
    problems: list[str],
    unscraped: set[str],
    now: str,
) -> DataDriftReport:
    """status.drift.data and the Drifted message from one round's verdicts (pure)."""
    per_metric: list[dict[str, Any]] = []
    worst: tuple[float, str] | None = None
    for query, result in results:
        entry: dict[str, Any] = {"name": query.name, "samples": int(result.samples)}
        if query.labels:
            entry["labels"] = dict(query.labels)
        if result.score is not None:
            entry["score"] = round(result.score, 4)
        per_metric.append(entry)
        if result.drifted and (worst is None or (result.score or 0) > worst[0]):
            worst = (result.score or 0.0, f"{query}: {result.reason} ({int(result.samples)} samples)")
    judged = any(not result.insufficient_samples for _, result in results)
    scores = [m["score"] for m in per_metric if "score" in m]
    status: dict[str, Any] = {
        "method": drift.method,
        "threshold": drift.threshold,
        "windowSeconds": drift.window_seconds,
        "samples": min((m["samples"] for m in per_metric), default=0),
        "lastEvaluated": now,
        "drifted": drifted,
        "metrics": per_metric,
    }
    if scores:
        status["score"] = max(scores)
    if drifted and worst is not None:
        message = f"data drift on {worst[1]}"
    elif per_metric:
        message = "; ".join(
            f"{m['name']}: {drift.method} {m.get('score', 'n/a')} over {m['samples']} samples" for m in per_metric
        )
    else:
        message = "no drift metrics"
    if problems:
        message += f" (scrape problems: {'; '.join(problems[:3])})"
    if not judged and not drifted:
        message = f"fewer than {drift.min_samples} samples in the window yet: {message}"
    return DataDriftReport(
        status=status, drifted=drifted, message=message, insufficient=not judged, unscraped=frozenset(unscraped)
    )
