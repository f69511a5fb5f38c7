"""The ModelRuntimes and ClusterModelRuntimes the informers hold, as `render.runtime` reads them.

Each runtime is validated once per resourceVersion. A deleted runtime is remembered for a short
grace: `helm upgrade` (and Argo CD's PostSync) replace the chart's runtimes by deleting and
creating them, and without the grace every model served by one would flap to Stalled/NoRuntime
and back, with two status writes and two Events each, on every upgrade.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from modeldeploy.api.v1alpha1 import ModelRuntimeSpec
from modeldeploy.controller.cache import ObjectCache
from modeldeploy.render.runtime import RuntimeEntry, RuntimeKind

Obj = dict[str, Any]
GRACE_SECONDS = 10.0
_Id = tuple[RuntimeKind, str, str]  # (kind, namespace or "", name)


class RuntimeCatalog:
    """Both runtime kinds, parsed, with a short memory of the deleted ones."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, grace: float = GRACE_SECONDS) -> None:
        self.namespaced = ObjectCache()
        self.cluster = ObjectCache()
        self._clock = clock
        self.grace = grace
        self._parsed: dict[_Id, tuple[object, RuntimeEntry]] = {}
        self._gone: dict[_Id, tuple[float, RuntimeEntry]] = {}
        self._epoch = 0

    def cache_for(self, kind: RuntimeKind) -> ObjectCache:
        return self.namespaced if kind == "ModelRuntime" else self.cluster

    def changed(self, kind: RuntimeKind, event_type: str, obj: Obj) -> None:
        """Called after the informer updated the cache with `obj`."""
        self._epoch += 1
        ident = _ident(kind, obj)
        if event_type == "DELETED":
            held = self._parsed.pop(ident, None)
            entry = held[1] if held is not None else _entry(kind, obj)
            self._gone[ident] = (self._clock() + self.grace, entry)
        else:
            self._gone.pop(ident, None)

    def epoch(self) -> int:
        """Changes with every change of what `entries` returns, a deleted runtime's grace ending included.

        What was resolved under one epoch holds until the epoch moves.
        """
        now = self._clock()
        for ident, (until, _) in list(self._gone.items()):
            if until <= now:
                del self._gone[ident]
                self._epoch += 1
        return self._epoch

    def entries(self, namespace: str) -> list[RuntimeEntry]:
        """The runtimes a ModelDeployment in `namespace` can be served by, recently deleted ones included."""
        self.epoch()
        found: list[RuntimeEntry] = []
        seen: set[_Id] = set()
        for kind, cache in (("ModelRuntime", self.namespaced), ("ClusterModelRuntime", self.cluster)):
            for key in cache.known_keys():
                if kind == "ModelRuntime" and key[0] != namespace:
                    continue
                obj = cache.get(key)
                if obj is None:
                    continue
                ident = _ident(kind, obj)  # type: ignore[arg-type]
                seen.add(ident)
                found.append(self._parsed_entry(ident, obj))
        for ident, (_, entry) in self._gone.items():
            if ident not in seen and (ident[0] == "ClusterModelRuntime" or ident[1] == namespace):
                found.append(entry)
        return found

    def _parsed_entry(self, ident: _Id, obj: Obj) -> RuntimeEntry:
        version = obj.get("metadata", {}).get("resourceVersion")
        held = self._parsed.get(ident)
        if held is None or held[0] != version:
            held = (version, _entry(ident[0], obj))
            self._parsed[ident] = held
        return held[1]


def _ident(kind: RuntimeKind, obj: Obj) -> _Id:
    metadata = obj.get("metadata", {})
    namespace = str(metadata.get("namespace", "")) if kind == "ModelRuntime" else ""
    return kind, namespace, str(metadata.get("name", ""))


def _entry(kind: RuntimeKind, obj: Obj) -> RuntimeEntry:
    name = str(obj.get("metadata", {}).get("name", ""))
    try:
        return RuntimeEntry(kind, name, ModelRuntimeSpec.model_validate(obj.get("spec") or {}))
    except ValidationError as error:
        detail = "; ".join(f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:3])
        return RuntimeEntry(kind, name, None, detail)
