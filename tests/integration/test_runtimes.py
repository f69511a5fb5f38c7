"""Runtimes on the real apiserver, with the operator's informers: selection, names, images, edits, absence.

ClusterModelRuntimes are cluster-wide and the sandbox is shared, so every test makes its own
runtime names and formats (`fmt-<random>`): no other test's runtime can be selected.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from modeldeploy.api.v1alpha1 import ModelRuntimeSpec
from tests.chart import CHART_DIR, helm
from tests.conftest import Kubectl, get_json, model_deployment, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator")]

Obj = dict[str, Any]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def runtime_body(kind: str, name: str, image: str, *formats: str | Obj, **spec: Any) -> Obj:
    supported = [{"name": f} if isinstance(f, str) else f for f in formats]
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": {"image": image, "supportedFormats": supported, "port": 8080, **spec},
    }


@pytest.fixture
def cluster_runtimes(admin_kubectl: Kubectl) -> Any:
    """Creates ClusterModelRuntimes for one test, and deletes them after it."""
    made: list[str] = []

    def create(name: str, image: str, *formats: str | Obj, **spec: Any) -> str:
        body = runtime_body("ClusterModelRuntime", name, image, *formats, **spec)
        admin_kubectl("apply", "-f", "-", input=json.dumps(body))
        made.append(name)
        return name

    yield create
    if made:
        admin_kubectl("delete", "clustermodelruntime", *made, "--ignore-not-found", "--wait=false", check=False)


def conditions(kubectl: Kubectl, name: str = "iris") -> dict[str, Obj]:
    md = get_json(kubectl, "md", name)
    return {c["type"]: c for c in (md.get("status") or {}).get("conditions", [])}  # type: ignore[union-attr, attr-defined]


def condition_is(kubectl: Kubectl, type_: str, status: str, reason: str | None = None) -> bool:
    found = conditions(kubectl).get(type_) or {}
    return found.get("status") == status and (reason is None or found.get("reason") == reason)


def image(kubectl: Kubectl, name: str = "iris") -> str:
    deployment = get_json(kubectl, "deployment", name)
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])  # type: ignore[index]


def selecting(fmt: str, runtime: Obj | None = None) -> Obj:
    spec: Obj = {"model": {"name": "iris", "version": "1.0.0", "format": fmt}}
    body = model_deployment(**spec)
    if runtime is None:
        del body["spec"]["runtime"]
    else:
        body["spec"]["runtime"] = runtime
    return body


def test_a_model_without_a_runtime_gets_the_one_for_its_format(kubectl: Kubectl, cluster_runtimes: Any) -> None:
    fmt = unique("fmt")
    cluster_runtimes(unique("low"), "registry.invalid/low:1", {"name": fmt, "priority": 1})
    high = cluster_runtimes(unique("high"), "registry.invalid/high:1", {"name": fmt, "priority": 5})
    cluster_runtimes(unique("off"), "registry.invalid/off:1", {"name": fmt, "priority": 9}, disabled=True)
    kubectl("apply", "-f", "-", input=json.dumps(selecting(fmt)))
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=90s")
    assert image(kubectl) == "registry.invalid/high:1"
    status = get_json(kubectl, "md", "iris")["status"]
    assert status["model"] == {"runtime": {"kind": "ClusterModelRuntime", "name": high}}  # type: ignore[index]
    wide = kubectl("get", "md", "iris", "-o", "wide").stdout
    assert "RUNTIME" in wide.splitlines()[0]
    assert high in wide.splitlines()[1]


def test_a_name_finds_the_namespaces_runtime_before_the_clusters(kubectl: Kubectl, cluster_runtimes: Any) -> None:
    name, fmt = unique("shared"), unique("fmt")
    cluster_runtimes(name, "registry.invalid/cluster:1", fmt)
    local = runtime_body("ModelRuntime", name, "registry.invalid/team:1", fmt, env=[{"name": "A", "value": "team"}])
    kubectl("apply", "-f", "-", input=json.dumps(local))
    body = selecting(
        fmt, {"name": name, "env": [{"name": "B", "value": "mine"}], "resources": {"limits": {"memory": "1Gi"}}}
    )
    kubectl("apply", "-f", "-", input=json.dumps(body))
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=90s")
    [container] = get_json(kubectl, "deployment", "iris")["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    assert container["image"] == "registry.invalid/team:1"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["A"], env["B"], env["MODEL_FORMAT"]) == ("team", "mine", fmt)
    assert container["resources"] == {"limits": {"memory": "1Gi"}}
    status = get_json(kubectl, "md", "iris")["status"]
    assert status["model"]["runtime"] == {"kind": "ModelRuntime", "name": name}  # type: ignore[index]


def test_an_image_of_its_own_ignores_the_runtimes(kubectl: Kubectl, cluster_runtimes: Any) -> None:
    fmt = unique("fmt")
    cluster_runtimes(unique("rt"), "registry.invalid/runtime:1", fmt)
    kubectl("apply", "-f", "-", input=json.dumps(selecting(fmt, {"image": "registry.invalid/own:1"})))
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=90s")
    assert image(kubectl) == "registry.invalid/own:1"
    assert "model" not in get_json(kubectl, "md", "iris")["status"]  # type: ignore[operator]


def test_editing_the_runtime_rolls_the_model_out(
    kubectl: Kubectl, admin_kubectl: Kubectl, cluster_runtimes: Any
) -> None:
    fmt = unique("fmt")
    name = cluster_runtimes(unique("rt"), "registry.invalid/runtime:1", fmt)
    kubectl("apply", "-f", "-", input=json.dumps(selecting(fmt)))
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=90s")
    admin_kubectl(
        "patch",
        "clustermodelruntime",
        name,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"image": "registry.invalid/runtime:2"}}),
    )
    wait_for(
        lambda: image(kubectl) == "registry.invalid/runtime:2", timeout=30, what="the new runtime image rolled out"
    )
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=90s")


def test_no_runtime_is_stalled_with_the_candidates_and_a_new_runtime_recovers_it(
    kubectl: Kubectl, cluster_runtimes: Any
) -> None:
    fmt, other = unique("fmt"), unique("fmt")
    # "0" sorts before letters: listed first among the shared sandbox's cluster runtimes (at most 8 are named)
    there = cluster_runtimes(unique("0rt"), "registry.invalid/other:1", other)
    kubectl("apply", "-f", "-", input=json.dumps(selecting(fmt)))
    kubectl("wait", "--for=condition=Stalled", "md/iris", "--timeout=60s")
    stalled = conditions(kubectl)["Stalled"]
    assert stalled["reason"] == "NoRuntime"
    assert f"no runtime selects model.format '{fmt}'" in stalled["message"]
    assert f"{there} (ClusterModelRuntime: {other})" in stalled["message"]
    assert conditions(kubectl)["Ready"]["status"] == "False"
    assert kubectl("get", "deployment", "iris", check=False).returncode != 0

    cluster_runtimes(unique("late"), "registry.invalid/late:1", fmt)
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=90s")
    assert image(kubectl) == "registry.invalid/late:1"
    assert condition_is(kubectl, "Stalled", "False")
    reasons = kubectl("get", "events", "-o", "jsonpath={.items[*].reason}").stdout.split()
    assert "NoRuntime" in reasons
    assert "ConfigDriftCorrected" not in reasons, "the first apply of the children is no correction"


def test_a_runtime_replaced_at_once_is_not_noticed(
    kubectl: Kubectl, admin_kubectl: Kubectl, cluster_runtimes: Any
) -> None:
    """What `helm upgrade` does to the chart's runtimes: delete, then create, as hooks."""
    fmt = unique("fmt")
    name = cluster_runtimes(unique("rt"), "registry.invalid/runtime:1", fmt)
    kubectl("apply", "-f", "-", input=json.dumps(selecting(fmt)))
    kubectl("wait", "--for=condition=Ready", "md/iris", "--timeout=90s")
    wait_for(lambda: condition_is(kubectl, "Reconciling", "False"), timeout=30, what="settled")
    time.sleep(2)
    before = get_json(kubectl, "md", "iris")["metadata"]["resourceVersion"]  # type: ignore[index]
    admin_kubectl("delete", "clustermodelruntime", name)
    again = runtime_body("ClusterModelRuntime", name, "registry.invalid/runtime:1", fmt)
    admin_kubectl("apply", "-f", "-", input=json.dumps(again))
    time.sleep(13)  # past the 10 s grace
    assert get_json(kubectl, "md", "iris")["metadata"]["resourceVersion"] == before, "no status write"  # type: ignore[index]
    reasons = kubectl("get", "events", "-o", "jsonpath={.items[*].reason}").stdout.split()
    assert "NoRuntime" not in reasons


