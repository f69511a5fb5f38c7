"""The probe loop's rounds without sockets: what a round stores for the status, and what it asks for.

The prober here answers from a script, pod by pod and round by round: the real prober is tested
against real servers (test_prober_real_servers.py, tests/e2e/test_mlserver.py); these tables are
about what the loop makes of its answers: starting replicas, hysteresis, pods that come and go,
the status a restarted operator finds, and drift windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from modeldeploy.api.v1alpha1 import ModelDeploymentSpec
from modeldeploy.controller.probes import LoopState, ProbeManager
from modeldeploy.controller.state import ControllerState
from modeldeploy.probing.metrics import Buckets, MetricQuery, MetricsError
from modeldeploy.probing.prober import ReplicaProbe
from modeldeploy.probing.protocols import Findings
from modeldeploy.probing.targets import ProbeTarget
from modeldeploy.render import labels as lbl
from modeldeploy.render.names import child_name
from tests.conftest import petal_length_drift

Obj = dict[str, Any]
NS, NAME = "team", "iris"
KEY = (NS, NAME)
GOOD = Findings(live=True, ready=True, model_ready=True, served_version="1.0.0", version_matches=True)
DOWN = Findings(error="cannot connect to 127.0.60.1:8080: connection refused")
PETAL = MetricQuery.of("modelserver_feature_value", {"feature": "petal_length"})
INF = float("inf")


class ScriptedProber:
    """Answers each pod from its script, one entry per round (the last one repeats)."""

    def __init__(self) -> None:
        self.script: dict[str, list[Findings]] = {}
        self.histograms: dict[str, Buckets | MetricsError] = {}
        self.asked: list[list[str]] = []

    async def probe_replicas(
        self,
        targets: Sequence[ProbeTarget],
        *,
        request_timeout: float | None = None,
        deadline: float | None = None,
        metrics: Sequence[MetricQuery] = (),
    ) -> list[ReplicaProbe]:
        self.asked.append([t.pod for t in targets])
        answers = []
        for target in targets:
            script = self.script[target.pod]
            findings = script.pop(0) if len(script) > 1 else script[0]
            histograms = {q: self.histograms[target.pod] for q in metrics if target.pod in self.histograms}
            answers.append(ReplicaProbe(target.pod, target.ip, findings, 2.0, histograms))
        return answers


def pod(name: str, ip: str | None = "127.0.60.1", phase: str = "Running") -> Obj:
    status: Obj = {"phase": phase}
    if ip:
        status["podIP"] = ip
    return {
        "metadata": {"name": name, "namespace": NS, "labels": {lbl.NAME_LABEL: child_name(NAME)}},
        "status": status,
    }


class Loop:
    """A ModelDeployment in the caches, its pods, and one probe loop whose rounds the test drives."""

    def __init__(self, status: Obj | None = None, **spec: Any) -> None:
        self.state = ControllerState()
        self.prober = ScriptedProber()
        self.results: list[tuple[str, str]] = []
        self.manager = ProbeManager(self.state, self.prober, self.results.append)
        body: Obj = {
            "model": {"name": "iris", "version": "1.0.0"},
            "runtime": {"image": "registry.invalid/modelserver:1"},
            "probing": {"failureThreshold": 3},
            **spec,
        }
        model = {"metadata": {"name": NAME, "namespace": NS, "uid": "u1", "generation": 1}, "spec": body}
        if status is not None:
            model["status"] = status
        self.state.models.apply_event("ADDED", model)
        self.spec = ModelDeploymentSpec.model_validate(body)
        self.loop = LoopState(KEY, child_name(NAME))

    def pods(self, *pods: Obj) -> None:
        self.state.pods.replace(list(pods), namespace=NS, since=self.state.pods.mark())

    async def round(self) -> bool:
        return await self.manager.cycle(self.loop, self.spec)

    def shown(self) -> dict[str, tuple[bool, str | None]]:
        """Each replica the status would show: (healthy, error)."""
        return {r.pod: (r.healthy, r.error) for r in self.state.health[KEY].replicas}


async def test_a_healthy_round_is_stored_and_announced() -> None:
    world = Loop()
    world.pods(pod("iris-a"), pod("iris-b", "127.0.60.2"))
    world.prober.script = {"iris-a": [GOOD], "iris-b": [GOOD]}
    assert await world.round() is False  # nothing starting: the next round waits the whole interval
    assert world.shown() == {"iris-a": (True, None), "iris-b": (True, None)}
    assert world.results == [KEY]
    report = world.state.health[KEY]
    assert (report.pending, report.unprobed) == ((), ())
    assert {r.pod: r.ip for r in report.replicas} == {"iris-a": "127.0.60.1", "iris-b": "127.0.60.2"}


@pytest.mark.parametrize(
    ("rounds", "shown", "pending"),
    [
        # a replica that has never answered is starting: pending, not unhealthy, until the threshold
        ([DOWN], {}, ("iris-a",)),
        ([DOWN, DOWN], {}, ("iris-a",)),
        ([DOWN, DOWN, DOWN], {"iris-a": (False, DOWN.error)}, ()),
        ([DOWN, GOOD], {"iris-a": (True, None)}, ()),
        # a healthy one keeps its good answer through two bad rounds, and turns on the third
        ([GOOD, DOWN, DOWN], {"iris-a": (True, None)}, ()),
        ([GOOD, DOWN, DOWN, DOWN], {"iris-a": (False, DOWN.error)}, ()),
    ],
)
async def test_hysteresis_as_the_rounds_go(
    rounds: list[Findings], shown: dict[str, tuple[bool, str | None]], pending: tuple[str, ...]
) -> None:
    world = Loop()
    world.pods(pod("iris-a"))
    world.prober.script = {"iris-a": list(rounds)}
    for _ in rounds:
        await world.round()
    assert world.shown() == shown
    assert world.state.health[KEY].pending == pending


async def test_a_starting_replica_asks_for_a_quick_next_round() -> None:
    world = Loop()
    world.pods(pod("iris-a"))
    world.prober.script = {"iris-a": [DOWN, GOOD]}
    assert await world.round() is True
    assert await world.round() is False


async def test_pods_without_an_ip_are_reported_not_probed_and_gone_pods_are_forgotten() -> None:
    world = Loop()
    world.pods(pod("iris-a"), pod("iris-b", ip=None, phase="Pending"))
    world.prober.script = {"iris-a": [GOOD], "iris-c": [GOOD]}
    assert await world.round() is True  # a pod not probed yet keeps the quick rounds going
    assert world.prober.asked == [["iris-a"]]
    assert [pod for pod, _ in world.state.health[KEY].unprobed] == ["iris-b"]
    world.pods(pod("iris-c", "127.0.60.3"))
    await world.round()
    assert world.shown() == {"iris-c": (True, None)}
    assert set(world.loop.replicas) == {"iris-c"}


async def test_a_restarted_operator_carries_the_stated_verdict_and_since() -> None:
    since = "2026-11-28T10:00:00Z"
    stated = {"pod": "iris-a", "since": since, "live": True, "ready": True, "modelReady": True}
    world = Loop(status={"health": {"replicas": [stated]}})
    world.pods(pod("iris-a"))
    world.prober.script = {"iris-a": [DOWN]}  # one slow first round after the restart
    await world.round()
    [replica] = world.state.health[KEY].replicas
    assert replica.healthy
    assert replica.since is not None
    assert replica.since.isoformat() == "2026-11-28T10:00:00+00:00"


def cumulative(per_bucket: list[float]) -> Buckets:
    """A scraped cumulative histogram on the baseline's bounds (1..7, then +Inf)."""
    bounds = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, INF]
    total, buckets = 0.0, {}
    for bound, count in zip(bounds, per_bucket, strict=True):
        total += count
        buckets[bound] = total
    return buckets


