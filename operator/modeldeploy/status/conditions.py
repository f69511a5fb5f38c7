"""metav1.Condition bookkeeping with the semantics kubectl, kstatus and Argo CD expect.

`lastTransitionTime` moves only when a condition's status flips; a new reason or message
on the same status is an update, not a transition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

ConditionStatus = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Condition:
    type: str
    status: ConditionStatus
    reason: str
    message: str = ""

    @property
    def is_true(self) -> bool:
        return self.status == "True"


def find(conditions: Sequence[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    for condition in conditions or ():
        if condition.get("type") == type_:
            return condition
    return None


def merge(
    previous: Sequence[dict[str, Any]] | None,
    current: Iterable[Condition],
    *,
    now: str,
    generation: int,
) -> list[dict[str, Any]]:
    """The new conditions list, keeping each lastTransitionTime whose status did not change."""
    merged: list[dict[str, Any]] = []
    for condition in current:
        before = find(previous, condition.type)
        transitioned = before is None or before.get("status") != condition.status
        merged.append(
            {
                "type": condition.type,
                "status": condition.status,
                "reason": condition.reason,
                "message": condition.message,
                "lastTransitionTime": now if transitioned or not before else before.get("lastTransitionTime", now),
                "observedGeneration": generation,
            }
        )
    return merged
