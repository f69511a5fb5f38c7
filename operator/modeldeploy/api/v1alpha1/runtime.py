"""The serving container: what a ModelRuntime declares and what `spec.runtime` names or overrides.

Three shapes share the container's fields: `ServerSpec` (a complete container, image required),
`ModelRuntimeSpec` (a ServerSpec plus the model formats it serves, the body of ModelRuntime and
ClusterModelRuntime) and `RuntimeSpec` (a ModelDeployment's `spec.runtime`: a runtime by name,
a container of its own by image, or nothing, so that `model.format` selects one).
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, StrictStr, model_validator
from pydantic.config import JsonDict

from modeldeploy.api.base import (
    VALIDATIONS_KEY,
    CelRule,
    Checked,
    EmbeddedObject,
    Quantity,
    SpecModel,
    cel,
    no_schema_default,
    quantity_value,
)
from modeldeploy.api.rules import (
    DNS_SUBDOMAIN_MAX_LENGTH,
    LABEL_KEY_PATTERN,
    MAX_PORT,
    MIN_PORT,
    EnvName,
    HttpPath,
    ImageReference,
    ObjectName,
    cel_matches,
    is_label_key,
)

Protocol = Literal["v2", "v1", "openai", "custom"]

MAX_ARGUMENT_LENGTH = 4096
"""Per command or args item: an argument longer than 4 KiB is configuration, which belongs in a
ConfigMap or Secret reached through env[].valueFrom."""
MAX_ENV_VALUE_LENGTH = 32768
"""A literal env value may hold a certificate chain or a JSON credential; 32 KiB is well past those."""
MAX_RESOURCES = 16
"""Per requests or limits map; a container asks for a handful (cpu, memory, a GPU, hugepages)."""

_STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
RESOURCE_NAMES = CelRule(
    rule=(
        "self.all(k, "
        + cel_matches(LABEL_KEY_PATTERN, "k")
        + f" && (!k.contains('/') || k.indexOf('/') <= {DNS_SUBDOMAIN_MAX_LENGTH})"
        + " && (k.contains('/') || k in ["
        + ", ".join(f"'{name}'" for name in _STANDARD_RESOURCES)
        + "] || k.startsWith('hugepages-')))"
    ),
    message=(
        "keys must be container resources: cpu, memory, ephemeral-storage, hugepages-<size> "
        "or an extended resource with a domain, like nvidia.com/gpu"
    ),
)


def _is_resource_name(name: str) -> bool:
    return is_label_key(name) and ("/" in name or name in _STANDARD_RESOURCES or name.startswith("hugepages-"))


def _all_resource_names(resources: dict[str, int | str]) -> bool:
    return all(_is_resource_name(name) for name in resources)


_ResourceMap = Annotated[
    dict[str, Quantity], Field(max_length=MAX_RESOURCES), Checked(RESOURCE_NAMES, _all_resource_names)
]

_AS_QUANTITY = "quantity(string({0}))"
_BOTH_QUANTITIES = "isQuantity(string({0})) && isQuantity(string({1}))"
REQUESTS_WITHIN_LIMITS = CelRule(
    rule=(
        "!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits) || !("
        + _BOTH_QUANTITIES.format("self.requests[k]", "self.limits[k]")
        + ") || "
        + _AS_QUANTITY.format("self.requests[k]")
        + ".compareTo("
        + _AS_QUANTITY.format("self.limits[k]")
        + ") <= 0)"
    ),
    message=(
        "runtime.resources.requests must not exceed runtime.resources.limits for the same resource "
        "(a Pod with more requested than allowed is refused); raise the limit or lower the request"
    ),
    field_path=".requests",
)

ENV_VALUE_XOR_VALUE_FROM = CelRule(
    rule="!(has(self.value) && has(self.valueFrom))",
    message="runtime.env[].value and runtime.env[].valueFrom are mutually exclusive; set one of them",
)

CUSTOM_PROTOCOL_NEEDS_PATHS = CelRule(
    rule="!has(self.protocol) || self.protocol != 'custom' || (has(self.healthPath) && has(self.readinessPath))",
    message="runtime.healthPath and runtime.readinessPath are required when runtime.protocol is custom",
)


_Argument = Annotated[StrictStr, Field(max_length=MAX_ARGUMENT_LENGTH)]


class EnvVar(SpecModel):
    """A container environment variable; `valueFrom` is passed through as Kubernetes defines it."""

    model_config = ConfigDict(json_schema_extra=cel(ENV_VALUE_XOR_VALUE_FROM))

    name: EnvName = Field(
        description=(
            "Name of the environment variable: printable ASCII other than '='. MODEL_NAME and MODEL_VERSION "
            "(and MODEL_URI, MODEL_FORMAT while model.uri, model.format are set) come from spec.model "
            "and replace entries of the same name."
        )
    )
    value: str | None = Field(
        default=None,
        max_length=MAX_ENV_VALUE_LENGTH,
        description=(
            f"Literal value, at most {MAX_ENV_VALUE_LENGTH} characters (use valueFrom for more). "
            "Mutually exclusive with valueFrom."
        ),
    )
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

    model_config = ConfigDict(json_schema_extra=cel(REQUESTS_WITHIN_LIMITS))

    requests: _ResourceMap | None = Field(
        default=None,
        description=(
            "Minimum resources per replica, e.g. {cpu: 250m, memory: 256Mi}. Needed for utilization autoscaling."
        ),
    )
    limits: _ResourceMap | None = Field(
        default=None,
        description="Maximum resources per replica, e.g. {cpu: '1', memory: 512Mi}; at least the requests.",
    )

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Self:
        for name, request in (self.requests or {}).items():
            limit = (self.limits or {}).get(name)
            if limit is None:
                continue
            wanted, allowed = quantity_value(request), quantity_value(limit)
            if wanted is not None and allowed is not None and wanted > allowed:
                raise ValueError(REQUESTS_WITHIN_LIMITS.message)
        return self


class MetricsEndpoint(SpecModel):
    """Where the runtime exposes Prometheus metrics; the operator scrapes it for drift."""

    port: int | None = Field(
        default=None,
        ge=MIN_PORT,
        le=MAX_PORT,
        description="Container port serving metrics. When absent, runtime.port is used.",
    )
    path: HttpPath = Field(
        default="/metrics",
        description="HTTP path of the Prometheus text exposition, an absolute URL path such as /metrics.",
    )


class _ServerFields(SpecModel):
    """The container's fields other than the image, shared by every shape."""

    command: list[_Argument] | None = Field(
        default=None,
        max_length=32,
        description=(
            "Entrypoint, replacing the image's ENTRYPOINT (and its CMD unless args is set). $(MODEL_DIR), "
            "$(MODEL_NAME) and $(MODEL_VERSION) are expanded by the kubelet."
        ),
    )
    args: list[_Argument] | None = Field(
        default=None,
        max_length=128,
        description="Arguments to the entrypoint, replacing the image's CMD; $(VAR) references are expanded.",
    )
    env: list[EnvVar] | None = Field(
        default=None,
        max_length=128,
        description="Environment variables for the model server container; names are unique.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    port: int = Field(default=8080, ge=MIN_PORT, le=MAX_PORT, description="Container port the model server listens on.")
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
        json_schema_extra=no_schema_default,
    )
    health_path: HttpPath | None = Field(
        default=None,
        description=(
            "Liveness endpoint (HTTP 200 when the process is up). Required when protocol is custom; "
            "otherwise overrides the protocol's standard path. An absolute URL path such as /healthz."
        ),
    )
    readiness_path: HttpPath | None = Field(
        default=None,
        description=(
            "Readiness endpoint (HTTP 200 when the model can serve). Required when protocol is custom; "
            "otherwise overrides the protocol's standard path. An absolute URL path such as /ready."
        ),
    )
    metadata_path: HttpPath | None = Field(
        default=None,
        description=(
            "Model metadata endpoint (JSON). Optional; overrides the protocol's standard path. "
            "An absolute URL path such as /metadata."
        ),
    )
    version_path: HttpPath | None = Field(
        default=None,
        description=(
            "Endpoint returning JSON with the served model version in a 'version' field. Optional; "
            "without it a custom runtime's served version is not verified. An absolute URL path such as /version."
        ),
    )

    def _check_custom_protocol(self) -> None:
        if self.protocol == "custom" and (self.health_path is None or self.readiness_path is None):
            raise ValueError(CUSTOM_PROTOCOL_NEEDS_PATHS.message)


