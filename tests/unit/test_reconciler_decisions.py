"""The reconciler's decisions against the in-memory API: what it writes, and what it refuses to.

The fake keeps the apiserver's semantics the reconciler relies on (checked by the contract
suite against the real one), and the caches are filled the way the informers fill them: a
list with the operator's label selector. The same decisions run against the real apiserver
in `tests/integration/test_reconciler.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from modeldeploy import kubeapi
from modeldeploy.controller.children import CHILDREN, HANDOVER_MANAGER
from modeldeploy.controller.manager import OWNED_SELECTOR
from modeldeploy.controller.reconciler import COALESCE_SECONDS, Reconciler
from modeldeploy.controller.state import ControllerState
from modeldeploy.kubeapi import ApiError
from modeldeploy.render.names import child_name
from tests.fakekube import FakeKube

Obj = dict[str, Any]
NS = "team"
NAME = "iris"
CHILD = child_name(NAME)


def spec(**overrides: Any) -> Obj:
    body: Obj = {
        "model": {"name": "iris", "version": "1.0.0"},
        "runtime": {"image": "registry.invalid/modelserver:1"},
        "replicas": 2,
        "probing": {"enabled": False},
    }
    body.update(overrides)
    return body


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class World:
    """One namespace of the fake API, the controller's caches over it, and a reconciler on a clock we move."""

    def __init__(self) -> None:
        self.api = FakeKube()
        self.state = ControllerState()
        self.clock = Clock()
        self.reconciler = Reconciler(self.api, self.state, clock=self.clock)

    async def sync(self) -> None:
        """What the informers would hold now: every ModelDeployment, and children carrying our label."""
        tables = [
            (kubeapi.MODEL_DEPLOYMENT, self.state.models, None),
            *((child.kind, child.cache(self.state), OWNED_SELECTOR) for child in CHILDREN),
            (kubeapi.POD, self.state.pods, OWNED_SELECTOR),
        ]
        for kind, cache, selector in tables:
            if not cache.served:
                continue  # the kind's CRD is not installed: its informer holds nothing
            listed = await self.api.list(kind, NS, selector)
            cache.replace(listed["items"], namespace=NS, since=cache.mark())

    async def create(self, **overrides: Any) -> None:
        body = {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": NAME}}
        await self.api.create(kubeapi.MODEL_DEPLOYMENT, NS, {**body, "spec": spec(**overrides)})

    async def edit_spec(self, change: Callable[[Obj], None]) -> None:
        await self.api.edit(kubeapi.MODEL_DEPLOYMENT, NS, NAME, lambda obj: change(obj["spec"]), "kubectl-edit")

    async def reconcile(self) -> float | None:
        await self.sync()
        self.api.requests.clear()
        return await self.reconciler.reconcile((NS, NAME))

    async def converged(self, **overrides: Any) -> None:
        await self.create(**overrides)
        await self.reconcile()
        assert await self.reconcile() is None
        assert self.api.writes() == [], "a second reconcile of an unchanged world must write nothing"

    async def child(self, kind: kubeapi.Kind) -> Obj | None:
        return await self.api.get(kind, NS, CHILD)

    async def condition(self, type_: str) -> Obj:
        model = await self.api.get(kubeapi.MODEL_DEPLOYMENT, NS, NAME)
        assert model is not None
        found: Obj = next(c for c in model["status"]["conditions"] if c["type"] == type_)
        return found

    def events(self) -> list[tuple[str, str]]:
        return self.api.events(NS)


@pytest.fixture
def world() -> World:
    return World()


def image_of(deployment: Obj | None) -> str:
    assert deployment is not None
    image: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


async def test_a_new_model_gets_its_children_and_one_status_write_and_no_event(world: World) -> None:
    await world.create()
    await world.reconcile()
    assert sorted(world.api.writes()) == [
        ("APPLY", "deployments"),
        ("APPLY", "poddisruptionbudgets"),  # two replicas: a drain may take one at a time
        ("APPLY", "services"),
        ("PATCH", "modeldeployments/status"),
    ]
    deployment = await world.child(kubeapi.DEPLOYMENT)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 2
    assert deployment["metadata"]["ownerReferences"][0]["name"] == NAME
    assert world.events() == []  # a routine first creation is not news


async def test_a_child_edited_by_hand_is_restored_and_said(world: World) -> None:
    await world.converged()

    def hand_edit(obj: Obj) -> None:
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.invalid/hacked:1"

    await world.api.edit(kubeapi.DEPLOYMENT, NS, CHILD, hand_edit, "kubectl-edit")
    folded = await world.reconcile()
    assert image_of(await world.child(kubeapi.DEPLOYMENT)) == "registry.invalid/modelserver:1"
    assert ("Warning", "ConfigDriftCorrected") in world.events()
    # the count on the status is progress, folded into a write at most COALESCE_SECONDS later
    assert folded is not None
    assert 0 < folded <= COALESCE_SECONDS
    world.clock.now += folded
    await world.reconcile()
    model = await world.api.get(kubeapi.MODEL_DEPLOYMENT, NS, NAME)
    assert model is not None
    assert model["status"]["drift"]["config"]["corrections"] == 1


async def test_a_child_deleted_by_hand_is_recreated_after_the_owner_is_confirmed(world: World) -> None:
    await world.converged()
    service = await world.child(kubeapi.SERVICE)
    assert service is not None
    await world.api.delete(kubeapi.SERVICE, NS, CHILD)
    await world.reconcile()
    assert ("GET", "modeldeployments") in world.api.requests  # only the apiserver can tell GC from a hand
    recreated = await world.child(kubeapi.SERVICE)
    assert recreated is not None
    assert recreated["metadata"]["uid"] != service["metadata"]["uid"]
    assert ("Warning", "ConfigDriftCorrected") in world.events()


async def test_an_owner_deleted_meanwhile_gets_no_children_back(world: World) -> None:
    await world.converged()
    await world.api.delete(kubeapi.SERVICE, NS, CHILD)
    await world.sync()
    await world.api.delete(kubeapi.MODEL_DEPLOYMENT, NS, NAME)  # the cache still holds it
    world.api.requests.clear()
    assert await world.reconciler.reconcile((NS, NAME)) is None
    assert await world.child(kubeapi.SERVICE) is None
    assert world.api.writes() == []


async def test_a_foreign_object_of_the_same_name_is_never_taken_over(world: World) -> None:
    foreign = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": CHILD, "namespace": NS, "labels": {"app": "theirs"}},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "theirs"}},
            "template": {
                "metadata": {"labels": {"app": "theirs"}},
                "spec": {"containers": [{"name": "model-server", "image": "registry.invalid/theirs:1"}]},
            },
        },
    }
    await world.api.apply(foreign, field_manager="kubectl")
    await world.create()
    await world.reconcile()
    stalled = await world.condition("Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "ChildNameConflict")
    theirs = await world.child(kubeapi.DEPLOYMENT)
    assert theirs is not None
    assert image_of(theirs) == "registry.invalid/theirs:1"
    assert theirs["spec"]["replicas"] == 5
    assert "ownerReferences" not in theirs["metadata"]


async def test_a_child_another_owner_controls_is_a_conflict_without_a_write(world: World) -> None:
    await world.converged()
    deployment = await world.child(kubeapi.DEPLOYMENT)
    assert deployment is not None

    def steal(obj: Obj) -> None:
        obj["metadata"]["ownerReferences"][0]["uid"] = "00000000-0000-0000-0000-0000000000ff"

    await world.api.edit(kubeapi.DEPLOYMENT, NS, CHILD, steal, "kubectl-edit")
    await world.reconcile()
    assert ("APPLY", "deployments") not in world.api.requests
    assert (await world.condition("Stalled"))["reason"] == "ChildNameConflict"


async def test_autoscaling_takes_over_the_replica_count_without_resetting_it(world: World) -> None:
    await world.converged(replicas=3)

    def autoscale(spec: Obj) -> None:
        spec["autoscaling"] = {"minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercentage": 70}

    await world.edit_spec(autoscale)
    await world.reconcile()
    deployment = await world.child(kubeapi.DEPLOYMENT)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 3  # not back to 1 while the HPA has not acted yet
    owners = {e["manager"]: e["fieldsV1"] for e in deployment["metadata"]["managedFields"]}
    assert "f:replicas" in owners[HANDOVER_MANAGER]["f:spec"]
    assert "f:replicas" not in owners[kubeapi.FIELD_MANAGER]["f:spec"]
    assert await world.child(kubeapi.HPA) is not None


async def test_an_hpa_no_longer_declared_is_deleted_but_only_ours(world: World) -> None:
    await world.converged(autoscaling={"minReplicas": 1, "maxReplicas": 4, "targetCPUUtilizationPercentage": 70})
    assert await world.child(kubeapi.HPA) is not None
    await world.edit_spec(lambda spec: spec.pop("autoscaling"))
    await world.reconcile()
    assert await world.child(kubeapi.HPA) is None
    assert ("Normal", "ChildrenDeleted") in world.events()


async def test_someone_elses_hpa_of_that_name_is_left_alone(world: World) -> None:
    await world.converged()
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        # our label (copied from ours, say) puts it in the cache; the controller reference says whose it is
        "metadata": {
            "name": CHILD,
            "namespace": NS,
            "labels": dict([OWNED_SELECTOR.split("=")]),
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "0000-ff", "controller": True}
            ],
        },
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": CHILD}, "maxReplicas": 3},
    }
    await world.api.apply(hpa, field_manager="kubectl")
    await world.reconcile()
    assert world.state.hpas.get((NS, CHILD)) is not None
    assert await world.child(kubeapi.HPA) is not None
    assert ("DELETE", "horizontalpodautoscalers") not in world.api.requests


