"""What the controller knows, shared by the reconciler, the probe loops and the informers.

Its own module so that neither of its writers imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modeldeploy.controller.cache import Key, ObjectCache, slim_pod
from modeldeploy.render import labels as lbl
from modeldeploy.status import compute as status_compute


@dataclass
class ConfigDriftRecord:
    corrections: int = 0
    last_time: str | None = None
    last_child: str | None = None

    def as_status(self) -> dict[str, Any] | None:
        if not self.corrections:
            return None
        return {
            "corrections": self.corrections,
            "lastCorrectionTime": self.last_time,
            "lastCorrectedChild": self.last_child,
        }


@dataclass
class ControllerState:
    """Everything the controller knows, all of it rebuilt from watches after a restart."""

    models: ObjectCache = field(default_factory=ObjectCache)
    deployments: ObjectCache = field(default_factory=ObjectCache)
    services: ObjectCache = field(default_factory=ObjectCache)
    hpas: ObjectCache = field(default_factory=ObjectCache)
    pods: ObjectCache = field(default_factory=lambda: ObjectCache(index_label=lbl.NAME_LABEL, transform=slim_pod))
    health: dict[Key, status_compute.HealthReport] = field(default_factory=dict)
    data_drift: dict[Key, status_compute.DataDriftReport] = field(default_factory=dict)
    config_drift: dict[Key, ConfigDriftRecord] = field(default_factory=dict)
    last_written_status: dict[Key, Any] = field(default_factory=dict)

    def cache_for(self, kind: str) -> ObjectCache:
        return {"Deployment": self.deployments, "Service": self.services, "HorizontalPodAutoscaler": self.hpas}[kind]

    def forget(self, key: Key) -> None:
        for table in (self.health, self.data_drift, self.config_drift, self.last_written_status):
            table.pop(key, None)
