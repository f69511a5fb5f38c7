"""Generate the ModelDeployment CRD from the pydantic models in `modeldeploy.api`.

`python -m modeldeploy.crdgen` writes crds/modeldeploy.io_modeldeployments.yaml; the functions
below let other tooling (the Helm chart, tests) render the same document without the file.
"""

from modeldeploy.crdgen.crd import render_crd, render_crd_yaml
from modeldeploy.crdgen.schema import StructuralSchemaError, structural_schema

__all__ = ["StructuralSchemaError", "render_crd", "render_crd_yaml", "structural_schema"]
