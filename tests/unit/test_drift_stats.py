"""Drift statistics against values worked out by hand (arithmetic in the comments)."""

from __future__ import annotations

import math

import pytest

from modeldeploy.drift.stats import PSI_EPSILON, jsd, ks, psi, score


def test_psi_two_buckets() -> None:
    # (0.25-0.5)*ln(0.25/0.5) + (0.75-0.5)*ln(0.75/0.5)
    # = -0.25*(-0.693147) + 0.25*0.405465 = 0.173287 + 0.101366 = 0.274653
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.274653, abs=1e-6)


def test_psi_is_zero_for_equal_distributions_and_takes_counts() -> None:
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == pytest.approx(0.0, abs=1e-12)
    # counts 50/50 vs 25/75 are the proportions of test_psi_two_buckets
    assert psi([50, 50], [25, 75]) == pytest.approx(0.274653, abs=1e-6)


def test_psi_floors_empty_buckets_at_epsilon() -> None:
    assert PSI_EPSILON == 1e-4
    # bucket 1: equal -> 0
    # bucket 2: (0.4-0.5)*ln(0.4/0.5) = -0.1*(-0.223144) = 0.0223144
    # bucket 3: expected 0 -> 1e-4: (0.1-0.0001)*ln(0.1/0.0001) = 0.0999*6.907755 = 0.690085
    # total 0.712399
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]) == pytest.approx(0.712399, abs=1e-6)
    # a bucket empty on both sides contributes nothing
    assert psi([0.5, 0.5, 0.0], [0.5, 0.5, 0.0]) == 0.0


def test_ks_is_largest_cdf_gap() -> None:
    # CDFs: expected 0.2, 0.5, 1.0; actual 0.5, 0.8, 1.0 -> gaps 0.3, 0.3, 0
    assert ks([0.2, 0.3, 0.5], [0.5, 0.3, 0.2]) == pytest.approx(0.3)
    # CDFs: 0.1, 0.5, 1.0 vs 0.3, 0.4, 1.0 -> gaps 0.2, 0.1, 0
    assert ks([0.1, 0.4, 0.5], [0.3, 0.1, 0.6]) == pytest.approx(0.2)
    assert ks([1, 0], [0, 1]) == pytest.approx(1.0)


def test_jsd_base_two() -> None:
    # P = (0.5, 0.5), Q = (1, 0), M = (0.75, 0.25)
    # KL(P||M) = 0.5*log2(0.5/0.75) + 0.5*log2(0.5/0.25) = 0.5*(-0.584963) + 0.5*1 = 0.207519
    # KL(Q||M) = 1*log2(1/0.75) = 0.415037
    # JSD = (0.207519 + 0.415037) / 2 = 0.311278
    assert jsd([0.5, 0.5], [1.0, 0.0]) == pytest.approx(0.311278, abs=1e-6)
    assert jsd([1, 0], [0, 1]) == pytest.approx(1.0)
    assert jsd([0.3, 0.7], [0.3, 0.7]) == pytest.approx(0.0, abs=1e-12)


def test_score_dispatches_and_rejects_unknown_method() -> None:
    assert score("psi", [0.5, 0.5], [0.25, 0.75]) == psi([0.5, 0.5], [0.25, 0.75])
    assert score("ks", [0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="unknown drift method"):
        score("kl", [0.5, 0.5], [0.5, 0.5])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("expected", "actual", "message"),
    [
        ([0.5, 0.5], [1.0], "buckets"),
        ([0.5, -0.1], [0.5, 0.5], "non-negative"),
        ([0.5, 0.5], [0.0, 0.0], "empty"),
        ([0.5, math.nan], [0.5, 0.5], "finite"),
        ([], [], "no buckets"),
    ],
)
def test_invalid_inputs_are_rejected(expected: list[float], actual: list[float], message: str) -> None:
    for fn in (psi, ks, jsd):
        with pytest.raises(ValueError, match=message):
            fn(expected, actual)