class ServerSpec(_ServerFields):
    """A complete serving container: what a runtime declares, and what a ModelDeployment is served by."""

    model_config = ConfigDict(json_schema_extra=cel(CUSTOM_PROTOCOL_NEEDS_PATHS))

    image: ImageReference = Field(
        description="Container image of the model server, e.g. ghcr.io/org/server:1.0 or ...@sha256:<digest>."
    )

    @model_validator(mode="after")
    def _custom_protocol_needs_paths(self) -> Self:
        self._check_custom_protocol()
        return self


FORMAT_NAME_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
MAX_FORMATS = 32
MAX_PRIORITY = 1000


class SupportedFormat(SpecModel):
    """A model format a runtime serves; how ModelDeployments without a runtime name find it."""

    name: str = Field(
        max_length=63,
        pattern=FORMAT_NAME_PATTERN,
        description="Format name as spec.model.format gives it, compared without regard to case, e.g. sklearn.",
    )
    auto_select: bool = Field(
        default=True,
        description=(
            "Whether a ModelDeployment that names no runtime may be given this one for the format; false: only by name."
        ),
    )
    priority: int | None = Field(
        default=None,
        ge=1,
        le=MAX_PRIORITY,
        description=(
            f"Preference among runtimes serving the format (1-{MAX_PRIORITY}, higher wins; absent counts as 0). "
            "A ModelRuntime in the ModelDeployment's namespace wins over any ClusterModelRuntime; "
            "ties go to the name first in alphabetical order."
        ),
    )


