"""The model server over real sockets: OIP v2 endpoints, metrics, faults, and many replicas in one process."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.modelserver.replica import ReplicaConfig
from modeldeploy_dev.multi import MultiReplicaServer

IRIS = {
    "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]}]
}


@pytest.fixture
async def farm() -> AsyncIterator[MultiReplicaServer]:
    async with MultiReplicaServer() as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as c:
        yield c


async def replica(farm: MultiReplicaServer, ip: str, version: str = "1", faults: str = "ok") -> str:
    port = await farm.add(ip, 0, ReplicaConfig("iris", version, faults))
    return f"http://{ip}:{port}"


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


async def test_health_metadata_and_versions(farm: MultiReplicaServer, client: httpx.AsyncClient) -> None:
    base = await replica(farm, "127.0.71.1", version="3")
    assert (await client.get(f"{base}/v2/health/live")).status_code == 200
    assert (await client.get(f"{base}/v2/health/ready")).status_code == 200
    assert (await client.get(f"{base}/v2/models/iris/ready")).status_code == 200
    assert (await client.get(f"{base}/v2/models/iris/versions/3/ready")).status_code == 200
    assert (await client.get(f"{base}/v2/models/iris/versions/2/ready")).status_code == 404
    assert (await client.get(f"{base}/v2/models/other/ready")).status_code == 404
    meta = (await client.get(f"{base}/v2/models/iris")).json()
    assert meta["name"] == "iris"
    assert meta["versions"] == ["3"]
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
    assert {o["name"] for o in meta["outputs"]} == {"predict", "probabilities", "label"}


async def test_inference_and_its_metrics(farm: MultiReplicaServer, client: httpx.AsyncClient) -> None:
    base = await replica(farm, "127.0.71.2")
    response = await client.post(f"{base}/v2/models/iris/infer", json=IRIS)
    assert response.status_code == 200
    body = response.json()
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["data"] == [0, 2]
    assert outputs["label"]["data"] == ["setosa", "virginica"]
    assert outputs["probabilities"]["shape"] == [2, 3]
    assert len(outputs["probabilities"]["data"]) == 6

    bad = await client.post(f"{base}/v2/models/iris/infer", content=b"{not json")
    assert bad.status_code == 400
    assert "not valid JSON" in bad.json()["error"]
    wrong_shape = await client.post(
        f"{base}/v2/models/iris/infer", json={"inputs": [{**IRIS["inputs"][0], "shape": [2, 5]}]}
    )
    assert wrong_shape.status_code == 400
    assert "shape must be [N, 4]" in wrong_shape.json()["error"]
    assert (await client.post(f"{base}/v2/models/mnist/infer", json=IRIS)).status_code == 404

    text = (await client.get(f"{base}/metrics")).text
    petal = samples(text, "modelserver_feature_value_bucket")
    # petal_length 1.4 and 6.0: one observation up to le=1.5, both by le=6.0
    assert petal[(("feature", "petal_length"), ("le", "1.0"))] == 0
    assert petal[(("feature", "petal_length"), ("le", "1.5"))] == 1
    assert petal[(("feature", "petal_length"), ("le", "6.0"))] == 2
    classes = samples(text, "modelserver_prediction_class_bucket")
    assert classes[(("le", "0.5"),)] == 1
    assert classes[(("le", "1.5"),)] == 1
    assert classes[(("le", "+Inf"),)] == 2
    outcomes = samples(text, "modelserver_inference_requests_total")
    assert outcomes[(("outcome", "ok"),)] == 1
    assert outcomes[(("outcome", "bad_request"),)] == 2
    assert outcomes[(("outcome", "unknown_model"),)] == 1


async def test_each_replica_has_its_own_registry(farm: MultiReplicaServer, client: httpx.AsyncClient) -> None:
    a = await replica(farm, "127.0.71.3")
    b = await replica(farm, "127.0.71.4")
    await client.post(f"{a}/v2/models/iris/infer", json=IRIS)
    ok = (("outcome", "ok"),)
    assert samples((await client.get(f"{a}/metrics")).text, "modelserver_inference_requests_total")[ok] == 1
    assert samples((await client.get(f"{b}/metrics")).text, "modelserver_inference_requests_total")[ok] == 0


async def test_unhealthy_garbage_and_version_faults(farm: MultiReplicaServer, client: httpx.AsyncClient) -> None:
    ip = "127.0.71.5"
    base = await replica(farm, ip)
    port = int(base.rsplit(":", 1)[1])

    farm.set_fault(ip, port, "unhealthy")
    assert (await client.get(f"{base}/v2/health/live")).status_code == 503
    assert (await client.get(f"{base}/v2/models/iris/ready")).status_code == 503
    assert (await client.post(f"{base}/v2/models/iris/infer", json=IRIS)).status_code == 503
    assert (await client.get(f"{base}/metrics")).status_code == 200

    farm.set_fault(ip, port, "garbage")
    garbage = await client.get(f"{base}/v2/models/iris")
    assert garbage.status_code == 200
    with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)):
        garbage.json()

    farm.set_fault(ip, port, "version=2")
    assert (await client.get(f"{base}/v2/models/iris/versions/2/ready")).status_code == 200
    assert (await client.get(f"{base}/v2/models/iris/versions/1/ready")).status_code == 404
    assert (await client.get(f"{base}/v2/models/iris")).json()["versions"] == ["2"]
    assert (await client.post(f"{base}/v2/models/iris/infer", json=IRIS)).json()["model_version"] == "2"

    farm.set_fault(ip, port, "ok")
    assert (await client.get(f"{base}/v2/models/iris")).json()["versions"] == ["1"]


async def test_hostile_metrics_bodies_while_health_stays_fine(
    farm: MultiReplicaServer, client: httpx.AsyncClient
) -> None:
    ip = "127.0.71.7"
    base = await replica(farm, ip, faults="metrics=huge")
    port = int(base.rsplit(":", 1)[1])
    assert (await client.get(f"{base}/v2/health/ready")).status_code == 200

    async def first_bytes(limit: int) -> tuple[httpx.Headers, int]:
        read = 0
        async with client.stream("GET", f"{base}/metrics") as response:
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= limit:
                    break
            return response.headers, read

    headers, read = await first_bytes(4 << 20)
    assert int(headers["content-length"]) == 64 << 20
    assert read >= 4 << 20

    farm.set_fault(ip, port, "metrics=endless")
    headers, read = await first_bytes(8 << 20)
    assert "content-length" not in headers  # chunked ...
    assert read >= 8 << 20  # ... and more than any cap

    farm.set_fault(ip, port, "metrics=trickle")
    started = time.perf_counter()
    headers, read = await first_bytes(500)
    assert time.perf_counter() - started > 0.2  # one short line every 50 ms
    farm.set_fault(ip, port, "ok")
    assert "modelserver_inference_requests_total" in (await client.get(f"{base}/metrics")).text


async def test_crash_and_hang(farm: MultiReplicaServer, client: httpx.AsyncClient) -> None:
    ip = "127.0.71.6"
    base = await replica(farm, ip, faults="crash")
    port = int(base.rsplit(":", 1)[1])
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get(f"{base}/v2/health/live")

    farm.set_fault(ip, port, "hang")
    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        await client.get(f"{base}/metrics", timeout=0.3)
    assert time.perf_counter() - started < 1.0

    # A request hanging when the fault is lifted gets its answer then.
    pending = asyncio.create_task(client.get(f"{base}/v2/health/live", timeout=5.0))
    await asyncio.sleep(0.2)
    assert not pending.done()
    farm.set_fault(ip, port, "ok")
    assert (await asyncio.wait_for(pending, 2.0)).status_code == 200


async def test_slow_fault_delays_answers(farm: MultiReplicaServer, client: httpx.AsyncClient) -> None:
    base = await replica(farm, "127.0.71.7", faults="slow=0.3")
    started = time.perf_counter()
    assert (await client.get(f"{base}/v2/health/live")).status_code == 200
    assert time.perf_counter() - started >= 0.3


async def test_remove_closes_listener_and_open_connections(farm: MultiReplicaServer, client: httpx.AsyncClient) -> None:
    ip = "127.0.71.8"
    base = await replica(farm, ip, faults="hang")
    port = int(base.rsplit(":", 1)[1])
    pending = asyncio.create_task(client.get(f"{base}/v2/health/live", timeout=5.0))
    await asyncio.sleep(0.2)
    await farm.remove(ip, port)
    with pytest.raises(httpx.RemoteProtocolError):
        await asyncio.wait_for(pending, 2.0)
    with pytest.raises(httpx.ConnectError):
        await client.get(f"{base}/v2/health/live")
    assert len(farm) == 0
    with pytest.raises(KeyError):
        farm.set_fault(ip, port, "ok")


async def test_same_address_twice_is_refused(farm: MultiReplicaServer) -> None:
    port = await farm.add("127.0.71.9", 0)
    with pytest.raises(OSError, match="in use"):
        await farm.add("127.0.71.9", port)
    assert farm.addresses() == [("127.0.71.9", port)]


async def test_many_replicas_in_one_process(farm: MultiReplicaServer, client: httpx.AsyncClient) -> None:
    bases = [await replica(farm, f"127.0.72.{i}", version=str(i)) for i in range(1, 101)]
    answers = await asyncio.gather(*(client.get(f"{b}/v2/models/iris") for b in bases))
    assert [r.json()["versions"] for r in answers] == [[str(i)] for i in range(1, 101)]


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        port: int = s.getsockname()[1]
        return port


def test_runs_as_a_program() -> None:
    ip = "127.0.73.1"
    port = free_port(ip)
    env = {
        **os.environ,
        "MODEL_NAME": "flowers",
        "MODEL_VERSION": "9",
        "MODELSERVER_HOST": ip,
        "PORT": str(port),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "operator"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "modeldeploy.modelserver"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                response = httpx.get(f"http://{ip}:{port}/v2/models/flowers", timeout=1.0, trust_env=False)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
                assert time.monotonic() < deadline, "model server did not start"
                time.sleep(0.1)
        assert response.json()["versions"] == ["9"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_close_releases_hanging_requests_promptly(client: httpx.AsyncClient) -> None:
    farm = MultiReplicaServer()
    base = await replica(farm, "127.0.71.10", faults="hang")
    pending = asyncio.create_task(client.get(f"{base}/v2/health/live", timeout=10.0))
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    await farm.close()
    assert time.perf_counter() - started < 2.0
    with pytest.raises(httpx.RemoteProtocolError):
        await asyncio.wait_for(pending, 2.0)