def test_the_apiserver_rejects_a_malformed_runtime(admin_kubectl: Kubectl) -> None:
    cases = [
        ({"image": "registry.invalid/x:1", "supportedFormats": [{"name": "has space"}]}, "supportedFormats[0].name"),
        ({"image": "registry.invalid/x:1", "supportedFormats": [{"name": "a", "priority": 0}]}, "priority"),
        ({"supportedFormats": [{"name": "a"}]}, "spec.image: Required value"),
        ({"image": "registry.invalid/x:1", "protocol": "custom"}, "runtime.healthPath and runtime.readinessPath"),
    ]
    for spec, message in cases:
        body = {
            "apiVersion": "modeldeploy.io/v1alpha1",
            "kind": "ClusterModelRuntime",
            "metadata": {"name": unique("bad")},
            "spec": spec,
        }
        result = admin_kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(body), check=False)
        assert result.returncode != 0, spec
        assert message in result.stderr, result.stderr


def test_the_charts_runtimes_are_accepted_by_the_apiserver_and_read_by_the_operator(admin_kubectl: Kubectl) -> None:
    """Every ClusterModelRuntime the chart ships, as `helm template` renders it, through server-side validation."""
    rendered = helm("template", "rel", str(CHART_DIR), "--namespace=ops", "--show-only=templates/runtimes.yaml").stdout
    result = admin_kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-", input=rendered)
    listed = json.loads(result.stdout)
    items = listed["items"] if listed.get("kind") == "List" else [listed]
    assert sorted(i["metadata"]["name"] for i in items) == [
        "mlserver-lightgbm",
        "mlserver-mlflow",
        "mlserver-sklearn",
        "mlserver-xgboost",
        "modeldeploy-reference",
        "triton",
        "vllm",
    ]
    for item in items:
        ModelRuntimeSpec.model_validate(item["spec"])  # what the operator's catalog does with it


def test_kubectl_explains_the_runtime_kinds(admin_kubectl: Kubectl) -> None:
    explained = admin_kubectl("explain", "clustermodelruntime.spec.supportedFormats").stdout
    assert "priority" in explained
    assert "autoSelect" in explained
    short = admin_kubectl("get", "cmrt", check=False)
    assert short.returncode == 0, short.stderr
