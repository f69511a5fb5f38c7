"""Runtimes through the reconciler, against the in-memory API: what a runtime, its edit and its absence do.

The same behaviour runs against the real apiserver, with the operator's informers, in
`tests/integration/test_runtimes.py`.
"""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy import kubeapi
from modeldeploy.controller.cache import key_of
from modeldeploy.controller.reconciler import Reconciler
from modeldeploy.controller.runtimes import RuntimeCatalog
from modeldeploy.controller.state import ControllerState
from tests.unit.test_reconciler_decisions import NAME, NS, World, image_of

Obj = dict[str, Any]


def cluster_runtime(name: str, image: str, *formats: str) -> Obj:
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ClusterModelRuntime",
        "metadata": {"name": name},
        "spec": {"image": image, "supportedFormats": [{"name": f} for f in formats], "port": 8080},
    }


class RuntimeWorld(World):
    """World, with the runtime caches filled the way the informers fill them, and the catalog on the clock."""

    def __init__(self) -> None:
        super().__init__()
        self.state = ControllerState(runtimes=RuntimeCatalog(clock=self.clock))
        self.reconciler = Reconciler(self.api, self.state, clock=self.clock)

    async def sync(self) -> None:
        await super().sync()
        catalog = self.state.runtimes
        for kind, cache, namespace, name in (
            (kubeapi.MODEL_RUNTIME, catalog.namespaced, NS, "ModelRuntime"),
            (kubeapi.CLUSTER_MODEL_RUNTIME, catalog.cluster, None, "ClusterModelRuntime"),
        ):
            listed = (await self.api.list(kind, namespace))["items"]
            before = {key: cache.get(key) for key in cache.known_keys()}
            for obj in cache.replace(listed, namespace=namespace, since=cache.mark()):
                catalog.changed(name, "DELETED", obj)  # type: ignore[arg-type]
            for obj in listed:  # as a watch reports: only what is new or changed
                held = before.get(key_of(obj))
                if held is None or held["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                    catalog.changed(name, "LISTED", obj)  # type: ignore[arg-type]

    async def runtime(self, body: Obj) -> None:
        await self.api.create(kubeapi.CLUSTER_MODEL_RUNTIME, "", body)

    async def status(self) -> Obj:
        model = await self.api.get(kubeapi.MODEL_DEPLOYMENT, NS, NAME)
        assert model is not None
        return model["status"]  # type: ignore[no-any-return]


@pytest.fixture
def world() -> RuntimeWorld:
    return RuntimeWorld()


SELECTED = {"runtime": {}, "model": {"name": "iris", "version": "1.0.0", "format": "sklearn"}}


async def test_a_model_without_a_runtime_is_served_by_the_one_for_its_format(world: RuntimeWorld) -> None:
    await world.runtime(cluster_runtime("mlserver-sklearn", "registry.invalid/mlserver:1", "sklearn"))
    await world.converged(**SELECTED)
    assert image_of(await world.child(kubeapi.DEPLOYMENT)) == "registry.invalid/mlserver:1"
    assert (await world.status())["model"] == {"runtime": {"kind": "ClusterModelRuntime", "name": "mlserver-sklearn"}}


async def test_editing_the_runtime_rolls_the_model_out_and_an_unrelated_edit_writes_nothing(
    world: RuntimeWorld,
) -> None:
    await world.runtime(cluster_runtime("mlserver-sklearn", "registry.invalid/mlserver:1", "sklearn"))
    await world.runtime(cluster_runtime("other", "registry.invalid/other:1", "onnx"))
    await world.converged(**SELECTED)

    def new_image(obj: Obj) -> None:
        obj["spec"]["image"] = "registry.invalid/mlserver:2"

    await world.api.edit(kubeapi.CLUSTER_MODEL_RUNTIME, "", "other", new_image, "kubectl-edit")
    await world.reconcile()
    assert world.api.writes() == []
    await world.api.edit(kubeapi.CLUSTER_MODEL_RUNTIME, "", "mlserver-sklearn", new_image, "kubectl-edit")
    await world.reconcile()
    assert ("APPLY", "deployments") in world.api.writes()
    assert image_of(await world.child(kubeapi.DEPLOYMENT)) == "registry.invalid/mlserver:2"


async def test_no_runtime_is_stalled_with_the_candidates_and_a_new_runtime_recovers_it(world: RuntimeWorld) -> None:
    await world.runtime(cluster_runtime("triton", "registry.invalid/triton:1", "onnx"))
    await world.create(**SELECTED)
    await world.reconcile()
    stalled = await world.condition("Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "NoRuntime")
    assert "no runtime selects model.format 'sklearn'" in stalled["message"]
    assert "triton (ClusterModelRuntime: onnx)" in stalled["message"]
    assert await world.child(kubeapi.DEPLOYMENT) is None

    await world.runtime(cluster_runtime("mlserver-sklearn", "registry.invalid/mlserver:1", "sklearn"))
    world.clock.now += 600  # past any backoff a stalled object waits out
    await world.reconcile()
    assert image_of(await world.child(kubeapi.DEPLOYMENT)) == "registry.invalid/mlserver:1"
    assert (await world.condition("Stalled"))["status"] == "False"
    # the children's first apply, not a correction of a hand edit (the generation had been observed, Stalled)
    assert ("Warning", "ConfigDriftCorrected") not in world.events()


async def test_a_deleted_runtime_is_still_used_for_the_grace_then_the_model_is_stalled(world: RuntimeWorld) -> None:
    await world.runtime(cluster_runtime("mlserver-sklearn", "registry.invalid/mlserver:1", "sklearn"))
    await world.converged(**SELECTED)
    await world.api.delete(kubeapi.CLUSTER_MODEL_RUNTIME, "", "mlserver-sklearn")
    await world.reconcile()
    assert world.api.writes() == [], "within the grace a deleted runtime changes nothing"
    world.clock.now += world.state.runtimes.grace + 0.5
    await world.reconcile()
    stalled = await world.condition("Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "NoRuntime")
    assert image_of(await world.child(kubeapi.DEPLOYMENT)) == "registry.invalid/mlserver:1", "left as it was"


async def test_a_runtime_replaced_within_the_grace_writes_nothing(world: RuntimeWorld) -> None:
    """What `helm upgrade` does to the chart's runtimes (hooks: delete, then create)."""
    body = cluster_runtime("mlserver-sklearn", "registry.invalid/mlserver:1", "sklearn")
    await world.runtime(body)
    await world.converged(**SELECTED)
    await world.api.delete(kubeapi.CLUSTER_MODEL_RUNTIME, "", "mlserver-sklearn")
    world.clock.now += 1
    await world.reconcile()  # a reconcile for any reason between the two
    assert world.api.writes() == []
    await world.runtime(body)
    world.clock.now += 60
    await world.reconcile()
    assert world.api.writes() == []
    assert (await world.condition("Stalled"))["status"] == "False"


async def test_an_image_of_its_own_needs_no_runtime_and_ignores_them(world: RuntimeWorld) -> None:
    await world.converged(model={"name": "iris", "version": "1.0.0", "format": "sklearn"})
    assert image_of(await world.child(kubeapi.DEPLOYMENT)) == "registry.invalid/modelserver:1"
    assert "model" not in await world.status()
    await world.runtime(cluster_runtime("mlserver-sklearn", "registry.invalid/mlserver:1", "sklearn"))
    await world.reconcile()
    assert world.api.writes() == []


async def test_a_fixed_runtime_releases_a_stalled_models_backoff(world: RuntimeWorld) -> None:
    """An apply the apiserver refuses holds the generation back; fixing the runtime is a change like a new spec."""
    await world.runtime(cluster_runtime("mlserver-sklearn", "registry.invalid/mlserver:1", "sklearn"))
    await world.create(**SELECTED)
    refusals = 0
    real_apply = world.api.apply

    async def refusing(obj: Obj, **kwargs: Any) -> Obj:
        nonlocal refusals
        if obj["kind"] == "Deployment" and "bad" in image_of(obj):
            refusals += 1
            raise kubeapi.ApiError(422, "Invalid", "spec.template.spec.containers[0].image: Invalid value")
        return await real_apply(obj, **kwargs)

    world.api.apply = refusing  # type: ignore[method-assign]

    def bad(obj: Obj) -> None:
        obj["spec"]["image"] = "registry.invalid/bad:1"

    await world.api.edit(kubeapi.CLUSTER_MODEL_RUNTIME, "", "mlserver-sklearn", bad, "kubectl-edit")
    await world.reconcile()  # a 422 repeats by nature: Stalled at once, held back 5 s
    assert (await world.condition("Stalled"))["reason"] == "ApplyRejected"
    world.clock.now += 1
    await world.reconcile()
    tries = refusals
    assert tries == 1, "held: the same spec and runtimes fail the same way"

    def fixed(obj: Obj) -> None:
        obj["spec"]["image"] = "registry.invalid/mlserver:2"

    await world.api.edit(kubeapi.CLUSTER_MODEL_RUNTIME, "", "mlserver-sklearn", fixed, "kubectl-edit")
    world.clock.now += 1  # far inside the backoff
    await world.reconcile()
    assert refusals == tries
    assert image_of(await world.child(kubeapi.DEPLOYMENT)) == "registry.invalid/mlserver:2"
