"""Informer: list, replace, watch, resume and re-list, against a scripted API.

The scripted API stands in only for the HTTP calls; the same informer runs against the real
apiserver in tests/integration and tests/faults (watch gaps, apiserver restarts).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from modeldeploy import kubeapi
from modeldeploy.controller import informer as informer_module
from modeldeploy.controller.cache import ObjectCache
from modeldeploy.controller.informer import Informer

Obj = dict[str, Any]
TIMEOUT = 2.0


def md(name: str, rv: str, uid: str | None = None) -> Obj:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, "uid": uid or f"uid-{name}"}}


class ScriptedApi:
    """Each list() answers the next list; each watch() plays the next script of events/errors."""

    def __init__(self, lists: list[list[Obj]], watches: list[list[Obj | BaseException]]) -> None:
        self.lists = lists
        self.watches = watches
        self.list_calls = 0
        self.watch_versions: list[str] = []
        self.idle = asyncio.Event()

    async def list(self, kind: kubeapi.Kind, namespace: str | None, label_selector: str | None = None) -> Obj:
        items = self.lists[min(self.list_calls, len(self.lists) - 1)]
        self.list_calls += 1
        return {"metadata": {"resourceVersion": str(100 * self.list_calls)}, "items": [dict(i) for i in items]}

    async def watch(
        self,
        kind: kubeapi.Kind,
        namespace: str | None,
        resource_version: str,
        *,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[Obj]:
        self.watch_versions.append(resource_version)
        if not self.watches:
            self.idle.set()
            await asyncio.Event().wait()
        for step in self.watches.pop(0):
            if isinstance(step, BaseException):
                raise step
            yield step


async def run_until_idle(api: ScriptedApi, cache: ObjectCache, seen: list[tuple[str, str]]) -> Informer:
    def handler(event: str, obj: Obj, previous: Obj | None) -> None:
        seen.append((event, obj["metadata"]["name"]))

    informer = Informer(api, kubeapi.MODEL_DEPLOYMENT, cache, handler)  # type: ignore[arg-type]
    informer.start()
    await asyncio.wait_for(api.idle.wait(), TIMEOUT)
    return informer


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(informer_module, "FIRST_BACKOFF", 0.0)


async def test_lists_then_watches_from_the_lists_version() -> None:
    api = ScriptedApi(
        [[md("a", "1")]],
        [[{"type": "ADDED", "object": md("b", "101")}, {"type": "DELETED", "object": md("a", "102")}]],
    )
    cache, seen = ObjectCache(), []
    informer = await run_until_idle(api, cache, seen)
    assert informer.synced.is_set()
    assert seen == [("LISTED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    assert cache.known_keys() == [("ns", "b")]
    assert api.watch_versions[0] == "100"
    assert cache.get(("ns", "a")) is None
    await informer.stop()


async def test_a_broken_connection_resumes_from_the_last_version_without_listing() -> None:
    api = ScriptedApi(
        [[md("a", "1")]],
        [
            [{"type": "MODIFIED", "object": md("a", "105")}, httpx.ConnectError("apiserver went away")],
            [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "110"}}}],
        ],
    )
    cache, seen = ObjectCache(), []
    informer = await run_until_idle(api, cache, seen)
    assert api.list_calls == 1
    assert api.watch_versions == ["100", "105", "110"]
    assert informer.alive
    await informer.stop()


async def test_gone_version_lists_again_and_reports_deletions_missed_meanwhile() -> None:
    """The ghost-object defect: a re-list used to add objects but never drop the vanished ones."""
    api = ScriptedApi(
        [[md("kept", "1"), md("deleted-during-gap", "2")], [md("kept", "150")]],
        [[{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}]],
    )
    cache, seen = ObjectCache(), []
    informer = await run_until_idle(api, cache, seen)
    assert api.list_calls == 2
    assert ("DELETED", "deleted-during-gap") in seen
    assert sorted(k[1] for k in cache.known_keys()) == ["kept"]
    assert len(cache) == 1  # the cache equals the list
    await informer.stop()


async def test_an_error_in_a_handler_is_logged_and_the_informer_lists_again(caplog: pytest.LogCaptureFixture) -> None:
    api = ScriptedApi([[md("a", "1")]], [[{"type": "ADDED", "object": md("boom", "101")}]])
    cache = ObjectCache()
    calls: list[str] = []

    def handler(event: str, obj: Obj, previous: Obj | None) -> None:
        calls.append(obj["metadata"]["name"])
        if obj["metadata"]["name"] == "boom" and calls.count("boom") == 1:
            raise KeyError("bug")

    informer = Informer(api, kubeapi.MODEL_DEPLOYMENT, cache, handler)  # type: ignore[arg-type]
    informer.start()
    await asyncio.wait_for(api.idle.wait(), TIMEOUT)
    assert informer.alive
    assert api.list_calls == 2
    assert any(r.exc_info for r in caplog.records)
    await informer.stop()


async def test_handlers_run_on_the_event_loop_thread() -> None:
    """kopf ran plain-def handlers in a thread pool, and they touched asyncio objects from there."""
    api = ScriptedApi([[md("a", "1")]], [[{"type": "MODIFIED", "object": md("a", "101")}]])
    loop_thread = threading.get_ident()
    threads: set[int] = set()

    def handler(event: str, obj: Obj, previous: Obj | None) -> None:
        threads.add(threading.get_ident())
        asyncio.get_running_loop()  # raises outside the loop's thread

    informer = Informer(api, kubeapi.MODEL_DEPLOYMENT, ObjectCache(), handler)  # type: ignore[arg-type]
    informer.start()
    await asyncio.wait_for(api.idle.wait(), TIMEOUT)
    assert threads == {loop_thread}
    await informer.stop()


async def test_backoff_starts_over_once_the_apiserver_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a long outage the backoff sat at 30 s: the next short outage cost 30 s of blindness."""
    monkeypatch.setattr(informer_module, "FIRST_BACKOFF", 1.0)
    monkeypatch.setattr(informer_module.random, "uniform", lambda a, b: 1.0)
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def record(seconds: float) -> None:
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(informer_module.asyncio, "sleep", record)
    down = httpx.ConnectError("apiserver down")
    api = ScriptedApi(
        [[md("a", "1")]],
        [[down], [down], [down], [{"type": "MODIFIED", "object": md("a", "105")}, down], [down]],
    )
    informer = await run_until_idle(api, ObjectCache(), [])
    assert slept == [1.0, 2.0, 4.0, 1.0, 2.0]
    await informer.stop()


