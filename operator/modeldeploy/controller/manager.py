"""Wires caches, the work queue, the reconciler and the probe loops into one controller."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from modeldeploy import kubeapi, metrics
from modeldeploy.controller.cache import Key, key_of, owner_name
from modeldeploy.controller.probes import ProbeManager
from modeldeploy.controller.queue import WorkQueue
from modeldeploy.controller.reconciler import ControllerState, Reconciler
from modeldeploy.probing.prober import Prober
from modeldeploy.render.labels import NAME_LABEL
from modeldeploy.settings import OperatorSettings

log = logging.getLogger("modeldeploy.controller")
Obj = dict[str, Any]


class Controller:
    def __init__(self, api: kubeapi.KubeClient, settings: OperatorSettings) -> None:
        self.api = api
        self.settings = settings
        self.state = ControllerState()
        self.queue: WorkQueue[Key] = WorkQueue()
        self.prober = Prober(concurrency=settings.max_inflight_probes)
        self.probes = ProbeManager(self.state, self.prober, on_result=self.queue.add)
        self.reconciler = Reconciler(
            api, self.state, verify_pull_secrets=settings.verify_pull_secrets, probes=self.probes
        )
        self._tasks: list[asyncio.Task[None]] = []
        metrics.bind_queue(lambda: self.queue.depth, lambda: self.queue.in_flight)
        metrics.MANAGED_MODELS.set_function(lambda: len(self.state.models))

    # ---- events from kopf's watches --------------------------------------------------------
    def on_model_event(self, event_type: str | None, obj: Obj) -> None:
        metrics.WATCH_EVENTS.labels(kind="ModelDeployment", type=event_type or "LISTED").inc()
        self.state.models.apply_event(event_type, obj)
        self.queue.add(key_of(obj))

    def on_child_event(self, kind: str, event_type: str | None, obj: Obj) -> None:
        metrics.WATCH_EVENTS.labels(kind=kind, type=event_type or "LISTED").inc()
        self.state.cache_for(kind).apply_event(event_type, obj)
        owner = owner_name(obj, "ModelDeployment")
        if owner is not None:
            self.queue.add((key_of(obj)[0], owner))

    def on_pod_event(self, event_type: str | None, obj: Obj) -> None:
        metrics.WATCH_EVENTS.labels(kind="Pod", type=event_type or "LISTED").inc()
        self.state.pods.apply_event(event_type, obj)
        namespace, _ = key_of(obj)
        self.probes.poke_pods_of(namespace, obj.get("metadata", {}).get("labels", {}).get(NAME_LABEL))

    # ---- loops -----------------------------------------------------------------------------
    async def _work(self, key: Key) -> None:
        try:
            await self.reconciler.reconcile(key)
        except Exception as error:
            delay = self.queue.retry(key)
            log.warning("reconcile of %s/%s failed, retrying in %.1fs: %s", key[0], key[1], delay, error)
        else:
            self.queue.forget(key)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            for key in self.state.models.known_keys():
                self.queue.add(key)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.queue.run_workers(self.settings.workers, self._work), name="modeldeploy-workers"),
            asyncio.create_task(self._resync(), name="modeldeploy-resync"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.queue.close()
        await self.probes.close()
        await self.prober.aclose()
        await self.api.aclose()
