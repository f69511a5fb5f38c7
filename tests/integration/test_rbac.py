"""The operator running on the chart's RBAC, and nothing more: least privilege, in anger.

The chart is installed (without its CRD: the shared one is the `crd` fixture's) and the operator
is started on this machine with a kubeconfig holding a token of the chart's ServiceAccount, from
the TokenRequest API. It then drives a ModelDeployment through its whole life; any permission
the chart lacks shows up as a 403 in the operator's log, or as a step that never converges.

This module must not share namespaces with another operator: it never requests the admin
`operator` fixture (module-scoped in conftest, so none is alive here), serves only a namespace
of its own, and checks that nobody else serves it before starting (`assert_no_other_operator`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modeldeploy_dev.sandbox.cluster import Sandbox
from tests.chart import (
    CHART_DIR,
    assert_no_other_operator,
    forbidden_lines,
    get,
    helm,
    model_deployment,
    scratch_namespace,
    service_account_kubeconfig,
    unique,
)
from tests.conftest import (
    Kubectl,
    OperatorProcess,
    condition,
    make_kubectl,
    start_operator,
    stop_operator,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("crd")]

CONVERGE = 60.0


@pytest.fixture
def watched(admin_kubectl: Kubectl) -> Iterator[str]:
    """The namespace the operator serves; the chart is released into the test's `namespace`."""
    with scratch_namespace(admin_kubectl, "t-rbac-models") as name:
        yield name


class ChartOperator:
    def __init__(self, process: OperatorProcess, kubeconfig: Path) -> None:
        self.process = process
        self.kubeconfig = kubeconfig

    def can(self, *args: str) -> bool:
        """`kubectl auth can-i` as the ServiceAccount itself."""
        result = make_kubectl(self.kubeconfig, None)("auth", "can-i", *args, check=False)
        return result.stdout.strip() == "yes"


StartChartOperator = Callable[..., ChartOperator]


@pytest.fixture
def chart_operator(sandbox: Sandbox, namespace: str, watched: str, tmp_path: Path) -> Iterator[StartChartOperator]:
    started: list[tuple[str, OperatorProcess]] = []

    def start(mode: str, *, verify_pull_secrets: bool = False, leader_election: bool = False) -> ChartOperator:
        release = unique("rel")
        values = ["--set", "crd.install=false", "--set", f"verifyImagePullSecrets={str(verify_pull_secrets).lower()}"]
        if leader_election:
            values += ["--set", "leaderElection.enabled=true"]
        if mode == "namespaced":
            values += ["--set", "rbac.scope=namespaced", "--set", f"watchNamespaces={{{watched}}}"]
        helm("install", release, str(CHART_DIR), f"--namespace={namespace}", *values, kubeconfig=sandbox.kubeconfig)
        admin = make_kubectl(sandbox.kubeconfig, namespace)
        deployment = get(admin, "deployment", "-l", f"app.kubernetes.io/instance={release}")["items"][0]
        pod = deployment["spec"]["template"]["spec"]
        account = pod["serviceAccountName"]
        env = {item["name"]: item["value"] for item in pod["containers"][0]["env"] if "value" in item}
        # the operator runs with what the chart gives its pod: same account, same settings
        assert env["MODELDEPLOY_VERIFY_PULL_SECRETS"] == str(verify_pull_secrets).lower()
        token = admin("create", "token", account, "--duration=1h").stdout.strip()
        kubeconfig = service_account_kubeconfig(sandbox.kubeconfig, token, tmp_path / f"{release}.kubeconfig")
        assert_no_other_operator(make_kubectl(sandbox.kubeconfig, watched), watched)
        process = start_operator(
            kubeconfig,
            tmp_path / f"{release}.log",
            {
                "MODELDEPLOY_VERIFY_PULL_SECRETS": env["MODELDEPLOY_VERIFY_PULL_SECRETS"],
                "MODELDEPLOY_NAMESPACES": watched,
                # what the downward API gives the chart's pod
                **(
                    {
                        key: env[key]
                        for key in (
                            "MODELDEPLOY_LEADER_ELECTION",
                            "MODELDEPLOY_LEASE_SECONDS",
                            "MODELDEPLOY_RENEW_SECONDS",
                        )
                    }
                    | {"POD_NAMESPACE": namespace, "POD_NAME": f"{release}-pod"}
                    if leader_election
                    else {}
                ),
            },
        )
        started.append((release, process))
        return ChartOperator(process, kubeconfig)

    yield start
    for release, process in started:
        stop_operator(process)
        helm("uninstall", release, f"--namespace={namespace}", "--wait", kubeconfig=sandbox.kubeconfig, check=False)


def ready(kubectl: Kubectl, name: str) -> bool:
    md = get(kubectl, "md", name)
    status = md.get("status") or {}
    return (
        condition(md, "Ready").get("status") == "True"
        and status.get("observedGeneration") == md["metadata"]["generation"]
    )


def exists(kubectl: Kubectl, kind: str, name: str) -> bool:
    return kubectl("get", kind, name, check=False).returncode == 0


