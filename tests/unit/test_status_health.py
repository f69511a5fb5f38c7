"""How one round's answer becomes the verdict a status shows: hysteresis both ways, since-when, restarts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modeldeploy.api.v1alpha1 import ReplicaHealth
from modeldeploy.probing.prober import ReplicaProbe
from modeldeploy.probing.protocols import Findings
from modeldeploy.status.health import ReplicaMemory, judge, memory_from_status, track

GOOD = ReplicaHealth(pod="p", ip="127.0.0.9", live=True, ready=True, model_ready=True, served_version="1.0.0")
BAD = ReplicaHealth(pod="p", ip="127.0.0.9", latency_ms=2000.0, error="connection refused")
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 28, 10, 5, tzinfo=UTC)
T2 = datetime(2026, 11, 28, 10, 9, tzinfo=UTC)


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
    rounds: list[ReplicaHealth], threshold: int, shown: list[ReplicaHealth | None]
) -> None:
    memory = ReplicaMemory()
    assert [judge(memory, answer, threshold) for answer in rounds] == shown


def test_since_moves_only_when_the_verdict_does_and_the_probe_figures_are_this_rounds() -> None:
    memory = ReplicaMemory()
    assert track(memory, GOOD, 2, T0) == GOOD.model_copy(update={"since": T0})
    slow = BAD.model_copy(update={"ip": "127.0.0.10", "latency_ms": 1500.0})
    held = track(memory, slow, 2, T1)  # one bad round: still the good answer, at this round's address and latency
    assert held is not None
    assert (held.healthy, held.ip, held.latency_ms, held.since) == (True, "127.0.0.10", 1500.0, T0)
    turned = track(memory, BAD, 2, T2)
    assert turned is not None
    assert (turned.healthy, turned.error, turned.since) == (False, "connection refused", T2)
    assert track(memory, BAD, 2, T2.replace(minute=30)).since == T2  # type: ignore[union-attr]


def test_a_starting_replica_is_not_shown() -> None:
    assert track(ReplicaMemory(), BAD, 3, T0) is None


def _status(**entry: object) -> dict[str, object]:
    return {"health": {"replicas": [{"pod": "p", "since": "2026-11-28T10:00:00Z", **entry}]}}


def test_after_a_restart_a_replica_the_status_calls_healthy_survives_a_slow_first_round() -> None:
    status = _status(live=True, ready=True, modelReady=True, servedVersion="1.0.0", latencyMs=4.5)
    memory = memory_from_status(status, "p")
    assert (memory.healthy, memory.since) == (True, T0)
    shown = track(memory, BAD, 3, T1)
    assert shown is not None
    assert (shown.healthy, shown.served_version, shown.since) == (True, "1.0.0", T0)
    assert track(memory, BAD, 3, T1) == shown
    after = track(memory, BAD, 3, T2)
    assert after is not None
    assert (after.healthy, after.since) == (False, T2)


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
    memory = memory_from_status(_status(**entry), "p")
    assert memory.healthy is False
    assert memory.last_good is None
    assert memory.since == T0


def test_a_replica_the_status_does_not_name_or_states_unreadably_starts_afresh() -> None:
    assert memory_from_status({"health": {"replicas": [{"pod": "other", "since": "x"}]}}, "p") == ReplicaMemory()
    assert memory_from_status({}, "p") == ReplicaMemory()
    assert memory_from_status(_status(since="yesterday"), "p") == ReplicaMemory()


@pytest.mark.parametrize(
    ("findings", "served"),
    [
        (Findings(live=True, ready=True, model_ready=True, served_version="2.0.0", version_matches=False), "2.0.0"),
        # evidence of another version without its name (MLServer's versioned endpoint 404s): said so
        (Findings(live=True, ready=True, model_ready=True, version_matches=False), "not 1.0.0"),
        (Findings(live=True, ready=True, model_ready=True), None),
    ],
)
def test_a_probe_as_the_status_shows_it(findings: Findings, served: str | None) -> None:
    shown = ReplicaProbe(pod="p", ip="127.0.0.9", findings=findings, latency_ms=3.14159).as_status("1.0.0")
    assert (shown.pod, shown.ip, shown.served_version, shown.latency_ms, shown.healthy) == (
        "p",
        "127.0.0.9",
        served,
        3.1,
        True,
    )
