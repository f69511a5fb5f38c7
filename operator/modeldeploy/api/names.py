"""Names under which the API is served; the same for every version of the schema."""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "modeldeploy.io"
KIND = "ModelDeployment"
LIST_KIND = "ModelDeploymentList"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES: tuple[str, ...] = ("md",)
CATEGORIES: tuple[str, ...] = ("ml",)
CRD_NAME = f"{PLURAL}.{GROUP}"

ROLLOUT_ACTION_ANNOTATION = "modeldeploy.io/rollout-action"
"""A person's request to a rollout, '<promote|abort|retry>/<unique token>': written by `modeldeploy rollout`,
carried out once by the operator (status.rollout.action records the last one carried out)."""

RESERVED_LABEL_PREFIXES: tuple[str, ...] = ("app.kubernetes.io/", "modeldeploy.io/")
"""Pod label prefixes the operator sets itself; user labels there would fight its selectors."""


@dataclass(frozen=True)
class KindNames:
    """How one kind of the group is named and scoped, for its CRD and its clients."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    namespaced: bool

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


MODEL_DEPLOYMENT = KindNames(KIND, PLURAL, SHORT_NAMES, namespaced=True)
MODEL_RUNTIME = KindNames("ModelRuntime", "modelruntimes", ("mrt",), namespaced=True)
CLUSTER_MODEL_RUNTIME = KindNames("ClusterModelRuntime", "clustermodelruntimes", ("cmrt",), namespaced=False)
