"""The Helm chart against the sandbox's apiserver: dry-run, install / upgrade / uninstall, the CRD.

The ModelDeployment CRD is cluster-scoped and shared by everyone using the sandbox (the `crd`
fixture applies it with kubectl, outside Helm). Tests about the release itself therefore install
with `crd.install=false`. Tests about the CRD's lifecycle never touch the shared CRD: they
install a copy of the chart whose CRD template is renamed into a group of their own
(`tests.chart.crd_copy`), so upgrading its schema or adopting it cannot disturb anyone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy_dev.sandbox.cluster import Sandbox
from tests.chart import CHART_DIR, ROOT, Doc, crd_copy, get, helm, unique
from tests.conftest import Kubectl, make_kubectl, wait_for

pytestmark = pytest.mark.integration

Install = Callable[..., str]


@pytest.fixture
def releases(sandbox: Sandbox) -> Iterator[list[tuple[str, str]]]:
    """(release, namespace) pairs to uninstall after the test: they own cluster-scoped RBAC."""
    installed: list[tuple[str, str]] = []
    yield installed
    for release, namespace in installed:
        helm("uninstall", release, f"--namespace={namespace}", "--wait", kubeconfig=sandbox.kubeconfig, check=False)


@pytest.fixture
def crds_to_delete(admin_kubectl: Kubectl) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        admin_kubectl("delete", "crd", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
def install(sandbox: Sandbox, namespace: str, releases: list[tuple[str, str]], crd: Path) -> Install:
    """`helm install|upgrade` into the sandbox, whose CRDs are installed (`crd`): the chart's runtime
    hooks need the ClusterModelRuntime kind, also with crd.install=false."""

    def run(*values: str, chart: Path = CHART_DIR, release: str | None = None, action: str = "install") -> str:
        name = release or unique("rel")
        if action == "install":
            releases.append((name, namespace))
        helm(
            action,
            name,
            str(chart),
            f"--namespace={namespace}",
            "--wait",
            "--timeout=90s",
            *values,
            kubeconfig=sandbox.kubeconfig,
        )
        return name

    return run


def _apply_dry_run(sandbox: Sandbox, rendered: str) -> str:
    kubectl = make_kubectl(sandbox.kubeconfig, None)
    return kubectl("apply", "--dry-run=server", "-f", "-", input=rendered).stdout


@pytest.mark.parametrize("mode", ["cluster", "namespaced"])
def test_rendered_chart_passes_server_side_dry_run(
    sandbox: Sandbox, namespace: str, admin_kubectl: Kubectl, mode: str, crd: Path
) -> None:
    """`crd`: a dry run creates nothing, so the chart's ClusterModelRuntimes need their CRD there already."""
    values = ["--set", "verifyImagePullSecrets=true"]
    if mode == "namespaced":
        other = unique("t-chart-watched")
        admin_kubectl("create", "namespace", other)
        try:
            values += ["--set", "rbac.scope=namespaced", "--set", f"watchNamespaces={{{namespace},{other}}}"]
            rendered = helm("template", unique("rel"), str(CHART_DIR), f"--namespace={namespace}", *values).stdout
            out = _apply_dry_run(sandbox, rendered)
        finally:
            admin_kubectl("delete", "namespace", other, "--wait=false", check=False)
        made = [line.split("/")[0] for line in out.splitlines()]
        assert made.count("role.rbac.authorization.k8s.io") == 2
        assert made.count("rolebinding.rbac.authorization.k8s.io") == 2
        # cluster-wide: reading ClusterModelRuntimes, nothing else (tests/unit/test_chart.py checks the rules)
        assert made.count("clusterrole.rbac.authorization.k8s.io") == 1
    else:
        rendered = helm("template", unique("rel"), str(CHART_DIR), f"--namespace={namespace}", *values).stdout
        out = _apply_dry_run(sandbox, rendered)
        assert "clusterrole.rbac.authorization.k8s.io/" in out
        assert "clusterrolebinding.rbac.authorization.k8s.io/" in out
    expected = len([d for d in yaml.safe_load_all(rendered) if d])
    lines = [line for line in out.splitlines() if line.endswith("(server dry run)")]
    assert len(lines) == expected, out
    assert "customresourcedefinition.apiextensions.k8s.io/modeldeployments.modeldeploy.io" in out


