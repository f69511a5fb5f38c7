"""Inference traffic for the sandbox: iris-like rows, optionally shifted, sent to replicas.

Rows are drawn from per-class normal distributions with the iris data set's class means
and standard deviations (computed once from the data set scikit-learn ships), so traffic
"like the training data" really matches the examples' drift baseline, and a shift moves
one feature by a known amount. Requests go to pod IPs, which in the sandbox are 127.x.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

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


def service_endpoints(service: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> list[tuple[str, int]]:
    """The (pod IP, port) pairs kube-proxy would send the Service's first port to.

    The sandbox has no Service routing, so this does what the endpoints controller and
    kube-proxy do together: pods matching the selector, Ready, not being deleted, with an IP;
    a named targetPort resolved on each pod's own containers.
    """
    spec = service.get("spec") or {}
    selector = spec.get("selector") or {}
    port = (spec.get("ports") or [{}])[0]
    target = port.get("targetPort", port.get("port"))
    found: list[tuple[str, int]] = []
    for pod in pods:
        metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
        labels = metadata.get("labels") or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()) or metadata.get("deletionTimestamp"):
            continue
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        if not ready or not status.get("podIP"):
            continue
        number = _container_port(pod, target)
        if number is not None:
            found.append((str(status["podIP"]), number))
    return sorted(found)


def _container_port(pod: Mapping[str, Any], target: object) -> int | None:
    if isinstance(target, int):
        return target
    for container in (pod.get("spec") or {}).get("containers") or []:
        for entry in container.get("ports") or []:
            if entry.get("name") == target:
                return int(entry["containerPort"])
    return None


class ServiceTraffic:
    """Steady inference traffic to a Service's ready pods, re-resolved every second, in a thread.

    Each request goes to one endpoint picked at random, as kube-proxy's iptables mode picks, so
    a canary with a quarter of the ready pods gets about a quarter of the requests.
    """

    def __init__(
        self,
        endpoints: Callable[[], list[tuple[str, int]]],
        model: str,
        *,
        per_second: float = 40.0,
        shift: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
        seed: int = 0,
    ) -> None:
        self.endpoints = endpoints
        self.model = model
        self.per_second = per_second
        self.shift = shift
        self.rng = random.Random(seed)
        self.sent = 0
        self.answered: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="service-traffic", daemon=True)

    def __enter__(self) -> ServiceTraffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        rows = iris_rows(3000, shift=self.shift, seed=self.rng.randrange(1 << 30))
        targets: list[tuple[str, int]] = []
        refreshed = 0.0
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            while not self._stop.is_set():
                now = time.monotonic()
                if now - refreshed >= 1.0:
                    # a failed lookup keeps the last endpoints, as kube-proxy would
                    with contextlib.suppress(Exception):
                        targets = [t for t in self.endpoints() if ipaddress.ip_address(t[0]) in LOOPBACK]
                    refreshed = now
                if targets:
                    ip, port = self.rng.choice(targets)
                    row = rows[self.sent % len(rows)]
                    body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": row}]}
                    try:
                        code = client.post(f"http://{ip}:{port}/v2/models/{self.model}/infer", json=body).status_code
                    except httpx.HTTPError:
                        code = 0
                    self.answered[code] = self.answered.get(code, 0) + 1
                    self.sent += 1
                self._stop.wait(1.0 / self.per_second)
