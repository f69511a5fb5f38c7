"""Histogram buckets out of a Prometheus scrape, read as it streams in, as values rather than exceptions.

A replica's /metrics body is untrusted input: truncated, garbage, another
exporter's, or made to hurt. Whatever is wrong with it becomes a `MetricsError`
for that replica. Read whole, one 8 MiB body cost ~200 MB and seconds of event
loop, so the body is filtered as it arrives instead and only the lines of the
asked histograms are kept. Caps bound what one replica can cost:

- `MAX_SCRAPE_BYTES` bounds the bytes read, and so the time spent filtering;
- `MAX_KEPT_BYTES_PER_QUERY` bounds the lines kept, and so the parsing, which
  is what costs: prometheus_client parses about 2 MB/s, and a line that is a
  series of its own holds about nine times its size once parsed;
- `HEAD_BYTES` of the body are kept to tell a body matching nothing that it
  is not metrics at all.

Besides the chunk being read, a scrape in flight so holds its kept lines and
their sums: a few KiB for a real runtime, ~150 KB per query at worst, however
large or endless the body. The work is done in steps of at most one slice of
filtering or one batch of parsing (an OpenMetrics family is parsed in one step,
bounded by the same cap), with a yield to the event loop after each, so a
scrape holds the loop for a few milliseconds at a time and needs no thread (a
parsing thread would take the GIL from the loop after every socket call the
loop makes, for up to 5 ms each time).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import deque
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

Buckets = dict[float, float]
_ESCAPED = frozenset('\\"\n')

# Runtimes' whole /metrics bodies: MLServer and KServe's Python servers tens of
# KiB, vLLM around 100 KiB per engine (a dozen histograms of 10-30 buckets),
# Triton about 3 KiB per loaded model version plus per-GPU gauges, so a few
# hundred KiB with a hundred models. 2 MiB is several times the largest of
# those. Since the body is filtered, not kept, this cap bounds time, not memory.
MAX_SCRAPE_BYTES = 2 << 20
# Lines kept, per query: a series of the reference model server's feature
# histogram is 18 lines, 1.3 KiB; one with the most buckets a drift baseline
# can use (64 bounds) and ~120-byte lines is 8 KiB. 16 KiB is two such series,
# or several of the usual size; a query that matches more should name more
# labels. Parsing 16 KiB takes ~8 ms; once parsed, it holds ~150 KB at most.
MAX_KEPT_BYTES_PER_QUERY = 16 << 10
# A body that is not metrics (an HTML page, JSON) shows it in its first lines.
HEAD_BYTES = 4 << 10
# Filtering done between two yields to the event loop, whatever size chunks come in.
_SLICE_BYTES = 64 << 10
# Kept lines parsed between two yields: ~2 ms of prometheus_client.
_BATCH_BYTES = 4 << 10
# Sample names of an OpenMetrics histogram family (native histograms have no suffix).
_OPENMETRICS_SUFFIXES = ("", "_bucket", "_count", "_sum", "_created", "_gcount", "_gsum")
_EOF = b"# EOF"


@dataclass(frozen=True)
class MetricsError:
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class MetricQuery:
    """A histogram by name, restricted to series whose labels equal `labels`, start with `prefixes`
    and end with `suffixes`.

    A prefix is how a status class is asked for (`code` starting with "5": every 5xx series), a
    suffix how a kind of request is (MLServer's `path` ending in "/infer": inferences, not probes).
    """

    name: str
    labels: tuple[tuple[str, str], ...] = ()
    prefixes: tuple[tuple[str, str], ...] = ()
    suffixes: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(
        cls,
        name: str,
        labels: Mapping[str, str] | None = None,
        prefixes: Mapping[str, str] | None = None,
        suffixes: Mapping[str, str] | None = None,
    ) -> MetricQuery:
        return cls(
            name,
            tuple(sorted((labels or {}).items())),
            tuple(sorted((prefixes or {}).items())),
            tuple(sorted((suffixes or {}).items())),
        )

    def matches(self, labels: Mapping[str, str]) -> bool:
        return (
            all(labels.get(k) == v for k, v in self.labels)
            and all(str(labels.get(k, "")).startswith(v) for k, v in self.prefixes)
            and all(k in labels and str(labels[k]).endswith(v) for k, v in self.suffixes)
        )

    def __str__(self) -> str:
        inner = ",".join(
            [
                *(f'{k}="{v}"' for k, v in self.labels),
                *(f'{k}=~"{v}.*"' for k, v in self.prefixes),
                *(f'{k}=~".*{v}"' for k, v in self.suffixes),
            ]
        )
        return f"{self.name}{{{inner}}}" if inner else self.name


@dataclass(frozen=True)
class Scrape:
    """Each query's buckets or error, and what was wrong with the body as a whole, if anything."""

    histograms: dict[MetricQuery, Buckets | MetricsError]
    error: MetricsError | None = None

    @classmethod
    def failed(cls, queries: Iterable[MetricQuery], error: MetricsError) -> Scrape:
        return cls(dict.fromkeys(queries, error), error)


async def scrape_histograms(
    chunks: AsyncIterable[bytes],
    queries: Iterable[MetricQuery],
    content_type: str = "",
    *,
    max_bytes: int = MAX_SCRAPE_BYTES,
    max_kept_per_query: int = MAX_KEPT_BYTES_PER_QUERY,
) -> Scrape:
    """Read a scrape chunk by chunk and answer every query from the one pass.

    Reading stops at the first cap exceeded or the first malformed line kept.
    Yields to the event loop after every step, so a body that arrives in one
    huge chunk, or from a buffer that never makes the read wait, cannot hold
    the loop either.
    """
    queries = list(queries)
    if not queries:
        return Scrape({})
    max_kept = max_kept_per_query * len(queries)
    scraper = _Scraper(queries, "openmetrics" in content_type, max_bytes, max_kept)
    async for chunk in chunks:
        for start in range(0, len(chunk), _SLICE_BYTES):
            error = scraper.feed(chunk[start : start + _SLICE_BYTES])
            while error is None and scraper.batch_ready():
                await asyncio.sleep(0)
                error = scraper.parse_batch()
            if error is not None:
                return Scrape.failed(queries, error)
            await asyncio.sleep(0)
    error = scraper.end()
    while error is None and scraper.batch_ready():
        error = scraper.parse_batch()
        await asyncio.sleep(0)
    if error is not None:
        return Scrape.failed(queries, error)
    return scraper.result()


class _Scraper:
    """Keeps the lines that may belong to the queried histograms out of bytes fed in any split, and parses them.

    Wanted lines are found by one regular expression over each slice, so the
    lines of other families, and bucket lines of other series, are skipped at C
    speed and never become Python objects. A line cut by a slice boundary is
    carried over only while it may be wanted; otherwise the rest of it is
    skipped as it arrives.

    In the classic text format only `<name>_bucket` lines showing the query's
    label pairs are kept (each sample stands alone in that format), and they
    are parsed a batch at a time into per-query sums. OpenMetrics needs its
    framing, so there the whole family (metadata and every sample) and the
    `# EOF` line are kept and parsed together at the end; the parser checks the
    family, not the rest of the body (lines after `# EOF` included).
    """

    def __init__(self, queries: list[MetricQuery], openmetrics: bool, max_bytes: int, max_kept: int) -> None:
        self.queries = queries
        self.openmetrics = openmetrics
        self.max_bytes = max_bytes
        self.max_kept = max_kept
        self.sums = [_Histogram(q) for q in queries]
        names = sorted({q.name for q in queries})
        if openmetrics:
            prefixes = [f"{n}{s}{end}" for n in names for s in _OPENMETRICS_SUFFIXES for end in ("{", " ")]
            prefixes += [f"# {kind} {n} " for n in names for kind in ("HELP", "TYPE", "UNIT")]
            prefixes.append(_EOF.decode())
            wanted = "|".join(re.escape(p) for p in prefixes)
        else:
            prefixes = [f"{n}_bucket" for n in names]
            wanted = "|".join(_bucket_line_pattern(q) for q in queries)
        self.prefixes = tuple(p.encode() for p in prefixes)
        self.line_re = re.compile(f"(?:{wanted})[^\n]*".encode())
        self.next_line_re = re.compile(f"\n(?:{wanted})[^\n]*".encode())
        self.received = 0
        self.head = bytearray()
        self.kept_bytes = 0
        self.pending: deque[bytes] = deque()  # kept, not parsed yet
        self.pending_bytes = 0
        self.carry = b""  # start of an unfinished line that may be wanted
        self.skipping = False  # inside an unfinished line that is not wanted
        self.ended = False

    def feed(self, data: bytes) -> MetricsError | None:
        self.received += len(data)
        if self.received > self.max_bytes:
            return MetricsError(f"metrics body exceeds {self.max_bytes} bytes")
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        start = 0
        if self.carry or self.skipping:
            newline = data.find(b"\n")
            if newline < 0:
                return self._begin(self.carry + data) if self.carry else None
            if self.carry:
                self._line(self.carry + data[:newline])
            self.carry, self.skipping = b"", False
            start = newline + 1
        end = max(start, data.rfind(b"\n") + 1)  # data[start:end] is whole lines
        if end > start:
            first = self.line_re.match(data, start, end)
            if first is not None:
                self._line(first.group())
            for match in self.next_line_re.finditer(data, start, end):
                self._line(match.group()[1:])
                if self.kept_bytes > self.max_kept:
                    break
        return self._over_kept() or self._begin(data[end:])

    def _begin(self, tail: bytes) -> MetricsError | None:
        """Carry an unfinished line while it may be wanted, or skip the rest of it."""
        if tail and any(tail.startswith(p) or p.startswith(tail) for p in self.prefixes):
            self.carry = tail
            return self._over_kept()
        self.carry, self.skipping = b"", bool(tail)
        return None

    def _line(self, line: bytes) -> None:
        if self.line_re.fullmatch(line) is None:
            return
        if self.openmetrics and line.startswith(_EOF) and line.rstrip() != _EOF:
            return
        self.pending.append(line)
        self.pending_bytes += len(line) + 1
        self.kept_bytes += len(line) + 1

    def _over_kept(self) -> MetricsError | None:
        if self.kept_bytes + len(self.carry) > self.max_kept:
            return MetricsError(f"lines of the queried histograms exceed {self.max_kept} bytes")
        return None

    def batch_ready(self) -> bool:
        """A batch is worth parsing now; once the body has ended, any leftover is."""
        if self.openmetrics:
            return False
        return self.pending_bytes >= _BATCH_BYTES or (self.ended and self.pending_bytes > 0)

    def parse_batch(self) -> MetricsError | None:
        batch: list[bytes] = []
        size = 0
        while self.pending and size < _BATCH_BYTES:
            line = self.pending.popleft()
            batch.append(line)
            size += len(line) + 1
        self.pending_bytes -= size
        text = b"\n".join(batch) + b"\n"
        families = _parse(text.decode("utf-8", errors="replace"), False)
        if isinstance(families, MetricsError):
            return families
        for histogram in self.sums:
            histogram.add(families)
        return None

    def end(self) -> MetricsError | None:
        """The body is complete: its last line needs no newline."""
        if self.carry:
            self._line(self.carry)
        self.carry, self.ended = b"", True
        return self._over_kept()

    def result(self) -> Scrape:
        if self.openmetrics:
            text = b"\n".join(self.pending) + b"\n" if self.pending else b""
            families = _parse(text.decode("utf-8", errors="replace"), True)
            if isinstance(families, MetricsError):
                return Scrape.failed(self.queries, families)
            for histogram in self.sums:
                histogram.add(families)
        elif not self.kept_bytes:
            # Nothing matched: say why if the body is not metrics text at all.
            head = bytes(self.head)
            if self.received > len(head) and b"\n" in head:
                head = head[: head.rindex(b"\n") + 1]
            diagnosis = _parse(head.decode("utf-8", errors="replace"), False)
            if isinstance(diagnosis, MetricsError):
                return Scrape.failed(self.queries, diagnosis)
        return Scrape({h.query: h.result() for h in self.sums})


def _bucket_line_pattern(query: MetricQuery) -> str:
    """The start of a bucket line of `query`, with a lookahead for each label pair it must show."""
    pairs = [f'{k}="{v}"' for k, v in query.labels if not _ESCAPED.intersection(v)]
    pairs += [f'{k}="{v}' for k, v in query.prefixes if not _ESCAPED.intersection(v)]
    pairs += [f'{v}"' for _, v in query.suffixes if not _ESCAPED.intersection(v)]
    # Label values needing escapes look different in the text; the exact match after parsing sees them.
    return re.escape(f"{query.name}_bucket") + "".join(f"(?=[^\n]*{re.escape(pair)})" for pair in pairs)


def _parse(text: str, openmetrics: bool) -> list[Metric] | MetricsError:
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    try:
        return list(parse(text))
    except Exception as exc:  # the parsers raise many kinds of error on bad input
        first_line = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        return MetricsError(f"malformed metrics text: {first_line}")


class _Histogram:
    """Cumulative count per `le` of one query, summed over every series it matches, a batch of samples at a time."""

    def __init__(self, query: MetricQuery) -> None:
        self.query = query
        self.bucket_name = f"{query.name}_bucket"
        self.per_series: dict[tuple[tuple[str, str], ...], Buckets] = {}
        self.error: MetricsError | None = None

    def add(self, families: Iterable[Metric]) -> None:
        if self.error is not None:
            return
        for family in families:
            for sample in family.samples:
                if sample.name != self.bucket_name:
                    continue
                labels = sample.labels
                if not self.query.matches(labels) or "le" not in labels:
                    continue
                try:
                    le = float(labels["le"])
                except ValueError:
                    self.error = MetricsError(f"{self.bucket_name} has a bucket le={labels['le']!r}")
                    return
                value = float(sample.value)
                if math.isnan(le) or not math.isfinite(value) or value < 0:
                    self.error = MetricsError(
                        f"{self.bucket_name} has an invalid bucket le={labels['le']} value={sample.value}"
                    )
                    return
                series = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
                self.per_series.setdefault(series, {})[le] = value

    def result(self) -> Buckets | MetricsError:
        if self.error is not None:
            return self.error
        if not self.per_series:
            return MetricsError(f"no series {self.query} in the scrape")
        layouts = {tuple(sorted(b)) for b in self.per_series.values()}
        if len(layouts) > 1:
            return MetricsError(f"series of {self.query} have different buckets; they cannot be added up")
        total: Buckets = {}
        for buckets in self.per_series.values():
            for le, value in buckets.items():
                total[le] = total.get(le, 0.0) + value
        return total
