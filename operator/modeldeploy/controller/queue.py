"""A coalescing, rate-limited work queue of resource keys.

Semantics follow client-go's workqueue, which is what makes a controller level-triggered:
a key is queued at most once however many events arrive; a key is never processed by two
workers at once; a key added while it is being processed is processed again afterwards;
failures are retried with exponential backoff per key.

Three lanes, each taken only when the ones before it are empty: `URGENT` keys (an object's
children or probe verdict changed: work that finishes an object), then `NORMAL` (a new or
changed spec, a retry), then `BACKGROUND` (a periodic resync of everything). At a thousand new
objects, finishing the ones under way before starting more is what keeps each object's time
to Ready near its own work, not behind everyone's first reconcile; and a resync that queued
all thousand converged objects at once held every new object back behind them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
log = logging.getLogger("modeldeploy.queue")
MAX_EXPONENT = 30  # 2**30 times any base delay is far past any cap; beyond it floats overflow
URGENT, NORMAL, BACKGROUND = 0, 1, 2


class WorkQueue(Generic[K]):
    def __init__(self, *, base_delay: float = 0.5, max_delay: float = 120.0) -> None:
        self._lanes: tuple[deque[K], ...] = (deque(), deque(), deque())  # by URGENT, NORMAL, BACKGROUND
        self._available = asyncio.Semaphore(0)  # one token per queued key
        self._queued: dict[K, int] = {}  # key -> its lane
        self._processing: set[K] = set()
        self._dirty: dict[K, int] = {}  # added while processing -> the most pressing lane asked for
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._base_delay = base_delay
        self._max_delay = max_delay
        self.last_progress = time.monotonic()

    def __len__(self) -> int:
        return len(self._queued)

    @property
    def depth(self) -> int:
        return len(self._queued)

    @property
    def in_flight(self) -> int:
        return len(self._processing)

    def add(self, key: K, *, urgent: bool = False, lane: int | None = None) -> None:
        lane = (URGENT if urgent else NORMAL) if lane is None else lane
        if key in self._processing:
            self._dirty[key] = min(lane, self._dirty.get(key, lane))
            return
        queued = self._queued.get(key)
        if queued is not None:
            if lane < queued:  # promoted: it waited in a less pressing lane
                self._lanes[queued].remove(key)
                self._lanes[lane].append(key)
                self._queued[key] = lane
            return
        self._queued[key] = lane
        self._lanes[lane].append(key)
        self._available.release()

    def add_after(self, key: K, delay: float) -> None:
        existing = self._timers.pop(key, None)
        if existing is not None:
            existing.cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def retry(self, key: K) -> float:
        """Requeue after a failure, backing off exponentially (with jitter) per key."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        exponential = self._base_delay * 2.0 ** min(failures - 1, MAX_EXPONENT)
        delay: float = min(self._max_delay, exponential * random.uniform(0.8, 1.2))
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    async def get(self) -> K:
        await self._available.acquire()
        key = next(lane for lane in self._lanes if lane).popleft()
        del self._queued[key]
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        lane = self._dirty.pop(key, None)
        if lane is not None:
            self.add(key, lane=lane)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    async def run_workers(self, count: int, work: Callable[[K], Awaitable[None]]) -> None:
        """Run `count` workers forever; `work` handles its own errors and retries.

        A worker must never die of one item: whatever escapes `work` is logged with its
        traceback and the key is retried with backoff. `last_progress` lets a liveness check
        tell a working loop from one that holds keys and does nothing.
        """

        async def worker() -> None:
            while True:
                key = await self.get()
                try:
                    await work(key)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("worker: unexpected error on %s; retrying it later", key)
                    self.retry(key)
                finally:
                    self.done(key)
                    self.last_progress = time.monotonic()

        self.last_progress = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(count)))

    def stuck_for(self, now: float) -> float:
        """Seconds since a worker last finished an item while items were waiting (0 when idle)."""
        if not self._queued and not self._processing:
            return 0.0
        return now - self.last_progress

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
