"""From one scrape of a Prometheus histogram to counts in the baseline's buckets.

Prometheus reports cumulative counts per upper bound `le` (each bucket counts
every observation <= le, the last one `+Inf` counts all). The drift statistics
need counts per bucket on the baseline's bounds, which may be coarser than the
runtime's: a baseline bound can only be used if the runtime has a bucket ending
exactly there, because an observation between two runtime bounds cannot be
placed on either side of a baseline bound in the middle. Problems come back as
`HistogramError` values, not exceptions, since they describe one replica's data
and must not stop the evaluation of the others.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Counts = tuple[float, ...]


@dataclass(frozen=True)
class HistogramError:
    message: str

    def __str__(self) -> str:
        return self.message


def _fmt(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


def check_bounds(bounds: Sequence[float]) -> HistogramError | None:
    """Baseline bounds must be finite and strictly increasing (+Inf is implied)."""
    if any(not math.isfinite(b) for b in bounds):
        return HistogramError("baseline bounds must be finite; the +Inf bucket is implied")
    for lower, upper in itertools.pairwise(bounds):
        if upper <= lower:
            return HistogramError(f"baseline bounds must increase: {_fmt(lower)} then {_fmt(upper)}")
    return None


def sorted_cumulative(cumulative: Mapping[float, float]) -> list[tuple[float, float]] | HistogramError:
    """The (le, cumulative count) pairs in order, after checking they can be a histogram."""
    items = sorted(cumulative.items())
    if not items or not math.isinf(items[-1][0]) or items[-1][0] < 0:
        return HistogramError("histogram has no +Inf bucket")
    previous = 0.0
    for le, count in items:
        if math.isnan(le):
            return HistogramError("histogram has a NaN bucket bound")
        if not math.isfinite(count) or count < 0:
            return HistogramError(f"bucket le={_fmt(le)} has an invalid count {count!r}")
        if count < previous:
            return HistogramError(f"cumulative count decreases at le={_fmt(le)} ({previous:g} -> {count:g})")
        previous = count
    return items


def per_bucket(cumulative: Mapping[float, float]) -> list[tuple[float, float]] | HistogramError:
    """(upper bound, count in that bucket alone) for every runtime bucket."""
    items = sorted_cumulative(cumulative)
    if isinstance(items, HistogramError):
        return items
    out: list[tuple[float, float]] = []
    previous = 0.0
    for le, count in items:
        out.append((le, count - previous))
        previous = count
    return out


def rebucket(cumulative: Mapping[float, float], bounds: Sequence[float]) -> Counts | HistogramError:
    """Counts in the baseline's buckets: len(bounds) finite ones, then +Inf."""
    bad = check_bounds(bounds)
    if bad is not None:
        return bad
    items = sorted_cumulative(cumulative)
    if isinstance(items, HistogramError):
        return items
    counts: list[float] = []
    previous = 0.0
    i = 0
    for bound in bounds:
        # Both lists are sorted, so one pass finds each baseline bound.
        while i < len(items) and items[i][0] < bound and not math.isclose(items[i][0], bound, rel_tol=1e-9):
            i += 1
        if i == len(items) or not math.isclose(items[i][0], bound, rel_tol=1e-9, abs_tol=1e-12):
            runtime = ", ".join(_fmt(le) for le, _ in items)
            return HistogramError(
                f"baseline bound {_fmt(bound)} is not a bucket bound of the runtime histogram (le: {runtime})"
            )
        counts.append(items[i][1] - previous)
        previous = items[i][1]
    counts.append(items[-1][1] - previous)
    return tuple(counts)


def delta(previous: Sequence[float], current: Sequence[float]) -> tuple[Counts, bool]:
    """Observations between two scrapes of one replica, and whether its counters were reset.

    A bucket's count only grows while a process lives; if any went down, the
    process restarted (new pod incarnation, OOM kill) between the scrapes, and
    everything it counts now was observed since the restart, so the current
    counts are the delta. Observations the old process made after the previous
    scrape are lost, which is unavoidable and small.
    """
    if len(previous) != len(current):
        raise ValueError(f"bucket layouts differ: {len(previous)} vs {len(current)} buckets")
    if any(c < p for p, c in zip(previous, current, strict=True)):
        return tuple(current), True
    return tuple(c - p for p, c in zip(previous, current, strict=True)), False
