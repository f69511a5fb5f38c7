"""`modeldeploy run`: the operator process (kopf's reactor around our controller)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from prometheus_client import start_http_server

from modeldeploy import handlers, kubeapi, metrics
from modeldeploy.controller.manager import Controller
from modeldeploy.settings import OperatorSettings

log = logging.getLogger("modeldeploy")


def connection_info(configuration: Any) -> kopf.ConnectionInfo:
    """kopf's credentials from the same loaded configuration our own client uses."""
    hook = getattr(configuration, "refresh_api_key_hook", None)
    if hook is not None:
        hook(configuration)
    token = configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken")
    if token and token.lower().startswith("bearer "):
        token = token.split(" ", 1)[1]
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


async def serve(settings: OperatorSettings, *, stop_flag: asyncio.Event | None = None) -> None:
    configuration = kubeapi.load_configuration(settings.kubeconfig, settings.context)
    controller = Controller(kubeapi.KubeClient(configuration), settings)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, controller)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(configuration)

    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=metrics.REGISTRY)
    liveness = f"http://{settings.health_host}:{settings.health_port}/healthz" if settings.health_port else None
    scope = ", ".join(settings.namespaces) or "all namespaces"
    log.info("modeldeploy operator starting for %s", scope)
    await kopf.operator(
        registry=registry,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        standalone=True,
        liveness_endpoint=liveness,
        stop_flag=stop_flag,
    )


def run(settings: OperatorSettings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(serve(settings))
    return 0
