"""What the controller knows, shared by the reconciler, the probe loops and the informers.

Its own module so that neither of its writers imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from modeldeploy.api.v1alpha1 import ConfigDriftStatus, ModelDeploymentSpec, RolloutCheck
from modeldeploy.controller.cache import Key, ObjectCache, slim_pod
from modeldeploy.controller.runtimes import RuntimeCatalog
from modeldeploy.drift.report import DataDriftReport
from modeldeploy.render import labels as lbl
from modeldeploy.render.model import Platform
from modeldeploy.render.runtime import Resolved, RuntimeProblem, needs_runtimes, resolve
from modeldeploy.status import compute as status_compute


@dataclass
class ControllerState:
    """Everything the controller knows, all of it rebuilt from watches after a restart."""

    platform: Platform = field(default_factory=Platform)  # what the operator was started with, for rendering
    models: ObjectCache = field(default_factory=ObjectCache)
    deployments: ObjectCache = field(default_factory=ObjectCache)
    services: ObjectCache = field(default_factory=ObjectCache)
    hpas: ObjectCache = field(default_factory=ObjectCache)
    network_policies: ObjectCache = field(default_factory=ObjectCache)
    pdbs: ObjectCache = field(default_factory=ObjectCache)
    ingresses: ObjectCache = field(default_factory=ObjectCache)
    http_routes: ObjectCache = field(default_factory=ObjectCache)  # ours (spec.exposure), not a canary's route
    scaled_objects: ObjectCache = field(default_factory=ObjectCache)
    pods: ObjectCache = field(default_factory=lambda: ObjectCache(index_label=lbl.NAME_LABEL, transform=slim_pod))
    runtimes: RuntimeCatalog = field(default_factory=RuntimeCatalog)
    health: dict[Key, status_compute.HealthReport] = field(default_factory=dict)
    data_drift: dict[Key, DataDriftReport] = field(default_factory=dict)
    config_drift: dict[Key, ConfigDriftStatus] = field(default_factory=dict)  # reverted hand edits, counted
    # A running canary's template revision (set by the reconciler), and the analysis checks the probe
    # loop judged for that revision from the runtimes' metrics.
    canary_revision: dict[Key, str] = field(default_factory=dict)
    canary_checks: dict[Key, tuple[str, tuple[RolloutCheck, ...]]] = field(default_factory=dict)
    last_written_status: dict[Key, Any] = field(default_factory=dict)
    # Each ModelDeployment's spec as validated, with the (uid, generation) it was parsed for.
    specs: dict[Key, tuple[tuple[object, object], ModelDeploymentSpec | ValidationError]] = field(default_factory=dict)
    # Each ModelDeployment's serving container, with the spec and the runtimes' epoch it was resolved for.
    servers: dict[Key, tuple[tuple[object, int], Resolved | RuntimeProblem]] = field(default_factory=dict)

    def spec(self, body: dict[str, Any]) -> ModelDeploymentSpec:
        """The validated spec, parsed once per generation and shared by the reconciler and the probe loops.

        Raises the ValidationError an invalid spec gives. A status write changes the
        resourceVersion but not the generation, so it costs no parse.
        """
        metadata = body["metadata"]
        key = (metadata["namespace"], metadata["name"])
        stamp = (metadata.get("uid"), metadata.get("generation") or metadata.get("resourceVersion"))
        held = self.specs.get(key)
        if held is None or held[0] != stamp:
            try:
                parsed: ModelDeploymentSpec | ValidationError = ModelDeploymentSpec.model_validate(body.get("spec", {}))
            except ValidationError as error:
                parsed = error
            held = (stamp, parsed)
            self.specs[key] = held
        if isinstance(held[1], ValidationError):
            raise held[1]
        return held[1]

    def resolved(self, body: dict[str, Any]) -> Resolved:
        """The container serving this ModelDeployment: its own image, or from the runtimes there are.

        Raises what `spec` raises, and RuntimeProblem when no runtime fits. Resolved again only
        when the spec or some runtime changed; an image of its own never depends on runtimes.
        """
        spec = self.spec(body)
        metadata = body["metadata"]
        key = (metadata["namespace"], metadata["name"])
        stamp = (self.specs[key][0], self.runtimes.epoch() if needs_runtimes(spec) else -1)
        held = self.servers.get(key)
        if held is None or held[0] != stamp:
            try:
                found: Resolved | RuntimeProblem = resolve(spec, self.runtimes.entries(key[0]))
            except RuntimeProblem as problem:
                found = problem
            held = (stamp, found)
            self.servers[key] = held
        if isinstance(held[1], RuntimeProblem):
            raise held[1]
        return held[1]

    def spec_or_none(self, body: dict[str, Any]) -> ModelDeploymentSpec | None:
        try:
            return self.spec(body)
        except ValidationError:
            return None

    def cache_for(self, kind: str) -> ObjectCache:
        return {
            "Deployment": self.deployments,
            "Service": self.services,
            "HorizontalPodAutoscaler": self.hpas,
            "NetworkPolicy": self.network_policies,
            "PodDisruptionBudget": self.pdbs,
            "Ingress": self.ingresses,
            "HTTPRoute": self.http_routes,
            "ScaledObject": self.scaled_objects,
        }[kind]

    def forget(self, key: Key) -> None:
        for table in (
            self.health,
            self.data_drift,
            self.config_drift,
            self.canary_revision,
            self.canary_checks,
            self.last_written_status,
            self.specs,
            self.servers,
        ):
            table.pop(key, None)
