"""The Helm chart, rendered offline: lint, both RBAC modes, least privilege, schema, security."""

from __future__ import annotations

import shutil
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.rbac import CLUSTER_RUNTIMES, PERMISSIONS, PULL_SECRET_CHECK, Permission
from modeldeploy.settings import OperatorSettings
from tests.chart import CHART_DIR, ROOT, Doc, helm, of_kind, render

NAMESPACED = ("--set", "rbac.scope=namespaced", "--set", "watchNamespaces={team-a,team-b}")
Triple = tuple[str, str, str]


def triples(permissions: Iterable[Permission]) -> set[Triple]:
    return {(p.api_group, p.resource, verb) for p in permissions for verb in p.verbs}


def granted(role: Doc) -> set[Triple]:
    """(apiGroup, resource, verb) for every combination a Role or ClusterRole grants."""
    result: set[Triple] = set()
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, f"unexpected rule keys (resourceNames?): {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    result.add((group, resource, verb))
    return result


def declared(*, pull_secrets: bool, cluster_runtimes: bool = True) -> set[Triple]:
    """What the operator's role must grant: the ClusterRole with rbac.scope=cluster, each Role otherwise
    (where reading ClusterModelRuntimes is a ClusterRole of its own)."""
    return (
        triples(PERMISSIONS)
        | (triples([PULL_SECRET_CHECK]) if pull_secrets else set())
        | (triples([CLUSTER_RUNTIMES]) if cluster_runtimes else set())
    )


def rbac_difference(role: Doc, expected: set[Triple]) -> tuple[set[Triple], set[Triple]]:
    """(granted but not declared in modeldeploy.rbac, declared but not granted)."""
    grants = granted(role)
    return grants - expected, expected - grants


def container(docs: list[Doc]) -> Doc:
    (deployment,) = of_kind(docs, "Deployment")
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    result: Doc = only
    return result


def env_of(docs: list[Doc]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(docs)["env"] if "value" in item}


# ---- lint and render -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [(), NAMESPACED, ("--set", "verifyImagePullSecrets=true", "--set", "metrics.serviceMonitor.enabled=true")],
    ids=["defaults", "namespaced", "options"],
)
def test_helm_lint_is_clean(values: tuple[str, ...]) -> None:
    result = helm("lint", "--strict", str(CHART_DIR), *values)
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout, result.stdout
    assert "[ERROR]" not in result.stdout, result.stdout


def test_cluster_mode_renders_cluster_role_and_watches_all_namespaces() -> None:
    docs = render(release="prod", namespace="ops")
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            *["CustomResourceDefinition"] * 3,
            *["ClusterModelRuntime"] * 7,
            "Deployment",
            "Service",
            "ServiceAccount",
        ]
    )
    (role,) = of_kind(docs, "ClusterRole")
    (binding,) = of_kind(docs, "ClusterRoleBinding")
    assert "prod" in role["metadata"]["name"]
    assert "ops" in role["metadata"]["name"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    (account,) = of_kind(docs, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "ops"}]
    assert container(docs)["args"] == ["run"]


def test_namespaced_mode_renders_a_role_per_watched_namespace_and_nothing_cluster_wide() -> None:
    docs = render(*NAMESPACED, "--set", "runtimes.watchClusterRuntimes=false", release="prod", namespace="ops")
    assert not of_kind(docs, "ClusterRole")
    assert not of_kind(docs, "ClusterRoleBinding")
    assert env_of(docs)["MODELDEPLOY_CLUSTER_RUNTIMES"] == "false"
    roles = {doc["metadata"]["namespace"]: doc for doc in of_kind(docs, "Role")}
    bindings = {doc["metadata"]["namespace"]: doc for doc in of_kind(docs, "RoleBinding")}
    assert set(roles) == set(bindings) == {"team-a", "team-b"}
    (account,) = of_kind(docs, "ServiceAccount")
    for namespace, binding in bindings.items():
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == roles[namespace]["metadata"]["name"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "ops"}
        ]
    assert container(docs)["args"] == ["run", "--namespace=team-a", "--namespace=team-b"]


