"""Generate the ModelDeployment CRD from the pydantic models in `modeldeploy.api`.

`python -m modeldeploy.crdgen` writes crds/modeldeploy.io_modeldeployments.yaml and the Helm
chart's copy, charts/modeldeploy/templates/crd.yaml; the functions below let other tooling
(tests) render the same documents without the files.
"""

from modeldeploy.crdgen.crd import (
    CHART_ANNOTATIONS,
    render_chart_crd,
    render_chart_template,
    render_crd,
    render_crd_yaml,
)
from modeldeploy.crdgen.schema import StructuralSchemaError, structural_schema

__all__ = [
    "CHART_ANNOTATIONS",
    "StructuralSchemaError",
    "render_chart_crd",
    "render_chart_template",
    "render_crd",
    "render_crd_yaml",
    "structural_schema",
]
