"""Histogram buckets from a Prometheus scrape streamed in chunks, with every problem as a value."""

from __future__ import annotations

import asyncio
import itertools
import math
import tracemalloc
from collections.abc import AsyncIterator, Iterable

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.modelserver.metrics import ReplicaMetrics
from modeldeploy.probing import metrics as metrics_module
from modeldeploy.probing.metrics import (
    HEAD_BYTES,
    MAX_KEPT_BYTES_PER_QUERY,
    Buckets,
    MetricQuery,
    MetricsError,
    Scrape,
    scrape_histograms,
)

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


async def chunks_of(body: bytes, size: int | None = None) -> AsyncIterator[bytes]:
    """The body in `size`-byte chunks, or whole; never waiting, like a buffer already full."""
    step = size or len(body) or 1
    for start in range(0, len(body), step):
        yield body[start : start + step]


async def two_chunks(body: bytes, cut: int) -> AsyncIterator[bytes]:
    yield body[:cut]
    yield body[cut:]


async def scrape_all(
    body: str | bytes, queries: Iterable[MetricQuery], content_type: str = "", size: int | None = None, **caps: int
) -> Scrape:
    data = body.encode() if isinstance(body, str) else body
    return await scrape_histograms(chunks_of(data, size), queries, content_type, **caps)


async def scrape(
    body: str | bytes, queries: Iterable[MetricQuery], content_type: str = ""
) -> dict[MetricQuery, Buckets | MetricsError]:
    return (await scrape_all(body, queries, content_type)).histograms


async def test_matching_series_are_summed_per_le() -> None:
    q = MetricQuery.of("latency", {"route": "a"})
    # route a: code 200 (3, 5, 6) + code 500 (1, 1, 2) = (4, 6, 8)
    assert (await scrape(TEXT, [q]))[q] == {0.1: 4.0, 1.0: 6.0, math.inf: 8.0}
    exact = MetricQuery.of("latency", {"route": "b", "code": "200"})
    assert (await scrape(TEXT, [exact]))[exact] == {0.1: 100.0, 1.0: 100.0, math.inf: 100.0}


_ML = 'rest_server_request_duration_seconds_bucket{{app_name="mlserver",method="{}",'
_ML += 'path="/v2/models/{{model_name}}/{}",'
MLSERVER = "# TYPE rest_server_request_duration_seconds histogram\n" + "".join(
    _ML.format(method, path) + f'status_code="{code}",le="{le}"}} {value}\n'
    for method, path, code, le, value in (
        ("POST", "infer", 200, "0.1", 40),
        ("POST", "infer", 200, "+Inf", 50),
        ("POST", "infer", 500, "0.1", 3),
        ("POST", "infer", 500, "+Inf", 5),
        ("GET", "ready", 503, "0.1", 900),
        ("GET", "ready", 503, "+Inf", 900),
    )
)


async def test_a_status_class_and_a_kind_of_request_are_asked_by_prefix_and_suffix() -> None:
    """MLServer's own label layout: its probes' 503s are not the model's errors, nor its requests."""
    requests = MetricQuery.of("rest_server_request_duration_seconds", suffixes={"path": "/infer"})
    errors = MetricQuery.of(
        "rest_server_request_duration_seconds", prefixes={"status_code": "5"}, suffixes={"path": "/infer"}
    )
    found = await scrape(MLSERVER, [requests, errors])
    assert found[requests] == {0.1: 43.0, math.inf: 55.0}
    assert found[errors] == {0.1: 3.0, math.inf: 5.0}
    assert str(errors) == 'rest_server_request_duration_seconds{status_code=~"5.*",path=~".*/infer"}'
    every = MetricQuery.of("rest_server_request_duration_seconds", prefixes={"status_code": "5"})
    assert (await scrape(MLSERVER, [every]))[every] == {0.1: 903.0, math.inf: 905.0}


async def test_missing_metric_or_series_is_an_error_value() -> None:
    missing = MetricQuery.of("nope")
    other_label = MetricQuery.of("latency", {"route": "c"})
    results = await scrape(TEXT, [missing, other_label])
    assert results[missing] == MetricsError("no series nope in the scrape")
    assert results[other_label] == MetricsError('no series latency{route="c"} in the scrape')