class ModelRuntimeSpec(ServerSpec):
    """A serving runtime: a container that knows how to serve some model formats."""

    supported_formats: list[SupportedFormat] | None = Field(
        default=None,
        max_length=MAX_FORMATS,
        description="Model formats this runtime serves. A runtime without formats is used only by name.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    disabled: bool = Field(
        default=False,
        description="Take the runtime out of use: no new selection, and ModelDeployments naming it are Stalled.",
    )


_OLD_DEFAULTS: dict[str, object] = {"port": 8080, "protocol": "v2"}
"""What the apiserver filled into spec.runtime before runtimes existed (the metrics default aside)."""

# A named or selected runtime takes the fields written in spec.runtime as overrides, so those
# fields must reach the operator only when a person wrote them: no schema defaults below.
RUNTIME_NAME_OR_IMAGE = CelRule(
    rule=(
        "!has(self.image) || has(self.name) || !has(self.protocol) || self.protocol != 'custom' "
        "|| (has(self.healthPath) && has(self.readinessPath))"
    ),
    message=CUSTOM_PROTOCOL_NEEDS_PATHS.message,
)


def _no_defaults(schema: JsonDict) -> None:
    properties = schema.get("properties")
    for field_schema in properties.values() if isinstance(properties, dict) else ():
        if isinstance(field_schema, dict):
            field_schema.pop("default", None)
    schema[VALIDATIONS_KEY] = [RUNTIME_NAME_OR_IMAGE.as_schema()]


class RuntimeSpec(_ServerFields):
    """A ModelDeployment's `spec.runtime`: a runtime by name, a container by image, or neither (by format).

    Every field written next to a name (or with neither) overrides the runtime's: `env` entry by
    entry, the others whole. Without a name, an image means this container alone, today's form.
    """

    model_config = ConfigDict(json_schema_extra=_no_defaults)

    name: ObjectName | None = Field(
        default=None,
        description=(
            "A ModelRuntime in this namespace, or else a ClusterModelRuntime, of this name. "
            "Absent: the image given here, or else the runtime selected by spec.model.format."
        ),
    )
    image: ImageReference | None = Field(
        default=None,
        description=(
            "Container image of the model server, e.g. ghcr.io/org/server:1.0. Without a name, this container "
            "is the model server and no runtime is looked up; with a name, it replaces the runtime's image."
        ),
    )

    @model_validator(mode="after")
    def _custom_protocol_needs_paths(self) -> Self:
        if self.image is not None and self.name is None:
            self._check_custom_protocol()
        return self

    def overrides(self) -> set[str]:
        """The fields a person wrote, which win over a runtime's (`name` is the reference, not one).

        Objects stored before runtimes existed carry the apiserver's old defaults (port 8080,
        protocol v2, metrics {path: /metrics}); an apply that swaps their image for a name keeps
        them, so those exact values are read as not written: a runtime's own port, protocol and
        metrics stay. To force one of those values onto a runtime, give the runtime it instead.
        """
        written = set(self.model_fields_set) - {"name"}
        stale_defaults = {
            "port": self.port == _OLD_DEFAULTS["port"],
            "protocol": self.protocol == _OLD_DEFAULTS["protocol"],
            "metrics": self.metrics == MetricsEndpoint(),
        }
        return {field for field in written if not stale_defaults.get(field, False)}
