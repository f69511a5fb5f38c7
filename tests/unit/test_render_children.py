"""Rendering a validated spec into its Deployment, Service and HPA.

The golden files under tests/fixtures/golden pin every rendered byte. After an intended change
to the renderer, regenerate them with

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_render_children.py

and review the diff; without UPDATE_GOLDEN any difference fails.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.api.v1alpha1 import ModelDeploymentSpec
from modeldeploy.render import labels as lbl
from modeldeploy.render.children import (
    DesiredChildren,
    Owner,
    metrics_path,
    metrics_port,
    render_children,
    render_deployment,
    render_hpa,
    render_service,
    service_url,
)
from modeldeploy.render.compare import contains, fingerprint
from modeldeploy.render.names import child_name
from modeldeploy.render.runtime import explicit_server

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
UID = "6f1c2a4e-0000-4000-8000-000000000001"
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

Obj = dict[str, Any]


def _example(name: str) -> Obj:
    document: Obj = yaml.safe_load((ROOT / "examples" / f"{name}.yaml").read_text())
    return document


def _minimal_spec() -> Obj:
    spec: Obj = _example("minimal")["spec"]
    return spec


def _with(**sections: Any) -> Obj:
    spec = _minimal_spec()
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


# name -> (ModelDeployment name, spec as a user writes it)
CASES: dict[str, tuple[str, Obj]] = {
    "minimal": ("iris", _minimal_spec()),
    "full": ("iris-full", _example("full")["spec"]),
    "autoscaling": (
        "iris-hpa",
        _with(
            replicas=3,
            autoscaling={
                "minReplicas": 2,
                "maxReplicas": 8,
                "targetCPUUtilizationPercentage": 60,
                "targetMemoryUtilizationPercentage": 80,
                "metrics": [
                    {
                        "type": "Pods",
                        "pods": {
                            "metric": {"name": "inference_requests_per_second"},
                            "target": {"type": "AverageValue", "averageValue": "50"},
                        },
                    }
                ],
                "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0}},
            },
        ),
    ),
    "protocol-custom": (
        "custom",
        _with(runtime={"protocol": "custom", "healthPath": "/healthz", "readinessPath": "/ready", "port": 9000}),
    ),
    "protocol-v1": ("tf-serving", _with(model={"name": "half_plus/two+x", "version": "2"}, runtime={"protocol": "v1"})),
    "protocol-openai": ("llm", _with(runtime={"protocol": "openai", "port": 8000})),
    "metrics-port": ("iris-metrics", _with(runtime={"metrics": {"port": 9090, "path": "/prom"}})),
    "placement": (
        "iris.placement.v1",
        _with(
            replicas=0,
            model={"name": "iris", "version": "2.0.0-rc.1", "uri": "s3://models/iris/2.0.0", "format": "onnx"},
            runtime={
                "args": ["--workers", "2"],
                "env": [{"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "1"}},
            },
            rollout={"maxSurge": "25%", "maxUnavailable": "50%"},
            nodeSelector={"kubernetes.io/arch": "amd64"},
            tolerations=[{"operator": "Exists"}, {"key": "gpu", "effect": "NoExecute", "tolerationSeconds": 30}],
            imagePullSecrets=[{"name": "registry"}],
            podLabels={"team": "ml"},
            podAnnotations={"sidecar.istio.io/inject": "false"},
        ),
    ),
}


def _spec(case: str) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(copy.deepcopy(CASES[case][1]))


def _owner(case: str) -> Owner:
    return Owner(CASES[case][0], "models", UID)


def _render(case: str) -> DesiredChildren:
    return render_children(_owner(case), _spec(case))


def _spec_from(raw: Obj) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(raw)


def _container(deployment: Obj) -> Obj:
    """The model server: the only container, or the first before the authorizing proxy."""
    containers: list[Obj] = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers[1:]] in ([], ["authz"])
    return containers[0]


def _env(deployment: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in _container(deployment)["env"]}


def _hash(obj: Obj) -> str:
    value: str = obj["metadata"]["annotations"][lbl.APPLIED_HASH]
    return value


# ---- golden files ------------------------------------------------------------------------------

HEADER = "# Rendered by tests/unit/test_render_children.py from the case '{case}'. Regenerate: UPDATE_GOLDEN=1\n"


def _golden_text(case: str) -> str:
    return HEADER.format(case=case) + yaml.safe_dump_all(_render(case).all(), sort_keys=True, width=120)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    path = GOLDEN / f"{case}.yaml"
    rendered = _golden_text(case)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered)
        return
    assert path.exists(), f"{path} is missing; create it with UPDATE_GOLDEN=1"
    expected = path.read_text()
    assert rendered == expected, f"rendering of {case!r} differs from {path}; if intended, rerun with UPDATE_GOLDEN=1"


def test_every_golden_file_has_a_case() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.yaml")) == sorted(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_files_parse_back_to_the_rendered_objects(case: str) -> None:
    documents = list(yaml.safe_load_all((GOLDEN / f"{case}.yaml").read_text()))
    assert documents == _render(case).all()


# ---- structure common to every case -------------------------------------------------------------


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_empty_maps_lists_or_nulls_anywhere(case: str) -> None:
    for child in _render(case).all():
        for path, value in _walk(child):
            assert value not in ({}, []) or path.endswith(".emptyDir"), f"{child['kind']}{path} is empty"
            assert value is not None, f"{child['kind']}{path} is null"


def test_explicitly_empty_sections_render_nothing_empty() -> None:
    raw = _with(
        runtime={
            "command": [],
            "args": [],
            "env": [{"name": "X", "valueFrom": {}}],
            "resources": {"requests": {}, "limits": {}},
        },
        autoscaling={"maxReplicas": 2, "targetCPUUtilizationPercentage": 50, "behavior": {}},
        nodeSelector={},
        tolerations=[],
        imagePullSecrets=[],
        podLabels={},
        podAnnotations={},
    )
    children = render_children(Owner("empty", "ns", UID), _spec_from(raw))
    for child in children.all():
        for path, value in _walk(child):
            assert value not in ({}, []) or path.endswith(".emptyDir"), f"{child['kind']}{path} is empty"
            assert value is not None, f"{child['kind']}{path} is null"
    pod = children.deployment["spec"]["template"]["spec"]
    assert {"nodeSelector", "tolerations", "imagePullSecrets"}.isdisjoint(pod)
    assert "annotations" not in children.deployment["spec"]["template"]["metadata"]
    container = _container(children.deployment)
    assert {"command", "args", "resources"}.isdisjoint(container)
    assert _env(children.deployment)["X"] == {"name": "X"}
    assert children.hpa is not None
    assert "behavior" not in children.hpa["spec"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_child_is_owned_by_the_model_deployment(case: str) -> None:
    owner = _owner(case)
    for child in _render(case).all():
        assert child["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "modeldeploy.io/v1alpha1",
                "kind": "ModelDeployment",
                "name": owner.name,
                "uid": UID,
                "controller": True,
            }
        ]
        assert child["metadata"]["namespace"] == "models"
        assert child["metadata"]["name"] == child_name(owner.name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_child_carries_the_common_labels(case: str) -> None:
    spec = _spec(case)
    name = child_name(_owner(case).name)
    for child in _render(case).all():
        labels = child["metadata"]["labels"]
        assert labels == lbl.common_labels(name, spec.model.name, spec.model.version)
        assert labels[lbl.MANAGED_BY] == "modeldeploy"
        for value in labels.values():
            assert len(value) <= 63
            assert LABEL_VALUE.fullmatch(value), value


@pytest.mark.parametrize("case", sorted(CASES))
def test_restricted_security_context(case: str) -> None:
    deployment = _render(case).deployment
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert _container(deployment)["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for path, value in _walk(deployment):
        assert not path.endswith(".privileged") or value is False
        assert not path.endswith(".hostNetwork") or value is False


@pytest.mark.parametrize("case", sorted(CASES))
def test_selector_matches_the_pod_template_and_the_service(case: str) -> None:
    children = _render(case)
    selector = children.deployment["spec"]["selector"]["matchLabels"]
    name = child_name(_owner(case).name)
    assert selector == {lbl.NAME_LABEL: name}
    template_labels = children.deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= template_labels.items()
    assert children.service["spec"]["selector"] == selector


@pytest.mark.parametrize("case", sorted(CASES))
def test_applied_hash_is_the_fingerprint_of_the_rest(case: str) -> None:
    for child in _render(case).all():
        stripped = copy.deepcopy(child)
        annotations = stripped["metadata"].pop("annotations")
        assert list(annotations) == [lbl.APPLIED_HASH]
        assert _hash(child) == fingerprint(stripped)


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_children_contain_themselves(case: str) -> None:
    """The reconciler skips the apply when live contains desired: an unchanged child must."""
    for child in _render(case).all():
        assert contains(copy.deepcopy(child), child), child["kind"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendering_is_deterministic_and_shares_nothing_with_the_spec(case: str) -> None:
    spec = _spec(case)
    before = spec.model_dump()
    first = render_children(_owner(case), spec)
    for child in first.all():  # scribble over the result: the spec and later renders must not see it
        for _, value in list(_walk(child)):
            if isinstance(value, dict):
                value["scribble"] = True
            elif isinstance(value, list):
                value.append("scribble")
    assert spec.model_dump() == before
    assert render_children(_owner(case), spec) == _render(case)


# ---- replicas and autoscaling -------------------------------------------------------------------


def test_without_autoscaling_the_deployment_owns_replicas_and_there_is_no_hpa() -> None:
    children = _render("minimal")
    assert children.deployment["spec"]["replicas"] == 1
    assert children.hpa is None
    assert render_hpa(_owner("minimal"), _spec("minimal")) is None
    assert [c["kind"] for c in children.all()] == ["Deployment", "Service"]


def test_zero_replicas_are_rendered() -> None:
    assert _render("placement").deployment["spec"]["replicas"] == 0


def test_with_autoscaling_the_deployment_has_no_replicas() -> None:
    children = _render("autoscaling")
    assert "replicas" not in children.deployment["spec"]
    assert "replicas" not in _render("full").deployment["spec"]
    assert [c["kind"] for c in children.all()] == ["Deployment", "Service", "HorizontalPodAutoscaler"]


def test_hpa_targets_the_deployment_with_shortcuts_before_custom_metrics() -> None:
    children = _render("autoscaling")
    hpa = children.hpa
    assert hpa is not None
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": children.deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    metrics = hpa["spec"]["metrics"]
    assert [m["type"] for m in metrics] == ["Resource", "Resource", "Pods"]
    assert metrics[0]["resource"] == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}
    assert metrics[1]["resource"] == {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 80}}
    assert metrics[2]["pods"]["metric"] == {"name": "inference_requests_per_second"}
    assert hpa["spec"]["behavior"] == {"scaleUp": {"stabilizationWindowSeconds": 0}}


def test_hpa_with_only_custom_metrics() -> None:
    raw = _with(
        autoscaling={"maxReplicas": 3, "metrics": [{"type": "External", "external": {"metric": {"name": "q"}}}]}
    )
    hpa = render_hpa(Owner("x", "ns", UID), _spec_from(raw))
    assert hpa is not None
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["External"]
    assert hpa["spec"]["minReplicas"] == 1


# ---- probes ------------------------------------------------------------------------------------


def _probes(case: str) -> tuple[Obj, Obj, Obj]:
    container = _container(_render(case).deployment)
    return container["livenessProbe"], container["readinessProbe"], container["startupProbe"]


def test_v2_probes() -> None:
    liveness, readiness, startup = _probes("minimal")
    assert liveness == {
        "httpGet": {"path": "/v2/health/live", "port": "http"},
        "periodSeconds": 10,
        "failureThreshold": 3,
    }
    assert readiness["httpGet"] == {"path": "/v2/models/iris/ready", "port": "http"}
    assert startup["httpGet"] == liveness["httpGet"]


def test_startup_probe_allows_five_minutes_of_model_loading() -> None:
    for case in CASES:
        _, _, startup = _probes(case)
        assert startup["periodSeconds"] * startup["failureThreshold"] == 300


def test_v1_probes_use_tcp_for_liveness_and_quote_the_model_name() -> None:
    liveness, readiness, startup = _probes("protocol-v1")
    assert liveness == {"tcpSocket": {"port": "http"}, "periodSeconds": 10, "failureThreshold": 3}
    assert startup["tcpSocket"] == {"port": "http"}
    assert readiness["httpGet"] == {"path": "/v1/models/half_plus%2Ftwo%2Bx", "port": "http"}


def test_openai_probes() -> None:
    liveness, readiness, _ = _probes("protocol-openai")
    assert liveness["httpGet"]["path"] == "/health"
    assert readiness["httpGet"]["path"] == "/v1/models"


def test_custom_protocol_probes_use_the_declared_paths() -> None:
    liveness, readiness, startup = _probes("protocol-custom")
    assert liveness["httpGet"] == {"path": "/healthz", "port": "http"}
    assert startup["httpGet"] == {"path": "/healthz", "port": "http"}
    assert readiness["httpGet"] == {"path": "/ready", "port": "http"}


def test_probes_target_the_named_http_port() -> None:
    for case in CASES:
        container = _container(_render(case).deployment)
        assert {"name": "http", "containerPort": _spec(case).runtime.port, "protocol": "TCP"} in container["ports"]


def test_health_and_readiness_paths_override_the_protocol_paths() -> None:
    raw = _with(runtime={"protocol": "v2", "healthPath": "/healthz", "readinessPath": "/ready"})
    container = _container(render_deployment(Owner("x", "ns", UID), _spec_from(raw)))
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"


# ---- ports -------------------------------------------------------------------------------------


def test_metrics_on_a_separate_port() -> None:
    children = _render("metrics-port")
    container = _container(children.deployment)
    assert container["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
    ]
    assert children.service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"},
    ]
    server = explicit_server(_spec("metrics-port"))
    assert (metrics_port(server), metrics_path(server)) == (9090, "/prom")


@pytest.mark.parametrize("metrics", [{}, {"port": 8080}, {"path": "/other"}])
def test_metrics_on_the_serving_port_add_no_port(metrics: Obj) -> None:
    spec = _spec_from(_with(runtime={"metrics": metrics}))
    owner = Owner("x", "ns", UID)
    assert [p["name"] for p in _container(render_deployment(owner, spec))["ports"]] == ["http"]
    assert [p["name"] for p in render_service(owner, spec)["spec"]["ports"]] == ["http"]
    assert metrics_port(explicit_server(spec)) == 8080


def test_service_is_cluster_ip_on_the_runtime_port() -> None:
    service = _render("protocol-openai").service
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    server = explicit_server(_spec("protocol-openai"))
    assert service_url(_owner("protocol-openai"), server) == "http://llm.models.svc:8000"


def test_service_url_uses_the_child_name() -> None:
    owner = Owner("iris.placement.v1", "models", UID)
    url = service_url(owner, explicit_server(_spec("placement")))
    assert url == f"http://{child_name(owner.name)}.models.svc:8080"
    assert "iris.placement.v1" not in url


# ---- env -------------------------------------------------------------------------------------


def test_model_identity_env_comes_first() -> None:
    env = _container(_render("placement").deployment)["env"]
    assert env[:5] == [
        {"name": "MODEL_NAME", "value": "iris"},
        {"name": "MODEL_VERSION", "value": "2.0.0-rc.1"},
        {"name": "MODEL_URI", "value": "s3://models/iris/2.0.0"},
        {"name": "MODEL_DIR", "value": "/mnt/models/model"},
        {"name": "MODEL_FORMAT", "value": "onnx"},
    ]
    assert env[5] == {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}


def test_user_env_cannot_override_the_model_identity() -> None:
    raw = _with(
        model={"name": "iris", "version": "1.0.0", "uri": "s3://real"},
        runtime={
            "env": [
                {"name": "MODEL_NAME", "value": "evil"},
                {"name": "MODEL_VERSION", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "MODEL_URI", "value": "s3://evil"},
                {"name": "KEEP", "value": "me"},
            ]
        },
    )
    env = _container(render_deployment(Owner("x", "ns", UID), _spec_from(raw)))["env"]
    names = [e["name"] for e in env]
    assert len(names) == len(set(names)), names
    by_name = {e["name"]: e for e in env}
    assert by_name["MODEL_NAME"] == {"name": "MODEL_NAME", "value": "iris"}
    assert by_name["MODEL_VERSION"] == {"name": "MODEL_VERSION", "value": "1.0.0"}
    assert by_name["MODEL_URI"] == {"name": "MODEL_URI", "value": "s3://real"}
    assert by_name["KEEP"] == {"name": "KEEP", "value": "me"}


def test_optional_model_fields_are_omitted_from_env() -> None:
    env = _env(_render("minimal").deployment)
    assert set(env) == {"MODEL_NAME", "MODEL_VERSION"}


# ---- labels ------------------------------------------------------------------------------------


def test_pod_labels_are_merged_but_operator_labels_win() -> None:
    # The API rejects reserved keys; the renderer must still not let them through if one slips by.
    spec = _spec("minimal").model_copy(
        update={
            "pod_labels": {
                "team": "ml",
                lbl.NAME_LABEL: "hijack",
                lbl.VERSION_LABEL: "0.0.0",
                "app.kubernetes.io/managed-by": "someone-else",
            }
        }
    )
    deployment = render_deployment(Owner("iris", "ns", UID), spec)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "ml"
    assert labels[lbl.NAME_LABEL] == "iris"
    assert labels[lbl.VERSION_LABEL] == "1.0.0"
    assert labels[lbl.MANAGED_BY] == "modeldeploy"
    assert "team" not in deployment["metadata"]["labels"]


def test_pod_annotations_go_to_the_template_only() -> None:
    deployment = _render("placement").deployment
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert list(deployment["metadata"]["annotations"]) == [lbl.APPLIED_HASH]


def test_awkward_model_names_become_valid_label_values() -> None:
    raw = _with(model={"name": "org/" + "m" * 100 + "+v", "version": "v" * 63})
    for child in render_children(Owner("x", "ns", UID), _spec_from(raw)).all():
        for value in child["metadata"]["labels"].values():
            assert len(value) <= 63, value
            assert LABEL_VALUE.fullmatch(value), value
        assert child["metadata"]["labels"][lbl.VERSION_LABEL] == "v" * 63


def test_long_dotted_owner_name_gives_valid_child_names() -> None:
    owner = Owner("a" * 63 + "." + "b" * 63 + "." + "c" * 60, "ns", UID)
    children = render_children(owner, _spec("minimal"))
    names = {c["metadata"]["name"] for c in children.all()}
    assert len(names) == 1
    (name,) = names
    assert len(name) <= 63
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name)
    assert children.deployment["spec"]["selector"]["matchLabels"] == {lbl.NAME_LABEL: name}


# ---- selectors are immutable -----------------------------------------------------------------


def _variant(edit: Callable[[Obj], None]) -> ModelDeploymentSpec:
    raw = copy.deepcopy(CASES["full"][1])
    edit(raw)
    return _spec_from(raw)


def test_selector_does_not_change_with_the_version_model_or_image() -> None:
    owner = _owner("full")
    base = render_children(owner, _spec("full"))
    for edit in (
        lambda raw: raw["model"].__setitem__("version", "2.0.0"),
        lambda raw: raw["model"].__setitem__("name", "iris-v2"),
        lambda raw: raw["runtime"].__setitem__("image", "other:1"),
        lambda raw: raw.__setitem__("podLabels", {"team": "other"}),
        lambda raw: raw.pop("autoscaling"),
    ):
        changed = render_children(owner, _variant(edit))
        assert changed.deployment["spec"]["selector"] == base.deployment["spec"]["selector"]
        assert changed.service["spec"]["selector"] == base.service["spec"]["selector"]


def test_version_change_rolls_the_template() -> None:
    owner = _owner("full")
    base = render_deployment(owner, _spec("full"))
    changed = render_deployment(owner, _variant(lambda raw: raw["model"].__setitem__("version", "2.0.0")))
    assert changed["spec"]["template"]["metadata"]["labels"][lbl.VERSION_LABEL] == "2.0.0"
    assert base["spec"]["template"]["metadata"]["labels"][lbl.VERSION_LABEL] == "1.0.0"
    assert _env(changed)["MODEL_VERSION"]["value"] == "2.0.0"


# ---- the applied-hash annotation ---------------------------------------------------------------


def test_applied_hash_is_stable_for_the_same_spec() -> None:
    for case in CASES:
        assert [_hash(c) for c in _render(case).all()] == [_hash(c) for c in _render(case).all()]


@pytest.mark.parametrize(
    ("edit", "changes"),
    [
        (
            lambda raw: raw["model"].__setitem__("version", "2.0.0"),
            {"Deployment", "Service", "HorizontalPodAutoscaler"},
        ),
        (lambda raw: raw["runtime"].__setitem__("image", "other:1"), {"Deployment"}),
        (lambda raw: raw["runtime"]["resources"]["requests"].__setitem__("cpu", "200m"), {"Deployment"}),
        (lambda raw: raw["runtime"].__setitem__("port", 9000), {"Deployment", "Service"}),
        (lambda raw: raw["autoscaling"].__setitem__("maxReplicas", 6), {"HorizontalPodAutoscaler"}),
        (lambda raw: raw.__setitem__("podAnnotations", {"a": "b"}), {"Deployment"}),
        (lambda raw: raw["rollout"].__setitem__("maxSurge", 2), {"Deployment"}),
        # sections that do not reach the children leave every hash alone
        (lambda raw: raw["drift"].__setitem__("threshold", 0.3), set()),
        (lambda raw: raw["probing"].__setitem__("intervalSeconds", 20), set()),
        (lambda raw: raw.__setitem__("replicas", 4), set()),  # ignored while autoscaling is set
    ],
)
def test_applied_hash_changes_exactly_when_the_child_changes(edit: Callable[[Obj], None], changes: set[str]) -> None:
    owner = _owner("full")
    before = {c["kind"]: c for c in render_children(owner, _spec("full")).all()}
    after = {c["kind"]: c for c in render_children(owner, _variant(edit)).all()}
    changed = {kind for kind in before if _hash(before[kind]) != _hash(after[kind])}
    assert changed == changes
    for kind in before:
        assert (before[kind] == after[kind]) == (kind not in changes)


def test_applied_hash_tracks_replicas_without_autoscaling() -> None:
    owner = _owner("minimal")
    one = render_deployment(owner, _spec("minimal"))
    two = render_deployment(owner, _spec_from(_with(replicas=2)))
    assert _hash(one) != _hash(two)


# ---- rollout and pod spec ----------------------------------------------------------------------


def test_rollout_parameters() -> None:
    assert _render("minimal").deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    assert _render("placement").deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "50%"},
    }
    only_surge = render_deployment(Owner("x", "ns", UID), _spec_from(_with(rollout={"maxSurge": 1})))
    assert only_surge["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}


def test_service_account_token_is_not_mounted_without_a_service_account() -> None:
    assert _render("minimal").deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    full_pod = _render("full").deployment["spec"]["template"]["spec"]
    assert full_pod["serviceAccountName"] == "default"
    # the full example authorizes callers: the proxy has a token of its own, the model server none
    assert full_pod["automountServiceAccountToken"] is False
    raw = copy.deepcopy(CASES["full"][1])
    raw.pop("access")
    pod = render_deployment(_owner("full"), ModelDeploymentSpec.model_validate(raw))["spec"]["template"]["spec"]
    assert "automountServiceAccountToken" not in pod  # a ServiceAccount named for the model's own use


def test_placement_is_passed_through() -> None:
    pod = _render("placement").deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert pod["tolerations"] == [
        {"operator": "Exists"},
        {"key": "gpu", "effect": "NoExecute", "tolerationSeconds": 30},
    ]
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    container = _container(_render("placement").deployment)
    assert container["args"] == ["--workers", "2"]
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "1"}}
    assert container["image"] == "ghcr.io/modeldeploy/modeldeploy:0.1.0"
    assert container["name"] == "model-server"


def test_integer_quantities_survive_the_apiserver_round_trip() -> None:
    raw = _with(runtime={"resources": {"requests": {"cpu": 2, "memory": "1Gi"}}})
    desired = render_deployment(Owner("x", "ns", UID), _spec_from(raw))
    live = copy.deepcopy(desired)
    _container(live)["resources"]["requests"]["cpu"] = "2"  # how the apiserver serialises every quantity
    assert contains(live, desired)