def test_install_upgrade_uninstall_release(
    sandbox: Sandbox, namespace: str, kubectl: Kubectl, admin_kubectl: Kubectl, install: Install
) -> None:
    release = install("--set", "crd.install=false")
    deployment = get(kubectl, "deployment", "-l", f"app.kubernetes.io/instance={release}")["items"]
    assert len(deployment) == 1
    name = deployment[0]["metadata"]["name"]
    # --wait returned: the (kwok-run) operator pod is available under the chart's security context
    status = get(kubectl, "deployment", name)["status"]
    assert status["availableReplicas"] == 1
    role_name = f"modeldeploy:{namespace}:{release}"
    role = get(admin_kubectl, "clusterrole", role_name)
    assert not any(rule["resources"] == ["secrets"] for rule in role["rules"])
    binding = get(admin_kubectl, "clusterrolebinding", role_name)
    assert binding["subjects"][0]["namespace"] == namespace
    get(kubectl, "service", f"{name}-metrics")
    get(kubectl, "serviceaccount", name)

    install("--set", "crd.install=false", "--set", "verifyImagePullSecrets=true", release=release, action="upgrade")
    role = get(admin_kubectl, "clusterrole", role_name)
    assert {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]} in role["rules"]
    env = get(kubectl, "deployment", name)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "MODELDEPLOY_VERIFY_PULL_SECRETS", "value": "true"} in env

    helm("uninstall", release, f"--namespace={namespace}", "--wait", kubeconfig=sandbox.kubeconfig)
    for kind in ("clusterrole", "clusterrolebinding"):
        assert admin_kubectl("get", kind, role_name, check=False).returncode != 0
    assert not get(kubectl, "deployment", "-l", f"app.kubernetes.io/instance={release}")["items"]


# ---- the CRD's lifecycle, on a renamed copy --------------------------------------------------


def _custom_resource(crd: Doc, name: str, **extra_spec: Any) -> dict[str, Any]:
    example = yaml.safe_load((ROOT / "examples" / "minimal.yaml").read_text())
    example["apiVersion"] = f"{crd['spec']['group']}/v1alpha1"
    example["kind"] = crd["spec"]["names"]["kind"]
    example["metadata"] = {"name": name}
    example["spec"].update(extra_spec)
    return dict(example)