def drive_a_model_through_its_life(kubectl: Kubectl) -> None:
    """create, version change, scale, autoscaling on and off, delete: each step must converge."""
    kubectl("apply", "-f", "-", input=json.dumps(model_deployment("x")))
    wait_for(lambda: ready(kubectl, "x"), timeout=CONVERGE, what="x Ready after create")
    uid = get(kubectl, "md", "x")["metadata"]["uid"]
    for kind in ("deployment", "service"):
        refs = get(kubectl, kind, "x")["metadata"]["ownerReferences"]
        assert [ref["uid"] for ref in refs] == [uid]
    assert len(get(kubectl, "pods", "-l", "modeldeploy.io/name=x")["items"]) == 2

    kubectl("apply", "-f", "-", input=json.dumps(model_deployment("x", model={"name": "iris", "version": "2.0.0"})))
    wait_for(lambda: ready(kubectl, "x"), timeout=CONVERGE, what="x Ready after the version change")
    template = get(kubectl, "deployment", "x")["spec"]["template"]
    env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0]["env"]}
    assert env["MODEL_VERSION"] == "2.0.0"

    kubectl("scale", "md/x", "--replicas=3")
    wait_for(
        lambda: get(kubectl, "deployment", "x")["spec"]["replicas"] == 3 and ready(kubectl, "x"),
        timeout=CONVERGE,
        what="the Deployment to follow `kubectl scale md/x`",
    )
    wait_for(
        lambda: (get(kubectl, "md", "x").get("status") or {}).get("replicas") == 3,
        timeout=CONVERGE,
        what="status.replicas 3",
    )

    autoscaling = {"minReplicas": 2, "maxReplicas": 4, "targetCPUUtilizationPercentage": 70}
    kubectl("patch", "md", "x", "--type=merge", "-p", json.dumps({"spec": {"autoscaling": autoscaling}}))
    wait_for(lambda: exists(kubectl, "hpa", "x"), timeout=CONVERGE, what="the HPA")
    hpa = get(kubectl, "hpa", "x")
    assert hpa["spec"]["minReplicas"] == 2
    assert hpa["spec"]["maxReplicas"] == 4
    wait_for(lambda: ready(kubectl, "x"), timeout=CONVERGE, what="x Ready with autoscaling")

    kubectl("patch", "md", "x", "--type=json", "-p", json.dumps([{"op": "remove", "path": "/spec/autoscaling"}]))
    wait_for(lambda: not exists(kubectl, "hpa", "x"), timeout=CONVERGE, what="the HPA to be deleted")
    wait_for(lambda: ready(kubectl, "x"), timeout=CONVERGE, what="x Ready without autoscaling")

    kubectl("delete", "md", "x", "--wait=true")
    wait_for(
        lambda: not exists(kubectl, "deployment", "x") and not exists(kubectl, "service", "x"),
        timeout=CONVERGE,
        what="the children to be collected with their ModelDeployment",
    )


@pytest.mark.parametrize("mode", ["cluster", "namespaced", "cluster-leader-election"])
def test_operator_runs_on_the_charts_rbac_alone(
    chart_operator: StartChartOperator, sandbox: Sandbox, namespace: str, watched: str, mode: str
) -> None:
    leader_election = mode.endswith("-leader-election")
    mode = mode.removesuffix("-leader-election")
    operator = chart_operator(mode, leader_election=leader_election)
    # what the chart's account may do: the declared permissions, nothing else
    assert operator.can("patch", "modeldeployments.modeldeploy.io", "--subresource=status", "-n", watched)
    assert operator.can("create", "horizontalpodautoscalers.autoscaling", "-n", watched)
    assert not operator.can("get", "secrets", "-n", watched)
    assert operator.can("delete", "deployments.apps", "-n", watched)  # a canary's, when it ends
    assert not operator.can("update", "deployments.apps", "-n", watched)
    assert not operator.can("delete", "replicasets.apps", "-n", watched)
    assert not operator.can("delete", "pods", "-n", watched)
    assert not operator.can("update", "modeldeployments.modeldeploy.io", "-n", watched)
    assert not operator.can("list", "namespaces")
    assert not operator.can("list", "customresourcedefinitions.apiextensions.k8s.io")
    assert operator.can("list", "deployments.apps", "-n", namespace) is (mode == "cluster")

    drive_a_model_through_its_life(make_kubectl(sandbox.kubeconfig, watched))

    log = operator.process.log()
    assert f"starting for {watched}" in log
    if leader_election:
        assert "became the leader" in log
        assert operator.can("update", "leases.coordination.k8s.io", "-n", namespace)
        assert not operator.can("update", "leases.coordination.k8s.io", "-n", watched)
    assert forbidden_lines(log) == [], "\n".join(forbidden_lines(log))
    assert operator.process.process.poll() is None, "the operator died"


def test_pull_secret_check_works_with_exactly_get_on_secrets(
    chart_operator: StartChartOperator, sandbox: Sandbox, watched: str
) -> None:
    operator = chart_operator("namespaced", verify_pull_secrets=True)
    assert operator.can("get", "secrets", "-n", watched)
    assert not operator.can("list", "secrets", "-n", watched)
    assert not operator.can("watch", "secrets", "-n", watched)
    kubectl = make_kubectl(sandbox.kubeconfig, watched)

    kubectl("apply", "-f", "-", input=json.dumps(model_deployment("x", imagePullSecrets=[{"name": "regcred"}])))

    def stalled_on_the_secret() -> bool:
        stalled = condition(get(kubectl, "md", "x"), "Stalled")
        return stalled.get("status") == "True" and stalled.get("reason") == "ImagePullSecretNotFound"

    wait_for(stalled_on_the_secret, timeout=CONVERGE, what="Stalled=True, ImagePullSecretNotFound")
    assert not exists(kubectl, "deployment", "x")
    kubectl(
        "create", "secret", "docker-registry", "regcred", "--docker-server=registry.invalid",
        "--docker-username=u", "--docker-password=p",
    )  # fmt: skip
    wait_for(lambda: ready(kubectl, "x"), timeout=CONVERGE, what="Ready once the secret exists")
    log = operator.process.log()
    assert forbidden_lines(log) == [], "\n".join(forbidden_lines(log))