def test_stored_objects_keep_only_the_operators_own_managed_fields() -> None:
    """What is cached is what the operator reads: its own apply's entry, not everyone's."""
    ours = {"manager": "modeldeploy", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    theirs = {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:status": {}}}
    deployment = {"metadata": {"name": "d", "managedFields": [theirs, ours]}}
    pod = {"metadata": {"name": "p", "managedFields": [theirs]}}
    cache = ObjectCache()
    cache.apply_event("ADDED", deployment)
    cache.apply_event("ADDED", pod)
    assert deployment["metadata"]["managedFields"] == [ours]
    assert "managedFields" not in pod["metadata"]


class RefusingApi(ScriptedApi):
    """Lists of the kind are refused as the apiserver refuses an unknown or forbidden resource."""

    def __init__(self, status: int) -> None:
        super().__init__([[]], [])
        self.status = status

    async def list(self, kind: kubeapi.Kind, namespace: str | None, label_selector: str | None = None) -> Obj:
        self.list_calls += 1
        raise kubeapi.ApiError(self.status, "NotFound" if self.status == 404 else "Forbidden", "refused")


@pytest.mark.parametrize("status", [403, 404])
async def test_an_optional_kind_refused_counts_as_synced_and_empty(status: int) -> None:
    """The runtime CRDs not installed, or RBAC bound by hand without them: every model still reconciles."""
    api = RefusingApi(status)
    informer = Informer(api, kubeapi.CLUSTER_MODEL_RUNTIME, ObjectCache(), lambda *_: None, optional=True)  # type: ignore[arg-type]
    informer.start()
    await asyncio.wait_for(informer.synced.wait(), TIMEOUT)
    assert informer.failing_for(10**9) == 0.0, "not a failure liveness should count"
    assert len(informer.cache) == 0
    await informer.stop()


async def test_a_required_kind_refused_never_counts_as_synced() -> None:
    informer = Informer(RefusingApi(404), kubeapi.MODEL_DEPLOYMENT, ObjectCache(), lambda *_: None)  # type: ignore[arg-type]
    informer.start()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(informer.synced.wait(), 0.3)
    await informer.stop()
