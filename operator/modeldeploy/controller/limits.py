"""How hard the operator may push on one object: write budgets and repeated failures (pure).

One bad object must never cost the apiserver more than a bounded number of writes per
minute, whatever loop a bug or a hostile spec finds: every write spends a token from the
object's bucket, and an empty bucket defers the reconcile instead of writing. A failure that
repeats identically is not transient: the object is Stalled with the apiserver's own words and
retried on a backoff that grows to minutes.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

WRITES_PER_MINUTE = 60.0
BURST = 30.0
# A rollout of a few replicas writes the status once per replica that becomes ready, plus the
# children: 30 at once and one a second is several times what a busy object legitimately
# needs, and a hundredth of the storm it bounds (488 writes in 3 s).
EVENTS_PER_MINUTE = 12.0
EVENTS_BURST = 10.0
# Events draw on a bucket of their own: a rollout's status writes must not cost the Warning
# that tells a person their hand edit was reverted.
STALLED_FIRST_RETRY = 5.0
STALLED_MAX_RETRY = 300.0
REPEATS_TO_STALL = 2


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class WriteBudget(Generic[K]):
    """A token bucket per object: `BURST` writes at once, then `per_minute` a minute."""

    per_minute: float = WRITES_PER_MINUTE
    burst: float = BURST
    _buckets: dict[K, _Bucket] = field(default_factory=dict)

    def _refill(self, key: K, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.per_minute / 60.0)
        bucket.at = now
        return bucket

    def wait(self, key: K, now: float, writes: int = 1) -> float:
        """Seconds until `writes` writes are affordable (0 when they are now)."""
        bucket = self._refill(key, now)
        missing = writes - bucket.tokens
        # Refills are floating-point: a bucket that is full to within rounding can afford the
        # write, or a caller waiting "the rest" would wait a few ulps forever.
        return 0.0 if missing <= 1e-9 else missing * 60.0 / self.per_minute

    def spend(self, key: K, now: float, writes: int = 1) -> None:
        self._refill(key, now).tokens -= writes

    def forget(self, key: K) -> None:
        self._buckets.pop(key, None)


@dataclass(frozen=True)
class Failure:
    signature: str
    repeats: int


def record_failure(previous: Failure | None, signature: str) -> Failure:
    """The failure history after one more failure with `signature`."""
    if previous is not None and previous.signature == signature:
        return Failure(signature, previous.repeats + 1)
    return Failure(signature, 1)


def is_stalled(failure: Failure, status: int) -> bool:
    """Whether retrying at once is pointless.

    The apiserver's validation and authorization answers (400, 403, 422) repeat identically by
    nature; anything else (a 500 from an admission webhook, a 409 from a foreign writer) is given
    one retry before it counts as stuck.
    """
    return status in (400, 403, 422) or failure.repeats >= REPEATS_TO_STALL


def stalled_retry_in(failure: Failure) -> float:
    """Backoff for a Stalled object: 5 s, 10 s, 20 s ... up to 5 minutes."""
    return min(STALLED_MAX_RETRY, STALLED_FIRST_RETRY * 2.0 ** min(failure.repeats - 1, 30))
