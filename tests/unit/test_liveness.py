"""/healthz tells Kubernetes the truth: 200 while the controller works, 503 once it cannot.

The defect this guards against: after its workers died the operator reconciled nothing for
good, while kopf's liveness endpoint kept answering 200, so the pod was never restarted.
A real aiohttp server on loopback answers; the API underneath is scripted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from modeldeploy import kubeapi
from modeldeploy.controller.manager import Controller, spec_changed
from modeldeploy.health import serve_liveness
from modeldeploy.settings import OperatorSettings
from tests.conftest import free_port

Obj = dict[str, Any]


class QuietApi:
    """An empty cluster whose watches never say anything."""

    async def list(self, kind: kubeapi.Kind, namespace: str | None, label_selector: str | None = None) -> Obj:
        return {"metadata": {"resourceVersion": "1"}, "items": []}

    async def watch(self, kind: kubeapi.Kind, namespace: str | None, version: str, **_: Any) -> AsyncIterator[Obj]:
        await asyncio.Event().wait()
        yield {}

    async def aclose(self) -> None:
        return None


async def _healthz(port: int) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False) as client:
        return await client.get(f"http://127.0.0.1:{port}/healthz")


@pytest.fixture
async def running() -> AsyncIterator[tuple[Controller, int]]:
    controller = Controller(QuietApi(), OperatorSettings(workers=2, metrics_port=0, health_port=0))  # type: ignore[arg-type]
    controller.start()
    for _ in range(200):
        if controller.working:
            break
        await asyncio.sleep(0.01)
    port = free_port()
    server = await serve_liveness("127.0.0.1", port, controller.liveness)
    yield controller, port
    await server.cleanup()
    await controller.stop()


async def test_healthz_is_200_while_the_work_loop_runs(running: tuple[Controller, int]) -> None:
    controller, port = running
    assert controller.working
    response = await _healthz(port)
    assert response.status_code == 200


async def test_healthz_fails_once_the_work_loop_is_dead(running: tuple[Controller, int]) -> None:
    controller, port = running
    controller._tasks[0].cancel()  # the work loop dies, whatever killed it
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    response = await _healthz(port)
    assert response.status_code == 503
    assert "the work loop has stopped" in response.text


async def test_healthz_fails_once_an_informer_is_dead(running: tuple[Controller, int]) -> None:
    controller, port = running
    [models] = [i for i in controller.informers if i.kind.plural == "modeldeployments"]
    await models.stop()
    response = await _healthz(port)
    assert response.status_code == 503
    assert "modeldeployments informer has stopped" in response.text


async def test_healthz_fails_when_waiting_keys_are_not_processed(running: tuple[Controller, int]) -> None:
    controller, port = running
    entered = asyncio.Event()

    async def wedged(key: tuple[str, str]) -> float | None:
        entered.set()
        await asyncio.Event().wait()  # a reconcile that never returns: a hung call, a deadlock
        return None

    controller.reconciler.reconcile = wedged  # type: ignore[method-assign]
    controller.queue.add(("ns", "held"))
    await asyncio.wait_for(entered.wait(), 5)
    assert (await _healthz(port)).status_code == 200  # a reconcile in flight is not yet a wedge
    controller.queue.last_progress -= 3600  # ... but one that has held the only key for an hour is
    response = await _healthz(port)
    assert response.status_code == 503
    assert "no reconcile has finished" in response.text


def md(generation: int, *, rv: str = "1", uid: str = "u", deleting: bool = False, status: Obj | None = None) -> Obj:
    metadata: Obj = {"name": "m", "namespace": "ns", "generation": generation, "resourceVersion": rv, "uid": uid}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-28T00:00:00Z"
    return {"metadata": metadata, "status": status or {}}


@pytest.mark.parametrize(
    ("new", "old", "requeue"),
    [
        (md(1), None, True),
        (md(2, rv="2"), md(1), True),
        (md(1, rv="2", status={"observedGeneration": 1}), md(1), False),  # our own status write
        (md(1, rv="2", deleting=True), md(1), True),
        (md(1, uid="other"), md(1), True),  # deleted and created again under the same name
    ],
)
def test_only_changes_the_reconciler_reads_requeue_a_model(new: Obj, old: Obj | None, requeue: bool) -> None:
    assert spec_changed(new, old) is requeue


async def test_healthz_fails_when_an_informer_has_failed_for_minutes(running: tuple[Controller, int]) -> None:
    """Alive but blind: a watch that failed on every reconnect once kept /healthz at 200."""
    controller, port = running
    informer = controller.informers[0]
    informer.failing_since = time.monotonic() - 3600
    informer.last_error = "JSONDecodeError: Unterminated string"
    response = await _healthz(port)
    assert response.status_code == 503
    assert "informer has failed for" in response.text
    assert "JSONDecodeError" in response.text
    informer.failing_since = None
    assert (await _healthz(port)).status_code == 200
