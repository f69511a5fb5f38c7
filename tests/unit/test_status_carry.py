"""Verdicts from probes survive an operator restart until the new process has evidence."""

from __future__ import annotations

from tests.unit.test_status_compute import NOW, compute_status, data_drift, observation, triple


def restarted(previous: dict[str, object], **overrides: object) -> dict[str, object]:
    """The first reconcile of a fresh process: no probe round yet, the old status on the object."""
    return compute_status(observation(health=None, data_drift=None, previous_status=previous, **overrides), now=NOW)


def test_model_healthy_and_ready_are_carried_for_the_same_generation() -> None:
    before = compute_status(observation(), now=NOW)
    after = restarted(before)
    assert triple(after, "ModelHealthy") == ("True", "AllReplicasHealthy")
    assert triple(after, "Ready") == ("True", "Ready")
    assert after["health"] == before["health"]


def test_data_drift_is_carried() -> None:
    before = compute_status(observation(data_drift=data_drift(drifted=True)), now=NOW)
    assert triple(before, "Drifted") == ("True", "DataDrift")
    after = restarted(before)
    assert triple(after, "Drifted") == ("True", "DataDrift")
    assert after["drift"]["data"] == before["drift"]["data"]  # type: ignore[index]


def test_nothing_is_carried_into_a_new_generation() -> None:
    before = compute_status(observation(), now=NOW)
    after = restarted(before, generation=5)
    assert triple(after, "ModelHealthy") == ("Unknown", "AwaitingProbe")
    assert triple(after, "Ready")[0] == "False"
