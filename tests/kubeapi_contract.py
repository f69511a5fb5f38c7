"""One contract for `KubeApi`, run against the in-memory fake (unit) and the real apiserver (integration).

Each case is a semantic the reconciler relies on. A module that runs it defines two fixtures:
`api` (a KubeApi) and `ns` (a namespace to write in, with the ModelDeployment CRD installed),
and imports these functions: `from tests.kubeapi_contract import *`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from modeldeploy import kubeapi
from modeldeploy.kubeapi import ApiError, KubeApi

Obj = dict[str, Any]
OTHER = "someone-else"


def deployment(ns: str, name: str, replicas: int | None = 1, image: str = "registry.invalid/a:1", **meta: Any) -> Obj:
    spec: Obj = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "main", "image": image}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    metadata = {"name": name, "namespace": ns, **meta}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


def model(ns: str, name: str, version: str = "1.0.0") -> Obj:
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "model": {"name": "iris", "version": version},
            "runtime": {"image": "registry.invalid/modelserver:1"},
            "replicas": 1,
        },
    }


def owner_ref(uid: str, name: str = "owner", controller: bool = True) -> Obj:
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "name": name,
        "uid": uid,
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def owned_paths(obj: Obj, manager: str) -> Obj:
    for entry in obj["metadata"].get("managedFields") or []:
        if entry["manager"] == manager and entry["operation"] == "Apply":
            fields: Obj = entry["fieldsV1"]
            return fields
    return {}


async def test_get_of_a_missing_object_is_none(api: KubeApi, ns: str) -> None:
    assert await api.get(kubeapi.DEPLOYMENT, ns, "nobody-made-this") is None


# ModelDeployments where the resourceVersion matters: nothing else writes them here, while the
# Deployment controller writes a Deployment's status right after each change.
async def test_apply_creates_with_identity_and_generation_one(api: KubeApi, ns: str) -> None:
    created = await api.apply(model(ns, "c1"))
    assert created["metadata"]["uid"]
    assert created["metadata"]["generation"] == 1
    read = await api.get(kubeapi.MODEL_DEPLOYMENT, ns, "c1")
    assert read is not None
    assert read["metadata"]["uid"] == created["metadata"]["uid"]
    assert read["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_an_apply_that_changes_nothing_is_not_a_write(api: KubeApi, ns: str) -> None:
    first = await api.apply(model(ns, "c2"))
    again = await api.apply(model(ns, "c2"))
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert again["metadata"]["generation"] == 1


async def test_a_spec_change_bumps_generation_and_version(api: KubeApi, ns: str) -> None:
    first = await api.apply(deployment(ns, "c3"))
    changed = await api.apply(deployment(ns, "c3", image="registry.invalid/a:2"))
    assert changed["metadata"]["generation"] == 2
    assert changed["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]
    assert changed["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.invalid/a:2"


async def test_managed_fields_name_what_the_manager_applied(api: KubeApi, ns: str) -> None:
    created = await api.apply(deployment(ns, "c4", replicas=2))
    fields = owned_paths(created, kubeapi.FIELD_MANAGER)
    assert "f:replicas" in fields["f:spec"]
    without = await api.apply(deployment(ns, "c5", replicas=None))
    assert "f:replicas" not in owned_paths(without, kubeapi.FIELD_MANAGER).get("f:spec", {})


async def test_a_field_the_manager_stops_applying_is_removed(api: KubeApi, ns: str) -> None:
    await api.apply(deployment(ns, "c6", labels={"team": "a", "tier": "x"}))
    after = await api.apply(deployment(ns, "c6", labels={"team": "a"}))
    assert after["metadata"]["labels"] == {"team": "a"}


async def test_a_conflicting_value_is_409_unless_forced(api: KubeApi, ns: str) -> None:
    await api.apply(deployment(ns, "c7", replicas=2), field_manager=OTHER)
    with pytest.raises(ApiError) as refused:
        await api.apply(deployment(ns, "c7", replicas=3), force=False)
    assert refused.value.status == 409
    unchanged = await api.get(kubeapi.DEPLOYMENT, ns, "c7")
    assert unchanged is not None
    assert unchanged["spec"]["replicas"] == 2
    forced = await api.apply(deployment(ns, "c7", replicas=3))
    assert forced["spec"]["replicas"] == 3
    assert "f:replicas" not in owned_paths(forced, OTHER).get("f:spec", {})


async def test_the_same_value_from_two_managers_is_shared_not_a_conflict(api: KubeApi, ns: str) -> None:
    await api.apply(deployment(ns, "c8", replicas=2), field_manager=OTHER)
    shared = await api.apply(deployment(ns, "c8", replicas=2), force=False)
    assert "f:replicas" in owned_paths(shared, kubeapi.FIELD_MANAGER)["f:spec"]
    assert "f:replicas" in owned_paths(shared, OTHER)["f:spec"]
    # and it stays while the other manager still holds it
    after = await api.apply(deployment(ns, "c8", replicas=None))
    assert after["spec"]["replicas"] == 2


async def test_a_second_controller_reference_is_422_and_writes_nothing(api: KubeApi, ns: str) -> None:
    # real owners: the garbage collector deletes a dependent whose owner does not exist
    theirs = owner_ref((await api.apply(model(ns, "theirs")))["metadata"]["uid"], "theirs")
    ours = owner_ref((await api.apply(model(ns, "ours")))["metadata"]["uid"], "ours")
    first = await api.apply(deployment(ns, "c9", ownerReferences=[theirs]), field_manager=OTHER)
    with pytest.raises(ApiError) as refused:
        await api.apply(deployment(ns, "c9", ownerReferences=[ours]), force=False)
    assert refused.value.status == 422
    after = await api.get(kubeapi.DEPLOYMENT, ns, "c9")
    assert after is not None
    assert after["metadata"]["generation"] == first["metadata"]["generation"]
    assert [r["uid"] for r in after["metadata"]["ownerReferences"]] == [theirs["uid"]]


async def test_status_is_its_own_subresource(api: KubeApi, ns: str) -> None:
    created = await api.apply(model(ns, "m1"))
    written = await api.patch_status(kubeapi.MODEL_DEPLOYMENT, ns, "m1", {"observedGeneration": 1})
    assert written["status"] == {"observedGeneration": 1}
    assert written["metadata"]["generation"] == created["metadata"]["generation"]
    assert written["spec"] == created["spec"]
    # an apply of the main resource neither writes nor clears status
    applied = await api.apply({**model(ns, "m1", version="2.0.0"), "status": {"observedGeneration": 7}})
    assert applied["status"] == {"observedGeneration": 1}
    assert applied["metadata"]["generation"] == 2


async def test_status_of_a_missing_object_is_404(api: KubeApi, ns: str) -> None:
    with pytest.raises(ApiError) as missing:
        await api.patch_status(kubeapi.MODEL_DEPLOYMENT, ns, "never-made", {"observedGeneration": 1})
    assert missing.value.status == 404


async def test_delete_honours_the_uid_precondition(api: KubeApi, ns: str) -> None:
    created = await api.apply(deployment(ns, "d1"))
    assert await api.delete(kubeapi.DEPLOYMENT, ns, "d1", uid="00000000-0000-0000-0000-000000000000") is False
    assert await api.get(kubeapi.DEPLOYMENT, ns, "d1") is not None
    assert await api.delete(kubeapi.DEPLOYMENT, ns, "d1", uid=created["metadata"]["uid"]) is True
    assert await api.get(kubeapi.DEPLOYMENT, ns, "d1") is None
    assert await api.delete(kubeapi.DEPLOYMENT, ns, "d1") is False


async def test_create_of_an_existing_name_is_409(api: KubeApi, ns: str) -> None:
    await api.create(kubeapi.DEPLOYMENT, ns, deployment(ns, "d2"))
    with pytest.raises(ApiError) as exists:
        await api.create(kubeapi.DEPLOYMENT, ns, deployment(ns, "d2"))
    assert exists.value.status == 409


async def test_replace_with_a_stale_resource_version_is_409(api: KubeApi, ns: str) -> None:
    created = await api.create(kubeapi.DEPLOYMENT, ns, deployment(ns, "d3"))
    await api.apply(deployment(ns, "d3", image="registry.invalid/a:2"), field_manager=OTHER)
    stale = deployment(ns, "d3", image="registry.invalid/a:3")
    stale["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    with pytest.raises(ApiError) as conflict:
        await api.replace(kubeapi.DEPLOYMENT, ns, "d3", stale)
    assert conflict.value.status == 409


async def test_list_filters_by_label_and_gives_a_version(api: KubeApi, ns: str) -> None:
    await api.apply(deployment(ns, "l1", labels={"pick": "me"}))
    await api.apply(deployment(ns, "l2", labels={"pick": "other"}))
    listed = await api.list(kubeapi.DEPLOYMENT, ns, "pick=me")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["l1"]
    assert listed["metadata"]["resourceVersion"]


async def test_watch_from_a_list_sees_what_happens_after_it(api: KubeApi, ns: str) -> None:
    listed = await api.list(kubeapi.DEPLOYMENT, ns, "watched=yes")
    seen: list[tuple[str, str, str]] = []

    async def watch() -> None:
        stream = api.watch(kubeapi.DEPLOYMENT, ns, listed["metadata"]["resourceVersion"], label_selector="watched=yes")
        async for event in stream:
            if event["type"] == "BOOKMARK":
                continue
            obj = event["object"]
            image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
            seen.append((event["type"], obj["metadata"]["name"], image))
            if event["type"] == "DELETED":
                return

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    created = await api.apply(deployment(ns, "w1", labels={"watched": "yes"}))
    await api.apply(deployment(ns, "w2"))  # not selected
    await api.apply(deployment(ns, "w1", image="registry.invalid/a:2", labels={"watched": "yes"}))
    await api.delete(kubeapi.DEPLOYMENT, ns, "w1", uid=created["metadata"]["uid"])
    try:
        await asyncio.wait_for(task, 20)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # the real apiserver adds MODIFIED events of its own (the Deployment controller writes status)
    assert seen[0] == ("ADDED", "w1", "registry.invalid/a:1")
    assert ("MODIFIED", "w1", "registry.invalid/a:2") in seen
    assert seen[-1][:2] == ("DELETED", "w1")
    assert {name for _, name, _ in seen} == {"w1"}


async def test_events_are_posted_and_counted_and_a_gone_one_is_404(api: KubeApi, ns: str) -> None:
    involved = await api.apply(model(ns, "e1"))
    name = await api.post_event(involved, type_="Normal", reason="Tested", message="hello")
    event = await api.get(kubeapi.EVENT, ns, name)
    assert event is not None
    assert (event["reason"], event["count"]) == ("Tested", 1)
    await api.bump_event(ns, name, 2)
    bumped = await api.get(kubeapi.EVENT, ns, name)
    assert bumped is not None
    assert bumped["count"] == 2
    with pytest.raises(ApiError) as gone:
        await api.bump_event(ns, "no-such-event", 2)
    assert gone.value.status == 404
