"""The prober against real model server replicas on loopback addresses, faults included."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator

import pytest

from modeldeploy.modelserver.replica import ReplicaConfig
from modeldeploy.probing.metrics import MetricQuery
from modeldeploy.probing.prober import Prober
from modeldeploy.probing.targets import ProbeTarget
from modeldeploy_dev.multi import MultiReplicaServer

TIMEOUT = 1.0
FEATURE = MetricQuery.of("modelserver_feature_value", {"feature": "petal_width"})


@pytest.fixture
async def farm() -> AsyncIterator[MultiReplicaServer]:
    async with MultiReplicaServer() as server:
        yield server


async def start(farm: MultiReplicaServer, subnet: int, faults: list[str]) -> list[ProbeTarget]:
    targets = []
    for i, fault in enumerate(faults, start=1):
        ip = f"127.0.{subnet}.{i}"
        port = await farm.add(ip, 0, ReplicaConfig("iris", "1", fault))
        targets.append(
            ProbeTarget(
                pod=f"{fault}-{i}", ip=ip, port=port, model_name="iris", expected_version="1", metrics_port=port
            )
        )
    return targets


async def test_faulty_replicas_are_each_reported_and_bounded(farm: MultiReplicaServer) -> None:
    faults = ["ok", "hang", "garbage", "version=2", "crash", "unhealthy"]
    targets = await start(farm, 61, faults)
    async with Prober(timeout=TIMEOUT) as prober:
        started = time.perf_counter()
        results = await prober.probe_replicas(targets, metrics=[FEATURE])
        elapsed = time.perf_counter() - started
    by_fault = dict(zip(faults, results, strict=True))

    assert elapsed < TIMEOUT + 1.5

    ok = by_fault["ok"]
    assert ok.healthy
    assert ok.findings.served_version == "1"
    assert ok.findings.version_matches is True
    assert ok.histograms[FEATURE][math.inf] == 0  # type: ignore[index]

    hang = by_fault["hang"]
    assert hang.findings.error == "timeout after 1s on /v2/health/ready"
    assert hang.metrics_error == "timeout after 1s on /metrics"
    assert hang.findings.live is None

    garbage = by_fault["garbage"]
    assert garbage.findings.error == "malformed JSON from /v2/models/iris"
    assert garbage.metrics_error is not None
    assert garbage.metrics_error.startswith("malformed metrics text")

    lying = by_fault["version=2"]
    assert lying.findings.error is None
    assert lying.findings.live
    assert lying.findings.ready
    assert lying.findings.model_ready
    assert (lying.findings.served_version, lying.findings.version_matches) == ("2", False)

    crash = by_fault["crash"]
    assert crash.findings.error == "connection closed without a response on /v2/health/ready"

    unhealthy = by_fault["unhealthy"]
    assert (unhealthy.findings.live, unhealthy.findings.ready, unhealthy.findings.model_ready) == (False, False, False)
    assert unhealthy.findings.error == "HTTP 503 on /v2/health/live"
    assert unhealthy.metrics_error is None  # metrics still served


async def test_one_hanging_among_twenty_healthy_costs_one_timeout(farm: MultiReplicaServer) -> None:
    targets = await start(farm, 62, ["hang"] + ["ok"] * 20)
    async with Prober(timeout=TIMEOUT) as prober:
        started = time.perf_counter()
        results = await prober.probe_replicas(targets, metrics=[FEATURE])
        elapsed = time.perf_counter() - started
    assert elapsed < TIMEOUT + 1.5
    assert results[0].findings.error == "timeout after 1s on /v2/health/ready"
    assert all(r.healthy and r.metrics_error is None for r in results[1:])
    # a healthy replica is not held up by the hanging one: each is done before the hanging one
    # times out (compared with it, not with a wall-clock figure: a loaded machine slows both)
    assert max(r.latency_ms for r in results[1:]) < results[0].latency_ms


async def test_removed_replica_refuses_and_fault_changes_apply_at_once(farm: MultiReplicaServer) -> None:
    [a, b] = await start(farm, 63, ["ok", "ok"])
    await farm.remove(a.ip, a.port)
    farm.set_fault(b.ip, b.port, "unhealthy")
    async with Prober(timeout=TIMEOUT) as prober:
        gone, sick = await prober.probe_replicas([a, b])
        farm.set_fault(b.ip, b.port, "ok")
        [well] = await prober.probe_replicas([b])
    assert gone.findings.error == f"cannot connect to {a.ip}:{a.port}: connection refused"
    assert sick.findings.ready is False
    assert well.healthy


async def test_deadline_stops_a_server_that_trickles_bytes() -> None:
    """Each byte arrives well within the read timeout, so only the replica deadline can stop it."""

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        try:
            for _ in range(1000):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.1)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(trickle, "127.0.64.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = ProbeTarget(pod="trickler", ip="127.0.64.1", port=port, model_name="iris")
    try:
        async with Prober(timeout=0.5) as prober:
            started = time.perf_counter()
            [result] = await prober.probe_replicas([target], deadline=1.0)
            elapsed = time.perf_counter() - started
    finally:
        server.close()
    assert elapsed < 1.8
    assert result.findings.error == "deadline of 1s exceeded"
