"""Meters for the fault suite: writes per client and object, reconciles, tracebacks, recovery times.

- writes per object and per client come from the apiserver's audit log (the sandbox keeps one
  for the kinds the operator touches), because `apiserver_request_total` has no client or
  object label: that metric is read too, and its cluster-wide figures printed for context;
- the operator's reconciles come from its metrics, its tracebacks from its log;
- each recovery is timed and printed as `recovery: <name> <seconds>s`, and listed again at the
  end of the run, so a slow recovery is visible even when every test passes.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Kubectl, OperatorProcess, condition, operator_samples, reconciles_by_result, wait_for

StartOperator = Callable[..., OperatorProcess]  # the `operators` fixture: start one, stopped afterwards
FARM_IMAGE = {"image": "ghcr.io/modeldeploy/modeldeploy:0.1.0"}  # an image the sandbox's replica farm serves
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
RECOVERIES: list[tuple[str, float]] = []


# ---- timing ---------------------------------------------------------------------------------------


def report_recovery(name: str, seconds: float) -> float:
    """Print one recovery time in the suite's fixed format and keep it for the final summary."""
    RECOVERIES.append((name, seconds))
    print(f"recovery: {name} {seconds:.1f}s")
    return seconds


def time_until(check: Callable[[], object], *, since: float, timeout: float, what: str) -> float:
    """Wait for `check` and return the seconds from `since` (a time.monotonic()) until it held."""
    wait_for(check, timeout=timeout, interval=0.2, what=what)
    return time.monotonic() - since


# ---- which operator ---------------------------------------------------------------------------------


def operator_source() -> dict[str, str]:
    """Environment that runs the operator from `MODELDEPLOY_FAULTS_OPERATOR_SRC`, when it is set.

    A directory holding another `modeldeploy` package (e.g. `git archive` of an older commit's
    `operator/`): the same scenarios then measure that operator, for a before/after comparison,
    while the tests and the sandbox stay this tree's.
    """
    source = os.environ.get("MODELDEPLOY_FAULTS_OPERATOR_SRC")
    if not source:
        return {}
    if not (Path(source) / "modeldeploy" / "__init__.py").exists():
        raise RuntimeError(f"MODELDEPLOY_FAULTS_OPERATOR_SRC={source} holds no modeldeploy package")
    return {"PYTHONPATH": os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p)}


# ---- the apiserver's own counters -----------------------------------------------------------------


def apiserver_requests(admin_kubectl: Kubectl) -> Counter[tuple[str, str, str, str]]:
    """`apiserver_request_total` summed over codes: (verb, group, resource, subresource) -> count.

    Cluster-wide and for every client (the metric has no client label), and reset by an
    apiserver restart: use deltas within one apiserver lifetime, and the audit log for
    anything about one client or one object.
    """
    text = admin_kubectl("get", "--raw", "/metrics").stdout
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = sample.labels
                key = (labels["verb"], labels.get("group", ""), labels["resource"], labels.get("subresource", ""))
                counts[key] += int(sample.value)
    return counts


def write_delta(
    before: Counter[tuple[str, str, str, str]], after: Counter[tuple[str, str, str, str]], resources: set[str]
) -> dict[str, float]:
    """Writes between two snapshots to the given resources, as `VERB group/resource[/sub]`."""
    delta: dict[str, float] = {}
    for key, value in after.items():
        verb, group, resource, sub = key
        if verb in ("GET", "LIST", "WATCH", "CONNECT") or resource not in resources:
            continue
        change = value - before.get(key, 0.0)
        if change:
            delta[f"{verb} {group or 'core'}/{resource}{'/' + sub if sub else ''}"] = change
    return delta


