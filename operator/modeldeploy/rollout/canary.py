"""What a rollout does next, from what is observed (pure): the canary's state machine.

The state lives on the status (`status.rollout`), never only in memory, so a restarted
operator, or another replica taking the lease, carries on the same step with the same clock.
Figures are written at verdicts only (a step begins, a promotion, a rollback): a pause in
which every check keeps passing writes nothing, however many probe rounds it lasts.

Phases, per new pod template (`revision`):
- no stable serving yet (first creation, or nothing ready): the template is applied as is;
- Progressing: a canary Deployment runs the new template next to the untouched stable, at
  each step's weight; the step passes when it has held for its pause with every check passed;
- Promoted: the stable takes the template, the canary goes;
- RolledBack: the canary goes, the stable keeps serving; held until the template changes
  again or a person retries.
A RollingUpdate with autoRollback uses the same record: Progressing while the Deployment
replaces pods, RolledBack (the stable reverted to the last template that served) when the new
replicas are not healthy on the right version within progressDeadlineSeconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from modeldeploy.api.base import MAX_REPLICAS
from modeldeploy.api.v1alpha1 import RolloutCheck, RolloutSpec, RolloutStatus
from modeldeploy.api.v1alpha1.status import RolloutPhase

ROLLED_BACK = "RolledBack"
ACTIONS = ("promote", "abort", "retry")
Stable = Literal["apply", "hold", "revert"]


@dataclass(frozen=True)
class CanaryReplicas:
    """The canary's pods as the probes judged them."""

    healthy: int = 0  # probed healthy, serving the new version
    unhealthy: tuple[str, ...] = ()  # "pod: why", judged unhealthy after having been healthy
    wrong_version: tuple[str, ...] = ()  # "pod serves X"


@dataclass(frozen=True)
class Observed:
    revision: str  # hash of the desired pod template
    version: str  # spec.model.version
    stable_matches: bool  # the stable Deployment already runs the desired template
    stable_serving: bool  # the stable Deployment exists with ready replicas
    stable_replicas: int  # the stable's replica count
    stable_complete: bool  # the stable Deployment has finished rolling out its template
    stable_version: str | None
    canary: CanaryReplicas
    analysis: Sequence[RolloutCheck]  # error rate, latency, drift (from the probe loop)
    previous: RolloutStatus | None
    action: str | None  # the annotation's value, "<verb>" or "<verb>/<anything unique>"
    now: datetime
    route: str | None = None  # an HTTPRoute a new canary's weights can go on (its stable pods are labelled)


@dataclass(frozen=True)
class Decision:
    status: RolloutStatus | None
    stable: Stable = "apply"  # apply the template, hold the stable as it is, or (RollingUpdate) revert it
    canary_replicas: int | None = None  # None: no canary Deployment
    rolled_back: str | None = None  # the Stalled message, while a rollback holds
    wake_in: float | None = None  # seconds until a pause or a deadline ends
    events: tuple[tuple[str, str, str], ...] = ()  # (type, reason, message)
    # the canary's weight on status.rollout.httpRoute (0: all to the stable); None: the route as its owner wrote it
    route_weight: int | None = None


def canary_replicas(stable: int, weight: int) -> int:
    """Replicas that make the canary `weight` percent of the whole while the stable keeps all of its own.

    At most MAX_REPLICAS, as any Deployment the operator renders: 99% of 50 replicas would be
    4,950 (status.rollout.weight then says the share there really is).
    """
    return min(MAX_REPLICAS, max(1, math.ceil(stable * weight / (100 - weight))))


def sized(stable: int, weight: int, route: str | None) -> tuple[int, int]:
    """(canary replicas, the canary's share of traffic): on an HTTPRoute the share is the step's
    weight exactly and the canary only needs capacity for it; else the share is the replicas'."""
    if route is not None:
        return min(MAX_REPLICAS, max(1, math.ceil(stable * weight / 100))), weight
    replicas = canary_replicas(stable, weight)
    return replicas, weight_of(stable, replicas)


def weight_of(stable: int, canary: int) -> int:
    return round(100 * canary / (stable + canary)) if stable + canary else 0


