"""Wires informers, the work queue, the reconciler and the probe loops into one controller."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from modeldeploy import kubeapi, metrics
from modeldeploy.controller.cache import Key, key_of, owner_name
from modeldeploy.controller.informer import Informer
from modeldeploy.controller.probes import ProbeManager
from modeldeploy.controller.queue import BACKGROUND, WorkQueue
from modeldeploy.controller.reconciler import Reconciler
from modeldeploy.controller.state import ControllerState
from modeldeploy.probing.prober import Prober
from modeldeploy.render.labels import MANAGED_BY, MANAGER, NAME_LABEL
from modeldeploy.render.model import Platform
from modeldeploy.render.runtime import RuntimeKind, needs_runtimes
from modeldeploy.settings import OperatorSettings

log = logging.getLogger("modeldeploy.controller")
Obj = dict[str, Any]
OWNED_SELECTOR = f"{MANAGED_BY}={MANAGER}"
# A worker that has finished nothing for this long while keys wait is wedged: every API call
# it can make is bounded by the client's 30 s timeout, so minutes of silence mean a bug.
STUCK_SECONDS = 300.0


def spec_changed(obj: Obj, previous: Obj | None) -> bool:
    """Whether an update of a ModelDeployment can change what the reconciler does.

    The reconciler reads the spec (generation), the identity (uid) and the deletion mark;
    an update of the status alone (our own writes, above all) is no reason to reconcile: that
    is what made one bad object loop on its own status writes.
    """
    if previous is None:
        return True
    new, old = obj.get("metadata", {}), previous.get("metadata", {})
    return any(new.get(f) != old.get(f) for f in ("generation", "uid", "deletionTimestamp"))


class Controller:
    def __init__(self, api: kubeapi.KubeApi, settings: OperatorSettings, *, image_volumes: bool | None = None) -> None:
        """`image_volumes`: what `settings.image_volumes: auto` found (see runner); None reads the setting alone."""
        self.api = api
        self.settings = settings
        volumes = settings.image_volumes == "on" if image_volumes is None else image_volumes
        platform = Platform(
            fetcher_image=settings.fetcher_image,
            image_volumes=volumes,
            operator_peers=settings.operator_peers(),
            scraper_peers=tuple(settings.scraper_peers),
            auth_proxy_image=settings.auth_proxy_image,
        )
        self.state = ControllerState(platform=platform)
        self.queue: WorkQueue[Key] = WorkQueue()
        self.prober = Prober(concurrency=settings.max_inflight_probes)
        self.probes = ProbeManager(self.state, self.prober, on_result=lambda key: self.queue.add(key, urgent=True))
        self.reconciler = Reconciler(
            api, self.state, verify_pull_secrets=settings.verify_pull_secrets, probes=self.probes
        )
        self.informers = self._informers(settings.namespaces or [None])
        self._watching: list[asyncio.Task[None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.working = False
        metrics.bind_queue(lambda: self.queue.depth, lambda: self.queue.in_flight)
        metrics.MANAGED_MODELS.set_function(lambda: len(self.state.models))

    def _informers(self, namespaces: list[str] | list[None]) -> list[Informer]:
        state = self.state
        # (kind, cache, optional): a CRD's kind may be missing, and models that need it say so
        children = [
            (kubeapi.DEPLOYMENT, state.deployments, False),
            (kubeapi.SERVICE, state.services, False),
            (kubeapi.HPA, state.hpas, False),
            (kubeapi.NETWORK_POLICY, state.network_policies, False),
            (kubeapi.PDB, state.pdbs, False),
            (kubeapi.INGRESS, state.ingresses, False),
            (kubeapi.HTTP_ROUTE, state.http_routes, True),
            (kubeapi.SCALED_OBJECT, state.scaled_objects, True),
        ]
        informers = []
        if self.settings.cluster_runtimes:
            informers.append(
                Informer(
                    self.api,
                    kubeapi.CLUSTER_MODEL_RUNTIME,
                    state.runtimes.cluster,
                    self.on_cluster_runtime_event,
                    optional=True,
                )
            )
        for namespace in namespaces:
            informers.append(
                Informer(
                    self.api,
                    kubeapi.MODEL_RUNTIME,
                    state.runtimes.namespaced,
                    self.on_namespaced_runtime_event,
                    namespace=namespace,
                    optional=True,
                )
            )
            informers.append(
                Informer(self.api, kubeapi.MODEL_DEPLOYMENT, state.models, self.on_model_event, namespace=namespace)
            )
            for kind, cache, optional in children:
                informers.append(
                    Informer(
                        self.api,
                        kind,
                        cache,
                        self.on_child_event,
                        namespace=namespace,
                        label_selector=OWNED_SELECTOR,
                        optional=optional,
                    )
                )
            informers.append(
                Informer(
                    self.api,
                    kubeapi.POD,
                    state.pods,
                    self.on_pod_event,
                    namespace=namespace,
                    label_selector=OWNED_SELECTOR,
                )
            )
        return informers

    # ---- events from the informers (on the event loop, cache already updated) ---------------
    def on_model_event(self, event_type: str, obj: Obj, previous: Obj | None) -> None:
        if event_type in ("LISTED", "DELETED") or spec_changed(obj, previous):
            self.queue.add(key_of(obj))

    def on_child_event(self, event_type: str, obj: Obj, previous: Obj | None) -> None:
        owner = owner_name(obj, "ModelDeployment")
        if owner is not None:
            self.queue.add((key_of(obj)[0], owner), urgent=True)

    def on_cluster_runtime_event(self, event_type: str, obj: Obj, previous: Obj | None) -> None:
        self.on_runtime_event("ClusterModelRuntime", event_type, obj, previous)

    def on_namespaced_runtime_event(self, event_type: str, obj: Obj, previous: Obj | None) -> None:
        self.on_runtime_event("ModelRuntime", event_type, obj, previous)

    def on_runtime_event(self, kind: RuntimeKind, event_type: str, obj: Obj, previous: Obj | None) -> None:
        """Reconcile the models a runtime change can concern: those that use runtimes, in its scope.

        Which model a runtime serves is decided by resolving, so every model that names a runtime
        or selects one by format is looked at (in the runtime's namespace for a ModelRuntime); a
        resolve that ends where it was costs no write. A deletion is looked at once its grace
        is over (see controller/runtimes.py).
        """
        self.state.runtimes.changed(kind, event_type, obj)
        old, new = (previous or {}).get("metadata") or {}, obj["metadata"]
        unchanged = previous is not None and (old.get("generation"), old.get("uid")) == (
            new.get("generation"),
            new.get("uid"),
        )
        if event_type in ("MODIFIED", "LISTED") and unchanged:
            return  # labels or annotations, or a list finding it as it was: nothing a model is served by
        namespace = obj["metadata"].get("namespace") if kind == "ModelRuntime" else None
        delay = self.state.runtimes.grace + 0.5 if event_type == "DELETED" else 0.0
        for key in self.state.models.known_keys():
            if namespace is not None and key[0] != namespace:
                continue
            body = self.state.models.get(key)
            spec = self.state.spec_or_none(body) if body is not None else None
            if spec is None or not needs_runtimes(spec):
                continue
            if delay:
                self.queue.add_after(key, delay)
            else:
                self.queue.add(key)

    def on_pod_event(self, event_type: str, obj: Obj, previous: Obj | None) -> None:
        namespace, _ = key_of(obj)
        self.probes.poke_pods_of(namespace, obj.get("metadata", {}).get("labels", {}).get(NAME_LABEL))

    # ---- loops -----------------------------------------------------------------------------
    async def _work(self, key: Key) -> None:
        try:
            retry_in = await self.reconciler.reconcile(key)
        except Exception as error:
            delay = self.queue.retry(key)
            log.warning("reconcile of %s/%s failed, retrying in %.1fs: %s", key[0], key[1], delay, error)
            return
        if retry_in is None:
            self.queue.forget(key)
        else:
            self.queue.add_after(key, retry_in)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            for key in self.state.models.known_keys():
                self.queue.add(key, lane=BACKGROUND)

    def start_watching(self) -> None:
        """Fill the caches; every replica does this, so a standby that takes over is warm."""
        if not self._watching:
            self._watching = [informer.start() for informer in self.informers]

    async def wait_for_sync(self) -> None:
        """Return once every cache equals a full list (client-go's WaitForCacheSync).

        A worker that ran earlier would find children missing that are merely not listed yet,
        re-apply them and compute Available=Unknown from an empty Deployment cache: exactly the
        writes and flapping conditions an operator restart must not cause.
        """
        await asyncio.gather(*(informer.synced.wait() for informer in self.informers))

    def start(self) -> None:
        """Start working (this replica leads): after the caches have synced."""
        self.start_watching()
        self._tasks = [asyncio.create_task(self._run(), name="the work loop")]
        self._tasks[0].add_done_callback(_log_death)

    async def _run(self) -> None:
        started = time.monotonic()
        await self.wait_for_sync()
        log.info("caches synced in %.1fs: %d ModelDeployments", time.monotonic() - started, len(self.state.models))
        self.working = True
        await asyncio.gather(self.queue.run_workers(self.settings.workers, self._work), self._resync())

    def liveness(self) -> str | None:
        """Why the controller cannot do its job, or None when it can (for /healthz)."""
        now = time.monotonic()
        for informer in self.informers:
            if self._watching and not informer.alive:
                return f"the {informer.kind.plural} informer has stopped"
            failing = informer.failing_for(now)
            if failing > STUCK_SECONDS:
                return f"the {informer.kind.plural} informer has failed for {failing:.0f}s: {informer.last_error}"
        for task in self._tasks:
            if task.done():
                return f"{task.get_name()} has stopped"
        stuck = self.queue.stuck_for(time.monotonic())
        if self.working and stuck > STUCK_SECONDS:
            return f"no reconcile has finished for {stuck:.0f}s while {self.queue.depth} wait"
        return None

    async def stop(self, release: Callable[[], Awaitable[object]] | None = None) -> None:
        tasks = self._tasks + self._watching
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if release is not None:
            try:
                await release()
            except Exception as error:  # a stop must finish; the Lease then simply expires
                log.warning("could not release leadership: %s", error)
        self.queue.close()
        await self.probes.close()
        await self.prober.aclose()
        await self.api.aclose()


def _log_death(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("%s died; /healthz now fails so the pod is restarted", task.get_name(), exc_info=error)
    else:
        log.error("%s ended; /healthz now fails so the pod is restarted", task.get_name())
