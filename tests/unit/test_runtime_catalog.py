"""The runtime catalog (parsed once, deleted ones kept for a grace) and which models a runtime event wakes."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.controller.manager import Controller
from modeldeploy.controller.runtimes import RuntimeCatalog
from modeldeploy.settings import OperatorSettings
from tests.fakekube import FakeKube

Obj = dict[str, Any]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def runtime(name: str, namespace: str | None = None, version: str = "1", generation: int = 1, **spec: Any) -> Obj:
    metadata: Obj = {"name": name, "resourceVersion": version, "generation": generation, "uid": f"uid-{name}"}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"metadata": metadata, "spec": {"image": "registry.invalid/server:1", **spec}}


def add(catalog: RuntimeCatalog, kind: str, obj: Obj, event: str = "ADDED") -> None:
    cache = catalog.cache_for(kind)  # type: ignore[arg-type]
    cache.apply_event(event, obj)
    catalog.changed(kind, event, obj)  # type: ignore[arg-type]


def names(catalog: RuntimeCatalog, namespace: str) -> list[tuple[str, str]]:
    return sorted((e.kind, e.name) for e in catalog.entries(namespace))


def test_a_namespace_sees_its_own_runtimes_and_the_cluster_ones() -> None:
    catalog = RuntimeCatalog()
    add(catalog, "ModelRuntime", runtime("mine", "team-a"))
    add(catalog, "ModelRuntime", runtime("theirs", "team-b"))
    add(catalog, "ClusterModelRuntime", runtime("shared"))
    assert names(catalog, "team-a") == [("ClusterModelRuntime", "shared"), ("ModelRuntime", "mine")]


def test_a_runtime_is_parsed_once_per_resource_version() -> None:
    catalog = RuntimeCatalog()
    add(catalog, "ClusterModelRuntime", runtime("shared"))
    [first] = catalog.entries("x")
    assert catalog.entries("x")[0] is first
    add(catalog, "ClusterModelRuntime", runtime("shared", version="2", port=9000), event="MODIFIED")
    [second] = catalog.entries("x")
    assert second is not first
    assert second.spec is not None
    assert second.spec.port == 9000


def test_an_unreadable_runtime_is_an_entry_with_its_problem() -> None:
    catalog = RuntimeCatalog()
    broken = runtime("broken")
    del broken["spec"]["image"]
    add(catalog, "ClusterModelRuntime", broken)
    [entry] = catalog.entries("x")
    assert entry.spec is None
    assert entry.problem is not None
    assert "spec.image" in entry.problem


def test_a_deleted_runtime_stays_for_the_grace_and_its_end_changes_the_epoch() -> None:
    clock = Clock()
    catalog = RuntimeCatalog(clock=clock, grace=10.0)
    obj = runtime("shared")
    add(catalog, "ClusterModelRuntime", obj)
    add(catalog, "ClusterModelRuntime", obj, event="DELETED")
    epoch = catalog.epoch()
    clock.now += 9.9
    assert names(catalog, "x") == [("ClusterModelRuntime", "shared")]
    assert catalog.epoch() == epoch
    clock.now += 0.2
    assert catalog.epoch() == epoch + 1, "the grace ending changes what resolves"
    assert names(catalog, "x") == []


def test_a_runtime_created_again_within_the_grace_replaces_the_memory() -> None:
    clock = Clock()
    catalog = RuntimeCatalog(clock=clock)
    add(catalog, "ClusterModelRuntime", runtime("shared"))
    add(catalog, "ClusterModelRuntime", runtime("shared"), event="DELETED")
    add(catalog, "ClusterModelRuntime", runtime("shared", version="5", port=7000))
    [entry] = catalog.entries("x")
    assert entry.spec is not None
    assert entry.spec.port == 7000
    clock.now += 60
    assert len(catalog.entries("x")) == 1


def test_a_deleted_namespaced_runtime_is_remembered_only_in_its_namespace() -> None:
    catalog = RuntimeCatalog()
    obj = runtime("mine", "team-a")
    add(catalog, "ModelRuntime", obj)
    add(catalog, "ModelRuntime", obj, event="DELETED")
    assert names(catalog, "team-a") == [("ModelRuntime", "mine")]
    assert names(catalog, "team-b") == []


# ---- which models a runtime event wakes --------------------------------------------------------


def model(namespace: str, name: str, runtime_section: Obj | None, fmt: str | None = "sklearn") -> Obj:
    spec: Obj = {"model": {"name": "m", "version": "1", **({"format": fmt} if fmt else {})}}
    if runtime_section is not None:
        spec["runtime"] = runtime_section
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": name, "generation": 1, "resourceVersion": "1"},
        "spec": spec,
    }


@pytest.fixture
def controller() -> tuple[Controller, list[tuple[str, tuple[str, str]]]]:
    made = Controller(FakeKube(), OperatorSettings(metrics_port=0, health_port=0))
    woken: list[tuple[str, tuple[str, str]]] = []
    made.queue.add = lambda key, **_: woken.append(("now", key))  # type: ignore[method-assign]
    made.queue.add_after = lambda key, delay: woken.append((f"after {delay}", key))  # type: ignore[method-assign]
    for body in (
        model("team-a", "selects", None),
        model("team-a", "names", {"name": "mlserver"}),
        model("team-a", "own-image", {"image": "registry.invalid/own:1"}),
        model("team-b", "selects", None),
        model("team-b", "invalid", {"port": "not a number"}),
    ):
        made.state.models.apply_event("ADDED", body)
    return made, woken


def test_a_cluster_runtime_wakes_every_model_that_uses_runtimes(
    controller: tuple[Controller, list[tuple[str, tuple[str, str]]]],
) -> None:
    made, woken = controller
    made.on_cluster_runtime_event("ADDED", runtime("mlserver"), None)
    assert sorted(woken) == [
        ("now", ("team-a", "names")),
        ("now", ("team-a", "selects")),
        ("now", ("team-b", "selects")),
    ]


def test_a_namespaced_runtime_wakes_only_its_namespace(
    controller: tuple[Controller, list[tuple[str, tuple[str, str]]]],
) -> None:
    made, woken = controller
    made.on_namespaced_runtime_event("ADDED", runtime("mlserver", "team-b"), None)
    assert woken == [("now", ("team-b", "selects"))]


def test_a_deletion_wakes_them_after_the_grace_and_a_label_edit_wakes_nobody(
    controller: tuple[Controller, list[tuple[str, tuple[str, str]]]],
) -> None:
    made, woken = controller
    old = runtime("mlserver", "team-b")
    relabelled = runtime("mlserver", "team-b", version="2")
    made.on_namespaced_runtime_event("MODIFIED", relabelled, old)
    assert woken == []
    made.on_namespaced_runtime_event("MODIFIED", runtime("mlserver", "team-b", version="3", generation=2), relabelled)
    assert woken == [("now", ("team-b", "selects"))]
    woken.clear()
    made.on_namespaced_runtime_event("DELETED", relabelled, relabelled)
    assert woken == [(f"after {made.state.runtimes.grace + 0.5}", ("team-b", "selects"))]
