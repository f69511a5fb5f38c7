"""When a Lease counts as expired (the only judgement leader election makes on its own)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modeldeploy.controller.leader import MICROTIME, expired

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def spec(renewed_ago: float, duration: int = 15) -> dict[str, object]:
    return {"renewTime": (NOW - timedelta(seconds=renewed_ago)).strftime(MICROTIME), "leaseDurationSeconds": duration}


def test_a_recently_renewed_lease_is_held() -> None:
    assert not expired(spec(14.9), NOW)


def test_a_lease_past_its_duration_is_expired() -> None:
    assert expired(spec(15.1), NOW)


def test_a_lease_without_times_is_expired() -> None:
    assert expired({"holderIdentity": "x"}, NOW)


def test_acquire_time_counts_when_never_renewed() -> None:
    assert not expired(
        {"acquireTime": (NOW - timedelta(seconds=2)).strftime(MICROTIME), "leaseDurationSeconds": 15}, NOW
    )
