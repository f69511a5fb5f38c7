"""The prober's I/O with httpx.MockTransport: error strings, deadlines, isolation, concurrency."""

from __future__ import annotations

import asyncio
import gzip
import math
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from modeldeploy.probing.metrics import MetricQuery, MetricsError
from modeldeploy.probing.prober import Prober, ReplicaProbe, probe_replicas
from modeldeploy.probing.targets import ProbeTarget

METRICS = b'm_bucket{le="1"} 2\nm_bucket{le="+Inf"} 5\n'
QUERY = MetricQuery.of("m")
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def healthy_response(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path == "/metrics":
        return httpx.Response(200, content=METRICS, headers={"content-type": "text/plain; version=0.0.4"})
    if path == "/v2/models/iris":
        return httpx.Response(200, json={"name": "iris", "versions": ["1"]})
    return httpx.Response(200, json={})


async def healthy(request: httpx.Request) -> httpx.Response:
    return healthy_response(request)


def target(i: int = 1, metrics: bool = True) -> ProbeTarget:
    return ProbeTarget(
        pod=f"pod-{i}",
        ip=f"127.0.50.{i}",
        port=8080,
        model_name="iris",
        expected_version="1",
        metrics_port=8080 if metrics else None,
    )


def by_host(handlers: dict[str, Handler], default: Handler = healthy) -> httpx.MockTransport:
    async def route(request: httpx.Request) -> httpx.Response:
        return await handlers.get(request.url.host, default)(request)

    return httpx.MockTransport(route)


async def probe(transport: httpx.MockTransport, targets: list[ProbeTarget], **kw: object) -> list[ReplicaProbe]:
    async with Prober(transport=transport, timeout=2.0) as prober:
        return await prober.probe_replicas(targets, metrics=[QUERY], **kw)  # type: ignore[arg-type]


async def test_healthy_replica_with_histograms() -> None:
    [result] = await probe(by_host({}), [target()])
    assert result.healthy
    assert (result.pod, result.ip, result.findings.served_version, result.findings.version_matches) == (
        "pod-1",
        "127.0.50.1",
        "1",
        True,
    )
    assert result.findings.error is None
    assert result.metrics_error is None
    assert result.histograms[QUERY] == {1.0: 2.0, math.inf: 5.0}
    assert result.latency_ms >= 0


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (httpx.ReadTimeout("slow"), "timeout after 2s on /v2/health/ready"),
        (httpx.ConnectError("[Errno 111] Connection refused"), "cannot connect to 127.0.50.1:8080: connection refused"),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            "connection closed without a response on /v2/health/ready",
        ),
        (httpx.RemoteProtocolError("illegal header"), "malformed HTTP response on /v2/health/ready"),
    ],
)
async def test_transport_errors_become_short_messages(exc: Exception, message: str) -> None:
    async def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    [result] = await probe(by_host({"127.0.50.1": fail}), [target(metrics=False)])
    assert result.findings.error == message
    assert result.findings.live is None
    assert not result.healthy


async def test_http_and_body_errors_are_the_replicas_own() -> None:
    async def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"\x00\xffnot json")

    async def unhealthy(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/health/ready":
            return httpx.Response(503)
        return healthy_response(request)

    results = await probe(by_host({"127.0.50.1": garbage, "127.0.50.2": unhealthy}), [target(1), target(2), target(3)])
    assert results[0].findings.error == "malformed JSON from /v2/models/iris"
    assert results[0].metrics_error is not None
    assert results[0].metrics_error.startswith("malformed metrics text")
    assert isinstance(results[0].histograms[QUERY], MetricsError)
    assert (results[1].findings.ready, results[1].findings.error) == (False, "HTTP 503 on /v2/health/ready")
    assert results[2].healthy


async def test_oversized_body_is_refused() -> None:
    async def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 5000)

    async with Prober(transport=by_host({"127.0.50.1": huge}), max_body_bytes=1000) as prober:
        [result] = await prober.probe_replicas([target(metrics=False)])
    assert result.findings.error == "response from /v2/health/ready is larger than 1000 bytes"


