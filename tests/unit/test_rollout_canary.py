"""The canary's state machine (rollout/canary.py): a table of what is observed and what it decides."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from modeldeploy.api.v1alpha1 import RolloutCheck, RolloutSpec, RolloutStatus
from modeldeploy.rollout.canary import CanaryReplicas, Observed, canary_replicas, decide, new_action, weight_of

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CANARY = RolloutSpec.model_validate(
    {
        "strategy": "Canary",
        "steps": [{"weight": 25, "pause": "60s"}, {"weight": 50, "pause": "2m"}],
        "progressDeadlineSeconds": 300,
    }
)
AUTO = RolloutSpec.model_validate({"autoRollback": True, "progressDeadlineSeconds": 120})
PASSED = RolloutCheck(name="errorRate", state="Passed", message="0.0% of 50 requests answered 5xx, within 5.0%")
FAILED = RolloutCheck(name="errorRate", state="Failed", message="40.0% of 50 requests answered 5xx, above 5.0%")
PENDING = RolloutCheck(name="errorRate", state="Pending", message="3 of 20 requests needed to judge")


def observed(**changes: object) -> Observed:
    base = Observed(
        revision="new",
        version="2.0.0",
        stable_matches=False,
        stable_serving=True,
        stable_replicas=3,
        stable_complete=True,
        stable_version="1.0.0",
        canary=CanaryReplicas(),
        analysis=(),
        previous=None,
        action=None,
        now=T0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def at_step(step: int, since: datetime = T0, **changes: object) -> RolloutStatus:
    fields: dict[str, object] = {
        "phase": "Progressing",
        "revision": "new",
        "version": "2.0.0",
        "stable_version": "1.0.0",
        "step": step,
        "steps": 2,
        "weight": 25,
        "canary_replicas": 1,
        "since": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    fields.update(changes)
    return RolloutStatus.model_validate(fields)


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("stable", "weight", "canary", "share"),
    [(3, 25, 1, 25), (3, 50, 3, 50), (4, 10, 1, 20), (10, 10, 2, 17), (1, 99, 99, 99), (0, 50, 1, 100)],
)
def test_the_canary_is_added_beside_the_whole_stable(stable: int, weight: int, canary: int, share: int) -> None:
    assert canary_replicas(stable, weight) == canary
    assert weight_of(stable, canary) == share


def test_a_new_template_starts_a_canary_and_holds_the_stable() -> None:
    decision = decide(CANARY, observed())
    assert decision.status is not None
    assert (decision.status.phase, decision.status.step, decision.status.weight) == ("Progressing", 1, 25)
    assert (decision.stable, decision.canary_replicas) == ("hold", 1)
    assert [e[1] for e in decision.events] == ["CanaryStarted"]


@pytest.mark.parametrize(
    "why", [{"stable_matches": True}, {"stable_serving": False}], ids=["nothing-new", "nothing-serving-yet"]
)
def test_no_canary_without_a_new_template_or_a_serving_stable(why: dict[str, object]) -> None:
    decision = decide(CANARY, observed(**why))
    assert (decision.status, decision.stable, decision.canary_replicas) == (None, "apply", None)


def test_a_step_waits_out_its_pause_with_every_check_passing() -> None:
    healthy = CanaryReplicas(healthy=1)
    waiting = decide(CANARY, observed(previous=at_step(1), canary=healthy, analysis=(PASSED,), now=later(30)))
    assert waiting.status == at_step(1), "mid-pause: nothing to write"
    assert waiting.events == ()
    assert waiting.wake_in is not None
    assert 30 <= waiting.wake_in <= 31
    moved = decide(CANARY, observed(previous=at_step(1), canary=healthy, analysis=(PASSED,), now=later(60)))
    assert moved.status is not None
    assert (moved.status.step, moved.canary_replicas, moved.status.weight) == (2, 3, 50)
    assert [c.name for c in moved.status.checks or []] == ["health", "version", "errorRate"]
    assert [e[1] for e in moved.events] == ["CanaryStep"]


def test_pending_evidence_holds_a_step_past_its_pause() -> None:
    decision = decide(
        CANARY, observed(previous=at_step(1), canary=CanaryReplicas(healthy=1), analysis=(PENDING,), now=later(90))
    )
    assert decision.status == at_step(1)


def test_the_last_step_promotes_and_the_canary_stays_until_the_stable_has_rolled() -> None:
    last = at_step(2, canary_replicas=3, weight=50)
    promoted = decide(CANARY, observed(previous=last, canary=CanaryReplicas(healthy=3), now=later(120)))
    assert promoted.status is not None
    assert promoted.status.phase == "Promoted"
    assert (promoted.stable, promoted.canary_replicas) == ("apply", 3)
    assert [e[1] for e in promoted.events] == ["CanaryPromoted"]
    rolling = decide(CANARY, observed(previous=promoted.status, stable_matches=True, stable_complete=False))
    assert (rolling.status, rolling.canary_replicas) == (promoted.status, 3)
    done = decide(CANARY, observed(previous=promoted.status, stable_matches=True, stable_complete=True))
    assert (done.status, done.canary_replicas) == (promoted.status, None)


@pytest.mark.parametrize(
    ("canary", "analysis", "reason"),
    [
        (CanaryReplicas(healthy=1), (FAILED,), "errorRate: 40.0% of 50 requests"),
        (
            CanaryReplicas(wrong_version=("iris-canary-x serves 1.9.0",)),
            (),
            "version: expected 2.0.0, but iris-canary-x",
        ),
        (CanaryReplicas(unhealthy=("iris-canary-x: not live",)), (), "health: unhealthy: iris-canary-x: not live"),
    ],
    ids=["check", "version", "health"],
)
def test_the_first_failing_check_rolls_back_and_says_why(
    canary: CanaryReplicas, analysis: tuple[RolloutCheck, ...], reason: str
) -> None:
    decision = decide(CANARY, observed(previous=at_step(1), canary=canary, analysis=analysis, now=later(5)))
    assert decision.status is not None
    assert decision.status.phase == "RolledBack"
    assert (decision.stable, decision.canary_replicas) == ("hold", None)
    assert decision.rolled_back is not None
    assert reason in decision.rolled_back
    assert decision.rolled_back.startswith("version 2.0.0 rolled back, 1.0.0 serves: ")
    assert [e[:2] for e in decision.events] == [("Warning", "CanaryRolledBack")]


def test_no_verdict_within_the_deadline_rolls_back() -> None:
    late = observed(previous=at_step(1), canary=CanaryReplicas(healthy=1), analysis=(PENDING,), now=later(299))
    assert decide(CANARY, late).status == at_step(1)
    decision = decide(CANARY, replace(late, now=later(300)))
    assert decision.rolled_back is not None
    assert "no verdict within progressDeadlineSeconds (300s): errorRate: 3 of 20 requests" in decision.rolled_back


def test_a_rollback_holds_until_the_template_changes_or_a_person_retries() -> None:
    rolled = decide(CANARY, observed(previous=at_step(1), canary=CanaryReplicas(healthy=1), analysis=(FAILED,))).status
    assert rolled is not None
    held = decide(CANARY, observed(previous=rolled))
    assert (held.status, held.stable, held.canary_replicas, held.events) == (rolled, "hold", None, ())
    other = decide(CANARY, observed(previous=rolled, revision="newer", version="2.0.1"))
    assert other.status is not None
    assert (other.status.phase, other.status.revision) == ("Progressing", "newer")
    retried = decide(CANARY, observed(previous=rolled, action="retry/1"))
    assert retried.status is not None
    assert (retried.status.phase, retried.status.action) == ("Progressing", "retry/1")
    failing = observed(previous=retried.status, canary=CanaryReplicas(healthy=1), analysis=(FAILED,), action="retry/1")
    again = decide(CANARY, failing)
    assert again.status is not None
    assert again.status.phase == "RolledBack"
    assert decide(CANARY, observed(previous=again.status, action="retry/1")).status == again.status, "a token acts once"
    reverted = decide(CANARY, observed(previous=rolled, revision="old", version="1.0.0", stable_matches=True))
    assert (reverted.status, reverted.stable) == (None, "apply"), "the spec back on the stable's template"


@pytest.mark.parametrize(("verb", "phase"), [("promote", "Promoted"), ("abort", "RolledBack")])
def test_a_person_promotes_or_aborts_a_running_canary(verb: str, phase: str) -> None:
    decision = decide(CANARY, observed(previous=at_step(1), action=f"{verb}/7", now=later(1)))
    assert decision.status is not None
    assert (decision.status.phase, decision.status.action) == (phase, f"{verb}/7")
    assert "by a person" in (decision.status.message or "")


@pytest.mark.parametrize(
    ("action", "done", "verb"),
    [
        (None, None, None),
        ("retry/1", None, "retry"),
        ("retry/1", "retry/1", None),
        ("bogus/1", None, None),
        ("promote", None, "promote"),
    ],
)
def test_an_action_is_carried_out_once(action: str | None, done: str | None, verb: str | None) -> None:
    previous = at_step(1, action=done) if done else None
    assert new_action(action, previous) == verb


def test_a_rolling_update_with_auto_rollback_is_watched_and_reverted_past_its_deadline() -> None:
    watched = decide(AUTO, observed())
    assert watched.status is not None
    assert watched.status.phase == "Progressing"
    assert watched.stable == "apply", "a rolling update rolls the one Deployment"
    rolling = observed(previous=watched.status, stable_matches=True, canary=CanaryReplicas(healthy=1))
    assert decide(AUTO, replace(rolling, now=later(60))).status == watched.status
    reverted = decide(AUTO, replace(rolling, now=later(120)))
    assert reverted.status is not None
    assert reverted.status.phase == "RolledBack"
    assert reverted.stable == "revert"
    assert reverted.rolled_back is not None
    assert "not healthy within progressDeadlineSeconds (120s)" in reverted.rolled_back
    healthy = decide(AUTO, replace(rolling, canary=CanaryReplicas(healthy=3), now=later(30)))
    assert healthy.status is not None
    assert healthy.status.phase == "Promoted"
    assert decide(AUTO, observed(previous=reverted.status, stable_matches=False)).stable == "revert", "held reverted"


def test_a_plain_rolling_update_decides_nothing() -> None:
    assert decide(None, observed()).status is None
    assert decide(RolloutSpec(), observed()).status is None


@pytest.mark.parametrize("phase", ["Progressing", "RolledBack"])
def test_a_stable_without_ready_pods_for_a_moment_neither_promotes_nor_undoes_a_rollback(phase: str) -> None:
    previous = at_step(1, phase=phase, message="version 2.0.0 rolled back, 1.0.0 serves: x")
    decision = decide(CANARY, observed(previous=previous, stable_serving=False, now=later(5)))
    assert decision.stable == "hold"
    assert decision.status is not None
    assert decision.status.phase == phase


@pytest.mark.parametrize("verb", ["promote", "abort"])
def test_a_request_left_from_an_earlier_canary_does_not_act_on_the_next(verb: str) -> None:
    promoted = at_step(1, phase="Promoted", action=None)
    started = decide(CANARY, observed(previous=promoted, revision="next", version="3.0.0", action=f"{verb}/9"))
    assert started.status is not None
    assert started.status.action == f"{verb}/9", "counted as carried out"
    going_on = decide(
        CANARY,
        observed(
            previous=started.status,
            revision="next",
            version="3.0.0",
            action=f"{verb}/9",
            now=later(1),
            canary=CanaryReplicas(healthy=1),
        ),
    )
    assert going_on.status is not None
    assert going_on.status.phase == "Progressing"


def test_a_canary_is_never_larger_than_any_deployment_may_be() -> None:
    assert canary_replicas(50, 99) == 1000
