"""The prober against replicas whose /metrics is hostile: huge, endless, trickling, compressed, one long line.

A raw asyncio HTTP server on 127.0.0.1 plays every replica; the metrics path
picks the behaviour. Health endpoints always answer, so each case also shows
that a bad scrape stays the scrape's problem and the replica is still judged
healthy on its health endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import math
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from modeldeploy.probing.metrics import MAX_KEPT_BYTES_PER_QUERY, MAX_SCRAPE_BYTES, MetricQuery, MetricsError
from modeldeploy.probing.prober import Prober, ReplicaProbe
from modeldeploy.probing.targets import ProbeTarget

HOST = "127.0.0.1"
QUERY = MetricQuery.of("latency", {"route": "a"})
HISTOGRAM = (
    b"# HELP latency Request latency.\n"
    b"# TYPE latency histogram\n"
    b'latency_bucket{route="a",le="0.1"} 3\n'
    b'latency_bucket{route="a",le="1"} 5\n'
    b'latency_bucket{route="a",le="+Inf"} 6\n'
    b'latency_bucket{route="b",le="0.1"} 100\n'
    b'latency_bucket{route="b",le="1"} 100\n'
    b'latency_bucket{route="b",le="+Inf"} 100\n'
    b'latency_count{route="a"} 6\n'
)
EXPECTED = {0.1: 3.0, 1.0: 5.0, math.inf: 6.0}
# About 64 KiB of a family nobody asked for, repeated to make big bodies.
NOISE = b"# HELP runtime_noise_total Noise.\n# TYPE runtime_noise_total counter\n" + b"".join(
    b'runtime_noise_total{shard="%d",pad="abcdefghijklmnop"} %d\n' % (i, i) for i in range(1100)
)
Writer = Callable[[asyncio.StreamWriter], Awaitable[None]]


async def send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def chunked(writer: asyncio.StreamWriter, data: bytes) -> None:
    await send(writer, b"%x\r\n%s\r\n" % (len(data), data))


def head(length: int | None = None, extra: bytes = b"") -> bytes:
    framing = b"Transfer-Encoding: chunked\r\n" if length is None else b"Content-Length: %d\r\n" % length
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n" + framing + extra + b"\r\n"


async def huge(writer: asyncio.StreamWriter) -> None:
    """64 MiB announced and generated as it is sent, never held whole."""
    size = 64 << 20
    await send(writer, head(size))
    sent = 0
    while sent < size:
        block = NOISE[: size - sent]
        await send(writer, block)
        sent += len(block)


async def endless(writer: asyncio.StreamWriter) -> None:
    await send(writer, head())
    while True:
        await chunked(writer, NOISE)


async def endless_histogram(writer: asyncio.StreamWriter) -> None:
    """Nothing but lines of the asked histogram, each a new series: every line passes the filter."""
    await send(writer, head())
    n = 0
    while True:
        lines = b"".join(b'latency_bucket{route="a",replica="%d",le="1"} 1\n' % (n + i) for i in range(500))
        n += 500
        await chunked(writer, lines)


async def one_long_line(writer: asyncio.StreamWriter) -> None:
    """A line of the asked histogram that never ends."""
    await send(writer, head())
    await chunked(writer, b'latency_bucket{route="a",le="')
    while True:
        await chunked(writer, b"9" * 65536)


async def buried(writer: asyncio.StreamWriter) -> None:
    """Within the cap, but the asked histogram comes after 1.5 MiB of other families."""
    body = NOISE * 24 + HISTOGRAM
    assert len(body) < MAX_SCRAPE_BYTES
    await send(writer, head(len(body)) + body)


async def trickle(writer: asyncio.StreamWriter) -> None:
    """Valid lines, each well within the read timeout, forever."""
    await send(writer, head())
    while True:
        await chunked(writer, b'latency_bucket{route="a",le="1"} 1\n')
        await asyncio.sleep(0.05)


async def gzip_bomb(writer: asyncio.StreamWriter) -> None:
    """Compressed although identity was asked for: 64 KiB on the wire, 64 MiB once inflated."""
    body = gzip.compress(bytes(64 << 20), compresslevel=9)
    await send(writer, head(len(body), b"Content-Encoding: gzip\r\n") + body)


async def small(writer: asyncio.StreamWriter) -> None:
    await send(writer, head(len(HISTOGRAM)) + HISTOGRAM)


METRICS: dict[str, Writer] = {
    "/huge": huge,
    "/endless": endless,
    "/endless-histogram": endless_histogram,
    "/long-line": one_long_line,
    "/buried": buried,
    "/trickle": trickle,
    "/gzip": gzip_bomb,
    "/small": small,
}


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode()
            if path in METRICS:
                await METRICS[path](writer)
                continue
            body = b'{"name": "iris", "versions": ["1"]}' if path == "/v2/models/iris" else b"{}"
            await send(writer, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def port() -> AsyncIterator[int]:
    handlers: set[asyncio.Task[None]] = set()

    def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(answer(reader, writer))
        handlers.add(task)
        task.add_done_callback(handlers.discard)

    server = await asyncio.start_server(track, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        for task in list(handlers):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.wait_closed()


def target(port: int, path: str) -> ProbeTarget:
    return ProbeTarget(
        pod=path.strip("/"),
        ip=HOST,
        port=port,
        model_name="iris",
        expected_version="1",
        metrics_port=port,
        metrics_path=path,
    )


async def probe(port: int, paths: list[str], deadline: float = 10.0) -> dict[str, ReplicaProbe]:
    async with Prober(timeout=2.0) as prober:
        results = await prober.probe_replicas([target(port, p) for p in paths], metrics=[QUERY], deadline=deadline)
    return dict(zip(paths, results, strict=True))


async def test_oversized_and_endless_bodies_stop_at_the_cap(port: int) -> None:
    results = await probe(port, ["/huge", "/endless", "/small"])
    cap = f"metrics body exceeds {MAX_SCRAPE_BYTES} bytes"
    for path in ("/huge", "/endless"):
        assert results[path].metrics_error == cap
        assert str(results[path].histograms[QUERY]) == cap
        assert results[path].healthy  # the scrape's failure is not a health failure
    assert results["/small"].metrics_error is None
    assert results["/small"].histograms[QUERY] == EXPECTED


async def test_lines_of_the_asked_histogram_are_capped_too(port: int) -> None:
    """These lines all pass the filter, so only the cap on kept lines bounds them."""
    results = await probe(port, ["/endless-histogram", "/long-line"])
    for result in results.values():
        assert result.metrics_error == f"lines of the queried histograms exceed {MAX_KEPT_BYTES_PER_QUERY} bytes"
        assert result.healthy


async def test_histogram_after_many_other_families_is_found(port: int) -> None:
    [result] = (await probe(port, ["/buried"])).values()
    assert result.metrics_error is None
    assert result.histograms[QUERY] == EXPECTED


async def test_trickling_body_is_cut_by_the_replica_deadline(port: int) -> None:
    [result] = (await probe(port, ["/trickle"], deadline=1.0)).values()
    assert result.metrics_error == "deadline of 1s exceeded"
    assert result.histograms[QUERY] == MetricsError("deadline of 1s exceeded")


async def test_compressed_body_is_refused_not_inflated(port: int) -> None:
    [result] = (await probe(port, ["/gzip"])).values()
    assert result.metrics_error == "response from /gzip is gzip-encoded; the prober asks for identity"
