"""When a Lease counts as expired: timed on the candidate's own clock, never the holder's.

The defect: expiry compared the holder's `renewTime` (its wall clock) with ours, so a standby
whose clock ran 30 s ahead saw every Lease expired and took it while the holder still worked.
"""

from __future__ import annotations

import pytest

from modeldeploy.controller.leader import Observed, expired, observe

HELD = {"holderIdentity": "a", "renewTime": "2026-01-01T12:00:00.000000Z", "leaseDurationSeconds": 15}


def renewed(at: str) -> dict[str, object]:
    return {**HELD, "renewTime": at}


@pytest.mark.parametrize(
    ("seen_for", "is_expired"),
    [(0.0, False), (14.9, False), (15.1, True)],
)
def test_an_unchanged_lease_expires_after_its_duration_on_our_clock(seen_for: float, is_expired: bool) -> None:
    observed = observe(None, HELD, now=100.0)
    assert expired(HELD, observe(observed, HELD, now=100.0 + seen_for), now=100.0 + seen_for) is is_expired


def test_any_change_of_the_record_starts_the_timing_afresh() -> None:
    observed = observe(None, HELD, now=100.0)
    later = renewed("2026-01-01T12:00:05.000000Z")
    observed = observe(observed, later, now=110.0)
    assert observed == Observed(observed.record, 110.0)
    assert not expired(later, observed, now=124.0)
    assert expired(later, observed, now=125.5)


@pytest.mark.parametrize("skew", ["2026-01-01T11:59:00.000000Z", "2026-01-01T12:00:30.000000Z", "1970-01-01T00:00:00Z"])
def test_the_holders_clock_does_not_matter(skew: str) -> None:
    """A renewTime 60 s behind, 30 s ahead, or nonsense: only whether it keeps changing counts."""
    lease = renewed(skew)
    observed = observe(None, lease, now=500.0)
    assert not expired(lease, observed, now=505.0)


def test_a_released_lease_is_free_at_once() -> None:
    released = {"leaseDurationSeconds": 1, "renewTime": "2026-01-01T12:00:00.000000Z"}
    assert expired(released, observe(None, released, now=1.0), now=1.0)
