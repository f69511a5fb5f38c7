"""The probe loop's schedule: starting replicas are looked at again soon, then every interval."""

from __future__ import annotations

import random

from modeldeploy.controller.probes import LoopState, next_round_in


def test_starting_replicas_are_reprobed_with_a_backoff_capped_by_the_interval() -> None:
    random.seed(1)
    loop = LoopState(("ns", "iris"), "iris")
    delays = [next_round_in(30, loop, starting=True) for _ in range(8)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert all(d <= 33 for d in delays)
    assert 27 <= next_round_in(30, loop, starting=False) <= 33
    assert next_round_in(30, loop, starting=True) == 0.5, "a healthy round resets the backoff"
