"""Which container serves a ModelDeployment: its own image, a runtime by name, or one chosen by format (pure).

The decision is KServe's, made smaller: a runtime in the ModelDeployment's namespace wins over
a cluster-wide one (by name, and among those serving the format), then the higher priority,
then the first name in alphabetical order, so the choice never depends on the order the
runtimes were listed in. Fields written in `spec.runtime` override the runtime's, `env` entry
by entry, so a team can pin a resource limit or add a variable without copying the runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from modeldeploy.api.v1alpha1 import EnvVar, ModelDeploymentSpec, ModelRuntimeSpec, RuntimeReference, ServerSpec

RuntimeKind = Literal["ModelRuntime", "ClusterModelRuntime"]
NO_RUNTIME = "NoRuntime"
INVALID_RUNTIME = "InvalidRuntime"
MAX_LISTED = 8
"""Candidates named in a NoRuntime message; the rest are counted."""


@dataclass(frozen=True)
class RuntimeEntry:
    """One runtime as the operator knows it: its spec, or why its spec cannot be read."""

    kind: RuntimeKind
    name: str
    spec: ModelRuntimeSpec | None
    problem: str | None = None

    @property
    def namespaced(self) -> bool:
        return self.kind == "ModelRuntime"

    def reference(self) -> RuntimeReference:
        return RuntimeReference(kind=self.kind, name=self.name)


@dataclass(frozen=True)
class Resolved:
    """The container to render and probe, and the runtime it came from (None: the spec's own image)."""

    server: ServerSpec
    runtime: RuntimeReference | None = None


class RuntimeProblem(Exception):
    """No container can be decided on; the reason and message go onto the status as Stalled."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def needs_runtimes(spec: ModelDeploymentSpec) -> bool:
    """Whether the spec's container depends on the runtimes there are (not an image of its own)."""
    return spec.runtime.name is not None or spec.runtime.image is None


def resolve(spec: ModelDeploymentSpec, runtimes: Sequence[RuntimeEntry]) -> Resolved:
    """The serving container for `spec`, from the runtimes visible in its namespace.

    `runtimes` holds the ModelRuntimes of the ModelDeployment's namespace and every
    ClusterModelRuntime. Raises RuntimeProblem when there is no single answer a person
    would agree with.
    """
    wanted = spec.runtime
    if wanted.name is None and wanted.image is not None:
        return Resolved(explicit_server(spec))
    if wanted.name is not None:
        entry = _by_name(wanted.name, runtimes)
        _check_named(entry, spec)
    else:
        entry = _by_format(spec, runtimes)
    assert entry.spec is not None
    return Resolved(_with_overrides(entry, spec), entry.reference())


def explicit_server(spec: ModelDeploymentSpec) -> ServerSpec:
    """The container of a spec that gives its own image (today's form), every field as written or defaulted."""
    wanted = spec.runtime
    if wanted.image is None:
        raise RuntimeProblem(NO_RUNTIME, "spec.runtime.image is not set")
    values = {name: getattr(wanted, name) for name in ServerSpec.model_fields}
    return ServerSpec.model_validate(values)


def _by_name(name: str, runtimes: Sequence[RuntimeEntry]) -> RuntimeEntry:
    named = sorted((e for e in runtimes if e.name == name), key=lambda e: not e.namespaced)
    if not named:
        raise RuntimeProblem(
            NO_RUNTIME,
            f"spec.runtime.name: no ModelRuntime {name!r} in this namespace and no ClusterModelRuntime {name!r}; "
            + _available(runtimes),
        )
    return named[0]


def _check_named(entry: RuntimeEntry, spec: ModelDeploymentSpec) -> None:
    where = f"{entry.kind} {entry.name!r}"
    if entry.spec is None:
        raise RuntimeProblem(INVALID_RUNTIME, f"{where} is invalid: {entry.problem}")
    if entry.spec.disabled:
        raise RuntimeProblem(NO_RUNTIME, f"{where} is disabled (spec.disabled); enable it or name another runtime")
    wanted = spec.model.format
    if wanted is not None and not any(_same_format(f.name, wanted) for f in entry.spec.supported_formats or []):
        served = ", ".join(f.name for f in entry.spec.supported_formats or []) or "none listed"
        raise RuntimeProblem(
            NO_RUNTIME,
            f"{where} does not serve model.format {wanted!r} (it serves: {served}); "
            "change model.format, name another runtime, or add the format to the runtime",
        )


def _by_format(spec: ModelDeploymentSpec, runtimes: Sequence[RuntimeEntry]) -> RuntimeEntry:
    wanted = spec.model.format
    if wanted is None:
        raise RuntimeProblem(
            NO_RUNTIME,
            "spec.runtime names no runtime and gives no image, and spec.model.format is not set to select one by; "
            + _available(runtimes),
        )
    ranked: list[tuple[tuple[bool, int, str], RuntimeEntry]] = []
    for entry in runtimes:
        if entry.spec is None or entry.spec.disabled:
            continue
        for supported in entry.spec.supported_formats or []:
            if supported.auto_select and _same_format(supported.name, wanted):
                ranked.append(((not entry.namespaced, -(supported.priority or 0), entry.name), entry))
    if not ranked:
        raise RuntimeProblem(
            NO_RUNTIME,
            f"no runtime selects model.format {wanted!r}; " + _available(runtimes) + ". "
            "Name one in spec.runtime.name, give spec.runtime.image, or add the format to a runtime",
        )
    return min(ranked, key=lambda item: item[0])[1]


def _with_overrides(entry: RuntimeEntry, spec: ModelDeploymentSpec) -> ServerSpec:
    assert entry.spec is not None
    values = {name: getattr(entry.spec, name) for name in ServerSpec.model_fields}
    wanted = spec.runtime
    for name in sorted(wanted.overrides()):
        value = getattr(wanted, name)
        values[name] = _merged_env(entry.spec.env, value) if name == "env" else value
    try:
        return ServerSpec.model_validate(values)
    except ValidationError as error:
        detail = "; ".join(e["msg"] for e in error.errors()[:3])
        raise RuntimeProblem(
            INVALID_RUNTIME, f"{entry.kind} {entry.name!r} with the fields of spec.runtime is invalid: {detail}"
        ) from None


def _merged_env(base: list[EnvVar] | None, overrides: list[EnvVar] | None) -> list[EnvVar] | None:
    """The runtime's variables with the spec's replacing those of the same name, new ones after."""
    if not overrides:
        return base
    given = {e.name: e for e in overrides}
    merged = [given.pop(e.name, e) for e in base or []]
    return merged + [e for e in overrides if e.name in given]


def _same_format(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


def _available(runtimes: Sequence[RuntimeEntry]) -> str:
    """The runtimes there are and what they serve, so the person reading the status can pick one."""
    if not runtimes:
        return "there are no ModelRuntimes here and no ClusterModelRuntimes"
    described = []
    for entry in sorted(runtimes, key=lambda e: (not e.namespaced, e.name))[:MAX_LISTED]:
        if entry.spec is None:
            described.append(f"{entry.name} (invalid)")
            continue
        formats = [f.name if f.auto_select else f"{f.name} by name only" for f in entry.spec.supported_formats or []]
        state = "disabled, " if entry.spec.disabled else ""
        described.append(f"{entry.name} ({entry.kind}: {state}{', '.join(formats) or 'no formats'})")
    more = len(runtimes) - MAX_LISTED
    return "runtimes: " + ", ".join(described) + (f" and {more} more" if more > 0 else "")
