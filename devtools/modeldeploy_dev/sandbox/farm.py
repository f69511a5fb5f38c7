"""The replica farm: makes the sandbox's simulated pods answer like real model servers.

kwok runs no containers, so a pod it reports Running serves nothing. The farm watches
Running pods made by modeldeploy and serves each one, at its pod IP (a 127.x address) and
container port, with a reference model server configured from the pod's own env
(MODEL_NAME, MODEL_VERSION). A pod annotation changes how one replica behaves, for tests
and the demo:

    kubectl annotate pod <pod> farm.modeldeploy.io/fault=unhealthy   # or hang, garbage, crash, version=2
    kubectl annotate pod <pod> farm.modeldeploy.io/fault-            # back to healthy
    kubectl annotate pod <pod> farm.modeldeploy.io/serve=false       # leave the pod's IP to another server

A pod whose images all have a local stand-in in the sandbox's farm/images.json is not served
by the reference server: the farm's kubelet (kubelet.py) runs its init containers and its model
server as processes instead, so a model really goes S3 -> fetch -> MLServer -> probes.

It only ever binds loopback addresses: a pod IP outside 127.0.0.0/8 is ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from modeldeploy import kubeapi
from modeldeploy.modelserver.replica import ReplicaConfig
from modeldeploy_dev.multi import MultiReplicaServer
from modeldeploy_dev.sandbox.kubelet import FARM_DIR, IMAGES_FILE, PodRun, load_images, runnable, sidecars

FAULT_ANNOTATION = "farm.modeldeploy.io/fault"
SERVE_ANNOTATION = "farm.modeldeploy.io/serve"
POD_SELECTOR = "app.kubernetes.io/managed-by=modeldeploy"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
log = logging.getLogger("modeldeploy.farm")
Obj = dict[str, Any]


# Retry delays after a failed list or watch: short, so a restarted apiserver's pods are
# served again within seconds, capped, so a long outage costs a request every few seconds.
INITIAL_BACKOFF = 0.25
MAX_BACKOFF = 4.0
WATCH_SECONDS = 240


class ResourceVersionGone(Exception):
    """The watch's resourceVersion is older than the apiserver remembers: re-list."""


@dataclass(frozen=True)
class ServedPod:
    """What the farm serves for one pod; a change of any field means re-serving it."""

    ip: str
    port: int
    model_name: str
    version: str


def placed(pod: Obj) -> bool:
    """Running at a loopback address, not going away, not handed to another server: the farm's to serve."""
    metadata, status = pod.get("metadata", {}), pod.get("status", {})
    if metadata.get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    if metadata.get("annotations", {}).get(SERVE_ANNOTATION) == "false":
        return False
    ip = status.get("podIP")
    return bool(ip) and ipaddress.ip_address(ip) in LOOPBACK


