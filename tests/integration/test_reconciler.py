"""The reconciler against a real apiserver, controller-manager and garbage collector."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import yaml
from kubernetes import client, config, watch
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy_dev.sandbox.cluster import Sandbox
from tests.conftest import (
    RESYNC_SECONDS,
    Kubectl,
    OperatorProcess,
    condition,
    get_json,
    model_deployment,
    operator_samples,
    reconciles_by_result,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator")]


manifest = model_deployment


def apply(kubectl: Kubectl, obj: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(obj))


def ready(kubectl: Kubectl, name: str = "iris") -> bool:
    md = get_json(kubectl, "md", name)
    meta = md["metadata"]
    status = md.get("status") or {}
    return (
        condition(md, "Ready").get("status") == "True" and status.get("observedGeneration") == meta["generation"]  # type: ignore[index, union-attr]
    )


def events(kubectl: Kubectl, reason: str) -> list[dict[str, Any]]:
    items = get_json(kubectl, "events", f"--field-selector=reason={reason}")["items"]
    return list(items)  # type: ignore[call-overload]


def api_requests(operator: OperatorProcess) -> dict[tuple[str, str, str], float]:
    """The operator's `modeldeploy_api_requests_total`, by (verb, resource, code)."""
    return {
        (labels["verb"], labels["resource"], labels["code"]): value
        for labels, value in operator_samples(operator, "modeldeploy_api_requests")
    }


def test_a_new_model_costs_two_applies_and_its_status_writes(kubectl: Kubectl, operator: OperatorProcess) -> None:
    """No routine Event, one GET that 404s: a new ModelDeployment once cost 8 requests (5 on a quiet machine now).

    The GET is the Service's: the only way to tell a free name from someone else's Service that an
    apply would merge into and adopt. The Deployment needs none (its selector cannot change).
    """
    # The operator's counters are global: the children of an earlier test's namespace, still being
    # deleted, would count here (their reconcile reads and writes before it learns the namespace ends).
    wait_for(
        lambda: "Terminating" not in kubectl("get", "namespaces", "--no-headers").stdout,
        timeout=120,
        what="earlier tests' namespaces gone",
    )
    before = api_requests(operator)
    apply(kubectl, manifest(replicas=1))
    wait_for(lambda: ready(kubectl), timeout=60, what="Ready")

    def spent_now() -> dict[tuple[str, str, str], float]:
        after = api_requests(operator)
        return {
            key: n - before.get(key, 0) for key, n in after.items() if n != before.get(key, 0) and key[0] != "WATCH"
        }

    # The operator counts a request when its answer arrives; on a loaded machine kubectl can see the
    # Ready write before the operator has read the apiserver's answer to it (CI once counted 1 here).
    status_writes = ("PATCH", "modeldeployments/status", "200")
    wait_for(lambda: spent_now().get(status_writes, 0) >= 2, timeout=15, what="the Ready write counted")
    time.sleep(2)  # anything the operator still sends for it
    spent = spent_now()
    print(f"requests for one new ModelDeployment: {spent}")
    assert spent.get(("APPLY", "deployments", "201")) == 1  # created by the apply
    assert spent.get(("APPLY", "services", "201")) == 1
    assert [key for key in spent if key[0] == "GET"] == [("GET", "services", "404")], spent
    assert spent[("GET", "services", "404")] == 1
    assert ("POST", "events", "201") not in spent, spent
    # Status: the generation observed, then Ready; the steps between them (rollout counts, the first
    # probe answering before the Deployment's status caught up) fold into the Ready write, unless
    # Ready takes over 10 s. The average at scale: benchmarks/scale_benchmark.py (BENCHMARKS.md).
    assert spent.get(status_writes, 0) == 2, spent
    assert sum(spent.values()) == 5, spent