# ---- the audit log: who wrote what ----------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    verb: str
    user_agent: str
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int
    uri: str
    user: str = ""  # the authenticated user name (a ServiceAccount's, for the chart's operator)

    @property
    def what(self) -> str:
        """`patch deployments`, `patch modeldeployments/status`: the verb on the resource."""
        sub = f"/{self.subresource}" if self.subresource else ""
        return f"{self.verb} {self.resource}{sub}"

    @property
    def by_operator(self) -> bool:
        """Our operator's client (and kopf's, should the reactor ever write) or its field manager."""
        agent = self.user_agent.lower()
        return (
            agent.startswith("modeldeploy")
            or agent.startswith("kopf")
            or "fieldmanager=modeldeploy&" in (self.uri.lower() + "&")
        )

    def __str__(self) -> str:
        sub = f"/{self.subresource}" if self.subresource else ""
        return f"{self.verb} {self.resource}{sub} {self.namespace}/{self.name} -> {self.code} ({self.user_agent})"


class AuditLog:
    """The sandbox apiserver's audit log, read from a mark so a test sees only its own window."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def since(self, mark: int) -> list[AuditEntry]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            if self.path.stat().st_size < mark:  # rotated since the mark (at 50 MB): all of the new file
                mark = 0
            handle.seek(mark)
            lines = handle.read().splitlines()
        entries = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:  # a line being written right now
                continue
            ref = event.get("objectRef") or {}
            entries.append(
                AuditEntry(
                    verb=str(event.get("verb", "")),
                    user_agent=str(event.get("userAgent", "")),
                    resource=str(ref.get("resource", "")),
                    subresource=str(ref.get("subresource", "")),
                    namespace=str(ref.get("namespace", "")),
                    name=str(ref.get("name", "")),
                    code=int((event.get("responseStatus") or {}).get("code", 0)),
                    uri=str(event.get("requestURI", "")),
                    user=str((event.get("user") or {}).get("username", "")),
                )
            )
        return entries

    def operator_writes(
        self, mark: int, namespace: str, names: set[str] | None = None, resources: set[str] | None = None
    ) -> list[AuditEntry]:
        """Write requests our operator made in `namespace` since `mark` (answered or not)."""
        return [
            e
            for e in self.since(mark)
            if e.by_operator
            and e.verb in WRITE_VERBS
            and e.namespace == namespace
            and (names is None or e.name in names)
            and (resources is None or e.resource in resources)
        ]


# ---- the operator ---------------------------------------------------------------------------------


def tracebacks(operator: OperatorProcess) -> int:
    return operator.log().count("Traceback (most recent call last)")


def log_lines(operator: OperatorProcess, level: str) -> list[str]:
    """Lines of the operator's log at `level` (ERROR, WARNING, ...)."""
    return [line for line in operator.log().splitlines() if f" {level} " in line]


def reconciles(operator: OperatorProcess) -> float:
    return sum(reconciles_by_result(operator).values())


def managed_models(operator: OperatorProcess) -> float:
    """`modeldeploy_managed_models`: how many ModelDeployments the operator's cache holds."""
    [(_, value)] = operator_samples(operator, "modeldeploy_managed_models")
    return value


def kill_9(operator: OperatorProcess) -> None:
    operator.process.kill()
    operator.process.wait(timeout=10)


# ---- ModelDeployments -----------------------------------------------------------------------------


def converged(md: dict[str, Any]) -> bool:
    """Ready=True for the current generation: the operator has seen and finished this spec."""
    status = md.get("status") or {}
    return (
        condition(md, "Ready").get("status") == "True"
        and status.get("observedGeneration") == md["metadata"]["generation"]
    )


def get_obj(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    """`kubectl get -o json`, typed loosely: the tests index into it freely."""
    result: dict[str, Any] = json.loads(kubectl("get", *args, "-o", "json").stdout)
    return result


def items(kubectl: Kubectl, *args: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = get_obj(kubectl, *args)["items"]
    return result


def model_deployments(kubectl: Kubectl) -> list[dict[str, Any]]:
    return items(kubectl, "md")


def all_converged(kubectl: Kubectl, count: int) -> bool:
    mds = model_deployments(kubectl)
    return len(mds) == count and all(converged(md) for md in mds)


def apply_all(kubectl: Kubectl, docs: list[dict[str, Any]]) -> None:
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))


def live_pods(kubectl: Kubectl, selector: str) -> list[dict[str, Any]]:
    """Pods not being deleted; a leftover of a deleted owner would show here until collected."""
    return [p for p in items(kubectl, "pods", "-l", selector) if not p["metadata"].get("deletionTimestamp")]