async def test_malformed_text_is_an_error_for_every_query() -> None:
    queries = [MetricQuery.of("latency"), MetricQuery.of("other")]
    results = await scrape('<html>\x00 not metrics {"', queries)
    assert all(isinstance(r, MetricsError) and r.message.startswith("malformed metrics text") for r in results.values())


async def test_bad_bucket_values_and_mixed_layouts_are_errors() -> None:
    q = MetricQuery.of("h")
    bad_le = (await scrape('h_bucket{le="abc"} 1\nh_bucket{le="+Inf"} 1\n', [q]))[q]
    assert isinstance(bad_le, MetricsError)
    assert "le='abc'" in bad_le.message
    mixed = (
        'h_bucket{a="1",le="1"} 1\nh_bucket{a="1",le="+Inf"} 1\nh_bucket{a="2",le="2"} 1\nh_bucket{a="2",le="+Inf"} 1\n'
    )
    result = (await scrape(mixed, [q]))[q]
    assert isinstance(result, MetricsError)
    assert "different buckets" in result.message


async def test_openmetrics_format_is_understood() -> None:
    text = '# TYPE h histogram\nh_bucket{le="1.0"} 2\nh_bucket{le="+Inf"} 3\nh_count 3\nh_sum 4.0\n# EOF\n'
    q = MetricQuery.of("h")
    assert (await scrape(text, [q], "application/openmetrics-text; version=1.0.0"))[q] == {1.0: 2.0, math.inf: 3.0}


async def test_reads_the_model_servers_own_metrics() -> None:
    metrics = ReplicaMetrics()
    metrics.observe([[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]], [0, 2])
    text = metrics.render().decode()
    feature = MetricQuery.of("modelserver_feature_value", {"feature": "petal_length"})
    classes = MetricQuery.of("modelserver_prediction_class")
    results = await scrape(text, [feature, classes])
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


async def test_lines_of_other_metrics_are_not_parsed() -> None:
    # A broken line of another metric does not hide the histogram we want ...
    text = 'other_metric{a="b" 1 broken\n' + TEXT
    q = MetricQuery.of("latency", {"route": "b"})
    assert (await scrape(text, [q]))[q] == {0.1: 100.0, 1.0: 100.0, math.inf: 100.0}
    # ... but when nothing we want is there, the parse error is what is reported.
    result = (await scrape('other_metric{a="b" 1 broken\n', [q]))[q]
    assert isinstance(result, MetricsError)
    assert result.message.startswith("malformed metrics text")


async def test_label_values_needing_escapes_still_match() -> None:
    text = (
        'h_bucket{k="a\\"b",le="1"} 2\n'
        'h_bucket{k="a\\"b",le="+Inf"} 3\n'
        'h_bucket{k="c",le="1"} 7\n'
        'h_bucket{k="c",le="+Inf"} 7\n'
    )
    q = MetricQuery.of("h", {"k": 'a"b'})
    assert (await scrape(text, [q]))[q] == {1.0: 2.0, math.inf: 3.0}


NOISE = "".join(f'runtime_noise_total{{shard="{i}",pad="latency_bucket"}} {i}\n' for i in range(200))
ROUTE_A = MetricQuery.of("latency", {"route": "a"})
ROUTE_A_BUCKETS = {0.1: 4.0, 1.0: 6.0, math.inf: 8.0}


async def test_any_split_into_chunks_gives_the_same_answer() -> None:
    """Lines cut by chunk boundaries are carried over, wanted or not, at every possible cut."""
    noise = "".join(NOISE.splitlines(keepends=True)[:3])
    body = ("# HELP x\n" + noise + TEXT + noise + TEXT.replace("latency", "other")).encode()
    body = body.replace(b"\n", b"\r\n", 3)  # a few CRLF line ends too
    queries = [ROUTE_A, MetricQuery.of("other")]
    whole = (await scrape_all(body, queries)).histograms
    assert whole == {ROUTE_A: ROUTE_A_BUCKETS, queries[1]: {0.1: 104.0, 1.0: 106.0, math.inf: 108.0}}
    for size in (1, 2, 7, 64):
        assert (await scrape_all(body, queries, size=size)).histograms == whole, size
    for cut in range(1, len(body)):
        assert (await scrape_histograms(two_chunks(body, cut), queries)).histograms == whole, cut


