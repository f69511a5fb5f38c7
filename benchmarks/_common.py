"""Helpers the benchmarks share: percentiles, readiness predicates, a ModelDeployment, /proc meters."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 0.5):6.2f}s  p95 {percentile(values, 0.95):6.2f}s  "
        f"max {max(values):6.2f}s  mean {statistics.mean(values):6.2f}s"
    )


def deployment_available(obj: Obj) -> bool:
    status = obj.get("status") or {}
    return (
        bool(status.get("availableReplicas")) and status.get("observedGeneration", 0) >= obj["metadata"]["generation"]
    )


def md_ready(obj: Obj) -> bool:
    status = obj.get("status") or {}
    ready = [c for c in status.get("conditions", []) if c["type"] == "Ready"]
    return (
        bool(ready)
        and ready[0]["status"] == "True"
        and status.get("observedGeneration") == obj["metadata"]["generation"]
    )


def model_deployment(name: str, version: str = "1.0.0", probe_interval: int = 30) -> Obj:
    """One replica of the reference model server, probed by the operator, served by the sandbox's farm."""
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "iris", "version": version},
            "runtime": {"image": "ghcr.io/modeldeploy/modeldeploy:0.1.0"},
            "replicas": 1,
            "probing": {"intervalSeconds": probe_interval},
        },
    }


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (its threads included, its children not)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
