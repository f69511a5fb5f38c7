"""WorkQueue: client-go workqueue semantics (dedupe, one worker per key, dirty re-add, backoff).

The event loop's clock is faked (looptime): a sleep or a timer of seconds passes at once, and
a timer fires at exactly its time, so delays are asserted to the tick instead of by waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from modeldeploy.controller.queue import BACKGROUND, WorkQueue

pytestmark = pytest.mark.looptime
TIMEOUT = 2.0


def _now() -> float:
    return asyncio.get_running_loop().time()


async def _get(queue: WorkQueue[str]) -> str:
    return await asyncio.wait_for(queue.get(), TIMEOUT)


async def _nothing_queued(queue: WorkQueue[str], wait: float = 0.05) -> bool:
    try:
        key = await asyncio.wait_for(queue.get(), wait)
    except TimeoutError:
        return True
    queue.done(key)
    return False


@contextlib.asynccontextmanager
async def _workers(queue: WorkQueue[str], count: int, work: Callable[[str], Awaitable[None]]) -> AsyncIterator[None]:
    task = asyncio.create_task(queue.run_workers(count, work))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        queue.close()


async def _until(check: Callable[[], bool]) -> None:
    for _ in range(int(TIMEOUT / 0.002)):
        if check():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("timed out waiting for the queue")


# ---- add / get / done --------------------------------------------------------------------------


async def test_adding_twice_queues_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("a")
    assert len(queue) == queue.depth == 1
    assert await _get(queue) == "a"
    assert queue.depth == 0
    assert queue.in_flight == 1
    queue.done("a")
    assert queue.in_flight == 0
    assert await _nothing_queued(queue)


async def test_distinct_keys_are_fifo() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("c", "a", "b", "a", "c"):
        queue.add(key)
    assert queue.depth == 3
    assert [await _get(queue) for _ in range(3)] == ["c", "a", "b"]


async def test_a_key_added_while_processing_is_processed_again_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    key = await _get(queue)
    queue.add("a")
    queue.add("a")
    assert queue.depth == 0, "a key being processed must not be handed to another worker"
    assert await _nothing_queued(queue)
    queue.done(key)
    assert queue.depth == 1
    assert await _get(queue) == "a"
    queue.done("a")
    assert await _nothing_queued(queue), "the dirty key is processed once more, not once per add"


async def test_done_without_a_re_add_does_not_requeue() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.done(await _get(queue))
    assert queue.depth == 0
    assert await _nothing_queued(queue)


async def test_other_keys_are_unaffected_by_one_being_processed() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    await _get(queue)
    queue.add("b")
    assert await _get(queue) == "b"
    assert queue.in_flight == 2


# ---- workers -----------------------------------------------------------------------------------


async def test_two_workers_never_process_the_same_key_concurrently() -> None:
    queue: WorkQueue[str] = WorkQueue()
    release = asyncio.Event()
    active: Counter[str] = Counter()
    most: Counter[str] = Counter()
    runs: Counter[str] = Counter()

    async def work(key: str) -> None:
        active[key] += 1
        most[key] = max(most[key], active[key])
        runs[key] += 1
        try:
            if runs[key] == 1:
                await release.wait()
            await asyncio.sleep(0)
        finally:
            active[key] -= 1

    async with _workers(queue, 2, work):
        queue.add("a")
        await _until(lambda: runs["a"] == 1)
        for _ in range(5):
            queue.add("a")
            await asyncio.sleep(0.005)  # give the idle worker every chance to take it
        assert runs["a"] == 1
        assert queue.in_flight == 1
        release.set()
        await _until(lambda: runs["a"] == 2 and queue.in_flight == 0)
        await asyncio.sleep(0.02)
    assert runs["a"] == 2
    assert most["a"] == 1


async def test_two_workers_process_different_keys_in_parallel() -> None:
    queue: WorkQueue[str] = WorkQueue()
    started = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def work(key: str) -> None:
        started[key].set()
        other = "b" if key == "a" else "a"
        await asyncio.wait_for(started[other].wait(), TIMEOUT)  # deadlocks unless both run at once

    async with _workers(queue, 2, work):
        queue.add("a")
        queue.add("b")
        await _until(lambda: queue.in_flight == 0 and all(e.is_set() for e in started.values()))


async def test_many_events_under_load_keep_one_worker_per_key() -> None:
    queue: WorkQueue[str] = WorkQueue()
    active: Counter[str] = Counter()
    overlaps: list[str] = []
    runs: Counter[str] = Counter()

    async def work(key: str) -> None:
        if active[key]:
            overlaps.append(key)
        active[key] += 1
        runs[key] += 1
        await asyncio.sleep(0.002)
        active[key] -= 1

    bursts = 10
    async with _workers(queue, 3, work):
        for _ in range(bursts):
            for _ in range(3):  # three events per key in each burst
                for key in ("k0", "k1", "k2", "k3"):
                    queue.add(key)
            await asyncio.sleep(0.001)
        await _until(lambda: queue.depth == 0 and queue.in_flight == 0)
    assert overlaps == []
    assert set(runs) == {"k0", "k1", "k2", "k3"}
    assert all(count <= bursts for count in runs.values()), f"events of one burst must coalesce: {runs}"


async def test_a_failing_work_item_does_not_wedge_the_key() -> None:
    queue: WorkQueue[str] = WorkQueue()
    runs: Counter[str] = Counter()

    async def work(key: str) -> None:
        runs[key] += 1
        if runs[key] == 1:
            queue.add(key)
            raise asyncio.CancelledError  # the worker dies, but `done` must still run

    task = asyncio.create_task(queue.run_workers(1, work))
    queue.add("a")
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, TIMEOUT)
    assert queue.in_flight == 0
    assert queue.depth == 1  # the dirty re-add survived
    queue.close()


# ---- delays and backoff ------------------------------------------------------------------------


async def test_add_after_fires() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 0.02)
    assert queue.depth == 0
    assert await _get(queue) == "a"


async def test_add_after_fires_at_its_time_not_before() -> None:
    queue: WorkQueue[str] = WorkQueue()
    start = _now()
    queue.add_after("a", 30.0)
    assert await _nothing_queued(queue, 29.9)
    assert await asyncio.wait_for(queue.get(), 60) == "a"
    assert _now() - start == pytest.approx(30.0)


async def test_add_after_twice_queues_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 0.01)
    queue.add_after("a", 0.02)
    await asyncio.sleep(0.05)
    assert queue.depth == 1


async def test_add_after_while_queued_does_not_duplicate() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add_after("a", 0.01)
    await asyncio.sleep(0.03)
    assert queue.depth == 1


async def test_add_after_firing_during_processing_marks_the_key_dirty() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    key = await _get(queue)
    queue.add_after("a", 0.01)
    await asyncio.sleep(0.03)
    assert queue.depth == 0
    queue.done(key)
    assert await _get(queue) == "a"


async def test_close_cancels_pending_timers() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 0.01)
    queue.retry("b")
    queue.close()
    await asyncio.sleep(0.05)
    assert queue.depth == 0


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: 1.0)


@pytest.mark.usefixtures("no_jitter")
async def test_retry_backoff_doubles_per_failure_up_to_the_cap() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.5, max_delay=10.0)
    delays = [queue.retry("a") for _ in range(8)]
    queue.close()
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


@pytest.mark.usefixtures("no_jitter")
async def test_forget_resets_the_backoff() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.5, max_delay=10.0)
    queue.retry("a")
    queue.retry("a")
    assert queue.retry("a") == 2.0
    queue.forget("a")
    assert queue.retry("a") == 0.5
    queue.close()


@pytest.mark.usefixtures("no_jitter")
async def test_backoff_is_per_key() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=1.0, max_delay=100.0)
    for _ in range(4):
        queue.retry("a")
    assert queue.retry("b") == 1.0
    assert queue.retry("a") == 16.0
    queue.forget("b")
    assert queue.retry("a") == 32.0
    queue.close()


async def test_retry_delay_has_bounded_jitter_and_grows() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=1.0, max_delay=1000.0)
    for key in range(20):
        delays = [queue.retry(f"k{key}") for _ in range(5)]
        for failures, delay in enumerate(delays):
            nominal = 2.0**failures
            assert 0.8 * nominal <= delay <= 1.2 * nominal
        assert delays == sorted(delays), "0.8 x 2 > 1.2: jitter can never undo a doubling"
    queue.close()


async def test_retry_requeues_the_key_after_the_delay() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=20.0, max_delay=100.0)
    start = _now()
    delay = queue.retry("a")
    assert 16.0 <= delay <= 24.0
    assert queue.depth == 0
    assert await asyncio.wait_for(queue.get(), 60) == "a"
    assert _now() - start == pytest.approx(delay)


@pytest.mark.usefixtures("no_jitter")
async def test_a_key_failing_again_and_again_comes_back_at_the_backoff_times() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=1.0, max_delay=4.0)
    start, seen = _now(), []
    for _ in range(5):
        queue.retry("a")
        assert await asyncio.wait_for(queue.get(), 60) == "a"
        queue.done("a")
        seen.append(round(_now() - start, 6))
    assert seen == [1.0, 3.0, 7.0, 11.0, 15.0]  # 1, 2, 4, then the 4 s cap
    queue.close()


async def test_forget_cancels_a_pending_retry() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.02, max_delay=1.0)
    queue.retry("a")
    queue.forget("a")
    assert await _nothing_queued(queue, 0.1)


async def test_forget_of_an_unknown_key_is_harmless() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.forget("never-seen")
    queue.done("never-seen")
    assert queue.depth == queue.in_flight == 0


async def test_retry_never_exceeds_max_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    queue: WorkQueue[str] = WorkQueue(base_delay=1.0, max_delay=10.0)
    delays = [queue.retry("a") for _ in range(6)]
    queue.close()
    assert max(delays) <= 10.0


def test_thousands_of_consecutive_failures_keep_backing_off_without_overflow() -> None:
    """2.0 ** failures overflowed a float after ~1,025 failures and killed the worker."""

    async def main() -> list[float]:
        queue: WorkQueue[str] = WorkQueue(base_delay=0.5, max_delay=120.0)
        delays = [queue.retry("bad") for _ in range(5000)]
        queue.close()
        return delays

    delays = asyncio.run(main())
    assert max(delays) <= 120.0
    assert delays[-1] >= 0.8 * 120.0


async def test_a_worker_survives_an_item_that_raises_and_the_item_is_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=0.02)
    seen: list[str] = []
    done = asyncio.Event()

    async def work(key: str) -> None:
        seen.append(key)
        if key == "bad" and seen.count("bad") < 3:
            raise RuntimeError("boom")
        if seen.count("bad") >= 3 and "good" in seen:
            done.set()

    async with _workers(queue, 1, work):
        queue.add("bad")
        queue.add("good")
        await asyncio.wait_for(done.wait(), TIMEOUT)
    assert seen.count("bad") == 3  # retried after each escape, the one worker still alive
    assert "good" in seen
    tracebacks = [r for r in caplog.records if r.exc_info and "boom" in str(r.exc_info[1])]
    assert len(tracebacks) == 2  # each escape logged with its traceback


async def test_stuck_for_counts_only_while_work_waits() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.last_progress = 100.0
    assert queue.stuck_for(500.0) == 0.0  # idle: nothing waits, nothing is stuck
    queue.add("a")
    assert queue.stuck_for(500.0) == 400.0
    key = await queue.get()
    assert queue.stuck_for(500.0) == 400.0  # held by a worker that never finishes
    queue.done(key)
    assert queue.stuck_for(500.0) == 0.0


async def test_urgent_keys_are_taken_before_waiting_ones_and_promote_a_waiting_key() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("new-1", "new-2", "new-3"):
        queue.add(key)
    queue.add("finishing", urgent=True)
    queue.add("new-3", urgent=True)  # its Deployment became available while it waited
    queue.add("new-3")  # and a resync does not demote it
    taken = [await queue.get() for _ in range(4)]
    assert taken == ["finishing", "new-3", "new-1", "new-2"]
    assert queue.depth == 0


async def test_a_resync_waits_behind_new_work_and_never_demotes_a_key() -> None:
    """A resync queues every object at once; at a thousand they once held every new object back."""
    queue: WorkQueue[str] = WorkQueue()
    for key in ("old-1", "old-2", "new-1"):
        queue.add(key, lane=BACKGROUND)  # the resync
    queue.add("new-1")  # its spec changed: promoted out of the resync
    queue.add("new-2")
    queue.add("finishing", urgent=True)
    queue.add("finishing", lane=BACKGROUND)
    taken = [await queue.get() for _ in range(5)]
    assert taken == ["finishing", "new-1", "new-2", "old-1", "old-2"]
    queue.add("x", lane=BACKGROUND)
    assert await queue.get() == "x"
    queue.add("x", lane=BACKGROUND)  # while processed: a resync
    queue.add("x")  # and a spec change
    queue.add("y", lane=BACKGROUND)
    queue.done("x")
    assert [await queue.get() for _ in range(2)] == ["x", "y"]
    assert queue.depth == 0


async def test_an_urgent_add_during_processing_requeues_it_urgently() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert await queue.get() == "a"
    queue.add("b")
    queue.add("a", urgent=True)  # while "a" is processed
    queue.done("a")
    assert await queue.get() == "a"
    assert await queue.get() == "b"