async def test_body_cap_is_exact_and_reading_stops_there() -> None:
    body = (TEXT + NOISE).encode()
    ok = await scrape_all(body, [ROUTE_A], max_bytes=len(body), size=100)
    assert ok.error is None
    assert ok.histograms[ROUTE_A] == ROUTE_A_BUCKETS

    over = await scrape_all(body + b"\n", [ROUTE_A], max_bytes=len(body), size=100)
    assert over.error == MetricsError(f"metrics body exceeds {len(body)} bytes")
    assert over.histograms == {ROUTE_A: over.error}

    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield NOISE.encode()

    result = await scrape_histograms(endless(), [ROUTE_A], max_bytes=100_000)
    assert result.error == MetricsError("metrics body exceeds 100000 bytes")
    assert pulled == 100_000 // len(NOISE) + 1


async def test_only_lines_of_the_asked_histogram_count_against_the_kept_cap() -> None:
    # A megabyte-long line of another family, arriving in pieces, is skipped, not kept ...
    long_other = "other_total{" + "x" * (1 << 20) + "} 1\n"
    result = await scrape_all(long_other + TEXT, [ROUTE_A], size=4096, max_kept_per_query=4096)
    assert result.histograms[ROUTE_A] == ROUTE_A_BUCKETS
    # ... and so are bucket lines of other series, once their labels show they are not asked for ...
    other_route = "".join(f'latency_bucket{{route="z",i="{i}",le="1"}} 1\n' for i in range(1000))
    result = await scrape_all(other_route + TEXT, [ROUTE_A], max_kept_per_query=4096)
    assert result.histograms[ROUTE_A] == ROUTE_A_BUCKETS
    # ... but lines of the asked series, or one unending line that may be one, are capped.
    cap = MetricsError("lines of the queried histograms exceed 4096 bytes")
    assert (await scrape_all(TEXT, [], max_kept_per_query=4096)).histograms == {}
    many = "".join(f'latency_bucket{{route="a",i="{i}",le="1"}} 1\n' for i in range(1000))
    assert (await scrape_all(many, [ROUTE_A], max_kept_per_query=4096)).error == cap
    # The allowance grows with the queries asked: 6 KiB of lines fit in two queries' 4 KiB each.
    six_kib = "".join(f'latency_bucket{{route="a",i="{i:03}",le="1"}} 1\n' for i in range(140))
    assert 6 << 10 > len(six_kib) > 4 << 10
    assert (await scrape_all(six_kib, [ROUTE_A], max_kept_per_query=4096)).error == cap
    two = await scrape_all(six_kib, [ROUTE_A, MetricQuery.of("other")], max_kept_per_query=4096)
    assert two.histograms[ROUTE_A] == {1.0: 140.0}
    endless_line = 'latency_bucket{route="a",le="' + "9" * 10000
    assert (await scrape_all(endless_line, [ROUTE_A], size=1000, max_kept_per_query=4096)).error == cap
    assert (await scrape_all(endless_line, [ROUTE_A], max_kept_per_query=4096)).error == cap