def test_create_makes_owned_children_and_becomes_ready(kubectl: Kubectl) -> None:
    apply(kubectl, manifest(autoscaling={"minReplicas": 2, "maxReplicas": 4, "targetCPUUtilizationPercentage": 70}))
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=60s")
    md = get_json(kubectl, "md", "iris")
    uid = md["metadata"]["uid"]  # type: ignore[index]
    for kind in ("deployment", "service", "hpa"):
        child = get_json(kubectl, kind, "iris")
        refs = child["metadata"]["ownerReferences"]  # type: ignore[index]
        assert refs == [
            {
                "apiVersion": "modeldeploy.io/v1alpha1",
                "kind": "ModelDeployment",
                "name": "iris",
                "uid": uid,
                "controller": True,
            }
        ]
    # created at one replica (the operator leaves the count to the HPA), raised to minReplicas by the
    # HPA controller at its next sync, which can come after Ready
    wait_for(
        lambda: len(get_json(kubectl, "pods", "-l", "modeldeploy.io/name=iris")["items"]) == 2,  # type: ignore[arg-type]
        timeout=45,
        what="the HPA's two replicas",
    )
    pods = get_json(kubectl, "pods", "-l", "modeldeploy.io/name=iris")["items"]
    assert all(p["spec"]["nodeName"].startswith("kwok-node-") for p in pods)  # type: ignore[union-attr, attr-defined]
    status = md["status"]
    assert status["selector"] == "modeldeploy.io/name=iris"  # type: ignore[index]
    assert status["url"] == f"http://iris.{md['metadata']['namespace']}.svc:8080"  # type: ignore[index]
    # the operator never writes spec or metadata, and kopf leaves nothing behind on the object
    raw = json.loads(kubectl("get", "md", "iris", "-o", "json", "--show-managed-fields").stdout)
    ours = [m for m in raw["metadata"]["managedFields"] if m["manager"] == "modeldeploy"]
    assert ours
    assert all(m.get("subresource") == "status" for m in ours)
    assert not raw["metadata"].get("finalizers")
    assert not any("kopf" in key for key in raw["metadata"].get("annotations", {}))


def test_version_change_rolls_out_and_ready_follows_generation(
    sandbox: Sandbox, kubectl: Kubectl, namespace: str
) -> None:
    apply(kubectl, manifest())
    wait_for(lambda: ready(kubectl), timeout=60, what="Ready")
    old_template = get_json(kubectl, "deployment", "iris")["spec"]["template"]  # type: ignore[index]

    seen: list[tuple[int | None, int, str | None]] = []
    custom = client.CustomObjectsApi(config.new_client_from_config(config_file=str(sandbox.kubeconfig)))
    watcher = watch.Watch()

    def follow() -> None:
        for event in watcher.stream(
            custom.list_namespaced_custom_object,
            "modeldeploy.io",
            "v1alpha1",
            namespace,
            "modeldeployments",
            timeout_seconds=60,
        ):
            obj = event["object"]
            gen = obj["metadata"]["generation"]
            observed = (obj.get("status") or {}).get("observedGeneration")
            state = condition(obj, "Ready").get("status")
            seen.append((observed, gen, state))
            if gen == 2 and observed == 2 and state == "True":
                watcher.stop()

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(0.5)
    apply(kubectl, manifest(model={"name": "iris", "version": "2.0.0"}))
    thread.join(timeout=65)
    assert (2, 2, "True") in seen, seen
    # Ready went False for generation 2 before it went True again
    after_change = [s for s in seen if s[1] == 2]
    assert any(state != "True" for _, _, state in after_change), after_change
    new_template = get_json(kubectl, "deployment", "iris")["spec"]["template"]  # type: ignore[index]
    assert new_template != old_template
    env = {e["name"]: e.get("value") for e in new_template["spec"]["containers"][0]["env"]}  # type: ignore[index]
    assert env["MODEL_VERSION"] == "2.0.0"
    assert new_template["metadata"]["labels"]["modeldeploy.io/version"] == "2.0.0"  # type: ignore[index]


def _corrections(kubectl: Kubectl) -> int:
    md = get_json(kubectl, "md", "iris")
    return int((((md.get("status") or {}).get("drift") or {}).get("config") or {}).get("corrections", 0))  # type: ignore[union-attr]