def _schema_properties(admin_kubectl: Kubectl, crd_name: str) -> dict[str, Any]:
    live = get(admin_kubectl, "crd", crd_name)
    spec_schema = live["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return dict(spec_schema["properties"])


def test_crd_is_installed_upgraded_and_kept_by_helm(
    sandbox: Sandbox,
    namespace: str,
    kubectl: Kubectl,
    admin_kubectl: Kubectl,
    install: Install,
    crds_to_delete: list[str],
    tmp_path: Path,
) -> None:
    group = f"{unique('c')}.charttest.modeldeploy.io"
    chart, crd = crd_copy(tmp_path, group)
    crds_to_delete.append(crd["metadata"]["name"])
    plural = f"{crd['spec']['names']['plural']}.{group}"

    release = install("--set", "rbac.create=false", chart=chart)
    live = get(admin_kubectl, "crd", crd["metadata"]["name"])
    metadata = live["metadata"]
    assert metadata["annotations"]["helm.sh/resource-policy"] == "keep"
    assert metadata["annotations"]["meta.helm.sh/release-name"] == release
    assert metadata["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    admin_kubectl("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=30s")
    kubectl("apply", "-f", "-", input=json.dumps(_custom_resource(crd, "before")))
    # the field the upgrade adds is unknown now: strict field validation rejects it
    rejected = kubectl("apply", "-f", "-", input=json.dumps(_custom_resource(crd, "early", notes="hi")), check=False)
    assert rejected.returncode != 0
    assert 'unknown field "spec.notes"' in rejected.stderr
    assert "notes" not in _schema_properties(admin_kubectl, crd["metadata"]["name"])

    # helm upgrade with a new optional field in the template's schema upgrades the live CRD
    def add_notes(document: Doc) -> None:
        spec = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        spec["properties"]["notes"] = {"description": "Free text, added by the upgrade.", "type": "string"}

    upgraded_chart, _ = crd_copy(tmp_path, group, edit=add_notes, name="upgraded")
    install("--set", "rbac.create=false", chart=upgraded_chart, release=release, action="upgrade")
    properties = _schema_properties(admin_kubectl, crd["metadata"]["name"])
    assert properties["notes"] == {"description": "Free text, added by the upgrade.", "type": "string"}
    kubectl("apply", "-f", "-", input=json.dumps(_custom_resource(crd, "after", notes="kept")))
    assert get(kubectl, plural, "after")["spec"]["notes"] == "kept"

    # helm uninstall keeps the CRD and the resources
    result = helm("uninstall", release, f"--namespace={namespace}", "--wait", kubeconfig=sandbox.kubeconfig)
    assert "kept due to the resource policy" in result.stdout + result.stderr
    get(admin_kubectl, "crd", crd["metadata"]["name"])
    names = {item["metadata"]["name"] for item in get(kubectl, plural)["items"]}
    assert names == {"before", "after"}
    assert helm("status", release, f"--namespace={namespace}", kubeconfig=sandbox.kubeconfig, check=False).returncode

    # the kept CRD still names the release: installing it again under that name adopts it as is
    install("--set", "rbac.create=false", chart=upgraded_chart, release=release)
    assert "notes" in _schema_properties(admin_kubectl, crd["metadata"]["name"])
    assert get(kubectl, plural, "before")["metadata"]["name"] == "before"


def test_a_crd_applied_outside_helm_is_adopted_with_ownership_metadata(
    sandbox: Sandbox,
    namespace: str,
    kubectl: Kubectl,
    admin_kubectl: Kubectl,
    install: Install,
    crds_to_delete: list[str],
    tmp_path: Path,
) -> None:
    """What a cluster whose CRD came from `kubectl apply -f crds/` (like this sandbox's) goes through."""
    group = f"{unique('a')}.charttest.modeldeploy.io"
    chart, crd = crd_copy(tmp_path, group)
    crd_name = crd["metadata"]["name"]
    crds_to_delete.append(crd_name)
    outside = json.loads(json.dumps(crd))
    del outside["metadata"]["annotations"]
    admin_kubectl("apply", "--server-side", "-f", "-", input=json.dumps(outside))
    admin_kubectl("wait", "--for=condition=Established", f"crd/{crd_name}", "--timeout=30s")
    kubectl("apply", "-f", "-", input=json.dumps(_custom_resource(crd, "existing")))

    release = unique("rel")
    refused = helm(
        "install", release, str(chart), f"--namespace={namespace}", "--set", "rbac.create=false",
        kubeconfig=sandbox.kubeconfig, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "invalid ownership metadata" in refused.stderr, refused.stderr
    assert "meta.helm.sh/release-name" in refused.stderr

    admin_kubectl("label", "crd", crd_name, "app.kubernetes.io/managed-by=Helm")
    admin_kubectl(
        "annotate",
        "crd",
        crd_name,
        f"meta.helm.sh/release-name={release}",
        f"meta.helm.sh/release-namespace={namespace}",
    )
    install("--set", "rbac.create=false", chart=chart, release=release)
    live = get(admin_kubectl, "crd", crd_name)
    assert live["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    helm("uninstall", release, f"--namespace={namespace}", "--wait", kubeconfig=sandbox.kubeconfig)
    get(admin_kubectl, "crd", crd_name)
    wait_for(
        lambda: get(kubectl, f"{crd['spec']['names']['plural']}.{group}", "existing"),
        timeout=5,
        what="the resource to survive",
    )
