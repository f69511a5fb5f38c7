"""Which container serves a ModelDeployment: a table of specs and runtimes against the decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from modeldeploy.api.v1alpha1 import ModelDeploymentSpec, ModelRuntimeSpec
from modeldeploy.render.children import Owner, render_deployment
from modeldeploy.render.runtime import (
    INVALID_RUNTIME,
    MAX_LISTED,
    NO_RUNTIME,
    RuntimeEntry,
    RuntimeProblem,
    needs_runtimes,
    resolve,
)

Obj = dict[str, Any]


def runtime(
    name: str,
    *formats: str | Obj,
    kind: str = "ClusterModelRuntime",
    image: str | None = None,
    **fields: Any,
) -> RuntimeEntry:
    supported = [{"name": f} if isinstance(f, str) else f for f in formats]
    spec = ModelRuntimeSpec.model_validate(
        {"image": image or f"registry.example/{name}:1", "supportedFormats": supported, **fields}
    )
    return RuntimeEntry(kind, name, spec)  # type: ignore[arg-type]


def spec(runtime: Obj | None = None, fmt: str | None = None) -> ModelDeploymentSpec:
    model: Obj = {"name": "iris", "version": "1"}
    if fmt is not None:
        model["format"] = fmt
    body: Obj = {"model": model}
    if runtime is not None:
        body["runtime"] = runtime
    return ModelDeploymentSpec.model_validate(body)


SKLEARN = runtime("mlserver-sklearn", "sklearn", port=8080, metrics={"port": 8082})
SKLEARN_HIGH = runtime("custom-sklearn", {"name": "sklearn", "priority": 10})
SKLEARN_LOCAL = runtime("team-sklearn", "sklearn", kind="ModelRuntime")
XGB_BY_NAME_ONLY = runtime("xgb", {"name": "xgboost", "autoSelect": False})
OFF = runtime("retired", "onnx", disabled=True)
SHADOW = runtime("mlserver-sklearn", "sklearn", kind="ModelRuntime", image="registry.example/team-mlserver:2")


@dataclass(frozen=True)
class Case:
    name: str
    spec: ModelDeploymentSpec
    runtimes: tuple[RuntimeEntry, ...]
    image: str | None = None  # the resolved container's image, or
    runtime: tuple[str, str] | None = None  # (kind, name) it came from
    problem: tuple[str, str] | None = None  # (reason, a phrase the message must contain)


CASES = [
    Case(
        "own-image-needs-no-runtime",
        spec({"image": "ghcr.io/org/server:1"}, fmt="sklearn"),
        (SKLEARN,),
        image="ghcr.io/org/server:1",
    ),
    Case(
        "by-format",
        spec(fmt="sklearn"),
        (SKLEARN,),
        image="registry.example/mlserver-sklearn:1",
        runtime=("ClusterModelRuntime", "mlserver-sklearn"),
    ),
    Case("format-ignores-case", spec(fmt="SKLearn"), (SKLEARN,), runtime=("ClusterModelRuntime", "mlserver-sklearn")),
    Case(
        "higher-priority-wins",
        spec(fmt="sklearn"),
        (SKLEARN, SKLEARN_HIGH),
        runtime=("ClusterModelRuntime", "custom-sklearn"),
    ),
    Case(
        "the-namespace-wins-over-priority",
        spec(fmt="sklearn"),
        (SKLEARN_HIGH, SKLEARN_LOCAL),
        runtime=("ModelRuntime", "team-sklearn"),
    ),
    Case(
        "ties-go-to-the-first-name-whatever-the-order",
        spec(fmt="sklearn"),
        (runtime("b-sklearn", "sklearn"), runtime("a-sklearn", "sklearn")),
        runtime=("ClusterModelRuntime", "a-sklearn"),
    ),
    Case(
        "by-name",
        spec({"name": "xgb"}, fmt="xgboost"),
        (XGB_BY_NAME_ONLY, SKLEARN),
        runtime=("ClusterModelRuntime", "xgb"),
    ),
    Case(
        "by-name-without-a-format",
        spec({"name": "mlserver-sklearn"}),
        (SKLEARN,),
        image="registry.example/mlserver-sklearn:1",
    ),
    Case(
        "a-name-finds-the-namespaces-runtime-first",
        spec({"name": "mlserver-sklearn"}),
        (SKLEARN, SHADOW),
        image="registry.example/team-mlserver:2",
        runtime=("ModelRuntime", "mlserver-sklearn"),
    ),
    Case(
        "by-name-with-an-image-of-its-own",
        spec({"name": "mlserver-sklearn", "image": "ghcr.io/org/mlserver:patched"}),
        (SKLEARN,),
        image="ghcr.io/org/mlserver:patched",
        runtime=("ClusterModelRuntime", "mlserver-sklearn"),
    ),
    Case("no-format-no-name-no-image", spec(), (SKLEARN,), problem=(NO_RUNTIME, "spec.model.format is not set")),
    Case(
        "no-runtime-serves-the-format",
        spec(fmt="onnx"),
        (SKLEARN, OFF),
        problem=(
            NO_RUNTIME,
            "no runtime selects model.format 'onnx'; runtimes: mlserver-sklearn (ClusterModelRuntime: sklearn), "
            "retired (ClusterModelRuntime: disabled, onnx)",
        ),
    ),
    Case(
        "auto-select-off-is-by-name-only",
        spec(fmt="xgboost"),
        (XGB_BY_NAME_ONLY,),
        problem=(NO_RUNTIME, "xgb (ClusterModelRuntime: xgboost by name only)"),
    ),
    Case(
        "no-runtimes-at-all",
        spec(fmt="sklearn"),
        (),
        problem=(NO_RUNTIME, "there are no ModelRuntimes here and no ClusterModelRuntimes"),
    ),
    Case(
        "unknown-name",
        spec({"name": "mlserver-onnx"}),
        (SKLEARN,),
        problem=(
            NO_RUNTIME,
            "no ModelRuntime 'mlserver-onnx' in this namespace and no ClusterModelRuntime 'mlserver-onnx'",
        ),
    ),
    Case(
        "named-runtime-disabled",
        spec({"name": "retired"}),
        (OFF,),
        problem=(NO_RUNTIME, "ClusterModelRuntime 'retired' is disabled"),
    ),
    Case(
        "named-runtime-does-not-serve-the-format",
        spec({"name": "mlserver-sklearn"}, fmt="onnx"),
        (SKLEARN,),
        problem=(NO_RUNTIME, "does not serve model.format 'onnx' (it serves: sklearn)"),
    ),
    Case(
        "named-runtime-unreadable",
        spec({"name": "broken"}),
        (RuntimeEntry("ClusterModelRuntime", "broken", None, "spec.image: Field required"),),
        problem=(INVALID_RUNTIME, "ClusterModelRuntime 'broken' is invalid: spec.image: Field required"),
    ),
    Case(
        "overrides-that-make-an-invalid-container",
        spec({"name": "mlserver-sklearn", "protocol": "custom"}),
        (SKLEARN,),
        problem=(INVALID_RUNTIME, "runtime.healthPath and runtime.readinessPath are required"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_resolution(case: Case) -> None:
    if case.problem is not None:
        with pytest.raises(RuntimeProblem) as raised:
            resolve(case.spec, case.runtimes)
        reason, phrase = case.problem
        assert raised.value.reason == reason
        assert phrase in raised.value.message
        return
    resolved = resolve(case.spec, case.runtimes)
    if case.image is not None:
        assert resolved.server.image == case.image
    expected = None if case.runtime is None else {"kind": case.runtime[0], "name": case.runtime[1]}
    got = None if resolved.runtime is None else resolved.runtime.model_dump()
    if case.runtime is not None or case.name == "own-image-needs-no-runtime":
        assert got == expected


def test_the_order_the_runtimes_were_listed_in_never_matters() -> None:
    runtimes = [SKLEARN, SKLEARN_HIGH, SKLEARN_LOCAL, runtime("z-sklearn", "sklearn", kind="ModelRuntime"), OFF]
    orders = (runtimes, runtimes[::-1], runtimes[2:] + runtimes[:2])
    answers = {str(resolve(spec(fmt="sklearn"), order).runtime) for order in orders}
    assert len(answers) == 1


def test_fields_written_next_to_a_name_override_the_runtimes() -> None:
    base = runtime(
        "mlserver",
        "sklearn",
        env=[{"name": "A", "value": "runtime"}, {"name": "B", "value": "runtime"}],
        resources={"requests": {"cpu": "1"}},
        args=["--x"],
        port=9000,
    )
    resolved = resolve(
        spec(
            {
                "name": "mlserver",
                "env": [{"name": "B", "value": "mine"}, {"name": "C", "value": "mine"}],
                "resources": {"limits": {"memory": "1Gi"}},
            }
        ),
        [base],
    )
    server = resolved.server
    assert [(e.name, e.value) for e in server.env or []] == [("A", "runtime"), ("B", "mine"), ("C", "mine")]
    assert server.resources is not None
    assert server.resources.requests is None  # replaced whole, not merged
    assert server.args == ["--x"]  # not written: the runtime's
    assert server.port == 9000
    assert server.metrics.path == "/metrics"


def test_an_unwritten_field_keeps_the_runtimes_value_even_where_the_python_default_differs() -> None:
    openai = runtime("vllm", "huggingface", protocol="openai", port=8000)
    server = resolve(spec(fmt="huggingface"), [openai]).server
    assert (server.protocol, server.port) == ("openai", 8000)


def test_a_disabled_runtime_is_not_selected_but_an_enabled_one_of_lower_priority_is() -> None:
    disabled = runtime("best", {"name": "sklearn", "priority": 100}, disabled=True)
    assert resolve(spec(fmt="sklearn"), [disabled, SKLEARN]).runtime.name == "mlserver-sklearn"  # type: ignore[union-attr]


def test_the_message_lists_at_most_a_few_runtimes_and_counts_the_rest() -> None:
    many = [runtime(f"r{i:02d}", f"f{i}") for i in range(MAX_LISTED + 5)]
    with pytest.raises(RuntimeProblem) as raised:
        resolve(spec(fmt="onnx"), many)
    assert raised.value.message.count("(ClusterModelRuntime:") == MAX_LISTED
    assert "and 5 more" in raised.value.message


@pytest.mark.parametrize(
    ("runtime_section", "needs"),
    [(None, True), ({"name": "x"}, True), ({"image": "a/b:1"}, False), ({"name": "x", "image": "a/b:1"}, True)],
)
def test_needs_runtimes(runtime_section: Obj | None, needs: bool) -> None:
    assert needs_runtimes(spec(runtime_section, fmt="sklearn")) is needs


def test_the_resolved_container_is_what_the_deployment_runs() -> None:
    resolved = resolve(spec({"env": [{"name": "EXTRA", "value": "1"}]}, fmt="sklearn"), [SKLEARN])
    deployment = render_deployment(Owner("iris", "ns", "uid"), spec(fmt="sklearn"), server=resolved.server)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example/mlserver-sklearn:1"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8080, "metrics": 8082}
    assert {"name": "EXTRA", "value": "1"} in container["env"]
    assert {"name": "MODEL_FORMAT", "value": "sklearn"} in container["env"]


def test_the_old_stored_defaults_beside_a_name_are_no_overrides() -> None:
    """Objects stored before runtimes carry port 8080, protocol v2, metrics {path: /metrics}; a name keeps them."""
    openai = runtime("vllm", "huggingface", protocol="openai", port=8000, metrics={"port": 8001})
    stale = {"name": "vllm", "port": 8080, "protocol": "v2", "metrics": {"path": "/metrics"}}
    server = resolve(spec(stale), [openai]).server
    assert (server.protocol, server.port, server.metrics.port) == ("openai", 8000, 8001)
    meant = resolve(spec({"name": "vllm", "port": 9000}), [openai]).server
    assert meant.port == 9000, "any other value is an override"
