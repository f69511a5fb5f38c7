"""What do hostile /metrics bodies cost the operator, next to replicas serving ordinary ones?

Starts N replicas in a child process (a raw asyncio HTTP server listening on N
addresses 127.30.x.y), whose health endpoints all answer and whose metrics path
serves, depending on the mode:

- `floor`: the reference model server's own metrics (7 KiB), what a healthy
  replica serves; every other mode is compared with it;
- `max-valid`: `--valid-mib` of other families with the asked histogram at the
  end: the most a replica can send and still be read (just under the cap);
- `no-match`: as much of other families, without the asked histogram;
- `kept-max`: nothing but lines of the asked histogram, a new series on each,
  just under the cap on kept lines: the largest parse a replica can cause;
- `huge`: 64 MiB announced with Content-Length, generated as it is sent;
- `endless`: a chunked body of other families that never ends;
- `endless-histogram`: a chunked body of nothing but lines of the asked
  histogram, a new series on each line (every line passes the filter);
- `long-line`: one line of the asked histogram that never ends;
- `trickle`: valid lines, one every 50 ms, forever (only the deadline stops it);
- `gzip`: 64 MiB of zeros gzip-compressed to 64 KiB although identity was asked;
- `bare-max-valid`: not the prober but a reference: the max-valid bodies
  streamed with a plain httpx client each and thrown away, no health requests,
  no filtering: what reading that many bytes at once costs by itself.

Each mode runs in a fresh client process: it builds a `Prober`, warms it up on
four floor replicas, then probes all N replicas concurrently once, with the
scrape of one histogram, as the operator does. It reports the peak RSS
increase over the warmed-up RSS (the kernel's high-water mark, so nothing
between samples is missed), the cycle's wall and CPU time, the longest the
event loop was late for a 5 ms timer during the cycle, and what the replicas
reported. Ratios are against the floor measured in the same run. All traffic
stays on 127.0.0.0/8. With 256 probes in flight the loop lag includes garbage
collection pauses of up to a few hundred ms, in the floor as well, and on a
shared machine it moves with the load; the scrape's own steps are timed alone
below.

Then, in this process and without HTTP, it times `scrape_histograms` itself on
the floor, max-valid, no-match and kept-max bodies, each fed from memory in 64 KiB
chunks: milliseconds per body and the longest step between two yields to the
event loop (what one scrape can make every other task wait). As a reference
from the same run, it also times what reading the max-valid and no-match bodies
whole cost, as the prober did before it streamed: decode, split into lines,
filter, parse the kept lines (or, none kept, the whole text), all in one step.

    python benchmarks/hostile_metrics_benchmark.py --replicas 256

A client whose RSS passes `--max-rss-mib` stops itself and says so, so that an
unbounded implementation (try PYTHONPATH=<an older checkout>/operator) cannot
take the machine down.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gzip
import json
import multiprocessing as mp
import os
import resource
import ssl
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from multiprocessing.connection import Connection

import httpx
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.modelserver.metrics import ReplicaMetrics
from modeldeploy.probing import metrics as probing_metrics
from modeldeploy.probing.metrics import MetricQuery, MetricsError
from modeldeploy.probing.prober import Prober, ReplicaProbe
from modeldeploy.probing.targets import ProbeTarget
from modeldeploy_dev.multi import raise_nofile_limit

MODES = (
    "floor",
    "max-valid",
    "no-match",
    "kept-max",
    "huge",
    "endless",
    "endless-histogram",
    "long-line",
    "trickle",
    "gzip",
    "bare-max-valid",
)
BARE = "bare-max-valid"
QUERY = MetricQuery.of("modelserver_feature_value", {"feature": "petal_length"})
PAGE = os.sysconf("SC_PAGE_SIZE")
# Run against an implementation from before streaming (PYTHONPATH=<old checkout>/operator),
# the HTTP part still works; the part timing `scrape_histograms` alone is skipped.
STREAMING = "Scrape" in vars(probing_metrics)
MAX_KEPT_BYTES_PER_QUERY: int = vars(probing_metrics).get("MAX_KEPT_BYTES_PER_QUERY", 64 << 10)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def address(i: int) -> str:
    return f"127.{30 + i // 62500}.{(i // 250) % 250}.{i % 250 + 1}"


# ---------------------------------------------------------------- replica side

Writer = Callable[[asyncio.StreamWriter], Awaitable[None]]


def payloads(valid_mib: float) -> dict[str, bytes]:
    metrics = ReplicaMetrics()
    metrics.observe([[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]], [0, 2])
    floor = metrics.render()
    noise = b"# HELP runtime_noise_total Noise.\n# TYPE runtime_noise_total counter\n" + b"".join(
        b'runtime_noise_total{shard="%d",pad="abcdefghijklmnop"} %d\n' % (i, i) for i in range(1100)
    )
    series = b"".join(
        b'modelserver_feature_value_bucket{feature="petal_length",series="%d",le="1.0"} 1\n' % i for i in range(1000)
    )
    # Asked lines only, a new series each, just under the kept cap.
    kept_max = series[: series.rindex(b"\n", 0, MAX_KEPT_BYTES_PER_QUERY - 1) + 1]
    return {
        "floor": floor,
        "noise": noise,
        "max_valid": noise * int(valid_mib * (1 << 20) // len(noise)) + floor,
        "no_match": noise * int(valid_mib * (1 << 20) // len(noise)),
        "series": series,
        "kept_max": kept_max,
    }


def bodies(valid_mib: float) -> dict[str, Writer]:
    data = payloads(valid_mib)
    floor, noise, max_valid, series = data["floor"], data["noise"], data["max_valid"], data["series"]
    bomb = gzip.compress(bytes(64 << 20), compresslevel=9)

    def head(length: int | None = None, extra: bytes = b"") -> bytes:
        framing = b"Transfer-Encoding: chunked\r\n" if length is None else b"Content-Length: %d\r\n" % length
        return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n" + framing + extra + b"\r\n"

    async def send(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    async def chunked(writer: asyncio.StreamWriter, data: bytes) -> None:
        await send(writer, b"%x\r\n%s\r\n" % (len(data), data))

    async def whole(writer: asyncio.StreamWriter, body: bytes) -> None:
        await send(writer, head(len(body)) + body)

    async def huge(writer: asyncio.StreamWriter) -> None:
        size, sent = 64 << 20, 0
        await send(writer, head(size))
        while sent < size:
            block = noise[: size - sent]
            await send(writer, block)
            sent += len(block)

    async def forever(writer: asyncio.StreamWriter, block: bytes, pause: float = 0.0) -> None:
        await send(writer, head())
        while True:
            await chunked(writer, block)
            if pause:
                await asyncio.sleep(pause)

    async def long_line(writer: asyncio.StreamWriter) -> None:
        await send(writer, head())
        await chunked(writer, b'modelserver_feature_value_bucket{feature="petal_length",le="')
        while True:
            await chunked(writer, b"9" * 65536)

    return {
        "floor": lambda w: whole(w, floor),
        "max-valid": lambda w: whole(w, max_valid),
        "no-match": lambda w: whole(w, data["no_match"]),
        "kept-max": lambda w: whole(w, data["kept_max"]),
        "huge": huge,
        "endless": lambda w: forever(w, noise),
        "endless-histogram": lambda w: forever(w, series),
        "long-line": long_line,
        "trickle": lambda w: forever(w, b'modelserver_feature_value_bucket{feature="x",le="1.0"} 1\n', 0.05),
        "gzip": lambda w: send(w, head(len(bomb), b"Content-Encoding: gzip\r\n") + bomb),
    }


def serve(n: int, valid_mib: float, conn: Connection) -> None:
    """Child process: answer on N addresses until the parent says stop (or goes away)."""
    raise_nofile_limit()
    writers = bodies(valid_mib)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                path = request.split(b" ", 2)[1].decode()
                mode = path.removeprefix("/metrics/")
                if mode in writers:
                    await writers[mode](writer)
                    continue
                body = b'{"name": "iris", "versions": ["1"]}' if path == "/v2/models/iris" else b"{}"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        servers = [await asyncio.start_server(answer, address(i), 0, backlog=128) for i in range(n)]
        conn.send([s.sockets[0].getsockname()[1] for s in servers])
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_reader(conn.fileno(), stop.set)
        try:
            await asyncio.wait_for(stop.wait(), timeout=3600)
        finally:
            loop.remove_reader(conn.fileno())
            for server in servers:
                server.close()

    asyncio.run(main())


# ----------------------------------------------------------------- prober side


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def guard(max_rss: int, stop: threading.Event, conn: Connection) -> None:
    """Stop the process before an unbounded implementation exhausts the machine."""
    while not stop.wait(0.005):
        if rss_bytes() > max_rss:
            conn.send({"aborted": f"RSS passed {max_rss >> 20} MiB"})
            os._exit(3)


def targets_for(mode: str, ports: list[int]) -> list[ProbeTarget]:
    return [
        ProbeTarget(
            pod=f"replica-{i}",
            ip=address(i),
            port=port,
            model_name="iris",
            expected_version="1",
            metrics_port=port,
            metrics_path=f"/metrics/{mode}",
        )
        for i, port in enumerate(ports)
    ]


def outcome(result: ReplicaProbe) -> str:
    if result.metrics_error is not None:
        return result.metrics_error
    histogram = result.histograms[QUERY]
    return str(histogram) if isinstance(histogram, MetricsError) else "buckets"


async def bare_stream(ports: list[int], request_timeout: float) -> tuple[collections.Counter[str], list[float]]:
    """The `bare-max-valid` reference: every max-valid body streamed and thrown away, nothing else."""
    plain_http = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    outcomes: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []

    async def one(i: int, port: int) -> None:
        started = time.perf_counter()
        async with (
            httpx.AsyncClient(
                verify=plain_http, timeout=request_timeout, trust_env=False, headers={"Accept-Encoding": "identity"}
            ) as client,
            client.stream("GET", f"http://{address(i)}:{port}/metrics/max-valid") as response,
        ):
            async for _ in response.aiter_bytes():
                pass
        outcomes["read and discarded"] += 1
        latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(one(i, port) for i, port in enumerate(ports)))
    return outcomes, latencies


async def one_cycle(mode: str, ports: list[int], request_timeout: float, deadline: float) -> dict[str, object]:
    async with Prober(timeout=request_timeout) as prober:
        # Warm up: imports, pools and the allocator's arenas exist before measuring.
        for _ in range(3):
            await prober.probe_replicas(targets_for("floor", ports[:4]), metrics=[QUERY], deadline=deadline)
            if mode == BARE:
                await bare_stream(ports[:4], request_timeout)
        lag_max = 0.0
        running = True

        async def ticker() -> None:
            nonlocal lag_max
            while running:
                before = time.perf_counter()
                await asyncio.sleep(0.005)
                lag_max = max(lag_max, time.perf_counter() - before - 0.005)

        before_rss = rss_bytes()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        tick = asyncio.ensure_future(ticker())
        if mode == BARE:
            outcomes, latencies = await bare_stream(ports, request_timeout)
            unhealthy = 0
        else:
            results = await prober.probe_replicas(targets_for(mode, ports), metrics=[QUERY], deadline=deadline)
            outcomes = collections.Counter(outcome(r) for r in results)
            latencies, unhealthy = [r.latency_ms for r in results], sum(1 for r in results if not r.healthy)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        running = False
        await tick
        peak = peak_rss_bytes()
    return {
        "rss_before_mib": round(before_rss / (1 << 20), 1),
        "peak_rss_mib": round(peak / (1 << 20), 1),
        "peak_rss_increase_mib": round(max(0, peak - before_rss) / (1 << 20), 1),
        "cycle_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "replica_latency_ms_median": round(statistics.median(latencies), 1),
        "replica_latency_ms_max": round(max(latencies), 1),
        "max_loop_lag_ms": round(lag_max * 1000, 1),
        "unhealthy": unhealthy,
        "metrics": dict(outcomes),
    }


def client(mode: str, ports: list[int], timeout: float, deadline: float, max_rss: int, conn: Connection) -> None:
    """Child process: one mode, so that each peak RSS is its own."""
    raise_nofile_limit()
    stop = threading.Event()
    threading.Thread(target=guard, args=(max_rss, stop, conn), daemon=True).start()
    result = asyncio.run(one_cycle(mode, ports, timeout, deadline))
    stop.set()
    conn.send(result)


def run_client(mode: str, ports: list[int], args: argparse.Namespace) -> dict[str, object]:
    parent, child = mp.Pipe()
    process = mp.get_context("spawn").Process(
        target=client, args=(mode, ports, args.timeout, args.deadline, args.max_rss_mib << 20, child)
    )
    process.start()
    process.join()
    if not parent.poll():
        return {"aborted": f"client exited with {process.exitcode} and no result"}
    result: dict[str, object] = parent.recv()
    return result


# ------------------------------------------------------------- scrape alone


async def time_scrape(body: bytes, rounds: int = 5) -> dict[str, float]:
    """Milliseconds per body, and the longest the scrape kept a `sleep(0)` ticker waiting."""

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 << 10):
            yield body[start : start + (64 << 10)]

    longest = 0.0
    running = True

    async def ticker() -> None:
        nonlocal longest
        while running:
            before = time.perf_counter()
            await asyncio.sleep(0)
            longest = max(longest, time.perf_counter() - before)

    times = []
    tick = asyncio.ensure_future(ticker())
    for _ in range(rounds):
        started = time.perf_counter()
        scrape = await probing_metrics.scrape_histograms(chunks(), [QUERY], "text/plain; version=0.0.4")
        times.append(time.perf_counter() - started)
        assert scrape.error is None, scrape.error  # "no series" is the query's error, not the body's
    running = False
    await tick
    return {
        "bytes": len(body),
        "ms_per_body": round(statistics.median(times) * 1000, 2),
        "longest_step_ms": round(longest * 1000, 2),
    }


def time_whole_body(body: bytes, rounds: int = 3) -> dict[str, float]:
    """What reading the body whole cost: one step, however large the body.

    As before streaming: decode, split, keep the asked lines and parse them,
    or parse all of it when none was kept.
    """
    prefix = f"{QUERY.name}_bucket"
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        text = body.decode("utf-8", errors="replace")
        kept = [line for line in text.splitlines() if line.startswith(prefix) and 'feature="petal_length"' in line]
        list(text_string_to_metric_families("\n".join(kept) + "\n" if kept else text))
        times.append(time.perf_counter() - started)
    return {"bytes": len(body), "ms_per_body_in_one_step": round(statistics.median(times) * 1000, 2)}


async def scrape_figures(valid_mib: float) -> dict[str, object]:
    data = payloads(valid_mib)
    if not STREAMING:
        return {"skipped": "this modeldeploy does not stream scrapes"}
    return {
        "floor": await time_scrape(data["floor"]),
        "max_valid": await time_scrape(data["max_valid"]),
        "no_match": await time_scrape(data["no_match"]),
        "kept_max": await time_scrape(data["kept_max"]),
        "max_valid_read_whole_reference": time_whole_body(data["max_valid"]),
        "no_match_read_whole_reference": time_whole_body(data["no_match"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=256)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, from: " + ", ".join(MODES))
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, generous on purpose")
    parser.add_argument("--deadline", type=float, default=20.0, help="per-replica deadline, generous on purpose")
    parser.add_argument("--valid-mib", type=float, default=1.9, help="size of the max-valid body")
    parser.add_argument("--max-rss-mib", type=int, default=4096, help="a client past this stops itself")
    args = parser.parse_args(argv)
    if not 1 <= args.replicas <= 20000:
        parser.error("--replicas must be 1-20000")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    if "floor" not in modes:
        modes.insert(0, "floor")
    raise_nofile_limit()

    parent, child = mp.Pipe()
    server = mp.get_context("spawn").Process(target=serve, args=(args.replicas, args.valid_mib, child), daemon=True)
    server.start()
    results: dict[str, dict[str, object]] = {}
    try:
        if not parent.poll(600):
            log("replicas did not start in time")
            return 1
        ports: list[int] = parent.recv()
        for mode in modes:
            results[mode] = run_client(mode, ports, args)
            log(f"{mode}: {json.dumps(results[mode])}")
    finally:
        parent.send("stop")
        server.join(timeout=30)
        if server.is_alive():
            server.terminate()

    floor = results["floor"]
    for mode, result in results.items():
        if mode == "floor" or "aborted" in result or "aborted" in floor:
            continue
        for key in ("peak_rss_mib", "peak_rss_increase_mib", "cpu_s"):
            base, value = floor[key], result[key]
            assert isinstance(base, float | int)
            assert isinstance(value, float | int)
            result[f"{key}_ratio_to_floor"] = round(value / base, 2) if base else None
        extra = result["peak_rss_increase_mib"]
        assert isinstance(extra, float | int)
        assert isinstance(floor["peak_rss_increase_mib"], float | int)
        result["peak_rss_increase_over_floor_mib"] = round(extra - floor["peak_rss_increase_mib"], 1)
    report = {
        "scrape_alone": asyncio.run(scrape_figures(args.valid_mib)),
        "replicas": args.replicas,
        "timeout_s": args.timeout,
        "deadline_s": args.deadline,
        "python": sys.version.split()[0],
        "modeldeploy": sys.modules["modeldeploy"].__file__,
        "modes": results,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
