"""Re-bucketing Prometheus cumulative histograms and deltas between scrapes."""

from __future__ import annotations

import math

import pytest

from modeldeploy.drift.histograms import HistogramError, delta, per_bucket, rebucket

INF = math.inf
# runtime buckets 1, 2, 3, 4, +Inf with cumulative counts 2, 5, 9, 10, 12
# -> per bucket 2, 3, 4, 1, 2
SCRAPE = {1.0: 2.0, 2.0: 5.0, 3.0: 9.0, 4.0: 10.0, INF: 12.0}


def test_per_bucket_undoes_cumulation() -> None:
    assert per_bucket(SCRAPE) == [(1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 1.0), (INF, 2.0)]


def test_rebucket_onto_coarser_baseline() -> None:
    # baseline bounds 2, 4: <=2 -> 5; (2,4] -> 10-5 = 5; >4 -> 12-10 = 2
    assert rebucket(SCRAPE, [2.0, 4.0]) == (5.0, 5.0, 2.0)
    # identical bounds keep every bucket
    assert rebucket(SCRAPE, [1.0, 2.0, 3.0, 4.0]) == (2.0, 3.0, 4.0, 1.0, 2.0)
    # no finite bounds: a single +Inf bucket with everything
    assert rebucket(SCRAPE, []) == (12.0,)


def test_rebucket_names_the_missing_bound() -> None:
    result = rebucket(SCRAPE, [2.0, 2.5])
    assert isinstance(result, HistogramError)
    assert "2.5" in result.message
    assert "le: 1, 2, 3, 4, +Inf" in result.message


def test_rebucket_matches_bounds_parsed_from_text() -> None:
    # 0.1 * 3 is 0.30000000000000004 while a scrape says "0.3"
    scrape = {0.1: 1.0, 0.3: 4.0, INF: 5.0}
    assert rebucket(scrape, [0.1 * 3]) == (4.0, 1.0)


@pytest.mark.parametrize(
    ("scrape", "bounds", "message"),
    [
        ({1.0: 2.0, 2.0: 3.0}, [1.0], "no +Inf"),
        ({1.0: 5.0, INF: 3.0}, [1.0], "decreases at le=+Inf"),
        ({1.0: -1.0, INF: 3.0}, [1.0], "invalid count"),
        ({1.0: 1.0, INF: 3.0}, [2.0, 1.0], "must increase"),
        ({1.0: 1.0, INF: 3.0}, [INF], "finite"),
        ({}, [1.0], "no +Inf"),
    ],
)
def test_rebucket_errors_are_values(scrape: dict[float, float], bounds: list[float], message: str) -> None:
    result = rebucket(scrape, bounds)
    assert isinstance(result, HistogramError)
    assert message in str(result)


def test_delta_between_scrapes() -> None:
    # (2-1, 2-2, 5-3)
    assert delta((1, 2, 3), (2, 2, 5)) == ((1, 0, 2), False)


def test_delta_after_counter_reset_takes_new_counts() -> None:
    # bucket 1 went 5 -> 1: the process restarted; its counts since then are the delta
    assert delta((5, 5, 5), (1, 6, 2)) == ((1, 6, 2), True)


def test_delta_refuses_different_layouts() -> None:
    with pytest.raises(ValueError, match="bucket layouts differ"):
        delta((1, 2), (1, 2, 3))
