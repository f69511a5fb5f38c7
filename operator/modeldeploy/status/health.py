"""A replica's health verdict over rounds: hysteresis, since-when, and carry-over across restarts (pure).

One round's answer is not a verdict. A healthy replica keeps its last good answer through a
slow round or two, a replica that never answered healthy is starting (its model loading), not
unhealthy, and `since` moves only when the verdict does. The probe loop feeds each round's
answer (`ReplicaProbe.as_status`) through `track`; what it returns is what the status shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from modeldeploy.api.v1alpha1 import ReplicaHealth


@dataclass
class ReplicaMemory:
    """What one replica's history says: consecutive failures, last good answer, since when."""

    failures: int = 0
    last_good: ReplicaHealth | None = None
    healthy: bool | None = None
    since: datetime | None = None


def judge(memory: ReplicaMemory, answer: ReplicaHealth, threshold: int) -> ReplicaHealth | None:
    """Record one round's answer in `memory`; return the answer the status shows, None if none yet.

    A verdict changes only after `threshold` rounds in a row say otherwise, in both
    directions: a healthy replica keeps its last good answer through a slow round or two, and
    a replica that has not yet answered healthy is starting (its model loading), not unhealthy.
    """
    if answer.healthy:
        memory.failures = 0
        memory.last_good = answer
        return answer
    memory.failures += 1
    if memory.failures >= threshold:
        return answer
    return memory.last_good


def track(memory: ReplicaMemory, answer: ReplicaHealth, threshold: int, now: datetime) -> ReplicaHealth | None:
    """The replica as the status shows it this round; None while it is starting (see `judge`).

    The address and latency are this round's even when the verdict is an older answer: they
    describe the probe, not the model.
    """
    shown = judge(memory, answer, threshold)
    if shown is None:
        return None
    if memory.healthy != shown.healthy or memory.since is None:
        memory.healthy = shown.healthy
        memory.since = now
    return shown.model_copy(update={"ip": answer.ip, "latency_ms": answer.latency_ms, "since": memory.since})


def memory_from_status(status: Mapping[str, Any], pod: str) -> ReplicaMemory:
    """What a status written before says of `pod`, so a new operator carries on.

    Its `since`: without it every replica's `since` moved to the first round after a restart,
    one status write per ModelDeployment for nothing a person would call a change. Its last
    good answer: without it the failure threshold did not hold across a restart, and one slow
    first round (a thousand probe loops starting at once) turned healthy replicas unhealthy.
    """
    for entry in (status.get("health") or {}).get("replicas") or []:
        if entry.get("pod") != pod or not entry.get("since"):
            continue
        try:
            stated = ReplicaHealth.read(entry)
        except ValidationError:
            return ReplicaMemory()  # a status we cannot read is no evidence: judge afresh
        return ReplicaMemory(last_good=stated if stated.healthy else None, healthy=stated.healthy, since=stated.since)
    return ReplicaMemory()
