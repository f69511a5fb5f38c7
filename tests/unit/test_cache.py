"""ObjectCache: the latest copy of each watched object, and the label index used to find pods."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from modeldeploy.controller.cache import ObjectCache, controller_uid, key_of, owner_name, slim, slim_pod
from modeldeploy.kubeapi import FIELD_MANAGER

LABEL = "modeldeploy.io/name"
Obj = dict[str, Any]


def obj(name: str, namespace: str = "ns", *, child: str | None = None, rv: str = "1", **extra: Any) -> Obj:
    metadata: Obj = {"name": name, "namespace": namespace, "resourceVersion": rv}
    if child is not None:
        metadata["labels"] = {LABEL: child}
    return {"metadata": metadata, **extra}


def names(objects: list[Obj]) -> list[str]:
    return [o["metadata"]["name"] for o in objects]


def test_key_of() -> None:
    assert key_of(obj("iris", "models")) == ("models", "iris")
    assert key_of({"metadata": {"name": "cluster-scoped"}}) == ("", "cluster-scoped")
    assert key_of({}) == ("", "")


@pytest.mark.parametrize("event", [None, "ADDED", "MODIFIED"])
def test_upsert_events_store_the_latest_object(event: str | None) -> None:
    cache = ObjectCache()
    cache.apply_event(event, obj("a", rv="1"))
    cache.apply_event(event, obj("a", rv="2"))
    stored = cache.get(("ns", "a"))
    assert stored is not None
    assert stored["metadata"]["resourceVersion"] == "2"
    assert len(cache) == 1


def test_deleted_removes_and_unknown_deletes_are_harmless() -> None:
    cache = ObjectCache()
    cache.apply_event("ADDED", obj("a"))
    cache.apply_event("DELETED", obj("a"))
    assert cache.get(("ns", "a")) is None
    assert len(cache) == 0
    cache.apply_event("DELETED", obj("never-seen"))
    assert len(cache) == 0


def test_namespaces_are_separate() -> None:
    cache = ObjectCache()
    cache.apply_event("ADDED", obj("a", "one", rv="1"))
    cache.apply_event("ADDED", obj("a", "two", rv="2"))
    assert len(cache) == 2
    assert sorted(cache.known_keys()) == [("one", "a"), ("two", "a")]
    cache.apply_event("DELETED", obj("a", "one"))
    assert cache.known_keys() == [("two", "a")]


def test_known_keys_is_a_snapshot() -> None:
    cache = ObjectCache()
    cache.apply_event("ADDED", obj("a"))
    keys = cache.known_keys()
    cache.apply_event("ADDED", obj("b"))
    assert keys == [("ns", "a")]


def test_by_label_without_an_index_finds_nothing() -> None:
    cache = ObjectCache()
    cache.apply_event("ADDED", obj("pod-1", child="iris"))
    assert cache.by_label("ns", "iris") == []


def test_by_label_finds_objects_sorted_by_key_within_a_namespace() -> None:
    cache = ObjectCache(index_label=LABEL)
    for name in ("pod-c", "pod-a", "pod-b"):
        cache.apply_event("ADDED", obj(name, child="iris"))
    cache.apply_event("ADDED", obj("pod-x", child="other"))
    cache.apply_event("ADDED", obj("pod-y", "elsewhere", child="iris"))
    cache.apply_event("ADDED", obj("unlabelled"))
    assert names(cache.by_label("ns", "iris")) == ["pod-a", "pod-b", "pod-c"]
    assert names(cache.by_label("ns", "other")) == ["pod-x"]
    assert names(cache.by_label("elsewhere", "iris")) == ["pod-y"]
    assert cache.by_label("ns", "missing") == []


def test_by_label_returns_the_latest_version() -> None:
    cache = ObjectCache(index_label=LABEL)
    cache.apply_event("ADDED", obj("pod-a", child="iris", rv="1"))
    cache.apply_event("MODIFIED", obj("pod-a", child="iris", rv="2"))
    assert [o["metadata"]["resourceVersion"] for o in cache.by_label("ns", "iris")] == ["2"]


def test_relabelling_moves_the_object_between_index_entries() -> None:
    cache = ObjectCache(index_label=LABEL)
    cache.apply_event("ADDED", obj("pod-a", child="iris"))
    cache.apply_event("MODIFIED", obj("pod-a", child="rose"))
    assert cache.by_label("ns", "iris") == []
    assert names(cache.by_label("ns", "rose")) == ["pod-a"]
    cache.apply_event("MODIFIED", obj("pod-a"))  # label removed
    assert cache.by_label("ns", "rose") == []
    assert cache.get(("ns", "pod-a")) is not None


def test_deleting_unindexes_even_when_the_deleted_body_has_other_labels() -> None:
    cache = ObjectCache(index_label=LABEL)
    cache.apply_event("ADDED", obj("pod-a", child="iris"))
    cache.apply_event("DELETED", obj("pod-a", child="something-else"))
    assert cache.by_label("ns", "iris") == []
    assert cache.by_label("ns", "something-else") == []
    cache.apply_event("ADDED", obj("pod-a", child="iris"))
    assert names(cache.by_label("ns", "iris")) == ["pod-a"]


def test_index_entries_do_not_leak() -> None:
    cache = ObjectCache(index_label=LABEL)
    for i in range(50):
        cache.apply_event("ADDED", obj(f"pod-{i}", child=f"model-{i}"))
        cache.apply_event("DELETED", obj(f"pod-{i}"))
    assert len(cache) == 0
    assert cache._index == {}


# ---- owner references --------------------------------------------------------------------------


def _owned(*refs: Obj) -> Obj:
    return {"metadata": {"name": "x", "namespace": "ns", "ownerReferences": list(refs)}}


def test_controller_uid() -> None:
    assert controller_uid(obj("x")) is None
    assert controller_uid({"metadata": {"ownerReferences": None}}) is None
    assert controller_uid(_owned({"kind": "ReplicaSet", "uid": "u1"})) is None
    assert controller_uid(_owned({"kind": "ReplicaSet", "uid": "u1", "controller": False})) is None
    assert (
        controller_uid(
            _owned({"kind": "Other", "uid": "u0"}, {"kind": "ModelDeployment", "uid": "u1", "controller": True})
        )
        == "u1"
    )


def test_owner_name_needs_the_controlling_reference_of_that_kind() -> None:
    owned = _owned(
        {"kind": "ModelDeployment", "name": "not-controller", "uid": "u0"},
        {"kind": "ModelDeployment", "name": "iris", "uid": "u1", "controller": True},
    )
    assert owner_name(owned, "ModelDeployment") == "iris"
    assert owner_name(owned, "ReplicaSet") is None
    assert owner_name(_owned({"kind": "ReplicaSet", "name": "rs", "controller": True}), "ModelDeployment") is None
    assert owner_name(obj("x"), "ModelDeployment") is None


def uid_obj(name: str, namespace: str = "ns", *, rv: str = "1", uid: str = "u1") -> Obj:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": rv, "uid": uid}}


def test_replace_drops_what_the_list_no_longer_has_and_reports_it() -> None:
    cache = ObjectCache()
    for name in ("kept", "deleted-during-gap"):
        cache.apply_event("ADDED", uid_obj(name))
    since = cache.mark()
    gone = cache.replace([uid_obj("kept", rv="2"), uid_obj("new")], namespace=None, since=since)
    assert names(gone) == ["deleted-during-gap"]
    assert sorted(k[1] for k in cache.known_keys()) == ["kept", "new"]
    assert cache.get(("ns", "kept"))["metadata"]["resourceVersion"] == "2"  # type: ignore[index]


def test_replace_keeps_what_was_stored_after_the_list_started() -> None:
    """Our own write that lands while the list is in flight is newer than the list."""
    cache = ObjectCache()
    since = cache.mark()
    cache.apply_event("MODIFIED", uid_obj("written-meanwhile"))
    assert cache.replace([], namespace=None, since=since) == []
    assert cache.get(("ns", "written-meanwhile")) is not None


def test_replace_of_one_namespace_leaves_the_others_alone() -> None:
    cache = ObjectCache()
    cache.apply_event("ADDED", uid_obj("a", "one"))
    cache.apply_event("ADDED", uid_obj("b", "two"))
    gone = cache.replace([], namespace="one", since=cache.mark())
    assert names(gone) == ["a"]
    assert cache.known_keys() == [("two", "b")]


def test_replace_updates_the_label_index() -> None:
    cache = ObjectCache(index_label=LABEL)
    cache.apply_event("ADDED", obj("pod-a", child="iris"))
    cache.replace([], namespace=None, since=cache.mark())
    assert cache.by_label("ns", "iris") == []


def test_an_older_version_of_the_same_object_does_not_overwrite_a_newer_one() -> None:
    cache = ObjectCache()
    assert cache.apply_event("MODIFIED", uid_obj("a", rv="20"))  # what our own write returned
    assert not cache.apply_event("MODIFIED", uid_obj("a", rv="19"))  # a watch event already in flight
    assert cache.get(("ns", "a"))["metadata"]["resourceVersion"] == "20"  # type: ignore[index]
    # a new object under the same name (another uid) is never "older"
    assert cache.apply_event("ADDED", uid_obj("a", rv="5", uid="u2"))
    assert cache.get(("ns", "a"))["metadata"]["uid"] == "u2"  # type: ignore[index]


def _full_pod(name: str, **status: Any) -> Obj:
    """A pod shaped as the apiserver sends it, with the parts the operator never reads."""
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "resourceVersion": "7",
            "labels": {LABEL: "iris", "pod-template-hash": "abc"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "iris-abc", "uid": "rs", "controller": True}],
            "managedFields": [{"manager": "kube-scheduler", "operation": "Update", "fieldsV1": {"f:status": {}}}],
            **({"deletionTimestamp": status.pop("deleting")} if "deleting" in status else {}),
        },
        "spec": {"containers": [{"name": "model-server", "image": "x", "env": [{"name": "A", "value": "1"}] * 20}]},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"ready": True}],
            **status,
        },
    }


POD_SHAPES = [
    _full_pod("running", phase="Running", podIP="127.0.0.5"),
    _full_pod("pending", phase="Pending"),
    _full_pod("no-ip", phase="Running"),
    _full_pod("bad-ip", phase="Running", podIP="not-an-ip"),
    _full_pod("going", phase="Running", podIP="127.0.0.6", deleting="2026-11-28T10:00:00Z"),
]


def test_a_slim_pod_answers_every_question_the_operator_asks_of_a_pod_as_the_full_one_does() -> None:
    import copy

    from modeldeploy.probing.targets import ProbeSettings, targets_from_pods
    from modeldeploy.status.compute import HealthReport, for_current_pods

    slim = [slim_pod(copy.deepcopy(p)) for p in POD_SHAPES]
    settings = ProbeSettings(port=8080, model_name="iris")
    assert targets_from_pods(slim, settings) == targets_from_pods(POD_SHAPES, settings)
    report = HealthReport(probed_at=datetime.now(UTC), replicas=())
    assert for_current_pods(report, slim) == for_current_pods(report, POD_SHAPES)
    assert controller_uid(slim[0]) == controller_uid(POD_SHAPES[0]) == "rs"
    cache = ObjectCache(index_label=LABEL, transform=slim_pod)
    for pod in copy.deepcopy(POD_SHAPES):
        cache.apply_event("ADDED", pod)
    assert names(cache.by_label("ns", "iris")) == sorted(p["metadata"]["name"] for p in POD_SHAPES)
    stored = cache.get(("ns", "running"))
    assert stored is not None
    assert "spec" not in stored
    assert set(stored["status"]) == {"phase", "podIP"}


def test_slim_keeps_of_managed_fields_only_whether_our_apply_owns_the_replica_count() -> None:
    ours = {
        "manager": FIELD_MANAGER,
        "operation": "Apply",
        "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}},
    }
    theirs = {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    annotations = {"keep": "me", "kubectl.kubernetes.io/last-applied-configuration": "{...}"}
    deployment = slim(
        {"metadata": {"name": "d", "managedFields": [theirs, ours], "annotations": dict(annotations)}, "spec": {}}
    )
    assert deployment["metadata"]["managedFields"] == [
        {"manager": FIELD_MANAGER, "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    ]
    assert deployment["metadata"]["annotations"] == {"keep": "me"}
    hpa_owned = slim({"metadata": {"name": "d", "managedFields": [theirs, {**ours, "fieldsV1": {"f:spec": {}}}]}})
    assert hpa_owned["metadata"]["managedFields"][0]["fieldsV1"] == {}
    assert "managedFields" not in slim({"metadata": {"name": "d", "managedFields": [theirs]}})["metadata"]


def test_stored_objects_share_their_keys() -> None:
    import json

    text = json.dumps({"metadata": {"name": "a"}, "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}})
    one, two = slim(json.loads(text)), slim(json.loads(text))
    assert one == json.loads(text)
    key_one = next(k for k in one["spec"]["template"]["spec"] if k == "containers")
    key_two = next(k for k in two["spec"]["template"]["spec"] if k == "containers")
    assert key_one is key_two
