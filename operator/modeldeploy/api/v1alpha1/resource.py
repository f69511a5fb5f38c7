"""The objects of the API as a whole (ModelDeployment, ModelRuntime, ClusterModelRuntime) and their version."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from modeldeploy.api.base import cel, no_schema_default
from modeldeploy.api.names import GROUP
from modeldeploy.api.rules import METADATA_NAME_FORMAT, METADATA_NAME_LENGTH, metadata_name_problem
from modeldeploy.api.v1alpha1.runtime import ModelRuntimeSpec
from modeldeploy.api.v1alpha1.spec import ModelDeploymentSpec
from modeldeploy.api.v1alpha1.status import ModelDeploymentStatus

VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class ModelDeployment(BaseModel):
    """ModelDeployment serves a machine learning model on Kubernetes and reports its health and drift.

    The operator turns it into a Deployment, a Service and optionally a HorizontalPodAutoscaler,
    probes every replica with the model's inference protocol, and compares live input histograms
    with a declared baseline.
    """

    # The children take the ModelDeployment's name unchanged, so the name must be one a Service can
    # carry; the apiserver checks only that it is a DNS subdomain (253 characters, dots allowed).
    model_config = ConfigDict(
        populate_by_name=True, extra="forbid", json_schema_extra=cel(METADATA_NAME_LENGTH, METADATA_NAME_FORMAT)
    )

    api_version: Annotated[Literal["modeldeploy.io/v1alpha1"], WithJsonSchema({"type": "string"})] = Field(
        default="modeldeploy.io/v1alpha1",
        alias="apiVersion",
        description="Versioned schema of this representation: modeldeploy.io/v1alpha1.",
        json_schema_extra=no_schema_default,
    )
    kind: Annotated[Literal["ModelDeployment"], WithJsonSchema({"type": "string"})] = Field(
        default="ModelDeployment",
        description="Kind of this object: ModelDeployment.",
        json_schema_extra=no_schema_default,
    )
    metadata: Annotated[dict[str, Any], WithJsonSchema({"type": "object"})] = Field(
        # No description: the apiserver allows nothing but `type: object` on the root metadata.
        default_factory=dict,
    )
    spec: ModelDeploymentSpec = Field(description="Desired state: the model, its runtime and how to watch it.")
    status: ModelDeploymentStatus | None = Field(default=None, description="Observed state, written by the operator.")

    @model_validator(mode="after")
    def _name_fits_the_children(self) -> Self:
        name = self.metadata.get("name")
        if isinstance(name, str) and (problem := metadata_name_problem(name)) is not None:
            raise ValueError(problem)
        return self


class _Runtime(BaseModel):
    """What the two runtime kinds share: all but their kind and scope."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    api_version: Annotated[Literal["modeldeploy.io/v1alpha1"], WithJsonSchema({"type": "string"})] = Field(
        default="modeldeploy.io/v1alpha1",
        alias="apiVersion",
        description="Versioned schema of this representation: modeldeploy.io/v1alpha1.",
        json_schema_extra=no_schema_default,
    )
    metadata: Annotated[dict[str, Any], WithJsonSchema({"type": "object"})] = Field(default_factory=dict)
    spec: ModelRuntimeSpec = Field(
        description=(
            "The serving container, the model formats it serves, and how the operator probes it. "
            "Editing it rolls out every ModelDeployment served by it."
        )
    )


class ModelRuntime(_Runtime):
    """ModelRuntime is a model server, in one namespace, for the ModelDeployments there.

    A ModelDeployment names it in spec.runtime.name, or is given it by spec.model.format;
    a ModelRuntime wins over a ClusterModelRuntime of the same name or the same format.
    """

    kind: Annotated[Literal["ModelRuntime"], WithJsonSchema({"type": "string"})] = Field(
        default="ModelRuntime", description="Kind of this object: ModelRuntime.", json_schema_extra=no_schema_default
    )


class ClusterModelRuntime(_Runtime):
    """ClusterModelRuntime is a model server for the ModelDeployments of every namespace.

    The chart installs some (MLServer for sklearn, xgboost, lightgbm and mlflow; the reference
    server; Triton; vLLM). A ModelRuntime of the same name in a namespace wins there.
    """

    kind: Annotated[Literal["ClusterModelRuntime"], WithJsonSchema({"type": "string"})] = Field(
        default="ClusterModelRuntime",
        description="Kind of this object: ClusterModelRuntime.",
        json_schema_extra=no_schema_default,
    )