def _stamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _elapsed(since: datetime | None, now: datetime) -> float:
    return (now - since).total_seconds() if since is not None else 0.0


def new_action(action: str | None, previous: RolloutStatus | None) -> str | None:
    """The verb of an annotation not yet carried out, or None."""
    if not action or (previous is not None and previous.action == action):
        return None
    verb = action.split("/", 1)[0]
    return verb if verb in ACTIONS else None


def decide(spec: RolloutSpec | None, obs: Observed) -> Decision:
    if spec is None or not spec.canary:
        return _rolling(spec, obs)
    prev = obs.previous
    if prev is not None and prev.revision == obs.revision:
        # this template's rollout goes on, whatever the stable's pods do meanwhile (a node restart
        # leaving it without ready replicas must not promote, or undo a rollback, unchecked)
        if prev.phase == "RolledBack":
            if new_action(obs.action, prev) == "retry":
                return _start(spec, obs, superseded=False)
            return Decision(status=prev, stable="hold", rolled_back=prev.message)
        if prev.phase == "Promoted":
            # the canary serves on until the stable has rolled over, so serving capacity never dips
            keep = None if obs.stable_complete and obs.stable_matches else prev.canary_replicas
            return Decision(status=prev, canary_replicas=keep)
        return _progress(spec, obs, prev)
    if obs.stable_matches or not obs.stable_serving:
        return Decision(status=None)  # nothing new (the stable's own template), or nothing to judge against
    return _start(spec, obs, superseded=prev is not None and prev.phase == "Progressing")


def _start(spec: RolloutSpec, obs: Observed, *, superseded: bool) -> Decision:
    """Step 1 of a canary. The annotation there is now counts as carried out: a request made for
    an earlier canary (a promote racing its own promotion) must not act on this one."""
    steps = spec.steps or []
    replicas, weight = sized(obs.stable_replicas, steps[0].weight, obs.route)
    status = RolloutStatus(
        phase="Progressing",
        revision=obs.revision,
        version=obs.version,
        stable_version=obs.stable_version,
        step=1,
        steps=len(steps),
        weight=weight,
        canary_replicas=replicas,
        http_route=obs.route,
        since=_stamp(obs.now),
        message=f"canary of version {obs.version} at step 1 of {len(steps)}",
        action=obs.action,
    )
    note = " (the previous canary was superseded)" if superseded else ""
    route_weight = 0 if obs.route is not None else None  # all to the stable until the canary is healthy
    event = (
        "Normal",
        "CanaryStarted",
        f"canary of version {obs.version}: step 1/{len(steps)}, "
        f"{replicas} replica(s), {status.weight}% of the replicas{note}",
    )
    return Decision(
        status=status, stable="hold", canary_replicas=replicas, wake_in=0.0, events=(event,), route_weight=route_weight
    )


def _progress(spec: RolloutSpec, obs: Observed, prev: RolloutStatus) -> Decision:
    steps = spec.steps or []
    index = min(max(prev.step or 1, 1), len(steps)) - 1
    step = steps[index]
    replicas, weight = sized(obs.stable_replicas, step.weight, prev.http_route)
    action = new_action(obs.action, prev)
    if action == "abort":
        return _roll_back(obs, prev, [], "aborted by a person (rollout abort)")
    if action == "promote":
        return _promote(obs, prev, list(prev.checks or []), "promoted by a person (rollout promote)")
    checks = [*_replica_checks(obs.canary, replicas, obs.version), *obs.analysis]
    failed = [c for c in checks if c.state == "Failed"]
    if failed:
        return _roll_back(obs, prev, checks, "; ".join(f"{c.name}: {c.message}" for c in failed))
    elapsed = _elapsed(prev.since, obs.now)
    pending = [c for c in checks if c.state == "Pending"]
    deadline = spec.progress_deadline_seconds
    if pending and elapsed >= max(deadline, step.pause_seconds):
        why = "; ".join(f"{c.name}: {c.message}" for c in pending)
        return _roll_back(obs, prev, checks, f"no verdict within progressDeadlineSeconds ({deadline}s): {why}")
    if not pending and elapsed >= step.pause_seconds:
        if index + 1 == len(steps):
            return _promote(obs, prev, checks, f"every check passed through {len(steps)} step(s)")
        return _next_step(spec, obs, prev, checks, index + 1)
    current = prev.model_copy(update={"canary_replicas": replicas, "weight": weight})
    wait = step.pause_seconds - elapsed if not pending else max(deadline, step.pause_seconds) - elapsed
    return Decision(
        status=current,
        stable="hold",
        canary_replicas=replicas,
        wake_in=max(wait, 0.0) + 0.5,
        route_weight=_route_weight(prev, obs, replicas, weight),
    )


