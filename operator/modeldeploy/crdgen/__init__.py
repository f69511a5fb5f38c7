"""Generate the CRDs from the pydantic models in `modeldeploy.api`.

`python -m modeldeploy.crdgen` writes crds/modeldeploy.io_<plural>.yaml for each kind and the Helm
chart's copies (templates/crd.yaml for the ModelDeployment, crd-<plural>.yaml for the others);
the functions below let other tooling (tests) render the same documents without the files.
"""

from modeldeploy.crdgen.crd import (
    CHART_ANNOTATIONS,
    CLUSTER_MODEL_RUNTIME_CRD,
    MODEL_DEPLOYMENT_CRD,
    MODEL_RUNTIME_CRD,
    SOURCES,
    CrdSource,
    render_chart_crd,
    render_chart_template,
    render_crd,
    render_crd_yaml,
)
from modeldeploy.crdgen.schema import StructuralSchemaError, structural_schema

__all__ = [
    "CHART_ANNOTATIONS",
    "CLUSTER_MODEL_RUNTIME_CRD",
    "MODEL_DEPLOYMENT_CRD",
    "MODEL_RUNTIME_CRD",
    "SOURCES",
    "CrdSource",
    "StructuralSchemaError",
    "render_chart_crd",
    "render_chart_template",
    "render_crd",
    "render_crd_yaml",
    "structural_schema",
]
