"""An in-memory `KubeApi` with the apiserver semantics the controller relies on.

What it keeps, each checked against the real apiserver by `tests/kubeapi_contract.py`:
server-side apply with field managers (ownership per field, 409 on a conflicting value
unless forced, fields a manager stops applying removed when nobody else owns them),
resourceVersion (a write that changes nothing is not a write), generation (spec changes
only), the status subresource (apply and PUT leave status alone, patch_status touches
nothing else), owner references (one controller at most: 422), uid preconditions on
delete, 404/409 answers, list with label selectors, and watch from a resourceVersion.

What it leaves out, on purpose: schema validation and defaulting, admission, namespaces
(objects may live in any), garbage collection (deleting an owner leaves its children),
list-map merging other than ownerReferences (other lists are atomic, as `x-kubernetes-
list-type: atomic` would make them), field selectors and pagination, and a new resourceVersion
for a write that changes only who manages a field (the real one bumps it).
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modeldeploy import kubeapi
from modeldeploy.kubeapi import FIELD_MANAGER, ApiError, Kind

Obj = dict[str, Any]
Path = tuple[str, ...]
StoreKey = tuple[str, str | None, str]  # (plural, namespace, name)

# Never owned by a manager: the object's identity and what the server sets.
_UNOWNED: set[Path] = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}
_OWNER_REFS: Path = ("metadata", "ownerReferences")
_UID = "uid="
_SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")


@dataclass
class _Stored:
    obj: Obj
    # manager -> (operation, leaf paths it owns)
    owners: dict[str, tuple[str, set[Path]]] = field(default_factory=dict)


@dataclass
class _Event:
    version: int
    type: str
    plural: str
    obj: Obj


class FakeKube:
    """One in-memory API server; `requests` counts calls by (verb, plural) like the real client's metric."""

    def __init__(self) -> None:
        self._objects: dict[StoreKey, _Stored] = {}
        self._versions = itertools.count(1)
        self._version = 0
        self._log: list[_Event] = []
        self._changed = asyncio.Condition()
        self.requests: list[tuple[str, str]] = []
        # A hook to fail the next call of a verb on a plural: (verb, plural) -> error to raise once.
        self.fail_next: dict[tuple[str, str], ApiError] = {}

    # ---- KubeApi ---------------------------------------------------------------------------
    async def get(self, kind: Kind, namespace: str | None, name: str) -> Obj | None:
        self._count("GET", kind)
        stored = self._objects.get((kind.plural, _ns(kind, namespace), name))
        return None if stored is None else self._view(stored)

    async def list(
        self, kind: Kind, namespace: str | None, label_selector: str | None = None, *, page_size: int = 500
    ) -> Obj:
        self._count("LIST", kind)
        wanted = _selector(label_selector)
        items = [
            self._view(stored)
            for (plural, ns, _), stored in sorted(self._objects.items(), key=lambda kv: str(kv[0]))
            if plural == kind.plural and (namespace is None or ns == namespace) and wanted(stored.obj)
        ]
        return {"kind": f"{kind.kind}List", "items": items, "metadata": {"resourceVersion": str(self._version)}}

    async def watch(
        self,
        kind: Kind,
        namespace: str | None,
        resource_version: str,
        *,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[Obj]:
        self._count("WATCH", kind)
        wanted = _selector(label_selector)
        after = int(resource_version or 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        while True:
            for event in [e for e in self._log if e.version > after]:
                after = event.version
                obj = event.obj
                in_scope = namespace is None or obj["metadata"].get("namespace") == namespace
                if event.plural == kind.plural and in_scope and wanted(obj):
                    yield {"type": event.type, "object": copy.deepcopy(obj)}
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    return

    async def create(self, kind: Kind, namespace: str, obj: Mapping[str, Any]) -> Obj:
        self._count("POST", kind)
        body = copy.deepcopy(dict(obj))
        body.setdefault("metadata", {})["namespace"] = _ns(kind, namespace)
        key = self._key(kind, body)
        if key in self._objects:
            raise ApiError(409, "AlreadyExists", f'{kind.plural} "{key[2]}" already exists')
        _check_owners(body)
        stored = _Stored(self._stamp_new(body), {"unknown": ("Update", _leaf_paths(body))})
        return await self._store(key, stored, "ADDED")

    async def replace(self, kind: Kind, namespace: str, name: str, obj: Mapping[str, Any]) -> Obj:
        self._count("PUT", kind)
        stored = self._existing(kind, namespace, name)
        body = copy.deepcopy(dict(obj))
        version = body.get("metadata", {}).get("resourceVersion")
        if version is not None and version != stored.obj["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.plural} "{name}": object modified')
        _check_owners(body)
        new = _with_server_fields(body, stored.obj)
        new["status"] = copy.deepcopy(stored.obj.get("status"))
        if new["status"] is None:
            new.pop("status")
        _take_changed(stored, new, "unknown", "Update")
        return await self._update(kind, stored, new)

    async def apply(self, obj: Mapping[str, Any], *, field_manager: str = FIELD_MANAGER, force: bool = True) -> Obj:
        kind = kubeapi.KINDS_BY_NAME[str(obj["kind"])]
        self._count("APPLY", kind)
        applied = copy.deepcopy(dict(obj))
        applied.pop("status", None)  # status belongs to the subresource
        for server_field in _SERVER_FIELDS:
            applied.get("metadata", {}).pop(server_field, None)
        key = self._key(kind, applied)
        paths = _leaf_paths(applied)
        stored = self._objects.get(key)
        if stored is None:
            _check_owners(applied)
            return await self._store(key, _Stored(self._stamp_new(applied), {field_manager: ("Apply", paths)}), "ADDED")
        conflicts = [
            (manager, path)
            for manager, (_, owned) in stored.owners.items()
            if manager != field_manager
            for path in sorted(paths & owned)
            if _get(stored.obj, path) != _get(applied, path)
        ]
        if conflicts and not force:
            listed = "; ".join(f'conflict with "{m}": .{".".join(p)}' for m, p in conflicts)
            raise ApiError(409, "Conflict", f"Apply failed with {len(conflicts)} conflicts: {listed}")
        new = copy.deepcopy(stored.obj)
        previous = stored.owners.get(field_manager, ("Apply", set()))[1]
        others = set().union(*(o for m, (_, o) in stored.owners.items() if m != field_manager))
        for path in previous - paths - others:
            _remove(new, path)
        _merge(new, applied)
        _check_owners(new)
        for manager, path in conflicts:
            stored.owners[manager][1].discard(path)
        stored.owners[field_manager] = ("Apply", paths)
        return await self._update(kind, stored, new)

    async def patch_status(self, kind: Kind, namespace: str, name: str, status: Mapping[str, Any]) -> Obj:
        self._count("PATCH", kind, "status")
        stored = self._existing(kind, namespace, name)
        new = copy.deepcopy(stored.obj)
        new["status"] = copy.deepcopy(dict(status))
        return await self._update(kind, stored, new)

    async def delete(self, kind: Kind, namespace: str, name: str, *, uid: str | None = None) -> bool:
        self._count("DELETE", kind)
        key = (kind.plural, _ns(kind, namespace), name)
        stored = self._objects.get(key)
        if stored is None or (uid is not None and stored.obj["metadata"]["uid"] != uid):
            return False
        del self._objects[key]
        await self._record("DELETED", kind.plural, stored.obj)
        return True

    async def post_event(
        self, involved: Mapping[str, Any], *, type_: str, reason: str, message: str, component: str = "modeldeploy"
    ) -> str:
        metadata = involved["metadata"]
        name = f"{metadata['name'][:200]}.{uuid.uuid4().hex[:12]}"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": metadata["namespace"]},
            "involvedObject": {"kind": involved.get("kind"), "name": metadata["name"], "uid": metadata.get("uid")},
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": component},
            "count": 1,
        }
        await self.create(kubeapi.EVENT, metadata["namespace"], event)
        return name

    async def bump_event(self, namespace: str, name: str, count: int) -> None:
        self._count("PATCH", kubeapi.EVENT)
        stored = self._existing(kubeapi.EVENT, namespace, name)
        new = copy.deepcopy(stored.obj)
        new["count"] = count
        await self._update(kubeapi.EVENT, stored, new)

    async def aclose(self) -> None:
        return None

    # ---- test helpers (not part of KubeApi) -------------------------------------------------
    def objects(self, kind: Kind, namespace: str | None = None) -> builtins.list[Obj]:
        return [
            self._view(s)
            for (plural, ns, _), s in self._objects.items()
            if plural == kind.plural and (namespace is None or ns == namespace)
        ]

    def events(self, namespace: str | None = None) -> builtins.list[tuple[str, str]]:
        """(type, reason) of every Event posted, oldest first."""
        return [(e["type"], e["reason"]) for e in self.objects(kubeapi.EVENT, namespace)]

    async def edit(self, kind: Kind, namespace: str, name: str, change: Callable[[Obj], None], manager: str) -> Obj:
        """A hand edit (`kubectl edit`): an Update by another manager, which then owns what it changed."""
        stored = self._existing(kind, namespace, name)
        new = copy.deepcopy(stored.obj)
        change(new)
        _take_changed(stored, new, manager, "Update")
        return await self._update(kind, stored, new)

    def writes(self) -> builtins.list[tuple[str, str]]:
        return [r for r in self.requests if r[0] not in ("GET", "LIST", "WATCH")]

    # ---- internals ---------------------------------------------------------------------------
    def _count(self, verb: str, kind: Kind, subresource: str | None = None) -> None:
        resource = kind.plural if subresource is None else f"{kind.plural}/{subresource}"
        self.requests.append((verb, resource))
        error = self.fail_next.pop((verb, resource), None)
        if error is not None:
            raise error

    def _key(self, kind: Kind, obj: Obj) -> StoreKey:
        metadata = obj.get("metadata") or {}
        if not metadata.get("name"):
            raise ApiError(422, "Invalid", "metadata.name: Required value: name is required")
        return (kind.plural, _ns(kind, metadata.get("namespace")), metadata["name"])

    def _existing(self, kind: Kind, namespace: str | None, name: str) -> _Stored:
        stored = self._objects.get((kind.plural, _ns(kind, namespace), name))
        if stored is None:
            raise ApiError(404, "NotFound", f'{kind.plural} "{name}" not found')
        return stored

    def _stamp_new(self, obj: Obj) -> Obj:
        metadata = obj.setdefault("metadata", {})
        metadata["uid"] = str(uuid.uuid4())
        metadata["generation"] = 1
        metadata["creationTimestamp"] = "2026-01-01T00:00:00Z"
        return obj

    async def _store(self, key: StoreKey, stored: _Stored, event: str) -> Obj:
        self._version = next(self._versions)
        stored.obj["metadata"]["resourceVersion"] = str(self._version)
        self._objects[key] = stored
        await self._record(event, key[0], stored.obj)
        return self._view(stored)

    async def _update(self, kind: Kind, stored: _Stored, new: Obj) -> Obj:
        """Store `new` if it differs; a write that changes nothing keeps the resourceVersion."""
        if _comparable(new) == _comparable(stored.obj):
            return self._view(stored)
        if kind.kind != "Event" and new.get("spec") != stored.obj.get("spec"):
            new["metadata"]["generation"] = int(stored.obj["metadata"].get("generation", 1)) + 1
        stored.obj = new
        self._version = next(self._versions)
        new["metadata"]["resourceVersion"] = str(self._version)
        await self._record("MODIFIED", kind.plural, new)
        return self._view(stored)

    async def _record(self, type_: str, plural: str, obj: Obj) -> None:
        self._log.append(_Event(self._version, type_, plural, copy.deepcopy(obj)))
        async with self._changed:
            self._changed.notify_all()

    def _view(self, stored: _Stored) -> Obj:
        """The object as a client reads it, managedFields in the apiserver's FieldsV1 form."""
        obj = copy.deepcopy(stored.obj)
        obj["metadata"]["managedFields"] = [
            {
                "manager": manager,
                "operation": operation,
                "apiVersion": obj.get("apiVersion"),
                "fieldsType": "FieldsV1",
                "fieldsV1": _fields_v1(paths),
            }
            for manager, (operation, paths) in stored.owners.items()
            if paths
        ]
        return obj


def _ns(kind: Kind, namespace: str | None) -> str | None:
    return namespace if kind.namespaced else None


def _selector(text: str | None) -> Callable[[Obj], bool]:
    """Equality selectors (`a=b,c`), the only form the controller sends."""
    terms = [t.split("=", 1) if "=" in t else [t, None] for t in (text or "").split(",") if t]

    def matches(obj: Obj) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(k in labels and (v is None or labels[k] == v) for k, v in terms)

    return matches


def _leaf_paths(obj: Obj, prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for key, value in obj.items():
        path = (*prefix, key)
        if path in _UNOWNED or (len(path) == 2 and path[0] == "metadata" and key in _SERVER_FIELDS) or key == "status":
            continue
        if isinstance(value, dict) and value:
            paths |= _leaf_paths(value, path)
        elif path == _OWNER_REFS and isinstance(value, list):
            paths |= {(*path, _UID + str(ref.get("uid"))) for ref in value}  # a map keyed by uid, as there
        else:
            paths.add(path)
    return paths


def _get(obj: Obj, path: Path) -> Any:
    if path[:2] == _OWNER_REFS and len(path) == 3:
        refs = _get(obj, _OWNER_REFS) or []
        return next((r for r in refs if _UID + str(r.get("uid")) == path[2]), None)
    value: Any = obj
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _remove(obj: Obj, path: Path) -> None:
    if path[:2] == _OWNER_REFS and len(path) == 3:
        metadata = obj.get("metadata") or {}
        kept = [r for r in metadata.get("ownerReferences") or [] if _UID + str(r.get("uid")) != path[2]]
        if kept:
            metadata["ownerReferences"] = kept
        else:
            metadata.pop("ownerReferences", None)
        return
    parents: list[tuple[Obj, str]] = []
    value: Any = obj
    for key in path[:-1]:
        if not isinstance(value, dict) or key not in value:
            return
        parents.append((value, key))
        value = value[key]
    if isinstance(value, dict):
        value.pop(path[-1], None)
    for parent, key in reversed(parents):  # an emptied map goes too, as the apiserver prunes it
        if parent[key] == {}:
            del parent[key]


def _merge(live: Obj, applied: Obj) -> None:
    for key, value in applied.items():
        if key == "ownerReferences" and isinstance(value, list):
            by_uid = {ref.get("uid"): ref for ref in live.get(key) or []}
            by_uid.update({ref.get("uid"): copy.deepcopy(ref) for ref in value})
            live[key] = list(by_uid.values())
        elif isinstance(value, dict) and isinstance(live.get(key), dict):
            _merge(live[key], value)
        else:
            live[key] = copy.deepcopy(value)


def _check_owners(obj: Obj) -> None:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    if sum(1 for ref in refs if ref.get("controller")) > 1:
        raise ApiError(422, "Invalid", "metadata.ownerReferences: Only one reference can have Controller set to true")


def _with_server_fields(body: Obj, live: Obj) -> Obj:
    metadata = body.setdefault("metadata", {})
    for server_field in ("uid", "resourceVersion", "generation", "creationTimestamp"):
        metadata[server_field] = live["metadata"].get(server_field)
    metadata.pop("managedFields", None)
    return body


def _take_changed(stored: _Stored, new: Obj, manager: str, operation: str) -> None:
    """An Update: its manager now owns every leaf it changed, and the others lose those."""
    before, after = _leaf_paths(stored.obj), _leaf_paths(new)
    changed = {p for p in after if _get(new, p) != _get(stored.obj, p)} | (before - after)
    for other, (op, owned) in list(stored.owners.items()):
        stored.owners[other] = (op, (owned - changed) & after)
    _, mine = stored.owners.get(manager, (operation, set()))
    stored.owners[manager] = (operation, mine | (changed & after))


def _fields_v1(paths: set[Path]) -> Obj:
    tree: Obj = {}
    for path in paths:
        node = tree
        for key in path:
            name = f'k:{{"uid":"{key[len(_UID) :]}"}}' if key.startswith(_UID) else f"f:{key}"
            node = node.setdefault(name, {})
    return tree


def _comparable(obj: Obj) -> str:
    metadata = {k: v for k, v in obj.get("metadata", {}).items() if k not in ("resourceVersion", "managedFields")}
    return json.dumps({**obj, "metadata": metadata}, sort_keys=True, default=str)