def test_namespaced_mode_reads_cluster_runtimes_through_a_cluster_role_that_grants_nothing_else() -> None:
    docs = render(*NAMESPACED, release="prod", namespace="ops")
    (role,) = of_kind(docs, "ClusterRole")
    (binding,) = of_kind(docs, "ClusterRoleBinding")
    assert (
        granted(role)
        == triples([CLUSTER_RUNTIMES])
        == {
            ("modeldeploy.io", "clustermodelruntimes", "list"),
            ("modeldeploy.io", "clustermodelruntimes", "watch"),
        }
    )
    assert binding["roleRef"]["name"] == role["metadata"]["name"] == "modeldeploy:ops:prod:runtimes"
    for namespaced in of_kind(docs, "Role"):
        assert not {t for t in granted(namespaced) if t[1] == "clustermodelruntimes"}
    assert env_of(docs)["MODELDEPLOY_CLUSTER_RUNTIMES"] == "true"


def test_two_releases_never_share_cluster_scoped_names() -> None:
    first = render(release="one", namespace="ops")
    second = render(release="two", namespace="ops")
    elsewhere = render(release="one", namespace="other")

    def names(docs: list[Doc]) -> set[str]:
        return {d["metadata"]["name"] for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")}

    assert names(first).isdisjoint(names(second))
    assert names(first).isdisjoint(names(elsewhere))


# ---- least privilege: the chart grants exactly modeldeploy.rbac ----------------------------


@pytest.mark.parametrize("pull_secrets", [False, True])
@pytest.mark.parametrize("mode", ["cluster", "namespaced"])
def test_rbac_is_exactly_what_the_operator_declares(mode: str, pull_secrets: bool) -> None:
    values = NAMESPACED if mode == "namespaced" else ()
    docs = render(*values, "--set", f"verifyImagePullSecrets={str(pull_secrets).lower()}")
    roles = of_kind(docs, "ClusterRole" if mode == "cluster" else "Role")
    assert roles
    for role in roles:
        expected = declared(pull_secrets=pull_secrets, cluster_runtimes=mode == "cluster")
        extra, missing = rbac_difference(role, expected)
        assert not extra, f"the chart grants permissions modeldeploy.rbac does not declare: {sorted(extra)}"
        assert not missing, f"the chart lacks permissions modeldeploy.rbac declares: {sorted(missing)}"
        for group, resource, verb in granted(role):
            assert "*" not in (group, resource, verb)
    secrets = {t for role in roles for t in granted(role) if t[1] == "secrets"}
    assert secrets == ({("", "secrets", "get")} if pull_secrets else set())
    assert env_of(docs)["MODELDEPLOY_VERIFY_PULL_SECRETS"] == str(pull_secrets).lower()


@pytest.mark.parametrize(
    ("find", "replace", "extra", "missing"),
    [
        ('verbs: ["create", "patch"]', 'verbs: ["create", "patch", "delete"]', {("", "events", "delete")}, set()),
        (
            'resources: ["pods"]',
            'resources: ["pods", "secrets"]',
            {("", "secrets", "list"), ("", "secrets", "watch")},
            set(),
        ),
        (
            'verbs: ["patch"]',
            'verbs: ["update"]',
            {("modeldeploy.io", "modeldeployments/status", "update")},
            {("modeldeploy.io", "modeldeployments/status", "patch")},
        ),
    ],
    ids=["extra-verb", "extra-resource", "swapped-verb"],
)
def test_the_rbac_check_catches_a_drifted_chart(
    tmp_path: Path, find: str, replace: str, extra: set[Triple], missing: set[Triple]
) -> None:
    """The comparison above is not vacuous: a chart edited behind rbac.py's back fails it."""
    chart = tmp_path / "modeldeploy"
    shutil.copytree(CHART_DIR, chart)
    helpers = chart / "templates" / "_helpers.tpl"
    text = helpers.read_text()
    assert text.count(find) == 1
    helpers.write_text(text.replace(find, replace))
    (role,) = of_kind(render(chart=chart), "ClusterRole")
    assert rbac_difference(role, declared(pull_secrets=False)) == (extra, missing)


def test_rbac_can_be_left_to_the_user() -> None:
    docs = render("--set", "rbac.create=false")
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")]


# ---- the operator Deployment -----------------------------------------------------------------


def test_deployment_is_restricted_and_read_only() -> None:
    docs = render()
    (deployment,) = of_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork")
    assert not pod.get("hostPID")
    assert not pod.get("hostIPC")
    main = container(docs)
    security = main["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 10001
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert main["resources"]["requests"]
    assert main["resources"]["limits"]["memory"]
    # the only writable path is /tmp, an emptyDir
    (mount,) = main["volumeMounts"]
    assert mount["mountPath"] == "/tmp"
    (volume,) = pod["volumes"]
    assert volume["name"] == mount["name"]
    assert "emptyDir" in volume
    # one operator at a time: no leader election
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_deployment_probes_and_ports_follow_the_settings() -> None:
    docs = render()
    main = container(docs)
    ports = {port["name"]: port["containerPort"] for port in main["ports"]}
    defaults = OperatorSettings()
    assert ports == {"metrics": defaults.metrics_port, "health": defaults.health_port}
    assert ports == {"metrics": 9090, "health": 8081}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    env = env_of(docs)
    assert env["MODELDEPLOY_METRICS_PORT"] == "9090"
    assert env["MODELDEPLOY_HEALTH_PORT"] == "8081"
    (service,) = of_kind(docs, "Service")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    assert service["spec"]["selector"].items() <= (
        of_kind(docs, "Deployment")[0]["spec"]["template"]["metadata"]["labels"].items()
    )
    moved = render("--set", "operator.healthPort=9999", "--set", "metrics.port=9191")
    assert {p["name"]: p["containerPort"] for p in container(moved)["ports"]} == {"metrics": 9191, "health": 9999}
    assert env_of(moved)["MODELDEPLOY_HEALTH_PORT"] == "9999"


def test_every_env_var_is_an_operator_setting_and_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    env = env_of(render("--set", "verifyImagePullSecrets=true", "--set-json", "operator.resyncSeconds=12.5"))
    fields = {f"MODELDEPLOY_{name.upper()}" for name in OperatorSettings.model_fields}
    assert set(env) <= fields, set(env) - fields
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = OperatorSettings()
    assert settings.verify_pull_secrets is True
    assert settings.resync_seconds == 12.5
    assert settings.workers == 16
    assert settings.max_inflight_probes == 256


def test_image_defaults_to_the_app_version() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == project["version"] == "0.1.0"
    assert container(render())["image"] == f"ghcr.io/modeldeploy/modeldeploy:{chart['appVersion']}"
    pinned = container(render("--set", "image.tag=9.9.9", "--set", f"image.digest=sha256:{'a' * 64}"))
    assert pinned["image"] == f"ghcr.io/modeldeploy/modeldeploy:9.9.9@sha256:{'a' * 64}"
    # the examples run the model server from the same image
    for example in ("minimal.yaml", "full.yaml"):
        md = yaml.safe_load((ROOT / "examples" / example).read_text())
        assert md["spec"]["runtime"]["image"].startswith("ghcr.io/modeldeploy/modeldeploy:")


# ---- ServiceMonitor ------------------------------------------------------------------------


def test_service_monitor_needs_both_the_value_and_the_api() -> None:
    monitoring = ("--api-versions", "monitoring.coreos.com/v1")
    assert not of_kind(render(*monitoring), "ServiceMonitor")
    assert not of_kind(render("--set", "metrics.serviceMonitor.enabled=true"), "ServiceMonitor")
    (monitor,) = of_kind(render("--set", "metrics.serviceMonitor.enabled=true", *monitoring), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    (service,) = of_kind(render(), "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


# ---- values.schema.json and the chart's own checks -------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "replicas=-1"), "at '/replicas': minimum: got -1, want 0"),
        (("--set", "replicas=2"), "replicas above 1 need leaderElection.enabled=true"),
        (("--set", "leaderElection.enabled=true", "--set", "replicas=6"), "at '/replicas': maximum: got 6, want 5"),
        (("--set", "replicas=many"), "at '/replicas': got string, want integer"),
        (("--set", "rbac.scope=global"), "at '/rbac/scope': value must be one of 'cluster', 'namespaced'"),
        (("--set", "replica=1"), "additional properties 'replica' not allowed"),
        (("--set", "rbac.mode=cluster"), "at '/rbac': additional properties 'mode' not allowed"),
        (("--set-string", "crd.install=yes"), "at '/crd/install': got string, want boolean"),
        (("--set-string", "verifyImagePullSecrets=true"), "at '/verifyImagePullSecrets': got string, want boolean"),
        (("--set", "metrics.port=0"), "at '/metrics/port': minimum: got 0, want 1"),
        (("--set", "operator.workers=0"), "at '/operator/workers': minimum: got 0, want 1"),
        (("--set", "image.pullPolicy=Sometimes"), "at '/image/pullPolicy'"),
        (
            ("--set", "rbac.scope=namespaced", "--set", "watchNamespaces={Team_A}"),
            "at '/watchNamespaces/0': 'Team_A' does not match pattern",
        ),
        (
            ("--set", "rbac.scope=namespaced"),
            "rbac.scope=namespaced needs the namespaces to serve: set watchNamespaces",
        ),
        (("--set", "watchNamespaces={team-a}"), "watchNamespaces is only used with rbac.scope=namespaced"),
        (
            ("--set", "metrics.service.enabled=false", "--set", "metrics.serviceMonitor.enabled=true"),
            "metrics.serviceMonitor.enabled needs metrics.service.enabled",
        ),
        (
            ("--set", "serviceAccount.create=false"),
            "serviceAccount.name is required when serviceAccount.create is false",
        ),
    ],
)
def test_bad_values_fail_with_a_clear_message(args: tuple[str, ...], message: str) -> None:
    result = helm("template", "rel", str(CHART_DIR), *args, check=False)
    assert result.returncode != 0, result.stdout[:500]
    assert message in result.stderr, result.stderr
    if "schema" not in result.stderr:  # the chart's own checks: said from validate.yaml, not another file
        assert "templates/validate.yaml" in result.stderr, result.stderr


def test_going_back_to_cluster_scope_with_set_needs_no_values_file() -> None:
    """`--set 'watchNamespaces={}'` gives [""]: it failed the schema, so only a values file could undo a list."""
    docs = render("--set", "rbac.scope=cluster", "--set", "watchNamespaces={}")
    assert of_kind(docs, "ClusterRole")
    assert not of_kind(docs, "Role")
    assert "MODELDEPLOY_NAMESPACES" not in env_of(docs)
    args = [a for a in container(docs).get("args", []) if "namespace" in a]
    assert not args, args


def test_values_file_is_accepted_by_its_schema_and_documented() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    schema: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.schema.json").read_text())
    assert set(values) <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    assert values["crd"]["install"] is True
    assert values["verifyImagePullSecrets"] is False
    assert values["rbac"]["scope"] == "cluster"


# ---- leader election ---------------------------------------------------------------------------


def test_leader_election_adds_exactly_a_lease_role_in_the_release_namespace() -> None:
    from modeldeploy.rbac import LEADER_ELECTION

    docs = render("--set", "leaderElection.enabled=true", "--set", "replicas=2", release="prod", namespace="ops")
    (lease_role,) = [r for r in of_kind(docs, "Role") if r["metadata"]["name"].endswith(":leader-election")]
    assert lease_role["metadata"]["namespace"] == "ops"
    assert rbac_difference(lease_role, triples([LEADER_ELECTION])) == (set(), set())
    (binding,) = of_kind(docs, "RoleBinding")
    assert binding["roleRef"]["name"] == lease_role["metadata"]["name"]
    (deployment,) = of_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    env = {item["name"]: item for item in container(docs)["env"]}
    assert env["MODELDEPLOY_LEADER_ELECTION"]["value"] == "true"
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_without_leader_election_there_is_no_lease_permission() -> None:
    docs = render(release="prod", namespace="ops")
    assert not of_kind(docs, "Role")
    assert "MODELDEPLOY_LEADER_ELECTION" not in env_of(docs)
