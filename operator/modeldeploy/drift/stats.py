"""Distances between two bucketed distributions: PSI, Kolmogorov-Smirnov and Jensen-Shannon.

Both arguments hold one value per bucket, in bucket order (the baseline's finite
upper bounds, then +Inf). They are normalised to sum to 1 before use, so counts
work as well as proportions and a baseline whose rounded proportions sum to
0.999 is not an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal, get_args

Method = Literal["psi", "ks", "jsd"]
METHODS: tuple[str, ...] = get_args(Method)

# PSI divides by and takes the log of each proportion, so an empty bucket would
# give infinity. Each proportion is floored at PSI_EPSILON instead (without
# renormalising). Consequences: a bucket empty on both sides contributes
# exactly 0; a bucket with proportion p on one side only contributes
# (p - eps) * ln(p / eps), large but finite, e.g. about 0.69 for p = 0.1. 1e-4
# is a common choice: small next to any bucket that matters, large enough that a
# single stray bucket cannot swamp the score on its own.
PSI_EPSILON = 1e-4


def _normalised(values: Sequence[float], what: str) -> list[float]:
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"{what} must be finite and non-negative")
    total = math.fsum(values)
    if total <= 0:
        raise ValueError(f"{what} is empty (sums to 0)")
    return [v / total for v in values]


def _pair(expected: Sequence[float], actual: Sequence[float]) -> tuple[list[float], list[float]]:
    if len(expected) != len(actual):
        raise ValueError(f"expected has {len(expected)} buckets, actual {len(actual)}")
    if not expected:
        raise ValueError("no buckets")
    return _normalised(expected, "expected"), _normalised(actual, "actual")


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population Stability Index: sum over buckets of (a - e) * ln(a / e).

    Rules of thumb: < 0.1 no real change, 0.1-0.25 moderate, > 0.25 major.
    """
    e, a = _pair(expected, actual)
    total = 0.0
    for pe, pa in zip(e, a, strict=True):
        pe, pa = max(pe, PSI_EPSILON), max(pa, PSI_EPSILON)
        total += (pa - pe) * math.log(pa / pe)
    return total


def ks(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Largest gap between the two cumulative distributions at a bucket bound, in [0, 1]."""
    e, a = _pair(expected, actual)
    gap = cum_e = cum_a = 0.0
    for pe, pa in zip(e, a, strict=True):
        cum_e += pe
        cum_a += pa
        gap = max(gap, abs(cum_e - cum_a))
    return min(gap, 1.0)


def jsd(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Jensen-Shannon divergence in bits: 0 for equal distributions, 1 for disjoint ones.

    Unlike PSI it is bounded and needs no epsilon: a bucket empty on one side
    is compared with the mixture, which is not empty.
    """
    e, a = _pair(expected, actual)
    total = 0.0
    for pe, pa in zip(e, a, strict=True):
        m = (pe + pa) / 2
        if pe > 0:
            total += 0.5 * pe * math.log2(pe / m)
        if pa > 0:
            total += 0.5 * pa * math.log2(pa / m)
    return min(max(total, 0.0), 1.0)


_SCORERS: dict[str, Callable[[Sequence[float], Sequence[float]], float]] = {"psi": psi, "ks": ks, "jsd": jsd}


def score(method: Method, expected: Sequence[float], actual: Sequence[float]) -> float:
    try:
        scorer = _SCORERS[method]
    except KeyError:
        raise ValueError(f"unknown drift method {method!r}: use one of {', '.join(METHODS)}") from None
    return scorer(expected, actual)
