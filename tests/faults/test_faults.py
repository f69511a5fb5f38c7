"""The fault suite: break one thing at a time, then prove the operator converged and lost nothing.

Each scenario asserts the behaviour a user is owed, not today's: converged ModelDeployments,
no object lost, no child left behind or duplicated, no write to an object that is gone, and a
bounded number of writes. Each prints how long recovery took (`recovery: <name> <s>s`).

Run it (own sandbox, kept between runs):

    MODELDEPLOY_SANDBOX_DIR=/tmp/sb-faults MODELDEPLOY_SANDBOX_NET=31 MODELDEPLOY_KEEP_SANDBOX=1 \\
        .venv/bin/pytest tests/faults -m faults -v
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modeldeploy_dev.sandbox.cluster import Sandbox
from tests.conftest import (
    RESYNC_SECONDS,
    Kubectl,
    OperatorProcess,
    condition,
    make_kubectl,
    model_deployment,
    petal_length_drift,
    start_operator,
    stop_operator,
    wait_for,
)
from tests.faults.meters import (
    FARM_IMAGE,
    AuditLog,
    StartOperator,
    all_converged,
    apiserver_requests,
    apply_all,
    converged,
    get_obj,
    items,
    kill_9,
    live_pods,
    log_lines,
    managed_models,
    model_deployments,
    operator_source,
    reconciles,
    report_recovery,
    time_until,
    tracebacks,
    write_delta,
)
from tests.faults.proxy import CuttableProxy

pytestmark = [pytest.mark.integration, pytest.mark.faults]

INTERVAL = 2
PROBING = {"intervalSeconds": INTERVAL, "timeoutSeconds": 1, "failureThreshold": 1}
CHILD_KINDS = ("deployments", "services", "horizontalpodautoscalers")
SETTLE = 2 * RESYNC_SECONDS + 1  # two resyncs: anything the operator would still write, it writes here
NAME_LABEL = "modeldeploy.io/name"


def names_of(items: list[dict[str, Any]]) -> list[str]:
    return sorted(str(i["metadata"]["name"]) for i in items)


def controller_uid(obj: dict[str, Any]) -> str | None:
    refs = [r for r in obj["metadata"].get("ownerReferences", []) if r.get("controller")]
    return str(refs[0]["uid"]) if len(refs) == 1 else None


def children_of(kubectl: Kubectl, name: str) -> dict[str, list[str]]:
    """Every Deployment, ReplicaSet, Service, HPA and live pod of one ModelDeployment, by name."""
    found = {
        "deployments": [d for d in names_of(items(kubectl, "deployments")) if d == name],
        "services": [s for s in names_of(items(kubectl, "services")) if s == name],
        "horizontalpodautoscalers": [h for h in names_of(items(kubectl, "hpa")) if h == name],
        "replicasets": names_of(items(kubectl, "replicasets", "-l", f"{NAME_LABEL}={name}")),
        "pods": names_of(live_pods(kubectl, f"{NAME_LABEL}={name}")),
    }
    return {kind: names for kind, names in found.items() if names}


def deployment_of(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return get_obj(kubectl, "deployment", name)


def container_env(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def warnings(kubectl: Kubectl, reason: str) -> list[dict[str, Any]]:
    return [e for e in items(kubectl, "events", f"--field-selector=reason={reason}") if e.get("type") == "Warning"]


def child_problems(kubectl: Kubectl, mds: list[dict[str, Any]], *, rollouts: bool) -> list[str]:
    """What is wrong with the children of `mds`: missing, extra, foreign-owned, orphaned or duplicated.

    `rollouts=False` also counts every ReplicaSet ever made: a second one for a Deployment whose
    spec nobody changed is a rollout the operator caused by rewriting the pod template.
    """
    problems: list[str] = []
    by_name = {str(md["metadata"]["name"]): md for md in mds}
    for kind in ("deployments", "services"):
        children = items(kubectl, kind)
        if names_of(children) != sorted(by_name):
            problems.append(f"{kind}: {names_of(children)} for ModelDeployments {sorted(by_name)}")
        for child in children:
            owner = by_name.get(child["metadata"]["name"])
            if owner is not None and controller_uid(child) != owner["metadata"]["uid"]:
                problems.append(f"{kind}/{child['metadata']['name']} is not controlled by its ModelDeployment")
    if items(kubectl, "hpa"):
        problems.append("an HPA nobody asked for")
    deployments = {d["metadata"]["uid"]: d["metadata"]["name"] for d in items(kubectl, "deployments")}
    made: dict[str, int] = {}
    active: dict[str, int] = {}
    replica_sets = {}
    for rs in items(kubectl, "replicasets"):
        replica_sets[rs["metadata"]["uid"]] = rs
        owner = deployments.get(controller_uid(rs) or "")
        if owner is None:
            problems.append(f"replicaset/{rs['metadata']['name']} has no live Deployment")
            continue
        made[owner] = made.get(owner, 0) + 1
        if rs["spec"].get("replicas", 0) > 0:
            active[owner] = active.get(owner, 0) + 1
    if any(n != 1 for n in active.values()) or sorted(active) != sorted(by_name):
        problems.append(f"ReplicaSets with replicas per Deployment: {active}")
    if not rollouts and any(n != 1 for n in made.values()):
        problems.append(f"ReplicaSets made per Deployment (more than 1: a rollout nobody asked for): {made}")
    pods: dict[str, int] = {}
    for pod in live_pods(kubectl, NAME_LABEL):
        name = pod["metadata"]["labels"][NAME_LABEL]
        pods[name] = pods.get(name, 0) + 1
        if (controller_uid(pod) or "") not in replica_sets:
            problems.append(f"pod/{pod['metadata']['name']} has no live ReplicaSet")
    wanted = {name: int(md["spec"]["replicas"]) for name, md in by_name.items()}
    if pods != wanted:
        problems.append(f"live pods per ModelDeployment {pods}, spec.replicas {wanted}")
    return problems


def assert_owned_children_exactly(kubectl: Kubectl, *, rollouts: bool = False, timeout: float = 30) -> None:
    """Wait (the GC and the ReplicaSet controller need a moment) until the children are exactly right."""
    problems: list[str] = []

    def exact() -> bool:
        problems[:] = child_problems(kubectl, model_deployments(kubectl), rollouts=rollouts)
        return not problems

    try:
        wait_for(exact, timeout=timeout, interval=0.5, what="exactly the declared children")
    except AssertionError:
        pytest.fail(f"children still wrong after {timeout:.0f}s: " + "; ".join(problems))


def settled(kubectl: Kubectl) -> bool:
    """Nothing left moving in the namespace: rollouts done, no pod terminating."""
    for deployment in items(kubectl, "deployments"):
        spec, status = deployment["spec"], deployment.get("status") or {}
        wanted = spec.get("replicas", 1)
        if status.get("observedGeneration") != deployment["metadata"]["generation"]:
            return False
        if any(status.get(k, 0) != wanted for k in ("replicas", "updatedReplicas", "readyReplicas")):
            return False
    return not any(p["metadata"].get("deletionTimestamp") for p in items(kubectl, "pods"))


def quiet_writes(audit: AuditLog, kubectl: Kubectl, namespace: str, seconds: float = SETTLE) -> list[str]:
    """The operator's writes in a settled `namespace` over `seconds`: should be none.

    Waits for the namespace to settle first (a status write that reports a rollout finishing
    is news, not noise); a status write in the window is shown with what it changed.
    """
    wait_for(lambda: settled(kubectl), timeout=60, interval=0.5, what="the namespace to settle")
    before = {md["metadata"]["name"]: md.get("status") or {} for md in model_deployments(kubectl)}
    mark = audit.mark()
    time.sleep(seconds)
    writes = [str(e) for e in audit.operator_writes(mark, namespace)]
    if writes:
        after = {md["metadata"]["name"]: md.get("status") or {} for md in model_deployments(kubectl)}
        for name, status in after.items():
            old = before.get(name, {})
            changed = {k: (old.get(k), v) for k, v in status.items() if old.get(k) != v}
            if changed:
                writes.append(f"status of {name} changed: {json.dumps(changed)[:1500]}")
    return writes


# ---- 1. kill -9 of the operator mid-burst ---------------------------------------------------------

BURST = 30


def test_operator_kill_9_mid_burst_loses_nothing_and_duplicates_nothing(
    sandbox: Sandbox, crd: Path, kubectl: Kubectl, namespace: str, operators: StartOperator, audit: AuditLog
) -> None:
    first = operators(sandbox.kubeconfig, "first")
    apply_all(kubectl, [model_deployment(f"burst-{i:02d}", replicas=1) for i in range(BURST)])
    wait_for(lambda: len(items(kubectl, "deployments")) >= 3, timeout=30, interval=0.1, what="the burst under way")
    kill_9(first)
    at_kill = (len(items(kubectl, "deployments")), sum(converged(md) for md in model_deployments(kubectl)))
    print(f"killed mid-burst with {at_kill[0]}/{BURST} Deployments and {at_kill[1]}/{BURST} converged")
    assert at_kill[1] < BURST, "killed too late to test anything: every ModelDeployment had converged"

    started = time.monotonic()
    second = operators(sandbox.kubeconfig, "second")
    seconds = time_until(
        lambda: all_converged(kubectl, BURST), since=started, timeout=120, what=f"{BURST} ModelDeployments Ready"
    )
    report_recovery(f"operator kill -9 mid-burst, {BURST} ModelDeployments all Ready", seconds)

    assert_owned_children_exactly(kubectl)
    idle = quiet_writes(audit, kubectl, namespace)
    print(f"second operator: {reconciles(second):.0f} reconciles, {len(idle)} writes once converged")
    assert not idle, f"a converged burst costs no writes after the restart, got {len(idle)}: {idle[:5]}"
    assert tracebacks(second) == 0, log_lines(second, "ERROR")


# ---- 2. a real apiserver restart ------------------------------------------------------------------


def test_apiserver_restart_converges_without_a_traceback(
    control_plane: Sandbox, crd: Path, kubectl: Kubectl, namespace: str, operators: StartOperator, audit: AuditLog
) -> None:
    operator = operators(control_plane.kubeconfig)
    docs = [model_deployment(f"api-{i}", replicas=2, runtime=FARM_IMAGE, probing=PROBING) for i in range(3)]
    apply_all(kubectl, docs)
    wait_for(lambda: all_converged(kubectl, 3), timeout=90, what="3 probed ModelDeployments Ready")
    uids = {md["metadata"]["name"]: md["metadata"]["uid"] for md in model_deployments(kubectl)}

    started = time.monotonic()
    down = control_plane.restart_apiserver()
    print(f"apiserver down and back in {down:.1f}s")
    # as soon as the apiserver answers, a user changes one ModelDeployment and adds another
    docs[0]["spec"]["replicas"] = 3
    docs.append(model_deployment("api-3", replicas=2, runtime=FARM_IMAGE, probing=PROBING))
    apply_all(kubectl, docs)

    def done() -> bool:
        mds = {md["metadata"]["name"]: md for md in model_deployments(kubectl)}
        return (
            len(mds) == 4
            and all(converged(md) for md in mds.values())
            and mds["api-0"]["status"].get("health", {}).get("totalReplicas") == 3  # the pod watch is back too
            and mds["api-3"]["status"].get("health", {}).get("healthyReplicas") == 2  # the farm serves new pods
        )

    seconds = time_until(done, since=started, timeout=120, what="4 ModelDeployments Ready after the restart")
    report_recovery("apiserver restart, a change and a new ModelDeployment converged", seconds)

    assert operator.process.poll() is None, "the operator survived the restart"
    mds = model_deployments(kubectl)
    assert {md["metadata"]["name"]: md["metadata"]["uid"] for md in mds if md["metadata"]["name"] in uids} == uids
    assert_owned_children_exactly(kubectl)
    assert tracebacks(operator) == 0, "\n".join(log_lines(operator, "ERROR")[:10])
    idle = quiet_writes(audit, kubectl, namespace)
    assert not idle, f"converged after the restart, yet {len(idle)} writes: {idle[:5]}"


# ---- 3. a watch gap, through the proxy, with a deletion and a change during it --------------------


@pytest.mark.parametrize("apiserver_restarts", [False, True], ids=["resumed", "relisted"])
def test_watch_gap_with_a_deletion_and_a_spec_change(
    apiserver_restarts: bool,
    control_plane: Sandbox,
    crd: Path,
    kubectl: Kubectl,
    admin_kubectl: Kubectl,
    namespace: str,
    operators: StartOperator,
    audit: AuditLog,
    proxy: tuple[CuttableProxy, Path],
) -> None:
    """`resumed`: the watch picks up where it was and sees the deletion as an event.

    `relisted`: the apiserver restarts during the gap, so the version the operator resumes from is
    gone (410) and only a new list can tell it what was deleted: the ghost-object defect.
    """
    sandbox = control_plane
    cut, through_proxy = proxy
    operator = operators(through_proxy)
    docs = {name: model_deployment(name, replicas=1) for name in ("gone", "changed", "steady")}
    apply_all(kubectl, list(docs.values()))
    wait_for(lambda: all_converged(kubectl, 3), timeout=60, what="3 ModelDeployments Ready")
    assert children_of(kubectl, "gone"), "the one to delete has children to collect"

    dropped = cut.cut()
    gap_started = time.monotonic()
    print(f"proxy cut: {dropped} operator connections dropped")
    if apiserver_restarts:
        print(f"apiserver down and back in {sandbox.restart_apiserver():.1f}s, unseen by the operator")
    kubectl("delete", "md", "gone", "--wait=true", "--timeout=30s")
    docs["changed"]["spec"]["replicas"] = 2
    docs["changed"]["spec"]["model"] = {"name": "iris", "version": "2.0.0"}
    kubectl("apply", "-f", "-", input=json.dumps(docs["changed"]))
    wait_for(lambda: not children_of(kubectl, "gone"), timeout=60, what="the GC to collect the deleted one's children")
    time.sleep(max(0.0, 5 - (time.monotonic() - gap_started)))  # at least 5 s blind, whatever the GC took

    mark, counters = audit.mark(), apiserver_requests(admin_kubectl)
    reconciles_before = reconciles(operator)
    cut.restore()
    restored = time.monotonic()
    print(f"proxy restored after a {restored - gap_started:.1f}s gap")

    def changed_converged() -> bool:
        md = get_obj(kubectl, "md", "changed")
        if not converged(md):
            return False
        deployment = deployment_of(kubectl, "changed")
        return deployment["spec"]["replicas"] == 2 and container_env(deployment).get("MODEL_VERSION") == "2.0.0"

    seconds = time_until(changed_converged, since=restored, timeout=60, what="the changed ModelDeployment converged")
    how = "apiserver restarted in the gap, relisted" if apiserver_restarts else "resumed"
    report_recovery(f"watch gap (proxy cut, {how}), spec change made during the gap converged", seconds)
    time.sleep(SETTLE)  # two resyncs: a ghost of the deleted one would be reconciled in them

    ghost = [str(e) for e in audit.operator_writes(mark, namespace, names={"gone"})]
    steady = [str(e) for e in audit.operator_writes(mark, namespace, names={"steady"})]
    delta = write_delta(counters, apiserver_requests(admin_kubectl), {*CHILD_KINDS, "modeldeployments"})
    print(
        f"after the gap: {reconciles(operator) - reconciles_before:.0f} reconciles, "
        f"{len(ghost)} writes for the deleted one, {len(steady)} for the untouched one; "
        f"apiserver writes cluster-wide: {delta}"
    )
    leftovers: dict[str, list[str]] = {}

    def collected() -> bool:
        leftovers.clear()
        leftovers.update(children_of(kubectl, "gone"))
        return not leftovers

    try:
        wait_for(collected, timeout=30, interval=0.5, what="no child of the deleted ModelDeployment")
    except AssertionError:
        print(f"children of the deleted ModelDeployment still there 30 s later: {leftovers}")
    cached, listed = managed_models(operator), len(items(admin_kubectl, "md", "--all-namespaces"))
    print(f"after the gap: the operator's cache holds {cached:.0f} ModelDeployments, the apiserver lists {listed}")
    if apiserver_restarts:
        assert "listed again" in operator.log(), "the restart should have cost the watch its version (410)"
    assert cached == listed, "after a re-list the cache equals the list"
    assert not ghost, f"{len(ghost)} writes for a ModelDeployment deleted during the gap: {ghost[:5]}"
    assert not leftovers, f"children of the deleted ModelDeployment left after the GC could act: {leftovers}"
    assert not steady, f"{len(steady)} writes for a ModelDeployment untouched during the gap: {steady[:5]}"
    assert_owned_children_exactly(kubectl, rollouts=True)  # the changed one rolled out a new version
    assert tracebacks(operator) == 0, "\n".join(log_lines(operator, "ERROR")[:10])


# ---- 4. etcd restart ------------------------------------------------------------------------------


def test_etcd_restart_loses_nothing_and_converges(
    control_plane: Sandbox, crd: Path, kubectl: Kubectl, namespace: str, operators: StartOperator, audit: AuditLog
) -> None:
    operator = operators(control_plane.kubeconfig)
    docs = [model_deployment(f"etcd-{i}", replicas=2) for i in range(3)]
    apply_all(kubectl, docs)
    wait_for(lambda: all_converged(kubectl, 3), timeout=60, what="3 ModelDeployments Ready")
    before = {
        kind: {o["metadata"]["name"]: o["metadata"]["uid"] for o in items(kubectl, kind)}
        for kind in ("md", "deployments", "services", "replicasets", "pods")
    }

    started = time.monotonic()
    down = control_plane.restart_etcd()
    print(f"etcd down and back (apiserver ready again) in {down:.1f}s")
    docs[0]["spec"]["replicas"] = 3
    docs.append(model_deployment("etcd-3", replicas=1))
    apply_all(kubectl, docs)

    def done() -> bool:
        return all_converged(kubectl, 4) and deployment_of(kubectl, "etcd-0")["spec"]["replicas"] == 3

    seconds = time_until(done, since=started, timeout=90, what="4 ModelDeployments Ready after the etcd restart")
    report_recovery("etcd restart, a change and a new ModelDeployment converged", seconds)

    after = {
        kind: {o["metadata"]["name"]: o["metadata"]["uid"] for o in items(kubectl, kind)}
        for kind in ("md", "deployments", "services", "replicasets")
    }
    for kind in ("md", "deployments", "services", "replicasets"):
        lost = {name: uid for name, uid in before[kind].items() if after[kind].get(name) != uid}
        assert not lost, f"{kind} lost or replaced across the etcd restart: {lost}"
    assert operator.process.poll() is None
    assert_owned_children_exactly(kubectl)
    assert tracebacks(operator) == 0, "\n".join(log_lines(operator, "ERROR")[:10])
    idle = quiet_writes(audit, kubectl, namespace)
    assert not idle, f"converged after the etcd restart, yet {len(idle)} writes: {idle[:5]}"


# ---- 5. a second writer ---------------------------------------------------------------------------

INTRUSIONS = 8


def test_a_second_writer_is_overruled_reported_and_not_fought_forever(
    sandbox: Sandbox, crd: Path, kubectl: Kubectl, namespace: str, operators: StartOperator, audit: AuditLog
) -> None:
    operator = operators(sandbox.kubeconfig)
    doc = model_deployment("contested", replicas=2)
    kubectl("apply", "-f", "-", input=json.dumps(doc))
    wait_for(lambda: converged(get_obj(kubectl, "md", "contested")), timeout=60, what="Ready")
    declared_image = doc["spec"]["runtime"]["image"]

    mark = audit.mark()
    for i in range(INTRUSIONS):  # another controller, or a person, insisting once a second
        patch: dict[str, Any]
        if i % 2:
            patch = {"spec": {"template": {"spec": {"containers": [{"name": "model-server", "image": f"hack:{i}"}]}}}}
        else:
            patch = {"spec": {"replicas": 5 + i}}
        kubectl(
            "patch", "deployment", "contested", "--field-manager=intruder", "--type=strategic", "-p", json.dumps(patch)
        )
        time.sleep(1)
    last_intrusion = time.monotonic()

    def restored() -> bool:
        deployment = deployment_of(kubectl, "contested")
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        return bool(deployment["spec"]["replicas"] == 2 and image == declared_image)

    seconds = time_until(restored, since=last_intrusion, timeout=RESYNC_SECONDS + 15, what="the declared state")
    report_recovery("second writer stopped, Deployment back to the declared state", seconds)
    wait_for(lambda: converged(get_obj(kubectl, "md", "contested")), timeout=60, what="Ready again")

    intruder = [e for e in audit.since(mark) if e.name == "contested" and "fieldManager=intruder" in e.uri]
    fought = audit.operator_writes(mark, namespace, names={"contested"}, resources={"deployments"})
    print(f"second writer: {len(intruder)} writes; operator: {len(fought)} Deployment writes to undo them")
    assert len(intruder) == INTRUSIONS
    assert 1 <= len(fought) <= INTRUSIONS + 2, f"bounded: at most one restore per intrusion, got {len(fought)}"
    events = warnings(kubectl, "ConfigDriftCorrected")
    assert any("Deployment/contested was edited" in e["message"] for e in events), [e["message"] for e in events]
    config = get_obj(kubectl, "md", "contested")["status"]["drift"]["config"]
    assert config["corrections"] >= 1
    assert config["lastCorrectedChild"] == "Deployment/contested"
    assert_owned_children_exactly(kubectl, rollouts=True)  # the image edits rolled out, and back
    idle = quiet_writes(audit, kubectl, namespace)
    assert not idle, f"the fight is over, yet {len(idle)} writes: {idle[:5]}"
    assert tracebacks(operator) == 0


# ---- 6. a deleted child ---------------------------------------------------------------------------


def test_a_deleted_deployment_is_recreated_and_reported(
    sandbox: Sandbox, crd: Path, kubectl: Kubectl, namespace: str, operators: StartOperator
) -> None:
    operator = operators(sandbox.kubeconfig)
    kubectl("apply", "-f", "-", input=json.dumps(model_deployment("victim", replicas=2)))
    wait_for(lambda: converged(get_obj(kubectl, "md", "victim")), timeout=60, what="Ready")
    old_uid = deployment_of(kubectl, "victim")["metadata"]["uid"]

    started = time.monotonic()
    kubectl("delete", "deployment", "victim", "--wait=false")

    def recreated() -> bool:
        found = kubectl("get", "deployment", "victim", "-o", "json", check=False)
        if found.returncode != 0:
            return False
        deployment = json.loads(found.stdout)
        return deployment["metadata"]["uid"] != old_uid and not deployment["metadata"].get("deletionTimestamp")

    seconds = time_until(recreated, since=started, timeout=RESYNC_SECONDS + 15, what="the Deployment recreated")
    report_recovery("deleted Deployment recreated", seconds)
    seconds = time_until(
        lambda: (
            converged(get_obj(kubectl, "md", "victim"))
            and get_obj(kubectl, "deployment", "victim")["status"].get("readyReplicas") == 2
        ),
        since=started,
        timeout=60,
        what="Ready with 2 ready replicas",
    )
    report_recovery("deleted Deployment, ModelDeployment Ready again", seconds)

    assert_owned_children_exactly(kubectl)
    events = warnings(kubectl, "ConfigDriftCorrected")
    assert any("Deployment/victim was deleted" in e["message"] for e in events), [e["message"] for e in events]
    assert tracebacks(operator) == 0


# ---- 7. every replica fault the farm can show -----------------------------------------------------

FAULT_ANNOTATION = "farm.modeldeploy.io/fault"


@dataclass
class FaultBench:
    """One probed ModelDeployment of 2 replicas, shared by every farm fault."""

    kubectl: Kubectl
    operator: OperatorProcess

    def md(self) -> dict[str, Any]:
        return get_obj(self.kubectl, "md", "faulty")

    def pods(self) -> list[str]:
        running = [p for p in live_pods(self.kubectl, f"{NAME_LABEL}=faulty") if p["status"].get("phase") == "Running"]
        return names_of(running)

    def healthy(self) -> bool:
        md = self.md()
        return (
            converged(md)
            and condition(md, "ModelHealthy").get("status") == "True"
            and condition(md, "Drifted").get("status") == "False"
            and (md.get("status") or {}).get("health", {}).get("healthyReplicas") == 2
        )


@pytest.fixture(scope="module")
def bench(sandbox: Sandbox, crd: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultBench]:
    namespace = f"t-farm-faults-{uuid.uuid4().hex[:5]}"
    admin = make_kubectl(sandbox.kubeconfig, None)
    admin("create", "namespace", namespace)
    kubectl = make_kubectl(sandbox.kubeconfig, namespace)
    log = tmp_path_factory.mktemp("farm-faults") / "operator.log"
    operator = start_operator(sandbox.kubeconfig, log, extra_env=operator_source())
    try:
        doc = model_deployment("faulty", replicas=2, runtime=FARM_IMAGE, probing=PROBING)
        kubectl("apply", "-f", "-", input=json.dumps(doc))
        instance = FaultBench(kubectl, operator)
        wait_for(instance.healthy, timeout=90, what="2 healthy probed replicas")
        yield instance
    finally:
        stop_operator(operator)
        admin("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.mark.parametrize(
    ("fault", "reported_as", "detail"),
    [
        ("unhealthy", "ModelHealthy", "503"),
        ("hang", "ModelHealthy", "timeout"),
        ("garbage", "ModelHealthy", None),
        ("crash", "ModelHealthy", None),
        ("slow=3", "ModelHealthy", "timeout"),
        ("version=0.9.0", "Drifted", "0.9.0"),
    ],
)
def test_a_farm_fault_names_the_pod_with_a_reason_and_recovers(
    bench: FaultBench, fault: str, reported_as: str, detail: str | None
) -> None:
    victim = bench.pods()[0]
    bench.kubectl("annotate", "pod", victim, f"{FAULT_ANNOTATION}={fault}", "--overwrite")
    started = time.monotonic()
    try:

        def reported() -> dict[str, str] | None:
            md = bench.md()
            stated = condition(md, reported_as)
            bad = "True" if reported_as == "Drifted" else "False"
            if stated.get("status") == bad and victim in stated.get("message", ""):
                return stated
            return None

        wait_for(reported, timeout=3 * INTERVAL + 5, what=f"{reported_as} naming {victim} for {fault}")
        print(f"detection: farm fault {fault} {time.monotonic() - started:.1f}s")
        md = bench.md()
        stated = condition(md, reported_as)
        assert condition(md, "Ready")["status"] == "False", "a faulty replica makes the model not Ready"
        if reported_as == "ModelHealthy":
            assert stated["reason"] == "ReplicasUnhealthy"
            assert re.search(rf"{re.escape(victim)}: \S", stated["message"]), stated["message"]
        else:
            assert stated["reason"] == "VersionDrift"
        if detail is not None:
            assert detail in stated["message"].lower(), stated["message"]
    finally:
        bench.kubectl("annotate", "pod", victim, f"{FAULT_ANNOTATION}-")
    removed = time.monotonic()
    seconds = time_until(bench.healthy, since=removed, timeout=3 * INTERVAL + 10, what=f"recovery from {fault}")
    report_recovery(f"farm fault {fault} removed, model healthy and Ready", seconds)


def test_the_farm_faults_cost_the_operator_no_traceback(bench: FaultBench) -> None:
    """Runs after every fault above: a replica misbehaving is news for the status, not an exception."""
    assert bench.operator.process.poll() is None
    assert tracebacks(bench.operator) == 0, "\n".join(log_lines(bench.operator, "ERROR")[:10])


# ---- 8. hostile metrics bodies -------------------------------------------------------------------

HOSTILE_BODIES = [("huge", r"exceeds|larger than"), ("endless", r"exceeds|larger than"), ("trickle", r"deadline")]


def memory_kib(pid: int, field: str) -> int:
    """VmRSS or VmHWM (the peak, so nothing between two samples is missed) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")


