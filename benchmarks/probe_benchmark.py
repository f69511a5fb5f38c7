"""How much does the prober cost over the cheapest possible HTTP loop, at farm scale?

Starts N model server replicas in a child process (one MultiReplicaServer, each
replica on its own 127.x.y.z address), then in this process times

- `prober`: one `Prober.probe_replicas` cycle over all replicas, with the
  metrics scrape of one feature histogram, as the operator runs it;
- `bare_shared_client`: the same URLs fetched with one plain httpx client and
  a semaphore of the same concurrency, one replica's requests in sequence,
  bodies read and discarded: no protocol logic, no parsing, no deadlines;
- `bare_client_per_replica`: the same, but each replica's requests go through
  a fresh client closed afterwards, which sidesteps httpcore's pool scans the
  way the prober's per-replica pools do (see modeldeploy.probing.transport).

Each mode runs `--cycles` times after a warm-up cycle, the modes taking turns,
and the median is reported.
The replicas run in another process so the server's CPU does not count
against the client on a two-core machine. All traffic stays on 127.0.0.0/8.

    python benchmarks/probe_benchmark.py --replicas 200
    python benchmarks/probe_benchmark.py --replicas 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import ssl
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import httpx

from modeldeploy.modelserver.replica import ReplicaConfig
from modeldeploy.probing.metrics import MetricQuery
from modeldeploy.probing.prober import Prober
from modeldeploy.probing.targets import ProbeTarget
from modeldeploy_dev.multi import MultiReplicaServer, raise_nofile_limit

MODEL = "iris"
VERSION = "1"
QUERY = MetricQuery.of("modelserver_feature_value", {"feature": "petal_length"})
# What the prober asks a healthy v2 replica (a ready server is live, a ready version is a ready
# model), so the bare client learns the same facts with the same requests.
PATHS = (
    "/v2/health/ready",
    f"/v2/models/{MODEL}/versions/{VERSION}/ready",
    f"/v2/models/{MODEL}",
    "/metrics",
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def address(i: int, net: int = 10, first: int = 0) -> str:
    # 127.<net>.<first>.1 ... : 250 replicas per /24, never .0 or .255.
    block = first + i // 250
    return f"127.{net + block // 250}.{block % 250}.{i % 250 + 1}"


def serve(n: int, conn: Connection, net: int = 10, first: int = 0) -> None:
    """Child process: run the farm until the parent says stop (or goes away)."""

    async def main() -> None:
        async with MultiReplicaServer() as farm:
            ports = [await farm.add(address(i, net, first), 0, ReplicaConfig(MODEL, VERSION)) for i in range(n)]
            conn.send(ports)
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()
            loop.add_reader(conn.fileno(), stop.set)
            try:
                await asyncio.wait_for(stop.wait(), timeout=1800)
            finally:
                loop.remove_reader(conn.fileno())

    asyncio.run(main())


async def bare_cycle(
    urls: list[list[str]], concurrency: int, client: httpx.AsyncClient | None, request_timeout: float
) -> tuple[float, int]:
    """One pass over every replica; with client None, a fresh client per replica."""
    semaphore = asyncio.Semaphore(concurrency)
    # A fresh client would otherwise build and load a TLS context each time.
    plain_http = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    errors = 0

    async def fetch_all(c: httpx.AsyncClient, replica_urls: list[str]) -> None:
        nonlocal errors
        for url in replica_urls:
            try:
                response = await c.get(url)
                await response.aread()
            except httpx.HTTPError:
                errors += 1

    async def one(replica_urls: list[str]) -> None:
        async with semaphore:
            if client is not None:
                await fetch_all(client, replica_urls)
            else:
                async with httpx.AsyncClient(verify=plain_http, timeout=request_timeout, trust_env=False) as own:
                    await fetch_all(own, replica_urls)

    started = time.perf_counter()
    await asyncio.gather(*(one(u) for u in urls))
    return time.perf_counter() - started, errors


@dataclass
class Timing:
    cycles_s: list[float] = field(default_factory=list)
    failures: int = 0

    @property
    def median_s(self) -> float:
        return round(statistics.median(self.cycles_s), 3)

    def report(self) -> dict[str, object]:
        return {"median_s": self.median_s, "cycles_s": [round(t, 3) for t in self.cycles_s], "failures": self.failures}


Run = Callable[[], Awaitable[tuple[float, int]]]


async def interleaved(runs: dict[str, Run], cycles: int) -> dict[str, Timing]:
    """A warm-up round, then `cycles` rounds each running every mode once.

    Interleaving spreads the background load of a shared machine evenly over
    the modes instead of penalising whichever ran during a busy minute.
    Failures are those of the last round.
    """
    timings = {name: Timing() for name in runs}
    for cycle in range(cycles + 1):
        for name, run in runs.items():
            elapsed, failures = await run()
            log(f"{name} cycle {cycle}{' (warm-up)' if cycle == 0 else ''}: {elapsed:.3f}s, {failures} failures")
            timings[name].failures = failures
            if cycle:
                timings[name].cycles_s.append(elapsed)
    return timings


async def measure(
    targets: list[ProbeTarget], concurrency: int, cycles: int, request_timeout: float, modes: list[str]
) -> dict[str, object]:
    urls = [[f"http://{t.ip}:{t.port}{p}" for p in PATHS] for t in targets]
    limits = httpx.Limits(max_connections=2 * concurrency, max_keepalive_connections=2 * concurrency)
    async with (
        Prober(concurrency=concurrency, timeout=request_timeout) as prober,
        httpx.AsyncClient(limits=limits, timeout=request_timeout, trust_env=False) as shared,
    ):

        async def prober_cycle() -> tuple[float, int]:
            started = time.perf_counter()
            results = await prober.probe_replicas(targets, metrics=[QUERY])
            elapsed = time.perf_counter() - started
            return elapsed, sum(1 for r in results if not r.healthy or r.metrics_error)

        runs: dict[str, Run] = {"prober": prober_cycle}
        if "shared" in modes:
            runs["bare_shared_client"] = lambda: bare_cycle(urls, concurrency, shared, request_timeout)
        if "per-replica" in modes:
            runs["bare_client_per_replica"] = lambda: bare_cycle(urls, concurrency, None, request_timeout)
        timings = await interleaved(runs, cycles)

    result: dict[str, object] = {
        "replicas": len(targets),
        "concurrency": concurrency,
        "requests_per_cycle": len(targets) * len(PATHS),
        **{name: t.report() for name, t in timings.items()},
    }
    for name, timing in timings.items():
        if name != "prober":
            result[f"ratio_prober_to_{name}"] = round(timings["prober"].median_s / timing.median_s, 2)
    return result


def run(
    replicas: int,
    concurrency: int,
    cycles: int,
    request_timeout: float,
    modes: list[str],
    net: int = 10,
    first: int = 0,
) -> dict[str, object]:
    """Serve `replicas` replicas at 127.<net>.<first>.1 onwards in a child process and time the modes."""
    raise_nofile_limit()
    parent, child = mp.Pipe()
    server = mp.get_context("spawn").Process(target=serve, args=(replicas, child, net, first), daemon=True)
    server.start()
    try:
        if not parent.poll(600):
            raise RuntimeError("replica farm did not start in time")
        ports: list[int] = parent.recv()
        targets = [
            ProbeTarget(
                pod=f"replica-{i}",
                ip=address(i, net, first),
                port=port,
                model_name=MODEL,
                expected_version=VERSION,
                metrics_port=port,
            )
            for i, port in enumerate(ports)
        ]
        return asyncio.run(measure(targets, concurrency, cycles, request_timeout, modes))
    finally:
        parent.send("stop")
        server.join(timeout=30)
        if server.is_alive():
            server.terminate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, generous on purpose")
    parser.add_argument(
        "--bare",
        default="shared,per-replica",
        help="comma-separated bare loops to run: shared, per-replica (the shared one is slow at N=2000)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.replicas <= 20000:
        parser.error("--replicas must be 1-20000")
    modes = [m.strip() for m in args.bare.split(",") if m.strip()]
    result = run(args.replicas, args.concurrency, args.cycles, args.timeout, modes)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
