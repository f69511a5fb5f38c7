"""The sandbox is a real cluster: versioned apiserver, scheduling, kwok pods on loopback, GC, CRDs."""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from kubernetes import client, config, watch

from modeldeploy_dev.sandbox import versions
from modeldeploy_dev.sandbox.cluster import APISERVER, ETCD, FARM, Sandbox, _alive
from tests.conftest import Kubectl, wait_for

pytestmark = pytest.mark.integration


def test_version_is_the_pinned_release(kubectl: Kubectl) -> None:
    version = json.loads(kubectl("get", "--raw", "/version").stdout)
    assert version["gitVersion"] == versions.KUBERNETES
    assert version["minor"] == versions.KUBERNETES_MINOR.split(".")[1]


def test_nodes_are_ready_kwok_nodes_with_loopback_pod_cidrs(kubectl: Kubectl) -> None:
    nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert len(nodes) >= 2
    for node in nodes:
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        assert ipaddress.ip_network(node["spec"]["podCIDR"]).subnet_of(ipaddress.ip_network("127.0.0.0/8"))
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready
        assert ready[0]["status"] == "True"


def test_deployment_pods_run_on_kwok_nodes_with_loopback_ips(kubectl: Kubectl) -> None:
    kubectl("create", "deployment", "web", "--image=registry.invalid/web:1", "--replicas=2")
    deadline = time.monotonic() + 60
    running: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        pods = json.loads(kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
        running = [p for p in pods if p["status"].get("phase") == "Running" and p["status"].get("podIP")]
        if len(running) == 2:
            break
        time.sleep(0.5)
    assert len(running) == 2, f"expected 2 Running pods within 60s, got {len(running)}"
    for pod in running:
        assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network("127.0.0.0/8")  # type: ignore[index]
        assert str(pod["spec"]["nodeName"]).startswith("kwok-node-")  # type: ignore[index]


def test_garbage_collector_deletes_owned_children(kubectl: Kubectl) -> None:
    kubectl("create", "configmap", "owner")
    uid = kubectl("get", "configmap", "owner", "-o", "jsonpath={.metadata.uid}").stdout
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}],
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(child))
    kubectl("delete", "configmap", "owner")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if kubectl("get", "configmap", "child", check=False).returncode != 0:
            return
        time.sleep(0.5)
    pytest.fail("the garbage collector did not delete the owned ConfigMap within 30s")


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.sandbox.modeldeploy.io"},
    "spec": {
        "group": "sandbox.modeldeploy.io",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                        },
                    }
                },
            }
        ],
    },
}


