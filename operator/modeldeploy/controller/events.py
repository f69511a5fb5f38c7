"""Events aggregated the way client-go's recorder does it, so a flapping replica is one Event.

Each occurrence used to be a new Event object with count 1: a replica flapping every probe
cycle made an unbounded stream of objects. Now the same type, reason and message on the same
object within `WINDOW_SECONDS` raises the count of the Event already posted; a new Event is
posted only for something not said recently (or when the old one has expired from the cluster).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any, Protocol

import httpx

from modeldeploy import kubeapi

log = logging.getLogger("modeldeploy.events")
WINDOW_SECONDS = 600.0  # client-go aggregates within 10 minutes
REMEMBERED = 4096  # most distinct Events kept in memory; the oldest are forgotten first

Obj = dict[str, Any]
EventKey = tuple[str, str, str, str]  # (uid, type, reason, message)


class EventApi(Protocol):
    async def post_event(self, involved: Obj, *, type_: str, reason: str, message: str) -> str: ...

    async def bump_event(self, namespace: str, name: str, count: int) -> None: ...


class EventRecorder:
    def __init__(self, api: EventApi) -> None:
        self.api = api
        self._posted: OrderedDict[EventKey, tuple[str, int, float]] = OrderedDict()  # name, count, last

    async def record(self, involved: Obj, type_: str, reason: str, message: str) -> None:
        """Post or count one occurrence; failing to must never fail a reconcile."""
        metadata = involved["metadata"]
        key = (str(metadata.get("uid")), type_, reason, message)
        now = time.monotonic()
        try:
            known = self._posted.get(key)
            if known is not None and now - known[2] < WINDOW_SECONDS:
                name, count, _ = known
                try:
                    await self.api.bump_event(metadata["namespace"], name, count + 1)
                    self._remember(key, name, count + 1, now)
                    return
                except kubeapi.ApiError as error:
                    if error.status != 404:  # gone (expired, deleted): post a new one below
                        raise
            name = await self.api.post_event(involved, type_=type_, reason=reason, message=message)
            self._remember(key, name, 1, now)
        except (kubeapi.ApiError, httpx.HTTPError) as error:
            log.info("could not post event %s on %s: %s", reason, metadata.get("name"), error)

    def forget(self, uid: str) -> None:
        for key in [k for k in self._posted if k[0] == uid]:
            del self._posted[key]

    def _remember(self, key: EventKey, name: str, count: int, now: float) -> None:
        self._posted[key] = (name, count, now)
        self._posted.move_to_end(key)
        while len(self._posted) > REMEMBERED:
            self._posted.popitem(last=False)