def test_hand_edits_of_children_are_reverted_and_reported(kubectl: Kubectl) -> None:
    apply(kubectl, manifest())
    wait_for(lambda: ready(kubectl), timeout=60, what="Ready")

    kubectl("set", "image", "deployment/iris", "model-server=registry.invalid/hacked:6")
    wait_for(
        lambda: (
            get_json(kubectl, "deployment", "iris")["spec"]["template"]["spec"]["containers"][0]["image"]  # type: ignore[index]
            == "registry.invalid/modelserver:1"
        ),
        timeout=RESYNC_SECONDS + 10,
        what="image reverted",
    )
    kubectl("scale", "deployment/iris", "--replicas=5")
    wait_for(
        lambda: get_json(kubectl, "deployment", "iris")["spec"]["replicas"] == 2,  # type: ignore[index]
        timeout=RESYNC_SECONDS + 10,
        what="replicas reverted",
    )
    kubectl("delete", "service", "iris")
    wait_for(
        lambda: kubectl("get", "service", "iris", check=False).returncode == 0,
        timeout=RESYNC_SECONDS + 10,
        what="service recreated",
    )

    wait_for(lambda: _corrections(kubectl) >= 3, timeout=RESYNC_SECONDS + 10, what="3 corrections in status")
    drift = get_json(kubectl, "md", "iris")["status"]["drift"]["config"]  # type: ignore[index]
    assert drift["lastCorrectedChild"] == "Service/iris"  # type: ignore[index]
    assert drift["lastCorrectionTime"]  # type: ignore[index]
    warnings = events(kubectl, "ConfigDriftCorrected")
    messages = " | ".join(e["message"] for e in warnings)
    assert all(e["type"] == "Warning" for e in warnings)
    assert "Deployment/iris was edited" in messages
    assert "Service/iris was deleted" in messages


