"""metav1.Condition bookkeeping: lastTransitionTime moves only when the status flips."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.status.conditions import Verdict, find
from modeldeploy.status.conditions import merge as merge_conditions

T0, T1 = "2024-01-01T00:00:00Z", "2024-01-01T00:05:00Z"


def merge(
    previous: list[dict[str, Any]] | None, current: list[Verdict], *, now: str, generation: int
) -> list[dict[str, Any]]:
    """The merged conditions as written (the API's Condition, dumped)."""
    merged = merge_conditions(previous, current, now=now, generation=generation)
    return [c.model_dump(by_alias=True, exclude_none=True, mode="json") for c in merged]


def _previous(**statuses: str) -> list[dict[str, Any]]:
    return [
        {
            "type": type_,
            "status": status,
            "reason": "Old",
            "message": "old message",
            "lastTransitionTime": T0,
            "observedGeneration": 1,
        }
        for type_, status in statuses.items()
    ]


def test_verdict_is_true() -> None:
    assert Verdict("Ready", "True", "Ready").is_true
    assert not Verdict("Ready", "False", "X").is_true
    assert not Verdict("Ready", "Unknown", "X").is_true
    assert Verdict("Ready", "True", "Ready").message == ""


def test_find() -> None:
    conditions = _previous(Ready="True", Stalled="False")
    assert find(conditions, "Stalled") is conditions[1]
    assert find(conditions, "Drifted") is None
    assert find(None, "Ready") is None
    assert find([], "Ready") is None
    assert find([{"status": "True"}], "Ready") is None


@pytest.mark.parametrize("previous", [None, []])
def test_new_conditions_transition_now(previous: list[dict[str, Any]] | None) -> None:
    merged = merge(previous, [Verdict("Ready", "False", "RollingOut", "1/2")], now=T1, generation=3)
    assert merged == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "RollingOut",
            "message": "1/2",
            "lastTransitionTime": T1,
            "observedGeneration": 3,
        }
    ]


def test_same_status_keeps_the_transition_time_even_with_a_new_reason_and_message() -> None:
    merged = merge(_previous(Ready="False"), [Verdict("Ready", "False", "ModelUnhealthy", "new")], now=T1, generation=2)
    assert merged[0]["lastTransitionTime"] == T0
    assert merged[0]["reason"] == "ModelUnhealthy"
    assert merged[0]["message"] == "new"


@pytest.mark.parametrize(
    ("before", "after"), [("True", "False"), ("False", "True"), ("Unknown", "True"), ("True", "Unknown")]
)
def test_status_flip_moves_the_transition_time(before: str, after: Any) -> None:
    merged = merge(_previous(Ready=before), [Verdict("Ready", after, "X")], now=T1, generation=2)
    assert merged[0]["lastTransitionTime"] == T1
    assert merged[0]["status"] == after


def test_observed_generation_is_stamped_on_every_condition() -> None:
    current = [Verdict("Ready", "True", "Ready"), Verdict("Stalled", "False", "NoErrors")]
    merged = merge(_previous(Ready="True", Stalled="False"), current, now=T1, generation=7)
    assert [c["observedGeneration"] for c in merged] == [7, 7]
    assert [c["lastTransitionTime"] for c in merged] == [T0, T0]


def test_each_condition_is_matched_by_type() -> None:
    previous = _previous(Ready="True", Stalled="False", Drifted="False")
    current = [
        Verdict("Drifted", "True", "DataDrift"),
        Verdict("Ready", "True", "Ready"),
        Verdict("Stalled", "False", "NoErrors"),
        Verdict("Available", "True", "MinimumReplicasAvailable"),
    ]
    merged = {c["type"]: c for c in merge(previous, current, now=T1, generation=2)}
    assert merged["Drifted"]["lastTransitionTime"] == T1
    assert merged["Ready"]["lastTransitionTime"] == T0
    assert merged["Stalled"]["lastTransitionTime"] == T0
    assert merged["Available"]["lastTransitionTime"] == T1


def test_output_follows_the_order_of_current_and_drops_unknown_types() -> None:
    previous = _previous(Stalled="False", Ready="True", Legacy="True")
    current = [Verdict("Ready", "True", "Ready"), Verdict("Stalled", "False", "NoErrors")]
    merged = merge(previous, current, now=T1, generation=2)
    assert [c["type"] for c in merged] == ["Ready", "Stalled"]


def test_previous_without_a_transition_time_gets_now() -> None:
    previous = [{"type": "Ready", "status": "True", "reason": "Ready", "message": ""}]
    merged = merge(previous, [Verdict("Ready", "True", "Ready")], now=T1, generation=1)
    assert merged[0]["lastTransitionTime"] == T1


def test_merge_does_not_modify_previous() -> None:
    previous = _previous(Ready="True")
    snapshot = [dict(c) for c in previous]
    merge(previous, [Verdict("Ready", "False", "X", "m")], now=T1, generation=5)
    assert previous == snapshot


def test_merging_twice_is_stable() -> None:
    current = [Verdict("Ready", "False", "RollingOut", "1/2"), Verdict("Stalled", "False", "NoErrors")]
    first = merge(None, current, now=T0, generation=1)
    second = merge(first, current, now=T1, generation=1)
    assert second == first