def scrape_problem(md: dict[str, Any], pod: str) -> str | None:
    """The condition message that reports `pod`'s scrape as a problem, if any does."""
    for item in (md.get("status") or {}).get("conditions", []):
        message = str(item.get("message", ""))
        if "scrape problems" in message and f"{pod}: " in message:
            return message
    return None


def test_hostile_metrics_bodies_are_cut_off_and_reported_in_bounded_memory(
    sandbox: Sandbox, crd: Path, kubectl: Kubectl, namespace: str, operators: StartOperator
) -> None:
    operator = operators(sandbox.kubeconfig)
    doc = model_deployment(
        "scraped", replicas=2, runtime=FARM_IMAGE, probing=PROBING, drift=petal_length_drift(min_samples=1_000_000)
    )
    kubectl("apply", "-f", "-", input=json.dumps(doc))

    def probed() -> bool:
        md = get_obj(kubectl, "md", "scraped")
        status = md.get("status") or {}
        return (
            converged(md)
            and status.get("health", {}).get("healthyReplicas") == 2
            and bool(status.get("drift", {}).get("data", {}).get("lastEvaluated"))
        )

    wait_for(probed, timeout=90, what="2 probed replicas, drift evaluated")
    pods = names_of([p for p in live_pods(kubectl, f"{NAME_LABEL}=scraped") if p["status"].get("phase") == "Running"])
    victim = pods[0]
    pid = operator.process.pid
    time.sleep(2 * INTERVAL)
    rss_before, peak_before = memory_kib(pid, "VmRSS"), memory_kib(pid, "VmHWM")

    for body, words in HOSTILE_BODIES:
        kubectl("annotate", "pod", victim, f"{FAULT_ANNOTATION}=metrics={body}", "--overwrite")
        started = time.monotonic()
        found: list[str] = []
        try:

            def reported(body: str = body, words: str = words, found: list[str] = found) -> bool:
                message = scrape_problem(get_obj(kubectl, "md", "scraped"), victim)
                found[:] = [message] if message else []
                return message is not None and re.search(words, message.split("scrape problems", 1)[1]) is not None

            try:
                wait_for(reported, timeout=4 * INTERVAL + 10, what=f"the {body} metrics body reported for {victim}")
            except AssertionError:
                stated = (get_obj(kubectl, "md", "scraped").get("status") or {}).get("conditions")
                pytest.fail(f"metrics={body} on {victim} not reported as {words!r}: {json.dumps(stated)}")
            print(f"detection: metrics={body} {time.monotonic() - started:.1f}s: {found[0][-200:]}")
            time.sleep(2 * INTERVAL)  # a few more scrapes of it: memory is read after the whole episode
            md = get_obj(kubectl, "md", "scraped")
            assert condition(md, "ModelHealthy")["status"] == "True", "health is fine; only the scrape is hostile"
        finally:
            kubectl("annotate", "pod", victim, f"{FAULT_ANNOTATION}-")
        removed = time.monotonic()
        seconds = time_until(
            lambda: scrape_problem(get_obj(kubectl, "md", "scraped"), victim) is None,
            since=removed,
            timeout=4 * INTERVAL + 10,
            what=f"scrape problems gone after metrics={body}",
        )
        report_recovery(f"hostile metrics={body} removed, scrape clean again", seconds)

    rss_after, peak_after = memory_kib(pid, "VmRSS"), memory_kib(pid, "VmHWM")
    print(
        f"operator memory over three hostile bodies: RSS {rss_before / 1024:.0f} -> {rss_after / 1024:.0f} MiB, "
        f"peak {peak_before / 1024:.0f} -> {peak_after / 1024:.0f} MiB"
    )
    # The 2 MiB body cap and the 16 KiB kept-lines cap bound a scrape; 64 MiB would show whole.
    assert peak_after - peak_before < 48 * 1024, f"peak RSS grew by {(peak_after - peak_before) / 1024:.0f} MiB"
    assert tracebacks(operator) == 0, "\n".join(log_lines(operator, "ERROR")[:10])
