"""`modeldeploy run`: the operator process (kopf's reactor around our controller)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import kopf
from prometheus_client import start_http_server

from modeldeploy import handlers, kubeapi, metrics
from modeldeploy.controller.leader import LeaderElector, LeaseSettings
from modeldeploy.controller.manager import Controller
from modeldeploy.health import serve_liveness
from modeldeploy.render.model import image_volumes_by_default
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


def lease_settings(settings: OperatorSettings) -> LeaseSettings:
    namespace = settings.leader_election_namespace or os.environ.get("POD_NAMESPACE") or "default"
    identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    return LeaseSettings(
        namespace=namespace,
        name=settings.leader_election_name,
        identity=identity,
        lease_seconds=settings.lease_seconds,
        renew_seconds=settings.renew_seconds,
    )


def _leadership(
    api: kubeapi.KubeApi,
    settings: OperatorSettings,
    controller: Controller,
    stop: asyncio.Event,
    background: list[asyncio.Task[None]],
) -> tuple[LeaderElector | None, Callable[[], None] | None]:
    """The elector and what starts its campaign (kopf calls it at startup); (None, None) when alone."""
    if not settings.leader_election:
        metrics.LEADER.set(1)
        return None, None
    elector = LeaderElector(api, lease_settings(settings))

    def campaign() -> None:
        async def stop_when_lost() -> None:
            await elector.lost.wait()
            stop.set()

        background.append(asyncio.create_task(elector.run(controller.start), name="modeldeploy-leader"))
        background.append(asyncio.create_task(stop_when_lost(), name="modeldeploy-leader-watch"))

    return elector, campaign


def _registry(
    configuration: Any, controller: Controller, elector: LeaderElector | None, campaign: Callable[[], None] | None
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    handlers.register(registry, controller, campaign, elector.release if elector is not None else None)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(configuration)

    return registry


async def serve(settings: OperatorSettings, *, stop_flag: asyncio.Event | None = None) -> bool:
    """Run until stopped; False when the process stopped because it lost its Lease."""
    configuration = kubeapi.load_configuration(settings.kubeconfig, settings.context)
    # each reconcile applies its children side by side: room for all of them, an Event and the Lease
    api = kubeapi.KubeClient(configuration, max_requests=max(20, 4 * settings.workers))
    controller = Controller(api, settings, image_volumes=await _image_volumes(api, settings))
    stop = stop_flag or asyncio.Event()
    background: list[asyncio.Task[None]] = []
    elector, campaign = _leadership(api, settings, controller, stop, background)
    registry = _registry(configuration, controller, elector, campaign)

    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=metrics.REGISTRY)
    liveness = (
        await serve_liveness(settings.health_host, settings.health_port, controller.liveness)
        if settings.health_port
        else None
    )
    scope = ", ".join(settings.namespaces) or "all namespaces"
    log.info("modeldeploy operator starting for %s", scope)
    try:
        await kopf.operator(
            registry=registry,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            standalone=True,
            stop_flag=stop,
        )
    finally:
        if liveness is not None:
            await liveness.cleanup()
    for task in background:
        task.cancel()
    return elector is None or not elector.lost.is_set()


VERSION_ATTEMPTS = 10


async def _image_volumes(api: kubeapi.KubeClient, settings: OperatorSettings) -> bool:
    """Whether oci:// models get image volumes: the setting, or with `auto` the apiserver's version."""
    if settings.image_volumes != "auto":
        return settings.image_volumes == "on"
    # Read it patiently: falling back on a passing error would switch every oci:// model's pods
    # to the copy and back on the next start, each switch a rollout.
    for attempt in range(VERSION_ATTEMPTS):
        try:
            version = await api.server_version()
            break
        except (kubeapi.ApiError, httpx.HTTPError, ValueError) as error:
            if attempt == VERSION_ATTEMPTS - 1:
                raise RuntimeError(
                    f"could not read the apiserver's /version to choose how oci:// models mount: {error}"
                ) from None
            await asyncio.sleep(2.0)
    found = image_volumes_by_default(version)
    log.info(
        "apiserver %s: oci:// models %s",
        version.get("gitVersion", "?"),
        "mounted as image volumes" if found else "copied by an init container",
    )
    return found


def run(settings: OperatorSettings) -> int:
    configure_logging(settings.log_level, settings.log_format)
    return 0 if asyncio.run(serve(settings)) else 1


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log pipelines (Loki, Elasticsearch, Cloud Logging) parse.

    Written here rather than taken from a library: a dozen lines, and nothing else in the
    operator would use one.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, format_: str) -> None:
    handler = logging.StreamHandler()
    if format_ == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # no line per /healthz or /metrics call
