"""The `spec.runtime` section: the container that serves the model and how to talk to it."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import ConfigDict, Field, model_validator

from modeldeploy.api.base import CelRule, EmbeddedObject, Quantity, SpecModel, cel, default_empty_object

Protocol = Literal["v2", "v1", "openai", "custom"]

_PATH_PATTERN = r"^/"
_PATH_MAX_LENGTH = 1024

ENV_VALUE_XOR_VALUE_FROM = CelRule(
    rule="!(has(self.value) && has(self.valueFrom))",
    message="runtime.env[].value and runtime.env[].valueFrom are mutually exclusive; set one of them",
)

CUSTOM_PROTOCOL_NEEDS_PATHS = CelRule(
    rule="!has(self.protocol) || self.protocol != 'custom' || (has(self.healthPath) && has(self.readinessPath))",
    message="runtime.healthPath and runtime.readinessPath are required when runtime.protocol is custom",
)


class EnvVar(SpecModel):
    """A container environment variable; `valueFrom` is passed through as Kubernetes defines it."""

    model_config = ConfigDict(json_schema_extra=cel(ENV_VALUE_XOR_VALUE_FROM))

    name: str = Field(min_length=1, description="Name of the environment variable.")
    value: str | None = Field(default=None, description="Literal value. Mutually exclusive with valueFrom.")
    value_from: EmbeddedObject | None = Field(
        default=None,
        description=(
            "Source for the value, as in a Pod's env[].valueFrom (secretKeyRef, configMapKeyRef, fieldRef, "
            "resourceFieldRef). Mutually exclusive with value."
        ),
    )

    @model_validator(mode="after")
    def _value_xor_value_from(self) -> Self:
        if self.value is not None and self.value_from is not None:
            raise ValueError(ENV_VALUE_XOR_VALUE_FROM.message)
        return self


class ResourceRequirements(SpecModel):
    """Requests and limits as a Pod container takes them; kept to the two maps people use."""

    requests: dict[str, Quantity] | None = Field(
        default=None,
        description=(
            "Minimum resources per replica, e.g. {cpu: 250m, memory: 256Mi}. Needed for utilization autoscaling."
        ),
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        description="Maximum resources per replica, e.g. {cpu: '1', memory: 512Mi}.",
    )


class MetricsEndpoint(SpecModel):
    """Where the runtime exposes Prometheus metrics; the operator scrapes it for drift."""

    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Container port serving metrics. When absent, runtime.port is used.",
    )
    path: str = Field(
        default="/metrics",
        pattern=_PATH_PATTERN,
        max_length=_PATH_MAX_LENGTH,
        description="HTTP path of the Prometheus text exposition. Must start with '/'.",
    )


class RuntimeSpec(SpecModel):
    """The serving container; the paths exist so runtimes outside the known protocols can be probed."""

    model_config = ConfigDict(json_schema_extra=cel(CUSTOM_PROTOCOL_NEEDS_PATHS))

    image: str = Field(min_length=1, description="Container image of the model server.")
    command: list[str] | None = Field(
        default=None, description="Entrypoint, replacing the image's ENTRYPOINT (and its CMD unless args is set)."
    )
    args: list[str] | None = Field(default=None, description="Arguments to the entrypoint, replacing the image's CMD.")
    env: list[EnvVar] | None = Field(
        default=None,
        description="Environment variables for the model server container; names are unique.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    port: int = Field(default=8080, ge=1, le=65535, description="Container port the model server listens on.")
    protocol: Protocol = Field(
        default="v2",
        description=(
            "Inference protocol the server speaks, which decides how replicas are probed: "
            "v2 (Open Inference Protocol / KServe v2), v1 (TensorFlow Serving style / KServe v1), "
            "openai (OpenAI-compatible /v1/models), or custom (use the *Path fields)."
        ),
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Compute resources of the model server container."
    )
    metrics: MetricsEndpoint = Field(
        default_factory=MetricsEndpoint,
        description="Prometheus endpoint of the model server.",
        json_schema_extra=default_empty_object(),
    )
    health_path: str | None = Field(
        default=None,
        pattern=_PATH_PATTERN,
        max_length=_PATH_MAX_LENGTH,
        description=(
            "Liveness endpoint (HTTP 200 when the process is up). Required when protocol is custom; "
            "otherwise overrides the protocol's standard path. Must start with '/'."
        ),
    )
    readiness_path: str | None = Field(
        default=None,
        pattern=_PATH_PATTERN,
        max_length=_PATH_MAX_LENGTH,
        description=(
            "Readiness endpoint (HTTP 200 when the model can serve). Required when protocol is custom; "
            "otherwise overrides the protocol's standard path. Must start with '/'."
        ),
    )
    metadata_path: str | None = Field(
        default=None,
        pattern=_PATH_PATTERN,
        max_length=_PATH_MAX_LENGTH,
        description=(
            "Model metadata endpoint (JSON). Optional; overrides the protocol's standard path. Must start with '/'."
        ),
    )
    version_path: str | None = Field(
        default=None,
        pattern=_PATH_PATTERN,
        max_length=_PATH_MAX_LENGTH,
        description=(
            "Endpoint returning JSON with the served model version in a 'version' field. Optional; "
            "without it a custom runtime's served version is not verified. Must start with '/'."
        ),
    )

    @model_validator(mode="after")
    def _custom_protocol_needs_paths(self) -> Self:
        if self.protocol == "custom" and (self.health_path is None or self.readiness_path is None):
            raise ValueError(CUSTOM_PROTOCOL_NEEDS_PATHS.message)
        return self
