"""status.history: a revision per change of what serves, Promoted once it served, Superseded when replaced."""

from __future__ import annotations

from modeldeploy.api.v1alpha1 import RevisionStatus
from modeldeploy.api.v1alpha1.status import MAX_HISTORY
from modeldeploy.status.compute import Observation, compute_status, status_body
from modeldeploy.status.history import Serving, next_history, read_history

V1 = Serving("1.0.0", "registry.example/mlserver:1", "mlserver-sklearn")
V2 = Serving("2.0.0", "registry.example/mlserver:1", "mlserver-sklearn")
T0, T1, T2, T3 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z", "2026-01-01T00:03:00Z"


def brief(history: list[RevisionStatus]) -> list[tuple[int, str, str]]:
    return [(e.revision, e.version, e.outcome) for e in history]


def test_the_first_revision_progresses_then_is_promoted_once_ready() -> None:
    started = next_history([], V1, served=False, now=T0)
    assert brief(started) == [(1, "1.0.0", "Progressing")]
    assert next_history(started, V1, served=False, now=T1) == started, "nothing new: the same trail"
    promoted = next_history(started, V1, served=True, now=T1)
    assert brief(promoted) == [(1, "1.0.0", "Promoted")]
    assert promoted[0].served is not None
    assert promoted[0].served.isoformat() == "2026-01-01T00:01:00+00:00"
    assert next_history(promoted, V1, served=True, now=T2) == promoted, "served again: no change, no write"
    assert next_history(promoted, V1, served=False, now=T2) == promoted, "a replica down later: still promoted"


def test_a_new_version_supersedes_the_served_one_once_it_serves() -> None:
    served = next_history(next_history([], V1, served=False, now=T0), V1, served=True, now=T1)
    rolled = next_history(served, V2, served=False, now=T2)
    assert brief(rolled) == [(2, "2.0.0", "Progressing"), (1, "1.0.0", "Promoted")], "1 serves until 2 does"
    assert rolled[1].finished is None
    promoted = next_history(rolled, V2, served=True, now=T3)
    assert brief(promoted) == [(2, "2.0.0", "Promoted"), (1, "1.0.0", "Superseded")]
    assert promoted[1].reason == "replaced by revision 2"
    assert promoted[1].finished is not None
    assert promoted[1].finished.isoformat() == "2026-01-01T00:03:00+00:00"


def test_a_rolled_back_revision_ends_and_the_served_one_keeps_serving() -> None:
    served = next_history(next_history([], V1, served=False, now=T0), V1, served=True, now=T1)
    canary = next_history(served, V2, served=False, now=T2)
    rolled_back = next_history(canary, V2, served=False, now=T3, rolled_back="errorRate: 30% of 100 requests")
    assert brief(rolled_back) == [(2, "2.0.0", "RolledBack"), (1, "1.0.0", "Promoted")]
    assert rolled_back[0].reason == "errorRate: 30% of 100 requests"
    assert rolled_back[0].finished is not None
    assert rolled_back[1].finished is None, "revision 1 still serves"
    held = next_history(rolled_back, V2, served=False, now=T3, rolled_back="errorRate: 30% of 100 requests")
    assert held == rolled_back, "the rollback holding writes nothing new"
    retried = next_history(rolled_back, V2, served=False, now=T3)
    assert brief(retried) == [(3, "2.0.0", "Progressing"), (2, "2.0.0", "RolledBack"), (1, "1.0.0", "Promoted")]


def test_a_revision_replaced_before_it_served_says_so() -> None:
    started = next_history([], V1, served=False, now=T0)
    rolled = next_history(started, V2, served=False, now=T1)
    assert rolled[1].reason == "replaced by revision 2 before it served"
    assert rolled[1].served is None


def test_the_image_or_the_runtime_make_a_revision_but_nothing_else_does() -> None:
    history = next_history([], V1, served=True, now=T0)
    assert brief(next_history(history, Serving(V1.version, "registry.example/mlserver:2", V1.runtime), False, T1))[
        0
    ] == (
        2,
        "1.0.0",
        "Progressing",
    )
    assert brief(next_history(history, Serving(V1.version, V1.image, "other"), False, T1))[0][0] == 2
    assert next_history(history, None, served=False, now=T1) == history, "nothing decided: the trail stays"


def test_the_trail_keeps_the_last_ten() -> None:
    history: list[RevisionStatus] = []
    for n in range(1, 15):
        history = next_history(history, Serving(f"{n}.0.0", "i:1"), served=True, now=T0)
    assert len(history) == MAX_HISTORY
    assert [e.revision for e in history] == list(range(14, 4, -1))


def test_a_returning_version_is_a_new_revision() -> None:
    history = next_history([], V1, served=True, now=T0)
    history = next_history(history, V2, served=True, now=T1)
    history = next_history(history, V1, served=False, now=T2)
    assert brief(history) == [(3, "1.0.0", "Progressing"), (2, "2.0.0", "Promoted"), (1, "1.0.0", "Superseded")]
    assert history[1].finished is None, "2 serves until 3 does"


def test_reading_drops_what_does_not_read_and_keeps_the_rest() -> None:
    good = {"revision": 1, "version": "1", "image": "i:1", "started": T0, "outcome": "Promoted", "futureField": 1}
    assert brief(read_history([good, {"revision": "x"}, "junk"])) == [(1, "1", "Promoted")]
    assert read_history(None) == []


def test_the_status_carries_the_trail_and_writes_it_as_the_apiserver_holds_it() -> None:
    observation = Observation(generation=1, expected_version="1.0.0", desired_replicas=0, probing_enabled=False)
    first = status_body(compute_status(Observation(**{**observation.__dict__, "serving": V1}), now=T0))
    assert first["history"] == [
        {
            "revision": 1,
            "version": "1.0.0",
            "image": "registry.example/mlserver:1",
            "runtime": "mlserver-sklearn",
            "started": T0,
            "outcome": "Progressing",
        }
    ]
    again = Observation(**{**observation.__dict__, "serving": V1, "previous_status": first})
    assert status_body(compute_status(again, now=T1))["history"] == first["history"], "read back: the same trail"
    assert "history" not in status_body(compute_status(observation, now=T0)), "nothing decided, nothing shown"
