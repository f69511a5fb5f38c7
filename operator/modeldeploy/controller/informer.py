"""List-then-watch of one kind into a cache, with client-go's informer guarantees.

kopf's watching handlers cannot give a controller what it needs here: a re-list after a
broken watch yields only the objects that still exist (no deletions), and the end of a list
is not visible to handlers, so nothing can tell when a cache is complete. An informer:

- lists, makes the cache equal the list (reporting what vanished as deletions), and only
  then says it is synced, so workers never judge a child missing that is merely not listed yet;
- watches from the list's resourceVersion with bookmarks, resumes from the last one seen
  after a disconnect, and lists again when the apiserver says that version is gone (410);
- backs off on errors (1 s doubling to 30 s) and never ends on one: a dead informer would be
  a controller that silently stops seeing the cluster, so `alive` feeds the liveness probe.
  The backoff starts over as soon as the apiserver answers again (a list, or any watch event),
  so the next outage is met after 1 s, not after the last outage's 30 s.

Handlers run on the event loop, synchronously, in the order the apiserver sent the events.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from modeldeploy import kubeapi, metrics
from modeldeploy.controller.cache import ObjectCache, key_of

log = logging.getLogger("modeldeploy.informer")
Obj = dict[str, Any]
Handler = Callable[[str, Obj, Obj | None], None]  # (event type, object, previous version)
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0


class Informer:
    def __init__(
        self,
        api: kubeapi.KubeApi,
        kind: kubeapi.Kind,
        cache: ObjectCache,
        handler: Handler,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        watch_timeout: int = 300,
        optional: bool = False,
    ) -> None:
        """`optional`: a kind the controller can work without (the runtimes): while its list is
        refused as unknown (404, the CRD not installed) or forbidden (403, RBAC bound by hand
        without it), the informer counts as synced and empty and keeps retrying, instead of
        holding every reconcile back and failing liveness."""
        self.api = api
        self.kind = kind
        self.cache = cache
        self.handler = handler
        self.namespace = namespace
        self.label_selector = label_selector
        self.watch_timeout = watch_timeout
        self.optional = optional
        self.synced = asyncio.Event()
        self.lists = 0
        self.backoff = FIRST_BACKOFF
        # When the apiserver last stopped answering usefully, and why (None while it answers):
        # an informer that retries forever is alive but blind, which liveness must see.
        self.failing_since: float | None = None
        self.last_error = ""
        self.version: str | None = None  # where the watch resumes; None: list first
        self._task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> asyncio.Task[None]:
        where = self.namespace or "all namespaces"
        self._task = asyncio.create_task(self.run(), name=f"informer-{self.kind.plural}-{where}")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        while True:
            try:
                if self.version is None:
                    self.version = await self._list()
                await self._watch(self.version)
                self.backoff = FIRST_BACKOFF
            except asyncio.CancelledError:
                raise
            except kubeapi.ApiError as error:
                if error.status == 410:
                    self.version = None  # too old: the only way back is a fresh list
                    continue
                if self.optional and error.status in (403, 404):
                    self.cache.served = error.status != 404
                    self.version = None  # the kind may come back (a CRD installed again): list it afresh
                    if not self.synced.is_set():
                        log.warning("%s: %s; working without them, retrying", self._what(), error)
                    self.synced.set()
                    self.failing_since = None
                    await asyncio.sleep(MAX_BACKOFF)
                    continue
                self.last_error = str(error)
                log.warning("%s: %s; retrying in %.0fs", self._what(), error, self.backoff)
                await self._sleep()
            except (httpx.HTTPError, OSError, ValueError) as error:
                log.warning("%s: connection lost (%s); retrying in %.0fs", self._what(), _describe(error), self.backoff)
                await self._sleep()
            except Exception:  # a bug in a handler: log it, list afresh, never stop watching
                log.exception("%s failed; listing again", self._what())
                self.version = None
                await self._sleep()

    async def _list(self) -> str:
        since = self.cache.mark()
        listed = await self.api.list(self.kind, self.namespace, self.label_selector)
        items: list[Obj] = listed.get("items") or []
        for item in items:  # list items carry no kind; handlers and renderers expect one
            item.setdefault("kind", self.kind.kind)
            item.setdefault("apiVersion", self.kind.api_version)
        by_key = {key_of(o): o for o in items}
        before = {key: self.cache.get(key) for key in by_key}
        gone = self.cache.replace(items, namespace=self.namespace, since=since)
        self.lists += 1
        if not self.cache.served:
            log.info("%s: the kind is served now", self._what())
        self.cache.served = True
        self.backoff = FIRST_BACKOFF
        self.failing_since = None
        if self.synced.is_set():
            log.info("%s: listed again, %d objects, %d gone while not watching", self._what(), len(items), len(gone))
        self.synced.set()
        for obj in gone:
            metrics.WATCH_EVENTS.labels(kind=self.kind.kind, type="DELETED").inc()
            self.handler("DELETED", obj, obj)
        for key, obj in by_key.items():
            metrics.WATCH_EVENTS.labels(kind=self.kind.kind, type="LISTED").inc()
            self.handler("LISTED", obj, before[key])
        return str(listed.get("metadata", {}).get("resourceVersion", ""))

    async def _watch(self, version: str) -> None:
        """Follow the stream until the server ends it, keeping the version to resume from."""
        stream = self.api.watch(
            self.kind, self.namespace, version, label_selector=self.label_selector, timeout_seconds=self.watch_timeout
        )
        async for event in stream:
            kind = event.get("type")
            obj: Obj = event.get("object") or {}
            if kind == "ERROR":
                code = int(obj.get("code") or 500)
                raise kubeapi.ApiError(code, str(obj.get("reason", "")), str(obj.get("message", "")))
            self.backoff = FIRST_BACKOFF
            self.failing_since = None
            self.version = str(obj.get("metadata", {}).get("resourceVersion") or self.version)
            if kind == "BOOKMARK" or kind not in ("ADDED", "MODIFIED", "DELETED"):
                continue
            previous = self.cache.get(key_of(obj))
            if self.cache.apply_event(kind, obj):
                metrics.WATCH_EVENTS.labels(kind=self.kind.kind, type=kind).inc()
                self.handler(kind, obj, previous)

    def failing_for(self, now: float) -> float:
        """Seconds the informer has been failing to list or watch (0 while it works)."""
        return 0.0 if self.failing_since is None else now - self.failing_since

    async def _sleep(self) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        await asyncio.sleep(self.backoff * random.uniform(0.8, 1.2))
        self.backoff = min(MAX_BACKOFF, self.backoff * 2)

    def _what(self) -> str:
        return f"watch of {self.kind.plural} in {self.namespace or 'all namespaces'}"


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
