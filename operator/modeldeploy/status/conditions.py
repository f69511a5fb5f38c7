"""metav1.Condition bookkeeping with the semantics kubectl, kstatus and Argo CD expect.

The status computation reaches a `Verdict` per condition type; `merge` turns verdicts into
the API's `Condition`s, keeping `lastTransitionTime` when the status did not flip: a new
reason or message on the same status is an update, not a transition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modeldeploy.api.conditions import Condition, ConditionStatus

# Reasons more than one module reads (the status writer decides them, the Event rules and the
# reconciler's logging recognise them); the rest are said once, where they are decided.
AWAITING_PROBE = "AwaitingProbe"
AWAITING_REPLICAS = "AwaitingReplicas"
ROLLING_OUT = "RollingOut"
DATA_DRIFT = "DataDrift"
VERSION_DRIFT = "VersionDrift"
INSUFFICIENT_SAMPLES = "InsufficientSamples"


@dataclass(frozen=True)
class Verdict:
    """What the operator concluded for one condition type, before it has a transition time."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""

    @property
    def is_true(self) -> bool:
        return self.status == "True"


def find(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    for condition in conditions or ():
        if condition.get("type") == type_:
            return condition
    return None


def merge(
    previous: Sequence[Mapping[str, Any]] | None,
    current: Iterable[Verdict],
    *,
    now: str,
    generation: int,
) -> list[Condition]:
    """The new conditions list, keeping each lastTransitionTime whose status did not change.

    `now` and the kept times are RFC 3339 strings as the apiserver holds them; the model parses
    and normalises them, so a status read back compares equal to the one written.
    """
    merged: list[Condition] = []
    for verdict in current:
        before = find(previous, verdict.type)
        kept = before is not None and before.get("status") == verdict.status and before.get("lastTransitionTime")
        merged.append(
            Condition(
                type=verdict.type,
                status=verdict.status,
                reason=verdict.reason,
                message=verdict.message,
                last_transition_time=before["lastTransitionTime"] if kept and before is not None else now,
                observed_generation=generation,
            )
        )
    return merged
