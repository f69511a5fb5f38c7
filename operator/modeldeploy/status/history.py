"""status.history: which model version, image and runtime served when (pure).

A revision is what a person would call "what we deployed": the model version, the server
image and the runtime. Scaling, probing or drift settings change the spec but not what serves,
so they begin no revision. Every change of the history coincides with a status write that
happens anyway (a new generation observed, Ready turning True), so keeping the trail costs no
write of its own, and it is read back from the status, so a restarted operator carries it on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modeldeploy.api.v1alpha1 import RevisionStatus
from modeldeploy.api.v1alpha1.status import MAX_HISTORY


@dataclass(frozen=True)
class Serving:
    """What serves for the current spec: the identity of a revision."""

    version: str
    image: str
    runtime: str | None = None


def _same(entry: RevisionStatus, serving: Serving) -> bool:
    return (entry.version, entry.image, entry.runtime) == (serving.version, serving.image, serving.runtime)


def next_history(
    previous: Sequence[RevisionStatus],
    serving: Serving | None,
    served: bool,
    now: str,
    *,
    rolled_back: str | None = None,
) -> list[RevisionStatus]:
    """The history after this reconcile: a new revision when what serves changed, Promoted once it served.

    `rolled_back` is the reason when the current revision was rolled back: it ends there, and
    the revision before it keeps serving (a retry or a new spec begins a new revision).
    `serving` is None when the spec decides nothing yet (invalid, or no runtime): the trail
    stays as it is. `served` is whether the current spec is Ready now; `now` is RFC 3339, as
    conditions take it.
    """
    history = list(previous)
    if serving is None:
        return history
    retried = bool(history) and history[0].outcome == "RolledBack" and rolled_back is None
    if not history or not _same(history[0], serving) or retried:
        number = (history[0].revision + 1) if history else 1
        if history and history[0].outcome == "Progressing":
            history[0] = replace_entry(
                history[0], finished=now, outcome="Superseded", reason=f"replaced by revision {number} before it served"
            )
        history.insert(
            0,
            RevisionStatus(
                revision=number,
                version=serving.version,
                image=serving.image,
                runtime=serving.runtime,
                started=now,  # RFC 3339, parsed as the apiserver holds it
                outcome="Progressing",
            ),
        )
    if rolled_back is not None and history[0].outcome == "Progressing":
        history[0] = replace_entry(history[0], finished=now, outcome="RolledBack", reason=rolled_back)
    if served and history[0].outcome == "Progressing":
        history[0] = replace_entry(history[0], served=now, outcome="Promoted")
        # the revision that served until now ends when this one serves (a canary or a rolling update
        # keeps it serving until then, and a rollback leaves it serving)
        for index, entry in enumerate(history[1:], start=1):
            if entry.outcome == "Promoted" and entry.finished is None:
                reason = f"replaced by revision {history[0].revision}"
                history[index] = replace_entry(entry, finished=now, outcome="Superseded", reason=reason)
    return history[:MAX_HISTORY]


def replace_entry(entry: RevisionStatus, **changes: object) -> RevisionStatus:
    """A copy with `changes`, validated like any status the operator builds."""
    return RevisionStatus.model_validate({**dict(entry), **changes})


def read_history(raw: object) -> list[RevisionStatus]:
    """status.history as the status holds it; entries an older or newer operator wrote that do not read are dropped."""
    if not isinstance(raw, list):
        return []
    entries = []
    for item in raw:
        if isinstance(item, dict):
            try:
                entries.append(RevisionStatus.read(item))
            except ValueError:
                continue
    return entries
