"""Histogram buckets from Prometheus text, with every problem as a value."""

from __future__ import annotations

import math

from modeldeploy.modelserver.metrics import ReplicaMetrics
from modeldeploy.probing.metrics import MetricQuery, MetricsError, scrape_histograms

TEXT = """\
# TYPE latency histogram
latency_bucket{route="a",code="200",le="0.1"} 3
latency_bucket{route="a",code="200",le="1"} 5
latency_bucket{route="a",code="200",le="+Inf"} 6
latency_bucket{route="a",code="500",le="0.1"} 1
latency_bucket{route="a",code="500",le="1"} 1
latency_bucket{route="a",code="500",le="+Inf"} 2
latency_bucket{route="b",code="200",le="0.1"} 100
latency_bucket{route="b",code="200",le="1"} 100
latency_bucket{route="b",code="200",le="+Inf"} 100
latency_count{route="a",code="200"} 6
"""


def test_matching_series_are_summed_per_le() -> None:
    q = MetricQuery.of("latency", {"route": "a"})
    # route a: code 200 (3, 5, 6) + code 500 (1, 1, 2) = (4, 6, 8)
    assert scrape_histograms(TEXT, [q])[q] == {0.1: 4.0, 1.0: 6.0, math.inf: 8.0}
    exact = MetricQuery.of("latency", {"route": "b", "code": "200"})
    assert scrape_histograms(TEXT, [exact])[exact] == {0.1: 100.0, 1.0: 100.0, math.inf: 100.0}


def test_missing_metric_or_series_is_an_error_value() -> None:
    missing = MetricQuery.of("nope")
    other_label = MetricQuery.of("latency", {"route": "c"})
    results = scrape_histograms(TEXT, [missing, other_label])
    assert results[missing] == MetricsError("no series nope in the scrape")
    assert results[other_label] == MetricsError('no series latency{route="c"} in the scrape')


def test_malformed_text_is_an_error_for_every_query() -> None:
    queries = [MetricQuery.of("latency"), MetricQuery.of("other")]
    results = scrape_histograms('<html>\x00 not metrics {"', queries)
    assert all(isinstance(r, MetricsError) and r.message.startswith("malformed metrics text") for r in results.values())


def test_bad_bucket_values_and_mixed_layouts_are_errors() -> None:
    q = MetricQuery.of("h")
    bad_le = scrape_histograms('h_bucket{le="abc"} 1\nh_bucket{le="+Inf"} 1\n', [q])[q]
    assert isinstance(bad_le, MetricsError)
    assert "le='abc'" in bad_le.message
    mixed = (
        'h_bucket{a="1",le="1"} 1\nh_bucket{a="1",le="+Inf"} 1\nh_bucket{a="2",le="2"} 1\nh_bucket{a="2",le="+Inf"} 1\n'
    )
    result = scrape_histograms(mixed, [q])[q]
    assert isinstance(result, MetricsError)
    assert "different buckets" in result.message


def test_openmetrics_format_is_understood() -> None:
    text = '# TYPE h histogram\nh_bucket{le="1.0"} 2\nh_bucket{le="+Inf"} 3\nh_count 3\nh_sum 4.0\n# EOF\n'
    q = MetricQuery.of("h")
    assert scrape_histograms(text, [q], "application/openmetrics-text; version=1.0.0")[q] == {1.0: 2.0, math.inf: 3.0}


def test_reads_the_model_servers_own_metrics() -> None:
    metrics = ReplicaMetrics()
    metrics.observe([[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]], [0, 2])
    text = metrics.render().decode()
    feature = MetricQuery.of("modelserver_feature_value", {"feature": "petal_length"})
    classes = MetricQuery.of("modelserver_prediction_class")
    results = scrape_histograms(text, [feature, classes])
    petal = results[feature]
    assert isinstance(petal, dict)
    # 1.4 falls in le=1.5, 6.0 in le=6.0
    assert petal[1.0] == 0
    assert petal[1.5] == 1
    assert petal[5.5] == 1
    assert petal[6.0] == 2
    assert petal[math.inf] == 2
    # class 0 -> le 0.5; class 2 -> +Inf only
    assert results[classes] == {0.5: 1.0, 1.5: 1.0, math.inf: 2.0}


def test_lines_of_other_metrics_are_not_parsed() -> None:
    # A broken line of another metric does not hide the histogram we want ...
    text = 'other_metric{a="b" 1 broken\n' + TEXT
    q = MetricQuery.of("latency", {"route": "b"})
    assert scrape_histograms(text, [q])[q] == {0.1: 100.0, 1.0: 100.0, math.inf: 100.0}
    # ... but when nothing we want is there, the parse error is what is reported.
    result = scrape_histograms('other_metric{a="b" 1 broken\n', [q])[q]
    assert isinstance(result, MetricsError)
    assert result.message.startswith("malformed metrics text")


def test_label_values_needing_escapes_still_match() -> None:
    text = (
        'h_bucket{k="a\\"b",le="1"} 2\n'
        'h_bucket{k="a\\"b",le="+Inf"} 3\n'
        'h_bucket{k="c",le="1"} 7\n'
        'h_bucket{k="c",le="+Inf"} 7\n'
    )
    q = MetricQuery.of("h", {"k": 'a"b'})
    assert scrape_histograms(text, [q])[q] == {1.0: 2.0, math.inf: 3.0}
