"""Operator settings from flags and `MODELDEPLOY_*` environment variables."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELDEPLOY_", extra="ignore")

    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Namespaces to serve, comma-separated in the environment; empty means all."
    )
    kubeconfig: str | None = Field(default=None, description="Kubeconfig path; in-cluster config when unset.")
    context: str | None = None
    workers: int = Field(default=4, ge=1, description="Concurrent reconciles.")
    resync_seconds: float = Field(default=300.0, gt=0, description="Every ModelDeployment is reconciled this often.")
    metrics_port: int = Field(default=9090, ge=0, description="Prometheus metrics port; 0 disables.")
    metrics_host: str = "0.0.0.0"
    health_port: int = Field(default=8081, ge=0, description="Liveness endpoint port (/healthz); 0 disables.")
    health_host: str = "0.0.0.0"
    max_inflight_probes: int = Field(default=256, ge=1)
    leader_election: bool = Field(
        default=False, description="Hold a Lease so several replicas can run; only the holder reconciles."
    )
    leader_election_namespace: str | None = Field(
        default=None, description="Namespace of the Lease; defaults to $POD_NAMESPACE, else 'default'."
    )
    leader_election_name: str = "modeldeploy"
    lease_seconds: float = Field(default=15.0, gt=0)
    renew_seconds: float = Field(default=5.0, gt=0)
    verify_pull_secrets: bool = Field(
        default=True,
        description="Look up imagePullSecrets before rolling out; skipped quietly without `get` on Secrets.",
    )

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        """`MODELDEPLOY_NAMESPACES=a,b` (the natural form in a Deployment's env) or a list."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
