"""`spec.access`, `spec.exposure` and `spec.disruptionBudget`: who may reach a model, from where, and how
much of it a voluntary disruption may take.

Every section is optional and off when absent: none of them needs a webhook, a mesh or a
controller beyond what the cluster already runs (a CNI that enforces NetworkPolicy, a Gateway
API implementation or an ingress controller for the exposure).
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, StrictStr, model_validator

from modeldeploy.api.base import CelRule, EmbeddedObject, IntOrPercentUpTo100, SpecModel, cel
from modeldeploy.api.rules import HttpPath, ObjectName

MAX_PEERS = 32
MAX_HOSTNAMES = 16
MAX_PARENT_REFS = 8

# RFC 1123 host names as the Gateway API and Ingress accept them, a leading wildcard label allowed.
HOSTNAME_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
Hostname = Annotated[StrictStr, Field(max_length=253, pattern=HOSTNAME_PATTERN)]

PEER_SAYS_WHO = CelRule(
    rule="has(self.namespaceSelector) || has(self.podSelector) || has(self.ipBlock)",
    message="access.networkPolicy.from[] needs namespaceSelector, podSelector or ipBlock",
)
ONE_EXPOSURE = CelRule(
    rule="has(self.httpRoute) != has(self.ingress)",
    message="exposure takes one of httpRoute or ingress",
)
ONE_BUDGET = CelRule(
    rule="!(has(self.maxUnavailable) && has(self.minAvailable))",
    message="disruptionBudget takes maxUnavailable or minAvailable, not both",
)


class NetworkPeer(SpecModel):
    """A NetworkPolicyPeer: the selectors are LabelSelectors, as in networking.k8s.io/v1."""

    model_config = ConfigDict(json_schema_extra=cel(PEER_SAYS_WHO))

    namespace_selector: EmbeddedObject | None = Field(
        default=None, description="Namespaces whose pods may call ({} is every namespace)."
    )
    pod_selector: EmbeddedObject | None = Field(
        default=None, description="Pods that may call; in this namespace unless namespaceSelector is set too."
    )
    ip_block: EmbeddedObject | None = Field(default=None, description="A CIDR that may call (cidr, except).")

    @model_validator(mode="after")
    def _says_who(self) -> Self:
        if self.namespace_selector is None and self.pod_selector is None and self.ip_block is None:
            raise ValueError(PEER_SAYS_WHO.message)
        return self


class NetworkPolicySpec(SpecModel):
    """Ingress to the model's pods from these peers only (and from the operator and its scrapers)."""

    from_: list[NetworkPeer] = Field(
        default_factory=list,
        alias="from",
        max_length=MAX_PEERS,
        description="Clients allowed to call the model's port; empty: only the operator and metrics scrapers.",
    )


Authorization = Literal["none", "kubernetes"]


class AccessSpec(SpecModel):
    """Who may call the model."""

    network_policy: NetworkPolicySpec | None = Field(
        default=None, description="A NetworkPolicy admitting only the listed clients; none when absent."
    )
    authorization: Authorization | None = Field(
        default=None,
        description=(
            "kubernetes: an authorizing proxy in front of the model admits a caller whose token may "
            "create modeldeployments/predict on this ModelDeployment (RBAC); none or absent: anyone."
        ),
    )


class ParentReference(SpecModel):
    """A Gateway the route attaches to."""

    name: ObjectName = Field(description="The Gateway's name.")
    namespace: ObjectName | None = Field(default=None, description="Its namespace; this one when absent.")
    section_name: ObjectName | None = Field(default=None, description="One listener of it.")


class HTTPRouteExposure(SpecModel):
    parent_refs: list[ParentReference] = Field(
        min_length=1, max_length=MAX_PARENT_REFS, description="Gateways to attach to."
    )
    hostnames: list[Hostname] | None = Field(
        default=None, max_length=MAX_HOSTNAMES, description="Host names; the first makes status.url."
    )
    path: HttpPath = Field(default="/", description="Path prefix routed to the model.")


class IngressExposure(SpecModel):
    class_name: ObjectName | None = Field(
        default=None, description="ingressClassName; the cluster's default when absent."
    )
    host: Hostname | None = Field(default=None, description="Host name; makes status.url.")
    path: HttpPath = Field(default="/", description="Path prefix routed to the model.")
    tls_secret_name: ObjectName | None = Field(default=None, description="A TLS Secret for host: https.")


class ExposureSpec(SpecModel):
    """How traffic from outside the cluster reaches the model: one route, owned by the ModelDeployment."""

    model_config = ConfigDict(json_schema_extra=cel(ONE_EXPOSURE))

    http_route: HTTPRouteExposure | None = Field(default=None, description="A Gateway API HTTPRoute.")
    ingress: IngressExposure | None = Field(default=None, description="A networking.k8s.io/v1 Ingress.")

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.http_route is None) == (self.ingress is None):
            raise ValueError(ONE_EXPOSURE.message)
        return self


class DisruptionBudgetSpec(SpecModel):
    """A PodDisruptionBudget; by default one with maxUnavailable 1 whenever more than one replica may run."""

    model_config = ConfigDict(json_schema_extra=cel(ONE_BUDGET))

    enabled: bool = Field(default=True, description="false: no budget.")
    max_unavailable: IntOrPercentUpTo100 | None = Field(default=None, description="Default 1.")
    min_available: IntOrPercentUpTo100 | None = Field(default=None, description="Instead of maxUnavailable.")

    @model_validator(mode="after")
    def _one(self) -> Self:
        if self.max_unavailable is not None and self.min_available is not None:
            raise ValueError(ONE_BUDGET.message)
        return self
