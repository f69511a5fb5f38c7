"""Kubernetes Events that mark condition transitions a person should hear about (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeldeploy.api.conditions import DRIFTED, MODEL_HEALTHY, READY, STALLED
from modeldeploy.status.conditions import AWAITING_PROBE, AWAITING_REPLICAS, ROLLING_OUT, VERSION_DRIFT, find

EventSpec = tuple[str, str, str]  # (type, reason, message)


def _state(status: Mapping[str, Any], type_: str) -> tuple[str | None, str, str]:
    condition = find(status.get("conditions"), type_) or {}
    return condition.get("status"), str(condition.get("reason", "")), str(condition.get("message", ""))


# Ready=False reasons of an object on its way to its first Ready (none means it was Ready once)
ON_THE_WAY = ("", ROLLING_OUT, AWAITING_REPLICAS, AWAITING_PROBE)


def transition_events(old: Mapping[str, Any], new: Mapping[str, Any], *, created: bool = False) -> list[EventSpec]:
    """Events for what changed between two statuses.

    `created`: the object is at its first generation, so Ready after a rollout is just its
    creation finishing: routine, and at a thousand models a thousand Events nobody reads.
    """
    events: list[EventSpec] = []
    before, _, _ = _state(old, MODEL_HEALTHY)
    after, _, message = _state(new, MODEL_HEALTHY)
    if after == "False" and before != "False":
        events.append(("Warning", "ModelUnhealthy", message))
    elif after == "True" and before == "False":
        events.append(("Normal", "ModelRecovered", message))

    before, before_reason, _ = _state(old, DRIFTED)
    after, after_reason, message = _state(new, DRIFTED)
    if after == "True" and (before != "True" or before_reason != after_reason):
        events.append(("Warning", VERSION_DRIFT if after_reason == VERSION_DRIFT else "DriftDetected", message))
    elif after != "True" and before == "True":
        events.append(("Normal", "DriftCleared", f"{before_reason} cleared: {message}"))

    before, before_reason, _ = _state(old, STALLED)
    after, after_reason, message = _state(new, STALLED)
    if after == "True" and (before != "True" or before_reason != after_reason):
        events.append(("Warning", after_reason or "Stalled", message))

    before, before_reason, _ = _state(old, READY)
    after, _, message = _state(new, READY)
    first_rollout = created and before_reason in ON_THE_WAY
    if after == "True" and before != "True" and not first_rollout:
        events.append(("Normal", "Ready", message))
    return events
