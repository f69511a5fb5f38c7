"""Inference traffic for the sandbox: iris-like rows, optionally shifted, sent to replicas.

Rows are drawn from per-class normal distributions with the iris data set's class means
and standard deviations (computed once from the data set scikit-learn ships), so traffic
"like the training data" really matches the examples' drift baseline, and a shift moves
one feature by a known amount. Requests go to pod IPs, which in the sandbox are 127.x.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from collections.abc import Sequence

import httpx

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
# per class: (means, standard deviations) of the four features, from the 150-row iris data set
CLASS_STATS: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] = (
    ((5.006, 3.428, 1.462, 0.246), (0.352, 0.379, 0.174, 0.105)),  # setosa
    ((5.936, 2.770, 4.260, 1.326), (0.516, 0.314, 0.470, 0.198)),  # versicolor
    ((6.588, 2.974, 5.552, 2.026), (0.636, 0.322, 0.552, 0.275)),  # virginica
)
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def iris_rows(count: int, *, shift: Sequence[float] = (0.0, 0.0, 0.0, 0.0), seed: int = 0) -> list[list[float]]:
    """`count` rows, classes in equal shares, each feature moved by `shift` (cm)."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        means, stds = CLASS_STATS[i % 3]
        rows.append([round(max(0.05, rng.gauss(m, s) + d), 2) for m, s, d in zip(means, stds, shift, strict=True)])
    return rows


async def send_rows(
    addresses: Sequence[tuple[str, int]], model: str, rows: Sequence[Sequence[float]], *, batch: int = 10
) -> int:
    """POST the rows as Open Inference Protocol requests, round-robin over replicas; returns rows accepted."""
    for ip, _ in addresses:
        if ipaddress.ip_address(ip) not in LOOPBACK:
            raise ValueError(f"refusing to send traffic to {ip}: sandbox traffic stays on 127.0.0.0/8")
    accepted = 0
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        batches = [rows[i : i + batch] for i in range(0, len(rows), batch)]

        async def send(index: int, chunk: Sequence[Sequence[float]]) -> int:
            ip, port = addresses[index % len(addresses)]
            body = {
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [len(chunk), 4],
                        "datatype": "FP64",
                        "data": [v for row in chunk for v in row],
                    }
                ]
            }
            response = await client.post(f"http://{ip}:{port}/v2/models/{model}/infer", json=body)
            return len(chunk) if response.status_code == 200 else 0

        for start in range(0, len(batches), 20):
            results = await asyncio.gather(*(send(start + j, b) for j, b in enumerate(batches[start : start + 20])))
            accepted += sum(results)
    return accepted