def test_delete_removes_every_child_through_the_garbage_collector(kubectl: Kubectl) -> None:
    apply(kubectl, manifest(autoscaling={"minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}))
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=60s")
    kubectl("delete", "md", "iris", "--wait=true", "--timeout=30s")

    def children_gone() -> bool:
        return all(
            kubectl("get", kind, "iris", check=False).returncode != 0 for kind in ("deployment", "service", "hpa")
        )

    wait_for(children_gone, timeout=30, what="children garbage-collected")
    wait_for(
        lambda: not get_json(kubectl, "pods", "-l", "modeldeploy.io/name=iris")["items"], timeout=30, what="pods gone"
    )


def test_kubectl_scale_while_autoscaling_is_said_to_be_ignored(kubectl: Kubectl) -> None:
    """It was accepted, the generation observed, and nothing said why nothing happened."""
    hpa = {"minReplicas": 2, "maxReplicas": 4, "targetCPUUtilizationPercentage": 70}
    apply(kubectl, manifest(replicas=1, autoscaling=hpa))
    wait_for(lambda: ready(kubectl), timeout=60, what="Ready")
    assert not events(kubectl, "ScaleIgnored")
    kubectl("scale", "md/iris", "--replicas=5")
    wait_for(lambda: ready(kubectl), timeout=30, what="the scaled generation observed")
    message = condition(get_json(kubectl, "md", "iris"), "Ready")["message"]
    assert "spec.replicas=5 is ignored: autoscaling owns the replica count" in message
    wait_for(lambda: events(kubectl, "ScaleIgnored"), timeout=10, what="a ScaleIgnored Event")
    time.sleep(2 * RESYNC_SECONDS)  # resyncs do not say it again
    said = events(kubectl, "ScaleIgnored")
    assert [(e["type"], e.get("count", 1)) for e in said] == [("Warning", 1)], said
    assert "autoscaling.minReplicas/maxReplicas" in said[0]["message"]
    assert get_json(kubectl, "deployment", "iris")["spec"]["replicas"] != 5  # type: ignore[index]


def test_autoscaling_toggle_creates_and_deletes_the_hpa_without_flapping(kubectl: Kubectl) -> None:
    apply(kubectl, manifest(replicas=2))
    wait_for(lambda: ready(kubectl), timeout=60, what="Ready")
    replicas_seen: list[int] = []
    stop = threading.Event()

    def sample() -> None:  # from before the change, so no transition is missed
        while not stop.is_set():
            value = int(get_json(kubectl, "deployment", "iris")["spec"]["replicas"])  # type: ignore[index, call-overload]
            if not replicas_seen or replicas_seen[-1] != value:
                replicas_seen.append(value)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    time.sleep(0.5)
    apply(
        kubectl,
        manifest(replicas=2, autoscaling={"minReplicas": 3, "maxReplicas": 5, "targetCPUUtilizationPercentage": 60}),
    )
    wait_for(lambda: kubectl("get", "hpa", "iris", check=False).returncode == 0, timeout=20, what="HPA created")
    time.sleep(15)  # the HPA lifts replicas to its minimum; we must not push back
    stop.set()
    sampler.join()
    assert replicas_seen[0] == 2
    assert replicas_seen[-1] == 3, replicas_seen
    assert replicas_seen == sorted(replicas_seen), f"replicas flapped: {replicas_seen}"
    raw = json.loads(kubectl("get", "deployment", "iris", "-o", "json", "--show-managed-fields").stdout)
    ours = [m for m in raw["metadata"]["managedFields"] if m["manager"] == "modeldeploy"]
    assert all("f:replicas" not in m["fieldsV1"].get("f:spec", {}) for m in ours)

    apply(kubectl, manifest(replicas=2))
    wait_for(lambda: kubectl("get", "hpa", "iris", check=False).returncode != 0, timeout=20, what="HPA deleted")
    wait_for(
        lambda: get_json(kubectl, "deployment", "iris")["spec"]["replicas"] == 2,  # type: ignore[index]
        timeout=20,
        what="replicas back to spec",
    )
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=60s")
    assert any(
        e["message"].startswith("deleted HorizontalPodAutoscaler/iris") for e in events(kubectl, "ChildrenDeleted")
    )


WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY", "CREATE", "UPDATE"}
WATCHED = {
    ("apps", "deployments", ""),
    ("", "services", ""),
    ("autoscaling", "horizontalpodautoscalers", ""),
    ("modeldeploy.io", "modeldeployments", "status"),
}


def _writes(kubectl: Kubectl) -> dict[tuple[str, str, str, str], float]:
    text = kubectl("get", "--raw", "/metrics").stdout
    counts: dict[tuple[str, str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            labels = sample.labels
            key = (labels.get("group", ""), labels.get("resource", ""), labels.get("subresource", ""))
            if labels.get("verb") in WRITE_VERBS and key in WATCHED:
                full = (*key, labels["verb"])
                counts[full] = counts.get(full, 0) + sample.value
    return counts


def _our_events(kubectl: Kubectl) -> int:
    items = get_json(kubectl, "events")["items"]
    return sum(1 for e in items if (e.get("source") or {}).get("component") == "modeldeploy")  # type: ignore[union-attr]


def test_reapply_and_resync_of_a_converged_resource_cost_zero_writes(
    kubectl: Kubectl, tmp_path: Any, operator: OperatorProcess
) -> None:
    doc = manifest()
    path = tmp_path / "iris.yaml"
    path.write_text(yaml.safe_dump(doc))
    kubectl("apply", "--server-side", "-f", str(path))  # as Argo CD and Flux apply
    wait_for(lambda: ready(kubectl), timeout=60, what="Ready")
    # the apiserver's counters are cluster-wide: wait until earlier tests' namespaces are gone
    wait_for(
        lambda: "Terminating" not in kubectl("get", "namespaces", "--no-headers").stdout,
        timeout=90,
        what="no namespace terminating",
    )
    time.sleep(2)  # let the last status write and its watch event settle
    before, events_before = _writes(kubectl), _our_events(kubectl)
    reconciles_before = _reconciles(operator)

    version_before = get_json(kubectl, "md", "iris")["metadata"]["resourceVersion"]  # type: ignore[index]
    kubectl("apply", "--server-side", "-f", str(path))
    assert get_json(kubectl, "md", "iris")["metadata"]["resourceVersion"] == version_before  # type: ignore[index]
    time.sleep(2 * RESYNC_SECONDS + 1)  # two resyncs of a converged resource

    after, events_after = _writes(kubectl), _our_events(kubectl)
    assert _reconciles(operator) > reconciles_before, "the resync did not run: the test would prove nothing"
    assert after == before, {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k) != before.get(k)}
    assert events_after == events_before
    diff = kubectl("diff", "--server-side", "-f", str(path), check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr


def _reconciles(operator: OperatorProcess, result: str | None = None) -> float:
    counts = reconciles_by_result(operator)
    return sum(counts.values()) if result is None else counts.get(result, 0.0)


def test_missing_pull_secret_stalls_without_a_retry_storm(kubectl: Kubectl, operator: OperatorProcess) -> None:
    apply(kubectl, manifest(imagePullSecrets=[{"name": "registry-creds"}]))
    wait_for(
        lambda: condition(get_json(kubectl, "md", "iris"), "Stalled").get("status") == "True",
        timeout=30,
        what="Stalled",
    )
    md = get_json(kubectl, "md", "iris")
    stalled = condition(md, "Stalled")
    assert stalled["reason"] == "ImagePullSecretNotFound"
    assert "spec.imagePullSecrets[0].name" in stalled["message"]
    assert "registry-creds" in stalled["message"]
    assert condition(md, "Ready")["status"] == "False"
    assert md["status"]["observedGeneration"] == md["metadata"]["generation"]  # type: ignore[index]
    assert kubectl("get", "deployment", "iris", check=False).returncode != 0, "nothing is rolled out while stalled"
    assert [e["type"] for e in events(kubectl, "ImagePullSecretNotFound")] == ["Warning"]
    before = _reconciles(operator, "stalled")
    time.sleep(2 * RESYNC_SECONDS)
    retried = _reconciles(operator, "stalled") - before
    assert 1 <= retried <= 3, f"a stalled resource is retried on resync only, not in a loop ({retried} in 2 resyncs)"
    assert len(events(kubectl, "ImagePullSecretNotFound")) == 1, "one Warning, not one per retry"

    kubectl(
        "create",
        "secret",
        "docker-registry",
        "registry-creds",
        "--docker-server=registry.invalid",
        "--docker-username=u",
        "--docker-password=p",
    )
    wait_for(lambda: ready(kubectl), timeout=RESYNC_SECONDS + 30, what="recovery once the secret exists")
    time.sleep(2)  # the status write for Ready, and whatever follows it
    secret_reads = api_requests(operator).get(("GET", "secrets", "200"), 0)
    time.sleep(2 * RESYNC_SECONDS)
    # converged: resyncs look at the cache only (they once read every pull secret, every period)
    assert api_requests(operator).get(("GET", "secrets", "200"), 0) == secret_reads


def test_name_clash_with_an_object_we_do_not_own_stalls_and_leaves_it_alone(kubectl: Kubectl) -> None:
    kubectl("create", "service", "clusterip", "iris", "--tcp=80:80")
    before = get_json(kubectl, "service", "iris")
    apply(kubectl, manifest())
    wait_for(
        lambda: condition(get_json(kubectl, "md", "iris"), "Stalled").get("reason") == "ChildNameConflict",
        timeout=30,
        what="ChildNameConflict",
    )
    message = condition(get_json(kubectl, "md", "iris"), "Stalled")["message"]
    assert "Service 'iris' already exists" in message
    after = get_json(kubectl, "service", "iris")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # type: ignore[index]
    kubectl("delete", "md", "iris")
    time.sleep(1)
    assert kubectl("get", "service", "iris", check=False).returncode == 0, "never delete what we do not own"


def test_a_child_the_apiserver_rejects_stalls_with_its_reason(kubectl: Kubectl) -> None:
    """Valid for our schema, invalid for a Deployment: the apiserver's own words reach the status."""
    apply(kubectl, manifest(nodeSelector={"not a valid key!": "x"}))
    wait_for(
        lambda: condition(get_json(kubectl, "md", "iris"), "Stalled").get("reason") == "ApplyRejected",
        timeout=30,
        what="ApplyRejected",
    )
    stalled = condition(get_json(kubectl, "md", "iris"), "Stalled")
    assert "nodeSelector" in stalled["message"]
    assert "not a valid key!" in stalled["message"]
    assert [e["type"] for e in events(kubectl, "ApplyRejected")] == ["Warning"]

    apply(kubectl, manifest(nodeSelector={"kubernetes.io/os": "linux"}))
    wait_for(lambda: ready(kubectl), timeout=60, what="Ready once the spec is fixed")
    assert condition(get_json(kubectl, "md", "iris"), "Stalled")["status"] == "False"
