"""Drift end to end on real replicas: inference traffic -> histograms -> prober -> window -> verdict."""

from __future__ import annotations

import math

import httpx

from modeldeploy.drift.evaluate import Baseline, evaluate
from modeldeploy.drift.window import SlidingWindow, observe_scrape
from modeldeploy.modelserver.model import model_document
from modeldeploy.modelserver.replica import ReplicaConfig
from modeldeploy.probing.metrics import MetricQuery
from modeldeploy.probing.prober import Prober
from modeldeploy.probing.targets import ProbeTarget
from modeldeploy_dev.multi import MultiReplicaServer

QUERY = MetricQuery.of("modelserver_feature_value", {"feature": "petal_length"})


def training_like_rows(bounds: list[float], proportions: list[float], n: int) -> list[list[float]]:
    """Rows whose petal_length follows the baseline: round(p * n) values at each bucket's middle."""
    rows = []
    for i, p in enumerate(proportions[1:-1], start=1):  # the <=0 and +Inf buckets are empty in training
        middle = (bounds[i - 1] + bounds[i]) / 2
        rows += [[5.8, 3.0, middle, 1.2]] * round(p * n)
    return rows


async def send(client: httpx.AsyncClient, base: str, rows: list[list[float]]) -> None:
    body = {"inputs": [{"name": "x", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}]}
    response = await client.post(f"{base}/v2/models/iris/infer", json=body)
    assert response.status_code == 200


async def test_shifted_traffic_is_detected_and_training_like_is_not() -> None:
    doc = model_document()["baseline"]
    bounds: list[float] = doc["bounds"]
    baseline = Baseline.of(bounds, doc["proportions"]["petal_length"])
    window = SlidingWindow(600, len(bounds) + 1)

    async with MultiReplicaServer() as farm, Prober(timeout=2.0) as prober, httpx.AsyncClient() as client:
        targets = []
        for i in (1, 2):
            ip = f"127.0.81.{i}"
            port = await farm.add(ip, 0, ReplicaConfig("iris", "1"))
            targets.append(ProbeTarget(pod=f"p{i}", ip=ip, port=port, model_name="iris", metrics_port=port))
        bases = [f"http://{t.ip}:{t.port}" for t in targets]

        async def cycle(now: float) -> None:
            for probe in await prober.probe_replicas(targets, metrics=[QUERY]):
                cumulative = probe.histograms[QUERY]
                assert isinstance(cumulative, dict)
                assert observe_scrape(window, probe.pod, now, cumulative, bounds) is False

        await send(client, bases[0], [[5.0, 3.0, 1.5, 0.2]] * 50)  # before the first scrape: not counted
        await cycle(0)
        assert window.samples == 0

        rows = training_like_rows(bounds, list(baseline.proportions), 300)
        await send(client, bases[0], rows[: len(rows) // 2])
        await send(client, bases[1], rows[len(rows) // 2 :])
        await cycle(10)
        assert window.samples == len(rows)
        calm = evaluate(baseline, window, "psi", 0.2, 100, previously_drifted=False)
        assert calm.score is not None
        assert calm.score < 0.05
        assert calm.drifted is False

        # petal_length 3 cm longer than anything in training, on one replica only
        await send(client, bases[1], [[5.8, 3.0, 7.75, 1.2]] * len(rows))
        await cycle(20)
        shifted = evaluate(baseline, window, "psi", 0.2, 100, previously_drifted=False)
        assert shifted.drifted is True
        assert shifted.score is not None
        assert shifted.score > 1.0
        assert math.isclose(shifted.samples, 2 * len(rows))
