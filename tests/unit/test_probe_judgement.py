"""How one round's answer becomes the verdict a status shows: hysteresis both ways, and restarts."""

from __future__ import annotations

import pytest

from modeldeploy.controller.probes import ReplicaMemory, judge, memory_from_status
from modeldeploy.probing.prober import ReplicaProbe

GOOD = ReplicaProbe("p", "127.0.0.9", True, True, True, "1.0.0", True, 3.0, None)
BAD = ReplicaProbe("p", "127.0.0.9", None, None, None, None, None, 2000.0, "connection refused")


@pytest.mark.parametrize(
    ("rounds", "threshold", "shown"),
    [
        # a new replica that does not answer yet is starting, not unhealthy ...
        ([BAD], 3, [None]),
        ([BAD, BAD], 3, [None, None]),
        # ... until the threshold says otherwise
        ([BAD, BAD, BAD], 3, [None, None, BAD]),
        ([BAD], 1, [BAD]),
        # healthy as soon as it answers
        ([BAD, GOOD], 3, [None, GOOD]),
        # a healthy replica keeps its last good answer through threshold - 1 bad rounds
        ([GOOD, BAD, BAD], 3, [GOOD, GOOD, GOOD]),
        ([GOOD, BAD, BAD, BAD], 3, [GOOD, GOOD, GOOD, BAD]),
        # a good round in between starts the count again
        ([GOOD, BAD, BAD, GOOD, BAD, BAD], 3, [GOOD, GOOD, GOOD, GOOD, GOOD, GOOD]),
        ([GOOD, BAD], 1, [GOOD, BAD]),
    ],
)
def test_a_verdict_changes_only_after_threshold_rounds_agree(
    rounds: list[ReplicaProbe], threshold: int, shown: list[ReplicaProbe | None]
) -> None:
    memory = ReplicaMemory()
    assert [judge(memory, probe, threshold) for probe in rounds] == shown


def _status(**entry: object) -> dict[str, object]:
    return {"health": {"replicas": [{"pod": "p", "since": "2026-11-28T10:00:00Z", **entry}]}}


def test_after_a_restart_a_replica_the_status_calls_healthy_survives_a_slow_first_round() -> None:
    status = _status(live=True, ready=True, modelReady=True, servedVersion="1.0.0", latencyMs=4.5)
    memory = memory_from_status(status, BAD)
    assert (memory.healthy, memory.since) == (True, "2026-11-28T10:00:00Z")
    shown = judge(memory, BAD, 3)
    assert shown is not None
    assert shown.healthy
    assert shown.served_version == "1.0.0"
    assert judge(memory, BAD, 3) is shown
    assert judge(memory, BAD, 3) is BAD


@pytest.mark.parametrize(
    "entry",
    [
        {"live": True, "ready": True, "modelReady": False},
        {"live": True, "ready": True, "modelReady": True, "error": "timed out"},
    ],
)
def test_after_a_restart_a_replica_the_status_calls_unhealthy_has_no_good_answer_to_fall_back_on(
    entry: dict[str, object],
) -> None:
    memory = memory_from_status(_status(**entry), BAD)
    assert memory.healthy is False
    assert memory.last_good is None
    assert memory.since == "2026-11-28T10:00:00Z"


def test_a_replica_the_status_does_not_name_starts_afresh() -> None:
    assert memory_from_status({"health": {"replicas": [{"pod": "other", "since": "x"}]}}, GOOD) == ReplicaMemory()
    assert memory_from_status({}, GOOD) == ReplicaMemory()
