"""A sliding time window of observation counts, summed over the replicas of a deployment.

The operator scrapes every replica each cycle. Each scrape's cumulative counts
minus that replica's previous scrape give what happened in between; those
deltas are kept with their time so the drift score reflects only the last
`window_seconds` of traffic, not everything since the replicas started.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modeldeploy.drift.histograms import Counts, HistogramError, delta, rebucket


@dataclass(frozen=True)
class WindowEntry:
    timestamp: float
    counts: Counts


class SlidingWindow:
    def __init__(self, window_seconds: float, n_buckets: int) -> None:
        if not window_seconds > 0:
            raise ValueError("window_seconds must be positive")
        if n_buckets < 1:
            raise ValueError("n_buckets must be at least 1")
        self.window_seconds = float(window_seconds)
        self.n_buckets = n_buckets
        # Kept in timestamp order, so expiry only ever looks at the left end.
        self._entries: deque[WindowEntry] = deque()
        # Running sums of the entries; counts are whole numbers, so adding and
        # subtracting them as floats is exact.
        self._totals = [0.0] * n_buckets
        self._last_scrape: dict[str, Counts] = {}
        self._now = -math.inf

    def observe(self, replica: str, timestamp: float, counts: Sequence[float]) -> bool:
        """Take one replica's counts from a scrape; return whether its counters were reset.

        The first scrape of a replica only sets its reference point: its counts
        were gathered at unknown times since the process started, possibly long
        before the window, so they are not added.
        """
        current = self._checked(counts)
        previous = self._last_scrape.get(replica)
        self._last_scrape[replica] = current
        if previous is None:
            self.prune(timestamp)
            return False
        diff, reset = delta(previous, current)
        self.add(timestamp, diff)
        return reset

    def add(self, timestamp: float, counts: Sequence[float]) -> None:
        """Add counts observed by `timestamp` (already a delta)."""
        entry = WindowEntry(timestamp, self._checked(counts))
        if any(entry.counts) and timestamp > self._now - self.window_seconds:
            if not self._entries or self._entries[-1].timestamp <= timestamp:
                self._entries.append(entry)
            else:
                # Replicas scraped concurrently can report a little out of order.
                self._entries.insert(bisect.bisect_right(self._entries, timestamp, key=_timestamp), entry)
            for i, c in enumerate(entry.counts):
                self._totals[i] += c
        self.prune(timestamp)

    def forget(self, replica: str) -> None:
        """Drop a replica's reference point (its pod is gone); its counted deltas stay until they age out."""
        self._last_scrape.pop(replica, None)

    def replicas(self) -> list[str]:
        return list(self._last_scrape)

    def prune(self, now: float) -> None:
        """Drop entries at or before `now - window_seconds`; time never runs backwards here."""
        self._now = max(self._now, now)
        cutoff = self._now - self.window_seconds
        while self._entries and self._entries[0].timestamp <= cutoff:
            for i, c in enumerate(self._entries.popleft().counts):
                self._totals[i] -= c

    def totals(self) -> Counts:
        return tuple(self._totals)

    @property
    def samples(self) -> float:
        return math.fsum(self._totals)

    def proportions(self) -> Counts | None:
        """Share of the window's observations per bucket; None while it holds none."""
        n = self.samples
        if n <= 0:
            return None
        return tuple(c / n for c in self._totals)

    def __len__(self) -> int:
        return len(self._entries)

    def _checked(self, counts: Sequence[float]) -> Counts:
        if len(counts) != self.n_buckets:
            raise ValueError(f"expected {self.n_buckets} bucket counts, got {len(counts)}")
        if any(not math.isfinite(c) or c < 0 for c in counts):
            raise ValueError("bucket counts must be finite and non-negative")
        return tuple(float(c) for c in counts)


def _timestamp(entry: WindowEntry) -> float:
    return entry.timestamp


def observe_scrape(
    window: SlidingWindow,
    replica: str,
    timestamp: float,
    cumulative: Mapping[float, float],
    bounds: Sequence[float],
) -> bool | HistogramError:
    """Feed one replica's scraped cumulative histogram into the window, on the baseline's bounds.

    Returns whether the replica's counters were reset, or why the scrape could
    not be used (the window is then unchanged for this replica).
    """
    counts = rebucket(cumulative, bounds)
    if isinstance(counts, HistogramError):
        return counts
    return window.observe(replica, timestamp, counts)