def _next_step(
    spec: RolloutSpec, obs: Observed, prev: RolloutStatus, checks: list[RolloutCheck], index: int
) -> Decision:
    steps = spec.steps or []
    replicas, weight = sized(obs.stable_replicas, steps[index].weight, prev.http_route)
    status = RolloutStatus.model_validate(
        {
            **dict(prev),
            "step": index + 1,
            "weight": weight,
            "canary_replicas": replicas,
            "since": _stamp(obs.now),
            "checks": checks,
            "message": f"canary of version {obs.version} at step {index + 1} of {len(steps)}",
        }
    )
    event = (
        "Normal",
        "CanaryStep",
        f"canary of version {obs.version}: step {index + 1}/{len(steps)}, "
        f"{replicas} replica(s), {status.weight}% of the replicas; " + _summary(checks),
    )
    return Decision(
        status=status,
        stable="hold",
        canary_replicas=replicas,
        wake_in=0.0,
        events=(event,),
        route_weight=_route_weight(prev, obs, replicas, weight),
    )


def _route_weight(prev: RolloutStatus, obs: Observed, replicas: int, weight: int) -> int | None:
    """The canary's weight on the route: none before its replicas are all healthy (a weight on a
    Service without ready endpoints is that share of requests failing at the gateway)."""
    if prev.http_route is None:
        return None
    return weight if obs.canary.healthy >= replicas else 0


def _verdict(
    obs: Observed,
    prev: RolloutStatus,
    phase: RolloutPhase,
    checks: list[RolloutCheck],
    message: str,
    *,
    step: int | None = None,
    canary_replicas: int | None = None,
) -> RolloutStatus:
    """The status a promotion or a rollback leaves: the run's identity, the figures, the action it carried out."""
    return RolloutStatus(
        phase=phase,
        revision=prev.revision,
        version=prev.version,
        stable_version=prev.stable_version,
        step=step,
        steps=prev.steps,
        canary_replicas=canary_replicas,
        http_route=prev.http_route,
        since=_stamp(obs.now),
        checks=checks or None,
        message=message,
        action=obs.action if new_action(obs.action, prev) else prev.action,
    )


def _promote(obs: Observed, prev: RolloutStatus, checks: list[RolloutCheck], why: str) -> Decision:
    status = _verdict(
        obs, prev, "Promoted", checks, f"version {prev.version} promoted: {why}", canary_replicas=prev.canary_replicas
    )
    event = ("Normal", "CanaryPromoted", f"version {prev.version} promoted: {why}; " + _summary(checks))
    return Decision(status=status, stable="apply", canary_replicas=prev.canary_replicas, events=(event,))


def _roll_back(obs: Observed, prev: RolloutStatus, checks: list[RolloutCheck], why: str) -> Decision:
    message = f"version {prev.version} rolled back, {prev.stable_version or 'the previous version'} serves: {why}"
    status = _verdict(obs, prev, "RolledBack", checks, message, step=prev.step)
    return Decision(
        status=status,
        stable="hold",
        rolled_back=message,
        events=(("Warning", "CanaryRolledBack", message),),
    )


def _replica_checks(canary: CanaryReplicas, wanted: int, version: str) -> list[RolloutCheck]:
    """Health and served version of the canary's replicas: always checked."""
    if canary.wrong_version:
        version_check = RolloutCheck(
            name="version", state="Failed", message=f"expected {version}, but " + ", ".join(canary.wrong_version[:3])
        )
    elif canary.healthy >= wanted:
        served = f"{canary.healthy} replica(s) serve {version}"
        version_check = RolloutCheck(name="version", state="Passed", message=served)
    else:
        version_check = RolloutCheck(name="version", state="Pending", message=f"{canary.healthy}/{wanted} probed")
    if canary.unhealthy:
        health = RolloutCheck(name="health", state="Failed", message="unhealthy: " + "; ".join(canary.unhealthy[:3]))
    elif canary.healthy >= wanted:
        health = RolloutCheck(name="health", state="Passed", message=f"{canary.healthy}/{wanted} replicas healthy")
    else:
        health = RolloutCheck(name="health", state="Pending", message=f"{canary.healthy}/{wanted} replicas healthy")
    return [health, version_check]


