"""Histogram buckets out of a Prometheus text scrape, as values rather than exceptions.

A replica's /metrics body is untrusted input: truncated, garbage, or another
exporter's. Whatever is wrong with it becomes a `MetricsError` for that replica.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

Buckets = dict[float, float]


@dataclass(frozen=True)
class MetricsError:
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class MetricQuery:
    """A histogram by name, restricted to series whose labels equal `labels`."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, name: str, labels: Mapping[str, str] | None = None) -> MetricQuery:
        return cls(name, tuple(sorted((labels or {}).items())))

    def __str__(self) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in self.labels)
        return f"{self.name}{{{inner}}}" if inner else self.name


def parse_families(text: str, content_type: str = "") -> list[Metric] | MetricsError:
    parse = openmetrics_families if "openmetrics" in content_type else text_string_to_metric_families
    try:
        return list(parse(text))
    except Exception as exc:  # the parsers raise many kinds of error on bad input
        first_line = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        return MetricsError(f"malformed metrics text: {first_line}")


def histogram_buckets(families: Iterable[Metric], query: MetricQuery) -> Buckets | MetricsError:
    """Cumulative count per `le`, summed over every series the query matches."""
    bucket_name = f"{query.name}_bucket"
    wanted = dict(query.labels)
    per_series: dict[tuple[tuple[str, str], ...], Buckets] = {}
    for family in families:
        for sample in family.samples:
            if sample.name != bucket_name:
                continue
            labels = sample.labels
            if any(labels.get(k) != v for k, v in wanted.items()) or "le" not in labels:
                continue
            try:
                le = float(labels["le"])
            except ValueError:
                return MetricsError(f"{bucket_name} has a bucket le={labels['le']!r}")
            value = float(sample.value)
            if math.isnan(le) or not math.isfinite(value) or value < 0:
                return MetricsError(f"{bucket_name} has an invalid bucket le={labels['le']} value={sample.value}")
            series = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            per_series.setdefault(series, {})[le] = value
    if not per_series:
        return MetricsError(f"no series {query} in the scrape")
    layouts = {tuple(sorted(b)) for b in per_series.values()}
    if len(layouts) > 1:
        return MetricsError(f"series of {query} have different buckets; they cannot be added up")
    total: Buckets = {}
    for buckets in per_series.values():
        for le, value in buckets.items():
            total[le] = total.get(le, 0.0) + value
    return total


def scrape_histograms(
    text: str, queries: Iterable[MetricQuery], content_type: str = ""
) -> dict[MetricQuery, Buckets | MetricsError]:
    """Parse the text once and answer every query from it."""
    queries = list(queries)
    families = parse_families(text, content_type)
    if isinstance(families, MetricsError):
        return dict.fromkeys(queries, families)
    return {q: histogram_buckets(families, q) for q in queries}
