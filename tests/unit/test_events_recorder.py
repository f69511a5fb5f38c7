"""Events are aggregated: a replica flapping for minutes is two Event objects, not hundreds."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy import kubeapi
from modeldeploy.controller import events as events_module
from modeldeploy.controller.events import EventRecorder

MD = {"metadata": {"name": "iris", "namespace": "ns", "uid": "u1"}, "kind": "ModelDeployment"}


class Events:
    """The Event objects a cluster would hold, and the requests that made them."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []

    async def post_event(self, involved: dict[str, Any], *, type_: str, reason: str, message: str) -> str:
        name = f"iris.{len(self.objects)}"
        self.objects[name] = {"reason": reason, "message": message, "count": 1}
        self.requests.append("POST")
        return name

    async def bump_event(self, namespace: str, name: str, count: int) -> None:
        self.requests.append("PATCH")
        if name not in self.objects:
            raise kubeapi.ApiError(404, "NotFound", f"events {name!r} not found")
        self.objects[name]["count"] = count


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(events_module.time, "monotonic", lambda: now[0])
    return now


async def test_five_minutes_of_flapping_is_two_events_with_counts(clock: list[float]) -> None:
    cluster = Events()
    recorder = EventRecorder(cluster)
    for _ in range(75):  # down and up every 2 s for 5 minutes
        await recorder.record(MD, "Warning", "ModelUnhealthy", "1/2 replicas healthy; iris-a: HTTP 503")
        clock[0] += 2
        await recorder.record(MD, "Normal", "ModelRecovered", "2/2 replicas healthy")
        clock[0] += 2
    assert len(cluster.objects) == 2
    assert sorted(e["count"] for e in cluster.objects.values()) == [75, 75]
    assert cluster.requests.count("POST") == 2


async def test_another_message_or_object_is_another_event(clock: list[float]) -> None:
    cluster = Events()
    recorder = EventRecorder(cluster)
    await recorder.record(MD, "Warning", "ModelUnhealthy", "iris-a: HTTP 503")
    await recorder.record(MD, "Warning", "ModelUnhealthy", "iris-b: timeout")
    other = {"metadata": {**MD["metadata"], "uid": "u2"}}
    await recorder.record(other, "Warning", "ModelUnhealthy", "iris-a: HTTP 503")
    assert len(cluster.objects) == 3


async def test_an_expired_event_or_an_old_one_is_posted_afresh(clock: list[float]) -> None:
    cluster = Events()
    recorder = EventRecorder(cluster)
    await recorder.record(MD, "Warning", "Stalled", "x")
    cluster.objects.clear()  # the apiserver's event TTL removed it
    await recorder.record(MD, "Warning", "Stalled", "x")
    assert cluster.requests == ["POST", "PATCH", "POST"]
    clock[0] += events_module.WINDOW_SECONDS + 1  # said long ago: a new Event, as client-go does
    await recorder.record(MD, "Warning", "Stalled", "x")
    assert cluster.requests[-1] == "POST"
    assert len(cluster.objects) == 2


async def test_memory_is_bounded(clock: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "REMEMBERED", 10)
    recorder = EventRecorder(Events())
    for i in range(50):
        await recorder.record(MD, "Warning", "X", f"message {i}")
    assert len(recorder._posted) == 10
