"""Two operator replicas: only the Lease holder works; when it goes, the standby takes over."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from modeldeploy_dev.sandbox.cluster import Sandbox
from tests.conftest import (
    Kubectl,
    OperatorProcess,
    get_json,
    model_deployment,
    operator_samples,
    reconciles_by_result,
    start_operator,
    stop_operator,
    wait_for,
)

pytestmark = pytest.mark.integration  # runs its own operators: no module-wide admin operator here

LEASE_SECONDS = 4


def reconciles(operator: OperatorProcess) -> float:
    return sum(count for result, count in reconciles_by_result(operator).items() if result != "skipped")


def holder(kubectl: Kubectl) -> str | None:
    found = kubectl("get", "lease", "modeldeploy", "-o", "json", check=False)
    if found.returncode != 0:
        return None
    return json.loads(found.stdout)["spec"].get("holderIdentity")  # type: ignore[no-any-return]


def ready_at(kubectl: Kubectl, generation: int) -> bool:
    md = get_json(kubectl, "md", "iris")
    status = md.get("status") or {}
    ready = [c for c in status.get("conditions", []) if c["type"] == "Ready"]  # type: ignore[union-attr]
    return bool(ready) and ready[0]["status"] == "True" and status.get("observedGeneration") == generation  # type: ignore[union-attr]


def test_only_the_holder_reconciles_and_a_standby_takes_over(
    sandbox: Sandbox, crd: Path, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    operators: dict[str, OperatorProcess] = {}
    try:
        for identity in ("replica-a", "replica-b"):
            operators[identity] = start_operator(
                sandbox.kubeconfig,
                tmp_path / f"{identity}.log",
                {
                    "MODELDEPLOY_LEADER_ELECTION": "true",
                    "MODELDEPLOY_LEADER_ELECTION_NAMESPACE": namespace,
                    "MODELDEPLOY_LEASE_SECONDS": str(LEASE_SECONDS),
                    "MODELDEPLOY_RENEW_SECONDS": "1",
                    "POD_NAME": identity,
                },
            )
        leader = str(wait_for(lambda: holder(kubectl), timeout=15, what="a Lease holder"))
        standby = next(name for name in operators if name != leader)

        kubectl("apply", "-f", "-", input=json.dumps(model_deployment(replicas=1)))
        wait_for(lambda: ready_at(kubectl, 1), timeout=60, what="Ready under the leader")
        assert reconciles(operators[leader]) > 0
        assert reconciles(operators[standby]) == 0, "a standby must not reconcile"

        stop_operator(operators.pop(leader))
        wait_for(lambda: holder(kubectl) == standby, timeout=3 * LEASE_SECONDS, what="the standby takes the Lease")
        lease = json.loads(kubectl("get", "lease", "modeldeploy", "-o", "json").stdout)["spec"]
        assert lease["leaseTransitions"] == 1
        patch = {"spec": {"model": {"name": "iris", "version": "2.0.0"}}}
        kubectl("patch", "md", "iris", "--type=merge", "-p", json.dumps(patch))
        wait_for(lambda: ready_at(kubectl, 2), timeout=60, what="the new leader reconciles a change")
        assert reconciles(operators[standby]) > 0
        assert "became the leader" in operators[standby].log()
    finally:
        for operator in operators.values():
            stop_operator(operator)


SKEW = """
import datetime, os
from modeldeploy.controller import leader
_offset = datetime.timedelta(seconds=float(os.environ["MODELDEPLOY_TEST_CLOCK_OFFSET"]))
_real = leader._now
leader._now = lambda: _real() + _offset
"""


def is_leader(operator: OperatorProcess) -> float:
    [(_, value)] = operator_samples(operator, "modeldeploy_leader")
    return value


def test_a_skewed_clock_never_makes_two_leaders_and_a_graceful_stop_hands_over_at_once(
    sandbox: Sandbox, crd: Path, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    """The standby's clock runs 30 s ahead; expiry compared the holder's renewTime with it."""
    skewed = tmp_path / "skewed-clock"
    skewed.mkdir()
    (skewed / "sitecustomize.py").write_text(SKEW)  # loaded at start-up, before the operator runs
    election = {
        "MODELDEPLOY_LEADER_ELECTION": "true",
        "MODELDEPLOY_LEADER_ELECTION_NAMESPACE": namespace,
        "MODELDEPLOY_LEASE_SECONDS": str(LEASE_SECONDS),
        "MODELDEPLOY_RENEW_SECONDS": "1",
    }
    operators: dict[str, OperatorProcess] = {}
    try:
        operators["on-time"] = start_operator(
            sandbox.kubeconfig, tmp_path / "on-time.log", {**election, "POD_NAME": "on-time"}
        )
        wait_for(lambda: holder(kubectl) == "on-time", timeout=15, what="the on-time replica leads")
        path = os.pathsep.join(p for p in (str(skewed), os.environ.get("PYTHONPATH", "")) if p)
        operators["ahead"] = start_operator(
            sandbox.kubeconfig,
            tmp_path / "ahead.log",
            {**election, "POD_NAME": "ahead", "PYTHONPATH": path, "MODELDEPLOY_TEST_CLOCK_OFFSET": "30"},
        )
        kubectl("apply", "-f", "-", input=json.dumps(model_deployment(replicas=1)))
        wait_for(lambda: ready_at(kubectl, 1), timeout=60, what="Ready under the leader")
        for generation, version in enumerate(("2.0.0", "3.0.0"), start=2):  # work to be tempted by
            patch = {"spec": {"model": {"name": "iris", "version": version}}}
            kubectl("patch", "md", "iris", "--type=merge", "-p", json.dumps(patch))
            wait_for(lambda g=generation: ready_at(kubectl, g), timeout=60, what=f"generation {generation} Ready")
        time.sleep(3 * LEASE_SECONDS)  # three lease durations: the skewed standby would have taken it
        assert holder(kubectl) == "on-time"
        assert reconciles(operators["ahead"]) == 0, "the skewed standby reconciled: two leaders"
        assert (is_leader(operators["on-time"]), is_leader(operators["ahead"])) == (1.0, 0.0)
        assert "became the leader" not in operators["ahead"].log()

        leaving = operators.pop("on-time")
        started = time.monotonic()
        leaving.process.terminate()  # SIGTERM, as a rolling upgrade sends
        wait_for(lambda: holder(kubectl) == "ahead", timeout=3 * LEASE_SECONDS, interval=0.1, what="the handover")
        handover = time.monotonic() - started
        stop_operator(leaving)
        print(f"graceful stop: the standby held the Lease {handover:.1f}s after SIGTERM (lease {LEASE_SECONDS}s)")
        assert handover < 3.0
        wait_for(lambda: is_leader(operators["ahead"]) == 1.0, timeout=5, what="the new leader's metric")
    finally:
        for operator in operators.values():
            stop_operator(operator)
