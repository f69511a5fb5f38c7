"""Operator settings from flags and `MODELDEPLOY_*` environment variables."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from modeldeploy.render.model import DEFAULT_AUTH_PROXY_IMAGE, DEFAULT_FETCHER_IMAGE


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELDEPLOY_", extra="ignore")

    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Namespaces to serve, comma-separated in the environment; empty means all."
    )
    kubeconfig: str | None = Field(default=None, description="Kubeconfig path; in-cluster config when unset.")
    context: str | None = Field(default=None, description="Kubeconfig context; its current context when unset.")
    workers: int = Field(default=16, ge=1, description="Concurrent reconciles.")
    resync_seconds: float = Field(default=300.0, gt=0, description="Every ModelDeployment is reconciled this often.")
    metrics_port: int = Field(default=9090, ge=0, description="Prometheus metrics port; 0 disables.")
    metrics_host: str = Field(default="0.0.0.0", description="Address the metrics server listens on.")
    health_port: int = Field(default=8081, ge=0, description="Liveness endpoint port (/healthz); 0 disables.")
    health_host: str = Field(default="0.0.0.0", description="Address the liveness server listens on.")
    max_inflight_probes: int = Field(default=256, ge=1, description="Replica probes in flight at once, in all.")
    leader_election: bool = Field(
        default=False, description="Hold a Lease so several replicas can run; only the holder reconciles."
    )
    leader_election_namespace: str | None = Field(
        default=None, description="Namespace of the Lease; defaults to $POD_NAMESPACE, else 'default'."
    )
    leader_election_name: str = Field(default="modeldeploy", description="Name of the Lease.")
    lease_seconds: float = Field(default=15.0, gt=0, description="A standby takes over a Lease unchanged this long.")
    renew_seconds: float = Field(default=5.0, gt=0, description="How often the holder renews its Lease.")
    verify_pull_secrets: bool = Field(
        default=True,
        description="Look up imagePullSecrets before rolling out; skipped quietly without `get` on Secrets.",
    )

    cluster_runtimes: bool = Field(
        default=True,
        description=(
            "Watch ClusterModelRuntimes (list/watch on them cluster-wide); false: only the ModelRuntimes of the "
            "served namespaces."
        ),
    )
    image_volumes: Literal["auto", "on", "off"] = Field(
        default="auto",
        description=(
            "How oci:// models reach the pod: on, an image volume; off, copied out of the image by an init "
            "container; auto, image volumes when the apiserver is Kubernetes 1.35 or later."
        ),
    )
    fetcher_image: str = Field(
        default=DEFAULT_FETCHER_IMAGE,
        min_length=1,
        description="Image of the model pods' fetch init container: the operator's own (the chart sets it).",
    )
    operator_namespace: str | None = Field(
        default=None,
        description="The operator's namespace: models' NetworkPolicies admit its probes from there (chart: set).",
    )
    operator_pod_labels: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="The operator pods' labels, k=v comma-separated: the NetworkPolicy peer its probes come from.",
    )
    scraper_peers: Annotated[list[dict[str, Any]], NoDecode] = Field(
        default_factory=list,
        description="NetworkPolicyPeers (JSON) whose scrapers may read a model's metrics port under a NetworkPolicy.",
    )
    auth_proxy_image: str = Field(
        default=DEFAULT_AUTH_PROXY_IMAGE,
        min_length=1,
        description="Image of the authorizing proxy (kube-rbac-proxy) put before models with access.authorization.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Least level logged.")
    log_format: Literal["text", "json"] = Field(
        default="text", description="text: one readable line per record; json: one JSON object per line."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("operator_pod_labels", mode="before")
    @classmethod
    def _split_labels(cls, value: object) -> object:
        if isinstance(value, str):
            pairs = [part.strip().split("=", 1) for part in value.split(",") if part.strip()]
            return {key.strip(): val.strip() for key, val in pairs}
        return value

    @field_validator("scraper_peers", mode="before")
    @classmethod
    def _peers_from_json(cls, value: object) -> object:
        """A JSON list in the environment or on the command line (the chart writes `toJson`)."""
        if isinstance(value, str):
            return json.loads(value) if value.strip() else []
        return value

    def operator_peers(self) -> tuple[dict[str, Any], ...]:
        """The operator's pods as a NetworkPolicyPeer; none when its namespace is unknown (out of cluster)."""
        if not self.operator_namespace:
            return ()
        peer: dict[str, Any] = {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.operator_namespace}}
        }
        if self.operator_pod_labels:
            peer["podSelector"] = {"matchLabels": dict(self.operator_pod_labels)}
        return (peer,)

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        """`MODELDEPLOY_NAMESPACES=a,b` (the natural form in a Deployment's env) or a list."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
