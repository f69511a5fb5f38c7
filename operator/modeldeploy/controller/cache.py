"""In-memory copies of the objects the operator watches, fed by kopf's watch events.

Only objects we own (labelled managed-by modeldeploy) and our own ModelDeployments are kept,
so memory grows with what we manage, not with the cluster.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)


def key_of(obj: Obj) -> Key:
    metadata = obj.get("metadata", {})
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))


class ObjectCache:
    """Latest version of each object of one kind, by (namespace, name)."""

    def __init__(self, index_label: str | None = None) -> None:
        self._objects: dict[Key, Obj] = {}
        self._index_label = index_label
        self._index: dict[tuple[str, str], set[Key]] = defaultdict(set)

    def __len__(self) -> int:
        return len(self._objects)

    def get(self, key: Key) -> Obj | None:
        return self._objects.get(key)

    def known_keys(self) -> list[Key]:
        return list(self._objects)

    def by_label(self, namespace: str, value: str) -> list[Obj]:
        """Objects in `namespace` whose index label equals `value` (e.g. pods of one child)."""
        return [self._objects[k] for k in sorted(self._index.get((namespace, value), ())) if k in self._objects]

    def apply_event(self, event_type: str | None, obj: Obj) -> None:
        key = key_of(obj)
        self._unindex(key)
        if event_type == "DELETED":
            self._objects.pop(key, None)
            return
        self._objects[key] = obj
        if self._index_label is not None:
            value = obj.get("metadata", {}).get("labels", {}).get(self._index_label)
            if value is not None:
                self._index[(key[0], value)].add(key)

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
