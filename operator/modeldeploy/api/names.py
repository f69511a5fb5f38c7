"""Names under which the API is served; the same for every version of the schema."""

from __future__ import annotations

GROUP = "modeldeploy.io"
KIND = "ModelDeployment"
LIST_KIND = "ModelDeploymentList"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES: tuple[str, ...] = ("md",)
CATEGORIES: tuple[str, ...] = ("ml",)
CRD_NAME = f"{PLURAL}.{GROUP}"

RESERVED_LABEL_PREFIXES: tuple[str, ...] = ("app.kubernetes.io/", "modeldeploy.io/")
"""Pod label prefixes the operator sets itself; user labels there would fight its selectors."""