async def test_metrics_body_over_the_cap_is_the_scrapes_error_only() -> None:
    """MockTransport hands the whole body over as one chunk; the cap holds all the same."""

    async def big_metrics(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/metrics":
            return httpx.Response(200, content=METRICS + b"other_total 1\n" * 1000)
        return healthy_response(request)

    async with Prober(transport=by_host({"127.0.50.1": big_metrics}), max_metrics_bytes=1000) as prober:
        [big, small] = await prober.probe_replicas([target(1), target(2)], metrics=[QUERY])
    assert big.healthy
    assert big.metrics_error == "metrics body exceeds 1000 bytes"
    assert big.histograms[QUERY] == MetricsError("metrics body exceeds 1000 bytes")
    assert small.histograms[QUERY] == {1.0: 2.0, math.inf: 5.0}


async def test_bodies_are_asked_for_uncompressed_and_compressed_ones_refused() -> None:
    """httpx would inflate each chunk whole before any size limit saw it, so compression is refused outright."""
    seen: dict[str, httpx.Headers] = {}

    def compressed(request: httpx.Request, body: bytes) -> httpx.Response:
        seen[request.url.path] = request.headers
        return httpx.Response(200, content=gzip.compress(body), headers={"content-encoding": "gzip"})

    async def gzipped_metrics(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/metrics":
            return compressed(request, METRICS)
        return healthy_response(request)

    async def gzipped_health(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/health/ready":
            return compressed(request, b"{}")
        return healthy_response(request)

    metrics, health = await probe(
        by_host({"127.0.50.1": gzipped_metrics, "127.0.50.2": gzipped_health}), [target(1), target(2)]
    )
    assert {path: headers["accept-encoding"] for path, headers in seen.items()} == {
        "/metrics": "identity",
        "/v2/health/ready": "identity",
    }
    assert seen["/metrics"]["accept"].startswith("text/plain;version=0.0.4")
    assert metrics.metrics_error == "response from /metrics is gzip-encoded; the prober asks for identity"
    assert metrics.healthy
    assert health.findings.error == "response from /v2/health/ready is gzip-encoded; the prober asks for identity"
    assert health.metrics_error is None


async def test_deadline_cuts_a_slow_replica_and_keeps_partial_results() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.2)
        return healthy_response(request)

    started = time.perf_counter()
    [result] = await probe(by_host({"127.0.50.1": slow}), [target()], deadline=0.3)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    assert result.findings.error == "deadline of 0.3s exceeded"
    # the server's readiness (live and ready) answered within 0.2 s, the version's did not
    assert (result.findings.live, result.findings.ready, result.findings.model_ready) == (True, True, None)
    # the scrape finished in 0.2 s, before the deadline
    assert result.metrics_error is None
    assert result.histograms[QUERY] == {1.0: 2.0, math.inf: 5.0}


async def test_one_hanging_replica_delays_only_itself() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    targets = [target(i) for i in range(1, 22)]
    started = time.perf_counter()
    results = await probe(by_host({"127.0.50.1": hang}), targets, deadline=0.5)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.5
    assert results[0].findings.error == "deadline of 0.5s exceeded"
    assert results[0].metrics_error == "deadline of 0.5s exceeded"
    assert [r.pod for r in results] == [t.pod for t in targets]
    assert all(r.healthy for r in results[1:])


async def test_semaphore_bounds_replicas_in_flight() -> None:
    in_flight: set[str] = set()
    peak = 0

    async def track(request: httpx.Request) -> httpx.Response:
        nonlocal peak
        in_flight.add(request.url.host)
        peak = max(peak, len(in_flight))
        await asyncio.sleep(0.01)
        if request.url.path == "/v2/models/iris":
            in_flight.discard(request.url.host)
        return healthy_response(request)

    async with Prober(transport=httpx.MockTransport(track), concurrency=3) as prober:
        results = await prober.probe_replicas([target(i, metrics=False) for i in range(1, 11)])
    assert all(r.healthy for r in results)
    assert peak == 3


async def test_queries_without_metrics_port_say_so() -> None:
    [result] = await probe(by_host({}), [target(metrics=False)])
    assert result.metrics_error == "no metrics port configured"
    assert result.histograms == {}


async def test_requests_go_only_to_the_pod_ip_and_port() -> None:
    seen: set[tuple[str, int | None]] = set()

    async def record(request: httpx.Request) -> httpx.Response:
        seen.add((request.url.host, request.url.port))
        return httpx.Response(302, headers={"location": "http://169.254.169.254/latest"})

    [result] = await probe(httpx.MockTransport(record), [target(metrics=False)])
    assert seen == {("127.0.50.1", 8080)}  # the redirect was not followed
    assert result.findings.error == "HTTP 302 on /v2/health/live"


async def test_module_level_entry_point_with_shared_prober() -> None:
    async with Prober(transport=by_host({})) as prober:
        results = await probe_replicas([target(1), target(2)], prober=prober, metrics=[QUERY])
    assert [r.healthy for r in results] == [True, True]
    assert [r.findings.served_version for r in results] == ["1", "1"]
