"""In-memory copies of the objects the operator watches, fed by its informers.

Only objects we own (labelled managed-by modeldeploy) and our own ModelDeployments are kept,
so memory grows with what we manage, not with the cluster.

A watch can miss deletions: an object deleted while the stream was down never produces a
DELETED event, only its absence from the next list. `replace` therefore makes the cache equal
to a fresh list (client-go's informer semantics) and reports what disappeared, so an owner is
not reconciled, nor its children re-applied, after it is gone.
"""

from __future__ import annotations

import itertools
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from modeldeploy.kubeapi import FIELD_MANAGER
from modeldeploy.status.artifacts import slim_fetch_status

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)


def key_of(obj: Obj) -> Key:
    metadata = obj.get("metadata", {})
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))


def _revision(obj: Obj) -> int | None:
    """The object's resourceVersion as a number, when it is one.

    resourceVersions are opaque by contract, but the apiserver's etcd storage hands out etcd
    revisions, which only grow. The one comparison made with them keeps a watch event that
    was already on its way from overwriting the newer object our own write just returned.
    """
    value = obj.get("metadata", {}).get("resourceVersion")
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class ObjectCache:
    """Latest version of each object of one kind, by (namespace, name)."""

    def __init__(self, index_label: str | None = None, transform: Callable[[Obj], Obj] | None = None) -> None:
        self._transform = transform or slim
        self._objects: dict[Key, Obj] = {}
        self._touched: dict[Key, int] = {}
        self._clock = itertools.count(1)
        self._index_label = index_label
        self._index: dict[tuple[str, str], set[Key]] = defaultdict(set)
        # False while the apiserver does not serve the kind (an optional CRD not installed): what the
        # reconciler reports instead of applying into a 404
        self.served = True

    def __len__(self) -> int:
        return len(self._objects)

    def get(self, key: Key) -> Obj | None:
        return self._objects.get(key)

    def known_keys(self) -> list[Key]:
        return list(self._objects)

    def by_label(self, namespace: str, value: str) -> list[Obj]:
        """Objects in `namespace` whose index label equals `value` (e.g. pods of one child)."""
        return [self._objects[k] for k in sorted(self._index.get((namespace, value), ())) if k in self._objects]

    def mark(self) -> int:
        """A point in the cache's history: `replace` keeps what was stored after it."""
        return next(self._clock)

    def apply_event(self, event_type: str | None, obj: Obj) -> bool:
        """Store or drop `obj`; False when it is older than what the cache already holds."""
        key = key_of(obj)
        if event_type == "DELETED":
            self._unindex(key)
            self._objects.pop(key, None)
            self._touched.pop(key, None)
            return True
        held = self._objects.get(key)
        if held is not None and held.get("metadata", {}).get("uid") == obj.get("metadata", {}).get("uid"):
            old, new = _revision(held), _revision(obj)
            if old is not None and new is not None and new < old:
                return False
        obj = self._transform(obj)
        self._unindex(key)
        self._objects[key] = obj
        self._touched[key] = next(self._clock)
        if self._index_label is not None:
            value = obj.get("metadata", {}).get("labels", {}).get(self._index_label)
            if value is not None:
                self._index[(key[0], value)].add(key)
        return True

    def replace(self, listed: Iterable[Obj], *, namespace: str | None, since: int) -> list[Obj]:
        """Make the cache (in `namespace`, or everywhere) equal a list taken after mark `since`.

        Returns the objects that were dropped because the list no longer has them. An object
        stored after `since` (our own write while the list was in flight) is newer than the
        list, so it stays.
        """
        seen: set[Key] = set()
        for obj in listed:
            seen.add(key_of(obj))
            self.apply_event(None, obj)
        gone = [
            obj
            for key, obj in list(self._objects.items())
            if key not in seen and (namespace is None or key[0] == namespace) and self._touched.get(key, 0) < since
        ]
        for obj in gone:
            self.apply_event("DELETED", obj)
        return gone

    def _unindex(self, key: Key) -> None:
        previous = self._objects.get(key)
        if previous is None or self._index_label is None:
            return
        value = previous.get("metadata", {}).get("labels", {}).get(self._index_label)
        if value is not None:
            bucket = self._index.get((key[0], value))
            if bucket is not None:
                bucket.discard(key)
                if not bucket:
                    del self._index[(key[0], value)]


def controller_uid(obj: Obj) -> str | None:
    """The uid of the object's controlling owner, if any."""
    for ref in obj.get("metadata", {}).get("ownerReferences", []) or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def owner_name(obj: Obj, kind: str) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences", []) or []:
        if ref.get("controller") and ref.get("kind") == kind:
            return str(ref.get("name"))
    return None


REPLICAS_OWNED: Obj = {"f:spec": {"f:replicas": {}}}
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def slim(obj: Obj, field_manager: str = FIELD_MANAGER) -> Obj:
    """Drop what the operator never reads before the object is stored (client-go's transform).

    `managedFields` are a third to half of a Deployment or pod as the apiserver sends it; all
    the operator reads of them is whether its own apply owns `spec.replicas`. kubectl's
    client-side apply keeps a second copy of the whole object in an annotation.
    """
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return interned(obj)  # type: ignore[no-any-return]
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        del annotations[LAST_APPLIED]
    if "managedFields" not in metadata:
        return interned(obj)  # type: ignore[no-any-return]
    ours = [
        {
            "manager": field_manager,
            "operation": "Apply",
            "fieldsV1": REPLICAS_OWNED if "f:replicas" in (entry.get("fieldsV1") or {}).get("f:spec", {}) else {},
        }
        for entry in metadata.get("managedFields") or []
        if entry.get("manager") == field_manager and entry.get("operation") == "Apply"
    ]
    if ours:
        metadata["managedFields"] = ours
    else:
        del metadata["managedFields"]
    return interned(obj)  # type: ignore[no-any-return]


def interned(value: Any) -> Any:
    """The same JSON value, its keys shared with every other stored object.

    Each parsed object carries its own copy of every key ("metadata", "name", ...): about a
    third of a cached Deployment's memory, gone for about 80 microseconds per event.
    """
    if isinstance(value, dict):
        return {sys.intern(k): interned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interned(v) for v in value]
    return value


POD_METADATA = ("name", "namespace", "uid", "resourceVersion", "labels", "deletionTimestamp", "ownerReferences")
POD_STATUS = ("phase", "podIP")


def slim_pod(obj: Obj) -> Obj:
    """A pod as the operator reads it: who it is, whether it is going, its phase, IP and model fetch.

    At a thousand models the pods were the largest thing the operator held (17 KiB each as
    parsed JSON, spec and status in full), for four fields it reads.
    """
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    slimmed = {
        "metadata": {k: metadata[k] for k in POD_METADATA if k in metadata},
        "status": {k: status[k] for k in POD_STATUS if k in status},
    }
    fetching = slim_fetch_status(status)
    if fetching:
        slimmed["status"]["initContainerStatuses"] = fetching
    return interned(slimmed)  # type: ignore[no-any-return]