async def test_memory_held_does_not_grow_with_the_body() -> None:
    """Nearly 2 MiB, a long line of another family included, read holding a few chunks' worth at most."""
    block = (NOISE * ((64 << 10) // len(NOISE))).encode()
    piece = b"x" * (64 << 10)

    async def lazily() -> AsyncIterator[bytes]:
        yield b"other_total{"
        for _ in range(16):  # a 1 MiB line, ended by the first block's first newline
            yield piece
        for _ in range(12):
            yield block
        yield TEXT.encode()

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = await scrape_histograms(lazily(), [ROUTE_A])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.histograms[ROUTE_A] == ROUTE_A_BUCKETS
    assert peak < 512 << 10


async def test_the_event_loop_runs_between_slices_of_one_huge_chunk() -> None:
    """A 2 MiB body handed over in one chunk is still read in steps of at most 128 KiB."""
    body = (NOISE * ((2 << 20) // len(NOISE)) + TEXT).encode()
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    before = ticks
    result = await scrape_all(body, [ROUTE_A])
    during = ticks - before
    done = True
    await task
    assert result.histograms[ROUTE_A] == ROUTE_A_BUCKETS
    assert during >= len(body) // (128 << 10)


async def test_kept_lines_are_parsed_in_small_batches_between_yields(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing is the costly part (about 2 MB/s), so it too is cut into steps the event loop runs between."""
    ticks = 0
    done = False
    parses: list[tuple[int, int]] = []  # (ticks so far, characters parsed) per call

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    def recording(text: str) -> Iterable[Metric]:
        parses.append((ticks, len(text)))
        return text_string_to_metric_families(text)

    monkeypatch.setattr(metrics_module, "text_string_to_metric_families", recording)
    line_count = 200  # 16000 bytes, just under the kept cap
    series = "".join(f'latency_bucket{{route="a",i="{i:03}",pad="{"x" * 30}",le="1"}} 1\n' for i in range(line_count))
    assert len(series) == 16000 < MAX_KEPT_BYTES_PER_QUERY
    task = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    result = await scrape_all(series, [ROUTE_A])  # one chunk
    done = True
    await task
    assert result.histograms[ROUTE_A] == {1.0: float(line_count)}
    assert len(parses) >= 3
    assert all(size <= 8 << 10 for _, size in parses)
    assert all(later > earlier for (earlier, _), (later, _) in itertools.pairwise(parses))


async def test_a_body_that_matches_nothing_is_diagnosed_from_its_head() -> None:
    q = MetricQuery.of("latency")
    html = "<html>\n" + "<p>not metrics</p>\n" * (HEAD_BYTES // 10)
    result = await scrape_all(html, [q], size=4096)
    assert result.error is not None
    assert result.error.message.startswith("malformed metrics text")
    # Valid metrics without the histogram, longer than the head (which ends mid-line): just absent.
    valid = NOISE * (3 * HEAD_BYTES // len(NOISE))
    result = await scrape_all(valid, [q], size=4096)
    assert result.error is None
    assert result.histograms[q] == MetricsError("no series latency in the scrape")


OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


async def test_openmetrics_keeps_the_whole_family_and_its_framing() -> None:
    """Other families, including ones whose names extend the asked name, are left out of the parse."""
    text = (
        "# TYPE h_other counter\n"
        "h_other_total 1\n"
        "# TYPE h histogram\n"
        "# HELP h Latency.\n"
        'h_bucket{k="a",le="1.0"} 2\n'
        'h_bucket{k="a",le="+Inf"} 3\n'
        'h_count{k="a"} 3\n'
        'h_sum{k="a"} 4.0\n'
        'h_bucket{k="b",le="1.0"} 7\n'
        'h_bucket{k="b",le="+Inf"} 7\n'
        'h_count{k="b"} 7\n'
        'h_sum{k="b"} 1.0\n'
        "# TYPE h_seconds gauge\n"
        "h_seconds 1.5\n"
        "# EOF\n"
    )
    q = MetricQuery.of("h", {"k": "a"})
    for size in (None, 5):
        result = await scrape_all(text, [q], OPENMETRICS, size=size)
        assert result.histograms[q] == {1.0: 2.0, math.inf: 3.0}
    truncated = await scrape_all(text.replace("# EOF\n", ""), [q], OPENMETRICS)
    assert truncated.error is not None
    assert truncated.error.message.startswith("malformed metrics text")
    inconsistent = await scrape_all(text.replace('h_count{k="a"} 3', 'h_count{k="a"} 9'), [q], OPENMETRICS)
    assert inconsistent.error is not None
    assert "Count does not match" in inconsistent.error.message


async def test_a_repeated_series_reads_top_to_bottom_across_batches() -> None:
    q = MetricQuery.of("h", {"k": "a"})
    filler = "".join(f'h_bucket{{k="a",z="{i}",le="1"}} 0\n' for i in range(300))  # several batches
    body = 'h_bucket{k="a",le="1"} 1\n' + filler + 'h_bucket{k="a",le="1"} 7\n'
    assert (await scrape(body, [q]))[q] == {1.0: 7.0}