async def test_drift_is_judged_from_the_scraped_windows_and_stored_only_when_it_changes() -> None:
    world = Loop(drift=petal_length_drift(min_samples=100))
    world.pods(pod("iris-a"))
    world.prober.script = {"iris-a": [GOOD]}
    world.prober.histograms = {"iris-a": cumulative([0, 0, 0, 0, 0, 0, 0, 0])}
    await world.round()
    first = world.state.data_drift[KEY]
    assert (first.drifted, first.insufficient) == (False, True)
    # every new prediction lands in one bucket the baseline rarely sees: drift
    world.prober.histograms = {"iris-a": cumulative([0, 0, 0, 0, 0, 0, 0, 400])}
    await world.round()
    drifted = world.state.data_drift[KEY]
    assert (drifted.drifted, drifted.insufficient) == (True, False)
    assert drifted.message.startswith('data drift on modelserver_feature_value{feature="petal_length"}: psi')
    assert drifted.status.samples == 400
    # the same histogram again: nothing new to say, the stored report stays the same object
    await world.round()
    assert world.state.data_drift[KEY] is drifted


async def test_an_unreadable_scrape_is_named_on_the_drift_report() -> None:
    world = Loop(drift=petal_length_drift(min_samples=100))
    world.pods(pod("iris-a"))
    world.prober.script = {"iris-a": [GOOD]}
    world.prober.histograms = {"iris-a": MetricsError("metrics body exceeds 2097152 bytes")}
    await world.round()
    report = world.state.data_drift[KEY]
    assert report.unscraped == frozenset({"iris-a"})
    assert "scrape problems: iris-a: metrics body exceeds 2097152 bytes" in report.message


async def test_turning_probing_off_stops_the_loop_and_drops_its_results() -> None:
    world = Loop()
    world.pods(pod("iris-a"))
    world.prober.script = {"iris-a": [GOOD]}
    world.manager.ensure(KEY, world.spec)
    assert world.manager.running(KEY)
    world.state.health[KEY] = world.state.health.get(KEY) or await _one_round(world)
    off = world.spec.model_copy(update={"probing": world.spec.probing.model_copy(update={"enabled": False})})
    world.manager.ensure(KEY, off)
    assert not world.manager.running(KEY)
    assert KEY not in world.state.health
    await world.manager.close()


async def _one_round(world: Loop) -> Any:
    await world.round()
    return world.state.health[KEY]
