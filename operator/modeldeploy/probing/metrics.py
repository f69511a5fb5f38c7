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
_ESCAPED = frozenset('\\"\n')


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


def parse_families(
    text: str, content_type: str = "", only: Iterable[MetricQuery] | None = None
) -> list[Metric] | MetricsError:
    """Parse a scrape; with `only`, parse just the bucket lines those queries can use.

    prometheus_client's parser is pure Python and costs about a millisecond per
    hundred lines; a runtime exposes many more series than the one histogram we
    read, so in the classic text format (one sample per line, no required
    structure around it) the other lines are skipped before parsing. When no
    line survives, the whole text is parsed so a broken body still reports
    what is wrong with it. OpenMetrics needs its framing (# TYPE, # EOF) and is
    always parsed whole.
    """
    openmetrics = "openmetrics" in content_type
    if only is not None and not openmetrics:
        lines = [line for line in text.splitlines() if any(_may_match(line, q) for q in only)]
        if lines:
            text = "\n".join(lines) + "\n"
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    try:
        return list(parse(text))
    except Exception as exc:  # the parsers raise many kinds of error on bad input
        first_line = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        return MetricsError(f"malformed metrics text: {first_line}")


def _may_match(line: str, query: MetricQuery) -> bool:
    """Cheap pre-check on the raw line; the parsed sample is matched exactly afterwards."""
    if not line.startswith(f"{query.name}_bucket"):
        return False
    # Label values needing escapes look different in the text; leave those to the exact match.
    return all(f'{k}="{v}"' in line for k, v in query.labels if not _ESCAPED.intersection(v))


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
    families = parse_families(text, content_type, queries)
    if isinstance(families, MetricsError):
        return dict.fromkeys(queries, families)
    return {q: histogram_buckets(families, q) for q in queries}
