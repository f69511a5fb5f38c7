"""Write budgets and repeated failures: the rules that keep one bad object from storming."""

from __future__ import annotations

import pytest

from modeldeploy.controller.limits import (
    BURST,
    STALLED_MAX_RETRY,
    WRITES_PER_MINUTE,
    Failure,
    WriteBudget,
    is_stalled,
    record_failure,
    stalled_retry_in,
)


def test_a_burst_is_free_then_writes_are_paced() -> None:
    budget: WriteBudget[str] = WriteBudget()
    for _ in range(int(BURST)):
        assert budget.wait("a", 0.0) == 0.0
        budget.spend("a", 0.0)
    assert budget.wait("a", 0.0) == pytest.approx(60.0 / WRITES_PER_MINUTE)
    assert budget.wait("b", 0.0) == 0.0  # one object's storm costs the others nothing
    assert budget.wait("a", 60.0 / WRITES_PER_MINUTE) == 0.0


def test_writes_over_any_minute_are_bounded() -> None:
    """Spend whenever allowed for ten minutes: no minute sees more than burst + rate."""
    budget: WriteBudget[str] = WriteBudget()
    times: list[float] = []
    now = 0.0
    while now < 600.0:
        wait = budget.wait("storm", now)
        if wait == 0.0:
            budget.spend("storm", now)
            times.append(now)
            now += 0.01
        else:
            now += wait
    worst = max(sum(1 for t in times if start <= t < start + 60.0) for start in times)
    assert worst <= BURST + WRITES_PER_MINUTE


def test_several_writes_wait_for_enough_tokens() -> None:
    budget: WriteBudget[str] = WriteBudget(per_minute=60.0, burst=2.0)
    assert budget.wait("a", 0.0, writes=2) == 0.0
    budget.spend("a", 0.0, writes=2)
    assert budget.wait("a", 0.0, writes=2) == pytest.approx(2.0)
    budget.forget("a")
    assert budget.wait("a", 0.0, writes=2) == 0.0


def test_the_same_failure_twice_is_stalled_a_different_one_starts_over() -> None:
    first = record_failure(None, "500 webhook down")
    assert not is_stalled(first, 500)
    second = record_failure(first, "500 webhook down")
    assert second == Failure("500 webhook down", 2)
    assert is_stalled(second, 500)
    other = record_failure(second, "500 something else")
    assert other.repeats == 1


@pytest.mark.parametrize("status", [400, 403, 422])
def test_validation_and_authorization_answers_are_stalled_at_once(status: int) -> None:
    assert is_stalled(record_failure(None, f"{status} no"), status)


def test_stalled_retries_back_off_to_minutes() -> None:
    delays = [stalled_retry_in(Failure("x", n)) for n in range(1, 2000)]
    assert delays[0] == 5.0
    assert delays == sorted(delays)
    assert max(delays) == STALLED_MAX_RETRY