def test_custom_resource_is_created_watched_and_status_patched(
    sandbox: Sandbox, admin_kubectl: Kubectl, namespace: str
) -> None:
    admin_kubectl("apply", "--server-side", "-f", "-", input=json.dumps(WIDGET_CRD))
    admin_kubectl("wait", "--for=condition=Established", "crd/widgets.sandbox.modeldeploy.io", "--timeout=30s")
    api_client = config.new_client_from_config(config_file=str(sandbox.kubeconfig))
    custom = client.CustomObjectsApi(api_client)
    body = {"apiVersion": "sandbox.modeldeploy.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}
    custom.create_namespaced_custom_object("sandbox.modeldeploy.io", "v1", namespace, "widgets", body)

    seen: list[str | None] = []
    watcher = watch.Watch()

    def follow() -> None:
        for event in watcher.stream(
            custom.list_namespaced_custom_object,
            "sandbox.modeldeploy.io",
            "v1",
            namespace,
            "widgets",
            timeout_seconds=20,
        ):
            seen.append(event["object"].get("status", {}).get("phase"))
            if seen[-1] == "Ready":
                watcher.stop()

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(0.5)
    custom.patch_namespaced_custom_object_status(
        "sandbox.modeldeploy.io", "v1", namespace, "widgets", "w", {"status": {"phase": "Ready"}}
    )
    # a status write must not touch spec, and a spec write must not touch status
    custom.patch_namespaced_custom_object(
        "sandbox.modeldeploy.io", "v1", namespace, "widgets", "w", {"status": {"phase": "Lost"}}
    )
    thread.join(timeout=25)
    assert "Ready" in seen
    stored = custom.get_namespaced_custom_object("sandbox.modeldeploy.io", "v1", namespace, "widgets", "w")
    assert stored["status"]["phase"] == "Ready"
    assert stored["spec"]["size"] == 1


def test_up_is_idempotent_and_down_stops_every_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second, private sandbox: up twice, then down leaves no process of ours alive."""
    monkeypatch.setenv("MODELDEPLOY_SANDBOX_DIR", str(tmp_path / "sbx"))
    private = Sandbox()
    private.up(nodes=1)
    try:
        first = dict(private.state().pids)  # type: ignore[union-attr]
        private.up(nodes=1)
        assert private.state().pids == first  # type: ignore[union-attr]
        assert private.healthy()
    finally:
        private.down()
    assert not any(_alive(pid) for pid in first.values())
    assert not (tmp_path / "sbx").exists()
    assert os.environ["MODELDEPLOY_SANDBOX_DIR"] == str(tmp_path / "sbx")


# ---- one component at a time: what the fault suite is built on -----------------------------------


def _service_port(kubectl: Kubectl, name: str) -> int:
    return int(kubectl("get", "service", name, "-o", "jsonpath={.spec.ports[0].port}").stdout)


def test_an_etcd_restart_keeps_every_object_and_the_audit_log_names_the_writer(
    sandbox: Sandbox, kubectl: Kubectl, namespace: str
) -> None:
    kubectl("create", "service", "clusterip", "kept", "--tcp=81:81")
    pids = dict(sandbox.state().pids)  # type: ignore[union-attr]
    seconds = sandbox.restart_etcd(graceful=False)  # kill -9: whatever etcd acknowledged must survive
    print(f"recovery: etcd kill -9 and restart {seconds:.1f}s")
    assert sandbox.healthy()
    after = sandbox.state().pids  # type: ignore[union-attr]
    assert after[ETCD] != pids[ETCD]
    assert {k: v for k, v in after.items() if k != ETCD} == {k: v for k, v in pids.items() if k != ETCD}
    assert list(after) == list(pids), "a restarted component keeps its place in the stop order"
    assert _service_port(kubectl, "kept") == 81
    kubectl("create", "service", "clusterip", "written-after", "--tcp=82:82")
    entries = [json.loads(line) for line in sandbox.audit_log().read_text().splitlines()]
    ours = [
        e
        for e in entries
        if (e.get("objectRef") or {}).get("namespace") == namespace and e["objectRef"].get("resource") == "services"
    ]
    assert [(e["verb"], e["objectRef"]["name"]) for e in ours] == [("create", "kept"), ("create", "written-after")]
    assert all(e["userAgent"].startswith("kubectl") for e in ours)


def _farm_pod(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "modeldeploy"}},
        "spec": {
            "containers": [
                {
                    "name": "model-server",
                    "image": "registry.invalid/modelserver:1",
                    "env": [{"name": "MODEL_NAME", "value": "iris"}, {"name": "MODEL_VERSION", "value": "7"}],
                    "ports": [{"name": "http", "containerPort": 8080}],
                }
            ]
        },
    }


def _running_ip(kubectl: Kubectl, name: str) -> str:
    def ip() -> str | None:
        status = json.loads(kubectl("get", "pod", name, "-o", "json").stdout)["status"]
        return str(status["podIP"]) if status.get("phase") == "Running" and status.get("podIP") else None

    return str(wait_for(ip, timeout=60, what=f"pod {name} Running with an IP"))


def _served(ip: str) -> bool:
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("127.0.0.0/8")
    try:
        response = httpx.get(f"http://{ip}:8080/v2/models/iris", timeout=1, trust_env=False)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.json().get("versions") == ["7"]


def test_the_farm_keeps_serving_and_serves_new_pods_after_an_apiserver_restart(
    sandbox: Sandbox, kubectl: Kubectl
) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(_farm_pod("before")))
    before = _running_ip(kubectl, "before")
    wait_for(lambda: _served(before), timeout=15, what="the farm serving a pod")
    farm_pid = sandbox.state().pids[FARM]  # type: ignore[union-attr]
    apiserver_port = sandbox.state().apiserver_port  # type: ignore[union-attr]

    sandbox.stop_component(APISERVER)
    try:
        assert not sandbox.healthy()
        assert kubectl("get", "pods", check=False).returncode != 0
        time.sleep(2)  # several failed reconnects of the farm's watch
        assert _served(before), "a replica already served keeps serving while the apiserver is away"
    finally:
        seconds = sandbox.start_component(APISERVER)
    print(f"recovery: apiserver start {seconds:.1f}s")
    assert sandbox.healthy()
    assert sandbox.state().apiserver_port == apiserver_port  # type: ignore[union-attr]

    started = time.monotonic()
    kubectl("apply", "-f", "-", input=json.dumps(_farm_pod("after")))
    after = _running_ip(kubectl, "after")
    wait_for(lambda: _served(after), timeout=15, what="the farm serving a pod created after the restart")
    print(f"recovery: farm serving a new pod after an apiserver restart {time.monotonic() - started:.1f}s")
    assert _served(before)
    assert sandbox.state().pids[FARM] == farm_pid, "the farm survived, it was not restarted"  # type: ignore[union-attr]
    kubectl("delete", "pod", "before", "--wait=false")
    wait_for(lambda: not _served(before), timeout=15, what="the farm to stop serving a deleted pod")
