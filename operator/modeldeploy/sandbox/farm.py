"""The replica farm: makes the sandbox's simulated pods answer like real model servers.

kwok runs no containers, so a pod it reports Running serves nothing. The farm watches
Running pods made by modeldeploy and serves each one, at its pod IP (a 127.x address) and
container port, with a reference model server configured from the pod's own env
(MODEL_NAME, MODEL_VERSION). A pod annotation changes how one replica behaves, for tests
and the demo:

    kubectl annotate pod <pod> farm.modeldeploy.io/fault=unhealthy   # or hang, garbage, crash, version=2
    kubectl annotate pod <pod> farm.modeldeploy.io/fault-            # back to healthy
    kubectl annotate pod <pod> farm.modeldeploy.io/serve=false       # leave the pod's IP to another server

It only ever binds loopback addresses: a pod IP outside 127.0.0.0/8 is ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
from dataclasses import dataclass
from typing import Any

from modeldeploy import kubeapi
from modeldeploy.modelserver.multi import MultiReplicaServer
from modeldeploy.modelserver.replica import ReplicaConfig

FAULT_ANNOTATION = "farm.modeldeploy.io/fault"
SERVE_ANNOTATION = "farm.modeldeploy.io/serve"
POD_SELECTOR = "app.kubernetes.io/managed-by=modeldeploy"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
log = logging.getLogger("modeldeploy.farm")
Obj = dict[str, Any]


@dataclass(frozen=True)
class ServedPod:
    """What the farm serves for one pod; a change of any field means re-serving it."""

    ip: str
    port: int
    model_name: str
    version: str


def desired_replica(pod: Obj) -> tuple[ServedPod, str] | None:
    """(what to serve, fault) for a pod, or None when the pod should not be served."""
    metadata, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    if metadata.get("deletionTimestamp") or status.get("phase") != "Running":
        return None
    if metadata.get("annotations", {}).get(SERVE_ANNOTATION) == "false":
        return None
    ip = status.get("podIP")
    if not ip or ipaddress.ip_address(ip) not in LOOPBACK:
        return None
    for container in spec.get("containers", []):
        env = {e.get("name"): e.get("value") for e in container.get("env", []) if "value" in e}
        ports = [p for p in container.get("ports", []) if p.get("name") == "http"] or container.get("ports", [])
        if "MODEL_NAME" in env and ports:
            served = ServedPod(
                ip, int(ports[0]["containerPort"]), str(env["MODEL_NAME"]), str(env.get("MODEL_VERSION", "1"))
            )
            fault = str(metadata.get("annotations", {}).get(FAULT_ANNOTATION, "ok")) or "ok"
            return served, fault
    return None


class Farm:
    def __init__(self, api: kubeapi.KubeClient, server: MultiReplicaServer) -> None:
        self.api = api
        self.server = server
        self.pods: dict[str, tuple[ServedPod, str]] = {}  # pod uid -> served, fault

    async def sync_pod(self, event_type: str, pod: Obj) -> None:
        uid = str(pod.get("metadata", {}).get("uid"))
        wanted = None if event_type == "DELETED" else desired_replica(pod)
        current = self.pods.get(uid)
        if current is not None and (wanted is None or wanted[0] != current[0]):
            await self._stop(uid)
            current = None
        if wanted is None:
            return
        served, fault = wanted
        if current is None:
            await self._start(uid, served, fault, pod)
        elif current[1] != fault:
            self._set_fault(served, fault, pod)
            self.pods[uid] = (served, fault)

    async def _start(self, uid: str, served: ServedPod, fault: str, pod: Obj) -> None:
        clash = [other for other, (s, _) in self.pods.items() if (s.ip, s.port) == (served.ip, served.port)]
        for other in clash:  # an address reused by a new pod: the old one is gone
            await self._stop(other)
        try:
            await self.server.add(served.ip, served.port, ReplicaConfig(served.model_name, served.version, "ok"))
        except OSError as error:
            log.warning("cannot serve %s on %s:%s: %s", _name(pod), served.ip, served.port, error)
            return
        self.pods[uid] = (served, "ok")
        self._set_fault(served, fault, pod)
        self.pods[uid] = (served, fault)
        log.info("serving %s at %s:%s (%s %s)", _name(pod), served.ip, served.port, served.model_name, served.version)

    def _set_fault(self, served: ServedPod, fault: str, pod: Obj) -> None:
        try:
            self.server.set_fault(served.ip, served.port, fault)
            log.info("%s now behaves: %s", _name(pod), fault)
        except (ValueError, KeyError) as error:
            log.warning("ignoring fault %r on %s: %s", fault, _name(pod), error)

    async def _stop(self, uid: str) -> None:
        served, _ = self.pods.pop(uid)
        await self.server.remove(served.ip, served.port)
        log.info("stopped serving %s:%s", served.ip, served.port)

    async def run(self) -> None:
        """List, then watch from the list's resourceVersion; re-list when the watch expires."""
        path = kubeapi.POD.path(None)
        while True:
            try:
                body = await self.api.list(kubeapi.POD, None, POD_SELECTOR)
                seen = set()
                for pod in body.get("items", []):
                    seen.add(str(pod["metadata"]["uid"]))
                    await self.sync_pod("ADDED", pod)
                for uid in set(self.pods) - seen:
                    await self._stop(uid)
                version = body["metadata"]["resourceVersion"]
                params = {
                    "labelSelector": POD_SELECTOR,
                    "watch": "true",
                    "resourceVersion": version,
                    "allowWatchBookmarks": "true",
                    "timeoutSeconds": "300",
                }
                async for event in self.api.stream_lines(path, params):
                    if event.get("type") == "ERROR":
                        break
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        await self.sync_pod(str(event["type"]), event["object"])
            except (kubeapi.ApiError, OSError, ValueError) as error:
                log.warning("pod watch interrupted (%s); re-listing in 1s", error)
                await asyncio.sleep(1)


def _name(pod: Obj) -> str:
    metadata = pod.get("metadata", {})
    return f"{metadata.get('namespace')}/{metadata.get('name')}"


async def serve(kubeconfig: str) -> None:
    api = kubeapi.KubeClient(kubeapi.load_configuration(kubeconfig))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with MultiReplicaServer() as server:
        farm = Farm(api, server)
        task = asyncio.create_task(farm.run())
        await stop.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await api.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m modeldeploy.sandbox.farm")
    parser.add_argument("--kubeconfig", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    asyncio.run(serve(args.kubeconfig))


if __name__ == "__main__":
    main()