def desired_replica(pod: Obj) -> tuple[ServedPod, str] | None:
    """(what to serve, fault) for a pod, or None when the pod should not be served."""
    if not placed(pod):
        return None
    metadata, spec = pod.get("metadata", {}), pod.get("spec", {})
    ip = pod["status"]["podIP"]
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
    def __init__(self, api: kubeapi.KubeClient, server: MultiReplicaServer, state_dir: Path | None = None) -> None:
        self.api = api
        self.server = server
        self.pods: dict[str, tuple[ServedPod, str]] = {}  # pod uid -> served, fault
        self.state_dir = state_dir
        self.runs: dict[str, tuple[PodRun, asyncio.Task[None]]] = {}  # pod uid -> its containers as processes
        self.sidecar_runs: dict[str, tuple[PodRun, asyncio.Task[None]]] = {}  # pod uid -> real sidecars

    async def sync_pod(self, event_type: str, pod: Obj) -> None:
        uid = str(pod.get("metadata", {}).get("uid"))
        if await self._run_for_real(uid, event_type, pod):
            return
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

    async def _run_for_real(self, uid: str, event_type: str, pod: Obj) -> bool:
        """Whether the pod is (or was) run by the farm's kubelet; starts and stops that run."""
        running = self.runs.get(uid)
        if running is not None:
            if event_type == "DELETED" or not placed(pod):
                await self._end_run(uid)
            return True
        if self.state_dir is None or event_type == "DELETED" or uid in self.pods or not placed(pod):
            return False
        images = load_images(self.state_dir / IMAGES_FILE)
        if not runnable(pod, images):
            return False
        run = PodRun(self.api, pod, images, self.state_dir)
        self.runs[uid] = (run, asyncio.create_task(run.run(), name=f"run {_name(pod)}"))
        log.info("running %s for real (its images are known here)", _name(pod))
        return True

    async def _end_run(self, uid: str) -> None:
        run, task = self.runs.pop(uid)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        run.forget()
        log.info("stopped running %s", run.name)

    async def stop_all(self) -> None:
        for uid in list(self.runs):
            await self._end_run(uid)
        for uid in list(self.sidecar_runs):
            run, task = self.sidecar_runs.pop(uid)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            run.forget()

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
        self._start_sidecars(uid, pod)

    def _start_sidecars(self, uid: str, pod: Obj) -> None:
        """Beside a simulated model server, the pod's other containers the farm can run (an authorizing proxy)."""
        if self.state_dir is None:
            return
        images = load_images(self.state_dir / IMAGES_FILE)
        beside = sidecars(pod, images)
        if not beside:
            return
        run = PodRun(self.api, pod, images, self.state_dir, containers=beside)
        self.sidecar_runs[uid] = (run, asyncio.create_task(run.run(), name=f"sidecars of {_name(pod)}"))
        log.info("running %s of %s for real", ", ".join(c["name"] for c in beside), _name(pod))

    def _set_fault(self, served: ServedPod, fault: str, pod: Obj) -> None:
        try:
            self.server.set_fault(served.ip, served.port, fault)
            log.info("%s now behaves: %s", _name(pod), fault)
        except (ValueError, KeyError) as error:
            log.warning("ignoring fault %r on %s: %s", fault, _name(pod), error)

    async def _stop(self, uid: str) -> None:
        sidecar = self.sidecar_runs.pop(uid, None)
        if sidecar is not None:
            run, task = sidecar
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            run.forget()
        served, _ = self.pods.pop(uid)
        await self.server.remove(served.ip, served.port)
        log.info("stopped serving %s:%s", served.ip, served.port)

    async def run(self) -> None:
        """Keep the pod watch alive for as long as the farm runs, whatever the apiserver does.

        The farm outlives apiserver and etcd restarts in the fault tests, so no error ends this
        loop. A watch the server ends on time resumes from the last resourceVersion seen; a 410
        Gone (that version has left the watch cache) re-lists at once; any other failure (the
        connection refused or cut, an error answer) re-lists after a backoff that doubles up to
        MAX_BACKOFF, since pods may have come and gone while we were blind. Replicas already
        served keep serving throughout: only a successful re-list, the truth, stops any of them.
        """
        version: str | None = None
        delay = INITIAL_BACKOFF
        failing_since: float | None = None
        while True:
            listed_now = False
            try:
                if version is None:
                    version = await self._relist()
                    listed_now = True
                    if failing_since is not None:
                        log.info("pod watch reconnected after %.1fs", time.monotonic() - failing_since)
                    failing_since, delay = None, INITIAL_BACKOFF
                version = await self._watch(version)
                continue  # the server ended the watch on time: resume from where it stopped
            except ResourceVersionGone as gone:
                if not listed_now:  # a version from a fresh list that is already gone: back off
                    log.info("pod watch: %s; re-listing", gone)
                    version = None
                    continue
                log.warning("pod watch: fresh list already gone (%s); re-listing in %.2fs", gone, delay)
            except (kubeapi.ApiError, httpx.HTTPError, OSError, ValueError, KeyError, TimeoutError) as error:
                log.warning("pod watch interrupted (%s: %s); re-listing in %.2fs", type(error).__name__, error, delay)
            except Exception:  # a bug must not stop the farm serving: say so loudly, keep going
                log.exception("pod watch failed unexpectedly; re-listing in %.2fs", delay)
            version = None
            failing_since = failing_since or time.monotonic()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, MAX_BACKOFF)

    async def _relist(self) -> str:
        """Serve exactly the listed pods; return the list's resourceVersion to watch from."""
        body = await self.api.list(kubeapi.POD, None, POD_SELECTOR)
        seen = set()
        for pod in body.get("items", []):
            seen.add(str(pod["metadata"]["uid"]))
            await self.sync_pod("ADDED", pod)
        for uid in set(self.pods) - seen:
            await self._stop(uid)
        for uid in set(self.runs) - seen:
            await self._end_run(uid)
        return str(body["metadata"]["resourceVersion"])

    async def _watch(self, version: str) -> str:
        """Follow events from `version` until the server ends the stream; return the last version seen.

        Raises ResourceVersionGone when `version` is too old to watch from. The client-side
        deadline is a little longer than the server's, so a connection that silently stopped
        delivering (nothing on loopback should, but a wedged apiserver might) is noticed too.
        """
        params = {
            "labelSelector": POD_SELECTOR,
            "watch": "true",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        try:
            async with asyncio.timeout(WATCH_SECONDS + 30):
                async for event in self.api.stream_lines(kubeapi.POD.path(None), params):
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            raise ResourceVersionGone(str(obj.get("message", "410 Gone")))
                        raise kubeapi.ApiError(
                            int(obj.get("code", 500)), str(obj.get("reason", "")), str(obj.get("message", ""))
                        )
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        await self.sync_pod(str(kind), obj)
                    version = str(obj.get("metadata", {}).get("resourceVersion") or version)
        except kubeapi.ApiError as error:
            if error.status == 410:
                raise ResourceVersionGone(str(error)) from None
            raise
        return version


def _name(pod: Obj) -> str:
    metadata = pod.get("metadata", {})
    return f"{metadata.get('namespace')}/{metadata.get('name')}"


async def serve(kubeconfig: str, state_dir: Path | None = None) -> None:
    """Serve the sandbox's pods; `state_dir` holds images.json and a folder per pod the farm runs for real."""
    api = kubeapi.KubeClient(kubeapi.load_configuration(kubeconfig))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with MultiReplicaServer() as server:
        farm = Farm(api, server, state_dir=state_dir)
        task = asyncio.create_task(farm.run())
        await stop.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await farm.stop_all()
    await api.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m modeldeploy_dev.sandbox.farm")
    parser.add_argument("--kubeconfig", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    asyncio.run(serve(args.kubeconfig, Path(args.kubeconfig).resolve().parent / FARM_DIR))


if __name__ == "__main__":
    main()