def _summary(checks: Sequence[RolloutCheck]) -> str:
    return "; ".join(f"{c.name} {c.state.lower()}: {c.message}" for c in checks) or "no checks"


# ---- RollingUpdate with autoRollback -------------------------------------------------------------


def _rolling(spec: RolloutSpec | None, obs: Observed) -> Decision:
    """RollingUpdate: the Deployment rolls; with autoRollback, a new template that does not become
    healthy on its version within the deadline is reverted to the one that served."""
    prev = obs.previous
    if spec is None or not spec.auto_rollback:
        return Decision(status=None)
    if prev is not None and prev.revision == obs.revision:
        if prev.phase == "RolledBack":
            if new_action(obs.action, prev) == "retry":
                return _watch(obs, prev.stable_version)
            return Decision(status=prev, stable="revert", rolled_back=prev.message)
        if prev.phase == "Promoted":
            return Decision(status=prev)
        return _watch_progress(spec, obs, prev)
    if obs.stable_matches and obs.stable_complete:
        return Decision(status=None)  # nothing new is rolling out
    if not obs.stable_serving and (prev is None or prev.phase != "Progressing"):
        return Decision(status=None)  # a first rollout has nothing to return to
    # What served before: while another watched rollout was still on its way, the version before that
    # one (it never served); else the stable's as it stands, unless the template is already applied
    # (a status write lost after the apply), when the ReplicaSets will tell.
    if prev is not None and prev.phase == "Progressing":
        before = prev.stable_version
    else:
        before = None if obs.stable_matches else obs.stable_version
    return _watch(obs, before)


def _watch(obs: Observed, before: str | None) -> Decision:
    status = RolloutStatus(
        phase="Progressing",
        revision=obs.revision,
        version=obs.version,
        stable_version=before,
        since=_stamp(obs.now),
        message=f"rolling update to version {obs.version}, rolled back if not healthy in time",
        action=obs.action,
    )
    return Decision(status=status, wake_in=0.0)


def _watch_progress(spec: RolloutSpec, obs: Observed, prev: RolloutStatus) -> Decision:
    """`obs.canary` holds the pods of the new template here: the Deployment's updated replicas."""
    if new_action(obs.action, prev) == "abort":
        return _roll_back_rolling(obs, prev, [], "aborted by a person (rollout abort)")
    checks = _replica_checks(obs.canary, obs.stable_replicas, obs.version)
    if any(c.state == "Failed" for c in checks if c.name == "version"):
        return _roll_back_rolling(obs, prev, checks, "; ".join(f"{c.name}: {c.message}" for c in checks))
    if all(c.state == "Passed" for c in checks) and obs.stable_matches and obs.stable_complete:
        status = RolloutStatus.model_validate(
            {
                **dict(prev),
                "phase": "Promoted",
                "since": _stamp(obs.now),
                "checks": checks,
                "message": f"version {obs.version} rolled out and healthy",
            }
        )
        return Decision(status=status)
    elapsed = _elapsed(prev.since, obs.now)
    deadline = spec.progress_deadline_seconds
    if elapsed >= deadline:
        why = "; ".join(f"{c.name}: {c.message}" for c in checks if c.state != "Passed")
        return _roll_back_rolling(obs, prev, checks, f"not healthy within progressDeadlineSeconds ({deadline}s): {why}")
    return Decision(status=prev, wake_in=deadline - elapsed + 0.5)


def _roll_back_rolling(obs: Observed, prev: RolloutStatus, checks: list[RolloutCheck], why: str) -> Decision:
    decision = _roll_back(obs, prev, checks, why)
    return replace(decision, stable="revert", events=(("Warning", "RolloutRolledBack", decision.rolled_back or why),))