async def test_a_missing_pull_secret_stalls_before_any_apply_and_clears_when_created(world: World) -> None:
    await world.create(imagePullSecrets=[{"name": "regcred"}])
    await world.reconcile()
    assert ("APPLY", "deployments") not in world.api.requests
    stalled = await world.condition("Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "ImagePullSecretNotFound")
    assert "regcred" in stalled["message"]
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred", "namespace": NS}}
    await world.api.create(kubeapi.SECRET, NS, secret)
    await world.edit_spec(lambda spec: spec.update(replicas=3))  # a new generation, past the hold
    await world.reconcile()
    assert ("APPLY", "deployments") in world.api.requests
    assert (await world.condition("Stalled"))["status"] == "False"


async def test_an_invalid_spec_is_reported_not_applied(world: World) -> None:
    await world.create(replicas=-1)
    await world.reconcile()
    assert ("APPLY", "deployments") not in world.api.requests
    stalled = await world.condition("Stalled")
    assert stalled["reason"] == "InvalidSpec"
    assert "spec.replicas" in stalled["message"]


async def test_a_rejected_apply_stalls_and_is_not_retried_before_its_backoff(world: World) -> None:
    await world.create()
    world.api.fail_next[("APPLY", "deployments")] = ApiError(422, "Invalid", "spec.template: Invalid value")
    retry = await world.reconcile()
    assert retry is not None
    assert retry > 0
    assert (await world.condition("Stalled"))["reason"] == "ApplyRejected"
    await world.reconcile()  # a resync within the backoff
    assert ("APPLY", "deployments") not in world.api.requests


async def test_a_terminating_namespace_is_left_alone(world: World) -> None:
    await world.create()
    world.api.fail_next[("APPLY", "services")] = ApiError(403, "Forbidden", "namespace team is being terminated")
    assert await world.reconcile() is None
    assert ("PATCH", "modeldeployments/status") not in world.api.requests
    await world.sync()
    world.api.requests.clear()
    assert await world.reconciler.reconcile((NS, NAME)) is None
    assert world.api.requests == []  # remembered: no request until the namespace is gone


async def test_a_model_uri_the_schema_admits_but_no_store_can_read_is_stalled_not_retried_forever(world: World) -> None:
    """`pvc://Claim/x` passes the CRD's pattern; the claim name does not hold: a reason, no crash loop."""
    await world.create(model={"name": "iris", "version": "1.0.0", "uri": "pvc://Models_Claim/iris"})
    await world.reconcile()
    stalled = await world.condition("Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidModelURI")
    assert "'Models_Claim' is not a PersistentVolumeClaim name" in stalled["message"]
    assert await world.child(kubeapi.DEPLOYMENT) is None


@pytest.mark.parametrize(
    ("sections", "reason"),
    [
        (
            {"autoscaling": {"engine": "keda", "maxReplicas": 3, "targetCPUUtilizationPercentage": 70}},
            "KedaNotInstalled",
        ),
        ({"exposure": {"httpRoute": {"parentRefs": [{"name": "gw"}]}}}, "GatewayAPINotInstalled"),
    ],
)
async def test_a_kind_the_cluster_does_not_serve_stalls_with_what_to_install(
    world: World, sections: Obj, reason: str
) -> None:
    world.state.scaled_objects.served = False
    world.state.http_routes.served = False
    await world.create(**sections)
    await world.reconcile()
    stalled = await world.condition("Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", reason)
    assert "is not installed" in stalled["message"]
    assert [w for w in world.api.writes() if w[0] == "APPLY"] == [], "nothing half-applied"
    await world.edit_spec(lambda body: [body.pop(key) for key in sections])
    world.state.scaled_objects.served = world.state.http_routes.served = True
    await world.reconcile()
    assert (await world.condition("Ready"))["reason"] != "Stalled"
