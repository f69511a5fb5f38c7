"""Kubernetes Events that mark condition transitions a person should hear about (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeldeploy.status.conditions import find

EventSpec = tuple[str, str, str]  # (type, reason, message)


def _state(status: Mapping[str, Any], type_: str) -> tuple[str | None, str, str]:
    condition = find(status.get("conditions"), type_) or {}
    return condition.get("status"), str(condition.get("reason", "")), str(condition.get("message", ""))


def transition_events(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[EventSpec]:
    events: list[EventSpec] = []
    before, _, _ = _state(old, "ModelHealthy")
    after, _, message = _state(new, "ModelHealthy")
    if after == "False" and before != "False":
        events.append(("Warning", "ModelUnhealthy", message))
    elif after == "True" and before == "False":
        events.append(("Normal", "ModelRecovered", message))

    before, before_reason, _ = _state(old, "Drifted")
    after, after_reason, message = _state(new, "Drifted")
    if after == "True" and (before != "True" or before_reason != after_reason):
        events.append(("Warning", "VersionDrift" if after_reason == "VersionDrift" else "DriftDetected", message))
    elif after != "True" and before == "True":
        events.append(("Normal", "DriftCleared", f"{before_reason} cleared: {message}"))

    before, before_reason, _ = _state(old, "Stalled")
    after, after_reason, message = _state(new, "Stalled")
    if after == "True" and (before != "True" or before_reason != after_reason):
        events.append(("Warning", after_reason or "Stalled", message))

    before, _, _ = _state(old, "Ready")
    after, _, message = _state(new, "Ready")
    if after == "True" and before != "True":
        events.append(("Normal", "Ready", message))
    return events
